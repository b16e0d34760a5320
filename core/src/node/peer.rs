//! One entry of the peer table: where a peer lives and both half-connections with it.

use core::net::SocketAddr;
use core::time::Duration;

use crate::eo::Env;
use crate::eo::recv::{RecvOutcome, RecvRecord};
use crate::eo::rtt::Rtt;
use crate::eo::send::{SendOutcome, SendRecord};
use crate::id::NodeId;
use crate::time::Instant;
use crate::wire::{DatagramWriter, Record, ReqSlots, Slots};

/// Status records an announcement sends at most, until the peer answers.
const ANNOUNCE_ATTEMPTS: u32 = 16;

/// Settlement probes a closing node sends at most (with backoff from the RTT timeout:
/// 15 timeouts in all, 150 ms at the default minimum); a peer that never answers has
/// stopped caring (and the chance that 4 probe exchanges all fail on a live path is tiny).
const SETTLE_ATTEMPTS: u32 = 4;

/// How far ahead of our clock a stray grant or status may push it (a sanity bound against
/// garbage; honest peers never come close).
const CLOCK_LEAP_LIMIT: u64 = 1 << 40;

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
            in_ready: false,
            pending_since: None,
        }
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
            || self.recv.as_ref().is_some_and(RecvRecord::has_output)
            || self.send.as_ref().is_some_and(SendRecord::has_output)
    }

    /// Bytes of tokens waiting to be sent.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.send.as_ref().map_or(0, SendRecord::pending_bytes)
    }

    fn owe_gc(&mut self, env: &mut Env, slot_end: u64) {
        if slot_end > env.clock.saturating_add(CLOCK_LEAP_LIMIT) {
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

    /// A valid datagram arrived from the peer, from `from`: it knows where we are, and it is
    /// there now. Returns true if that is a new address.
    pub(crate) fn heard(&mut self, now: Instant, from: SocketAddr) -> bool {
        self.announce = None;
        self.last_heard = now;
        if self.addr == Some(from) {
            // Heard again where we think it is: the move (if any) is confirmed, so a silence
            // later is loss, not a late datagram that moved it back; stop trying the old
            // address (every other retransmission into a dead address halves recovery).
            self.prev_addr = None;
        }
        self.move_to(from)
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
            Record::Token(token) => match &mut self.recv {
                Some(recv) => recv.on_token(env, now, src, token),
                None => {
                    self.status_due = true;
                    env.stats.stale_records += 1;
                }
            },
            Record::Ack(ack) => match &mut self.send {
                Some(send) => send.on_ack(env, now, &mut self.rtt, &ack),
                None => env.stats.stale_records += 1,
            },
        }
    }

    /// Writes what is due into `w`, control records first.
    pub(crate) fn write(&mut self, env: &mut Env, now: Instant, w: &mut DatagramWriter<'_>) {
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
        if !coalesce.is_zero()
            && let Some(since) = self.pending_since
        {
            consider(since + coalesce);
        }
        at
    }
}
