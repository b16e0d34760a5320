//! One entry of the peer table: where a peer lives and both half-connections with it.

use core::net::SocketAddr;
use core::time::Duration;

use alloc::boxed::Box;

use crate::eo::Env;
use crate::eo::recv::{RecvOutcome, RecvRecord};
use crate::eo::rtt::Rtt;
use crate::eo::send::{SendOutcome, SendRecord};
use crate::id::NodeId;
use crate::seal::{Aead, Cipher, ReplayWindow};
use crate::time::Instant;
use crate::wire::{DatagramWriter, PATH_DATA_LEN, Record, ReqSlots, Slots};

use super::limit::{NODE_ANSWERS, PEER_CHALLENGES, TokenBucket};

/// Addresses a peer may be challenged at concurrently (the oldest challenge gives way).
const MAX_CHALLENGES: usize = 4;
/// `PATH_RESPONSE`s owed to a peer at most (older ones give way).
const MAX_RESPONSES: usize = 4;

/// Times a `PATH_CHALLENGE` is sent on the challenger's own timer (more go when the peer's
/// datagrams keep coming from the address).
const CHALLENGE_ATTEMPTS: u32 = 8;

/// A `PATH_CHALLENGE` sent to an address a peer's datagrams came from.
#[derive(Debug, Clone, Copy)]
struct Challenge {
    addr: SocketAddr,
    data: [u8; PATH_DATA_LEN],
    sent: Instant,
    /// Sends on the timer so far.
    tries: u32,
}

/// What [`Peer::challenge`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeOutcome {
    /// Send a challenge with these bytes to the address.
    Send([u8; PATH_DATA_LEN]),
    /// One went to the address less than a retransmission timeout ago: nothing to do.
    NotDue,
    /// One is due, but the peer's or the node's rate limit says no: nothing changed.
    Limited,
}

/// The sealing state of one peer: our cipher towards it, its cipher towards us, and the
/// replay window over its counters.
#[derive(Debug)]
pub(crate) struct PeerSeal {
    /// Sealing towards the peer: (key id, cipher).
    pub(crate) tx: Option<(u8, Cipher)>,
    /// Opening from the peer: (key id, algorithm, epoch, cipher) of the last datagram opened.
    pub(crate) rx: Option<(u8, Aead, u64, Cipher)>,
    /// The epoch of the peer's start that the node talks to: the newest authenticated, or
    /// a lower one proven live by a probe (see [`super::probe`]).
    pub(crate) epoch: Option<u64>,
    /// Counters of that epoch seen.
    pub(crate) window: ReplayWindow,
    /// The highest epoch of the peer ever authenticated: any other epoch up to it is a dead
    /// start's (stale); one above it is a new start.
    pub(crate) ceiling: u64,
}

impl PeerSeal {
    pub(crate) fn new() -> Self {
        Self { tx: None, rx: None, epoch: None, window: ReplayWindow::new(), ceiling: 0 }
    }

    /// True if a datagram of `epoch` comes from a start of the peer older than the one the
    /// node talks to, or from one between that and the ceiling (captures, or a start whose
    /// clock went back: see [`super::probe`]).
    pub(crate) fn is_stale(&self, epoch: u64) -> bool {
        self.epoch.is_some_and(|known| epoch != known && epoch <= known.max(self.ceiling))
    }
}

/// Status records an announcement sends at most, until the peer answers.
const ANNOUNCE_ATTEMPTS: u32 = 16;

/// Settlement probes a closing node sends at most (with backoff from the RTT timeout:
/// 15 timeouts in all, 150 ms at the default minimum); a peer that never answers has
/// stopped caring (and the chance that 4 probe exchanges all fail on a live path is tiny).
const SETTLE_ATTEMPTS: u32 = 4;

/// A peer node: its address, our records with it and the replies we owe it.
#[derive(Debug)]
pub(crate) struct Peer {
    /// Where its datagrams come from (or where the application said it lives).
    pub(crate) addr: Option<SocketAddr>,
    /// The address before the last move (a late datagram from an old address can move a
    /// peer back there; see [`Peer::destination`]).
    prev_addr: Option<SocketAddr>,
    /// When a valid datagram last came from it.
    last_heard: Instant,
    /// Alternating between `addr` and `prev_addr` while the peer is silent.
    try_prev: bool,
    /// Registered by the application: never evicted from the table.
    pub(crate) registered: bool,
    /// Our half-connection towards it.
    pub(crate) send: Option<SendRecord>,
    /// Its half-connection towards us.
    pub(crate) recv: Option<RecvRecord>,
    /// Round-trip estimate; survives the records.
    pub(crate) rtt: Rtt,
    /// A `REQSLOTS(0, l)` owed although we have no send record.
    gc_reply: Option<u64>,
    /// A status owed although we have no receive record.
    status_due: bool,
    /// Announcing our address: (statuses sent so far, when to send the next one).
    announce: Option<(u32, Instant)>,
    /// Closing: asking the peer to confirm our ACKs (probes sent so far, when the next).
    settling: Option<(u32, Instant)>,
    /// Closing: the peer did not answer any settlement probe; stop waiting for it.
    settle_abandoned: bool,
    /// Sealing state (nodes with a key only).
    pub(crate) seal: Option<Box<PeerSeal>>,
    /// Path challenges in flight to addresses the peer's datagrams came from.
    challenges: [Option<Challenge>; MAX_CHALLENGES],
    /// Rate limit of the challenges the peer's datagrams (or forgeries of them) start.
    challenge_bucket: TokenBucket,
    /// `PATH_RESPONSE`s owed to the peer.
    responses: heapless::Vec<[u8; PATH_DATA_LEN], MAX_RESPONSES>,
    /// In the node's ready queue.
    pub(crate) in_ready: bool,
    /// Since when output has been waiting (for the coalescing delay).
    pub(crate) pending_since: Option<Instant>,
}

impl Peer {
    pub(crate) fn new(env: &Env, now: Instant, addr: Option<SocketAddr>) -> Self {
        let p = &env.params;
        Self {
            addr,
            prev_addr: None,
            last_heard: now,
            try_prev: false,
            registered: false,
            send: None,
            recv: None,
            rtt: Rtt::new(p.rto_initial, p.rto_min, p.rto_max),
            gc_reply: None,
            status_due: false,
            announce: None,
            settling: None,
            settle_abandoned: false,
            seal: None,
            challenges: [None; MAX_CHALLENGES],
            challenge_bucket: TokenBucket::new(),
            responses: heapless::Vec::new(),
            in_ready: false,
            pending_since: None,
        }
    }

    /// The peer's epoch to name as the destination's in a sealed datagram: the newest one
    /// authenticated from it, 0 if none yet.
    pub(crate) fn dst_epoch(&self) -> u64 {
        self.seal.as_ref().and_then(|s| s.epoch).unwrap_or(0)
    }

    /// Payloads accepted for this peer and not yet acknowledged.
    pub(crate) fn unacknowledged(&self) -> usize {
        self.send.as_ref().map_or(0, SendRecord::unacknowledged)
    }

    /// True if the table may drop this entry without losing anything.
    pub(crate) fn evictable(&self) -> bool {
        !self.registered
            && self.send.is_none()
            && self.recv.as_ref().is_none_or(RecvRecord::safe_to_forget)
    }

    pub(crate) fn has_output(&self) -> bool {
        self.gc_reply.is_some()
            || self.status_due
            || !self.responses.is_empty()
            || self.recv.as_ref().is_some_and(RecvRecord::has_output)
            || self.send.as_ref().is_some_and(SendRecord::has_output)
    }

    /// Bytes of tokens waiting to be sent.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.send.as_ref().map_or(0, SendRecord::pending_bytes)
    }

    fn owe_gc(&mut self, env: &mut Env, slot_end: u64) {
        if slot_end > env.leap_ceiling() {
            env.stats.stale_records += 1;
            return;
        }
        // Nothing of ours can be at or above the clock: the receiver may forget all below it.
        env.advance_clock(slot_end);
        self.gc_reply = Some(env.clock);
    }

    /// Starts announcing our address: a status now, repeated with backoff until the peer
    /// answers (a few times at most).
    pub(crate) fn announce(&mut self, now: Instant) {
        self.announce = Some((0, now));
        if let Some(send) = &mut self.send {
            send.on_path_change();
        }
    }

    /// True unless the peer may still wait for an ACK of ours (see [`RecvRecord::settled`]).
    pub(crate) fn receive_settled(&self) -> bool {
        self.settle_abandoned || self.recv.as_ref().is_none_or(RecvRecord::settled)
    }

    /// This node is closing: until the peer confirms every delivery, probe it (a status and
    /// a full ACK) with backoff, so that an ACK lost now does not leave it retransmitting to
    /// a node that is gone (TCP's TIME-WAIT, made explicit).
    pub(crate) fn begin_settling(&mut self, now: Instant) {
        if !self.receive_settled() {
            self.settling = Some((0, now));
        }
    }

    /// A valid datagram arrived from the peer at the address we know: it knows where we
    /// are, and it is there now (a move, if any, is confirmed: a silence later is loss, not a
    /// late datagram that moved it back, so stop trying the old address).
    pub(crate) fn heard(&mut self, now: Instant, answered: bool) {
        if answered {
            self.announce = None;
        }
        self.last_heard = now;
        self.prev_addr = None;
    }

    /// True if no valid datagram came from the peer since `now - quiet`.
    pub(crate) fn silent_for(&self, now: Instant, quiet: Duration) -> bool {
        now >= self.last_heard + quiet
    }

    /// Whether a `PATH_CHALLENGE` should go to `addr` now: none is in flight there, or the
    /// last one is older than a retransmission timeout, and both this peer's bucket and
    /// `node_bucket` have a token (then one is taken from each). Returns the bytes to send
    /// (the same ones again for a retransmission), taking fresh ones from `fresh` for a new
    /// address. When limited, nothing changes: no challenge in flight gives way.
    pub(crate) fn challenge(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        node_bucket: &mut TokenBucket,
        fresh: impl FnOnce() -> [u8; PATH_DATA_LEN],
    ) -> ChallengeOutcome {
        let timeout = self.rtt.timeout(0);
        if self.challenges.iter().flatten().any(|c| c.addr == addr && now < c.sent + timeout) {
            return ChallengeOutcome::NotDue;
        }
        if !self.challenge_bucket.has_token(now, PEER_CHALLENGES)
            || !node_bucket.has_token(now, NODE_ANSWERS)
        {
            return ChallengeOutcome::Limited;
        }
        self.challenge_bucket.take(now, PEER_CHALLENGES);
        node_bucket.take(now, NODE_ANSWERS);
        if let Some(c) = self.challenges.iter_mut().flatten().find(|c| c.addr == addr) {
            c.sent = now;
            return ChallengeOutcome::Send(c.data);
        }
        let data = fresh();
        let slot = match self.challenges.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                // The oldest challenge gives way.
                let mut oldest = 0;
                for (i, c) in self.challenges.iter().enumerate() {
                    if let (Some(c), Some(o)) = (c, &self.challenges[oldest])
                        && c.sent < o.sent
                    {
                        oldest = i;
                    }
                }
                oldest
            }
        };
        self.challenges[slot] = Some(Challenge { addr, data, sent: now, tries: 0 });
        ChallengeOutcome::Send(data)
    }

    /// A challenge whose retransmission timer expired: its address and bytes (a response
    /// may have been lost, and the peer may have nothing else to send from there).
    pub(crate) fn challenge_due(
        &mut self,
        now: Instant,
    ) -> Option<(SocketAddr, [u8; PATH_DATA_LEN])> {
        for entry in self.challenges.iter_mut() {
            let Some(c) = entry else { continue };
            if now < c.sent + self.rtt.timeout(c.tries + 1) {
                continue;
            }
            if c.tries >= CHALLENGE_ATTEMPTS {
                *entry = None;
                continue;
            }
            c.tries += 1;
            c.sent = now;
            return Some((c.addr, c.data));
        }
        None
    }

    /// True if `data`, arriving from `addr`, answers a challenge we sent there.
    pub(crate) fn response_matches(&self, addr: SocketAddr, data: &[u8; PATH_DATA_LEN]) -> bool {
        self.challenges.iter().flatten().any(|c| c.addr == addr && c.data == *data)
    }

    /// The peer proved it receives at `addr`: send its traffic there from now on.
    pub(crate) fn validated_move(&mut self, now: Instant, addr: SocketAddr) -> bool {
        self.challenges = [None; MAX_CHALLENGES];
        self.heard(now, true);
        let moved = self.move_to(addr);
        // Proven: no need to alternate with the old address.
        self.prev_addr = None;
        if moved && let Some(send) = &mut self.send {
            // Whatever was backing off waited for the old path: probe the new one now.
            send.on_path_change();
        }
        moved
    }

    /// The peer asked us to echo `data`.
    pub(crate) fn owe_response(&mut self, data: [u8; PATH_DATA_LEN]) {
        if self.responses.is_full() {
            self.responses.remove(0);
        }
        let _ = self.responses.push(data);
    }

    /// Records a new address for the peer; returns true if it changed.
    pub(crate) fn move_to(&mut self, addr: SocketAddr) -> bool {
        if self.addr == Some(addr) {
            return false;
        }
        self.prev_addr = self.addr.replace(addr);
        true
    }

    /// Sets the address the application gave (authoritative: no previous address is kept).
    pub(crate) fn set_addr(&mut self, addr: SocketAddr) {
        self.addr = Some(addr);
        self.prev_addr = None;
    }

    /// Where to send the next datagram. Normally the peer's address; but while the peer has
    /// been silent for two retransmission timeouts, every other datagram goes to its previous
    /// address: a datagram delayed on the old path may have moved the peer back there. (Only
    /// until the move is confirmed, see [`Peer::heard`].)
    pub(crate) fn destination(&mut self, now: Instant) -> Option<SocketAddr> {
        let addr = self.addr?;
        let Some(prev) = self.prev_addr else { return Some(addr) };
        if now < self.last_heard + self.rtt.timeout(2) {
            return Some(addr);
        }
        self.try_prev = !self.try_prev;
        Some(if self.try_prev { prev } else { addr })
    }

    /// Handles one record of a datagram from this peer.
    pub(crate) fn on_record(
        &mut self,
        env: &mut Env,
        now: Instant,
        src: &NodeId,
        record: Record<'_>,
    ) {
        match record {
            Record::ReqSlots(req) => {
                if self.recv.is_none() && req.count > 0 {
                    self.recv = Some(RecvRecord::new(env, now, req.start));
                }
                if let Some(recv) = &mut self.recv
                    && recv.on_reqslots(env, now, req) == RecvOutcome::Forget
                {
                    self.recv = None;
                    env.stats.receive_records_collected += 1;
                }
            }
            Record::Slots(slots) => match &mut self.send {
                Some(send) => send.on_slots(env, now, &mut self.rtt, slots),
                // A grant or status for a send record we no longer have: we hold nothing for
                // this peer, so it may forget every slot we ever used.
                None => self.owe_gc(env, slots.start.saturating_add(slots.count.into())),
            },
            Record::Token(token) => {
                // An incarnation at or above our clock (above every one this start issued),
                // or above the record's, or the record's but below the slots it granted, was
                // issued by a previous start of this node (it restarted without its clock).
                // Move the clock above it, so that the status below proves that incarnation
                // gone, and the next record's is above it. A record made meanwhile goes if it
                // delivered nothing (the sender, which holds the older start's incarnation,
                // ignored its grants).
                let from_previous_start = token.incarnation >= env.clock
                    || self.recv.as_ref().is_some_and(|r| !r.could_be_ours(&token));
                if from_previous_start
                    && token.incarnation < env.leap_ceiling()
                    && self.recv.as_ref().is_none_or(RecvRecord::delivered_nothing)
                {
                    env.advance_clock(token.incarnation.saturating_add(1));
                    if self.recv.take().is_some() {
                        env.stats.receive_records_collected += 1;
                    }
                }
                match &mut self.recv {
                    Some(recv) => recv.on_token(env, now, src, token),
                    None => {
                        self.status_due = true;
                        env.stats.stale_records += 1;
                    }
                }
            }
            Record::Ack(ack) => match &mut self.send {
                Some(send) => send.on_ack(env, now, &mut self.rtt, &ack),
                None => env.stats.stale_records += 1,
            },
            Record::PathChallenge(data) => self.owe_response(data),
            // Checked by the node before the records (it decides where the peer lives), or
            // before it looks at the peer at all.
            Record::PathResponse(_) | Record::SealMismatch(_) => {}
        }
    }

    /// Writes what is due into `w`, control records first.
    pub(crate) fn write(&mut self, env: &mut Env, now: Instant, w: &mut DatagramWriter<'_>) {
        while let Some(&data) = self.responses.first() {
            if w.push(&Record::PathResponse(data)).is_err() {
                return;
            }
            self.responses.remove(0);
            env.stats.path_responses_sent += 1;
        }
        if let Some(lowest) = self.gc_reply {
            let gc = ReqSlots { start: lowest, count: 0, lowest };
            if w.push(&Record::ReqSlots(gc)).is_err() {
                return;
            }
            self.gc_reply = None;
            env.stats.reqslots_sent += 1;
        }
        if self.status_due {
            match &mut self.recv {
                Some(recv) => recv.request_status(),
                None => {
                    // No record: the clock is above every incarnation we ever issued.
                    let status = Slots { start: 0, incarnation: env.clock, count: 0 };
                    if w.push(&Record::Slots(status)).is_err() {
                        return;
                    }
                    env.stats.status_sent += 1;
                }
            }
            self.status_due = false;
        }
        if let Some(recv) = &mut self.recv
            && !recv.write(env, w)
        {
            return;
        }
        if let Some(send) = &mut self.send {
            send.write(env, now, w);
        }
    }

    /// Runs the records' timers that are due.
    pub(crate) fn on_timeout(&mut self, env: &mut Env, now: Instant) {
        if let Some((sent, at)) = self.announce
            && at <= now
        {
            // Any record from us teaches the peer our address; a status is harmless to it.
            self.status_due = true;
            let sent = sent + 1;
            self.announce =
                (sent < ANNOUNCE_ATTEMPTS).then(|| (sent, now + self.rtt.timeout(sent)));
        }
        if let Some((sent, at)) = self.settling
            && at <= now
        {
            self.settling = match &mut self.recv {
                Some(recv) if !recv.settled() && sent < SETTLE_ATTEMPTS => {
                    recv.probe_settlement();
                    Some((sent + 1, now + self.rtt.timeout(sent + 1)))
                }
                Some(recv) if !recv.settled() => {
                    self.settle_abandoned = true;
                    None
                }
                _ => None,
            };
        }
        if let Some(send) = &mut self.send
            && send.deadline(env, &self.rtt).is_some_and(|t| t <= now)
            && let SendOutcome::Forget { lowest } = send.on_timeout(env, now, &self.rtt)
        {
            self.send = None;
            self.gc_reply = Some(lowest);
            env.stats.send_records_collected += 1;
        }
        if let Some(recv) = &mut self.recv
            && recv.deadline(env) <= now
            && recv.on_timeout(env, now) == RecvOutcome::Forget
        {
            self.recv = None;
            env.stats.receive_records_collected += 1;
        }
    }

    /// When `on_timeout` (or a delayed flush) is due next.
    pub(crate) fn deadline(&self, env: &Env, coalesce: Duration) -> Option<Instant> {
        let mut at = self.send.as_ref().and_then(|s| s.deadline(env, &self.rtt));
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if let Some(recv) = &self.recv {
            consider(recv.deadline(env));
        }
        if let Some((_, next)) = self.announce {
            consider(next);
        }
        if let Some((_, next)) = self.settling {
            consider(next);
        }
        for c in self.challenges.iter().flatten() {
            consider(c.sent + self.rtt.timeout(c.tries + 1));
        }
        if !coalesce.is_zero()
            && let Some(since) = self.pending_since
        {
            consider(since + coalesce);
        }
        at
    }
}
