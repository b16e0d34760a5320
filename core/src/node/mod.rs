//! A node: the peer table and the exactly-once sessions, driven by four sans-I/O calls.
//!
//! ```text
//! node.handle_datagram(now, from, bytes)   // a datagram arrived
//! node.handle_timeout(now)                 // the deadline of poll_timeout passed
//! node.poll_transmit(now, &mut buf)        // the next datagram to send, until None
//! node.poll_timeout()                      // when to call handle_timeout again
//! ```
//!
//! The application side is [`Node::submit`] (a payload for exactly-once delivery to a peer,
//! or to this node itself) and [`Node::poll_delivery`] (the next delivered payload). The
//! protocol is described in [`crate::eo`].
//!
//! Peers are named by [`NodeId`]; their addresses come from [`Node::set_peer_addr`] and from
//! traffic (mobility), but only from proven senders: a datagram naming a known node id as its
//! source, from a new address, does not move that peer; the node sends a `PATH_CHALLENGE` to
//! the new address and moves the peer there once the challenge's bytes come back from it
//! (see [`crate::wire`]). Challenges are rate-limited, so that forged datagrams from ever new
//! addresses cannot make the node a reflector: per peer 8 at once then 4 a second, per node
//! 64 at once then 100 a second, retransmissions included in the latter; the rest are not
//! sent and are counted ([`NodeStats::path_challenges_limited`]). Until the move is proven a
//! plaintext datagram from the unproven address is dropped but for its path records
//! ([`NodeStats::path_unverified`]); a sealed one is authentic, so its records count, but
//! only one newer than any before may start a challenge, so a late or replayed datagram never
//! does. A node that moved calls [`Node::announce`] so that peers it
//! has nothing to send to learn its new address too (it keeps announcing until it gets their
//! traffic, not only their challenge). Datagrams that do not parse, name another
//! destination, or come from a new peer while the table is full are dropped and counted in
//! [`NodeStats`]; the peer table never exceeds `max_peers` (entries that hold nothing worth
//! keeping are evicted for newcomers).
//!
//! With [`Node::set_seal`] every datagram is sealed (authenticated encryption under a
//! pre-shared key, replay protection: [`crate::seal`]), and is checked and opened before any
//! state changes; plaintext datagrams are refused, as are sealed ones by a node without a key,
//! each counted ([`NodeStats`]) and reported ([`Node::last_refusal`]). A sealed datagram names
//! the epoch of its destination as its sender knows it: one sealed for a previous start of
//! this node is dropped unopened ([`NodeStats::stale_dst_epoch`]) and, if authentic, answered
//! with this node's epoch ([`NodeStats::epoch_notices_sent`], rate-limited like challenges).
//! A peer's datagram of an epoch older than the one known is dropped unopened, unless the
//! peer fell silent: then it may be a start whose clock went back, and a challenge sealed
//! for that epoch tells (`probe`; [`NodeStats::epoch_probes_sent`]).
//!
//! ```
//! use a3m_core::id::NodeId;
//! use a3m_core::node::{Node, NodeConfig};
//! use a3m_core::time::Instant;
//!
//! let (a_addr, b_addr) = ("10.0.0.1:7000".parse().unwrap(), "10.0.0.2:7000".parse().unwrap());
//! let (a_id, b_id) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
//! let mut a = Node::new(a_id.clone(), NodeConfig::default());
//! let mut b = Node::new(b_id.clone(), NodeConfig::default());
//! a.set_peer_addr(b_id.clone(), b_addr).unwrap();
//! a.submit(Instant::ZERO, &b_id, b"hello").unwrap();
//!
//! // A perfect network: move datagrams until both nodes are quiet.
//! let mut buf = [0u8; 1400];
//! loop {
//!     let mut moved = false;
//!     while let Some((_, len)) = a.poll_transmit(Instant::ZERO, &mut buf) {
//!         b.handle_datagram(Instant::ZERO, a_addr, &buf[..len]);
//!         moved = true;
//!     }
//!     while let Some((_, len)) = b.poll_transmit(Instant::ZERO, &mut buf) {
//!         a.handle_datagram(Instant::ZERO, b_addr, &buf[..len]);
//!         moved = true;
//!     }
//!     if !moved { break; }
//! }
//! let mut out = [0u8; 64];
//! let d = b.poll_delivery(&mut out).unwrap().unwrap();
//! assert_eq!((d.from, &out[..d.len]), (a_id, &b"hello"[..]));
//! assert_eq!(a.unacknowledged(), 0);
//! ```

mod config;
mod limit;
mod peer;
mod probe;
mod seen;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

pub use config::{
    Delivery, MIN_DATAGRAM, NodeConfig, NodeError, NodeStats, Refusal, RefusalReason,
    TOKEN_OVERHEAD,
};
use limit::{NODE_ANSWERS, TokenBucket};
use peer::{ChallengeOutcome, Peer, PeerSeal};
use probe::{EpochProbes, MAX_PROBES, PROBE_SILENCE, ProbeChallenge};
use seen::NewestSeen;

use crate::eo::buffers::{BufPool, Inbox};
use crate::eo::send::SendRecord;
use crate::eo::{Env, Params};
use crate::id::NodeId;
use crate::seal::{Aead, Cipher, KeySchedule, SealConfig, SealError, Verdict};
use crate::time::Instant;
use crate::wire::{
    self, DatagramWriter, FLAG_SEALED, Header, PATH_DATA_LEN, Record, SEAL_OVERHEAD,
    SEAL_PREFIX_LEN, SEAL_TAG_LEN, SealPrefix,
};

/// Idle payload buffers kept for reuse, at most.
const POOL_BUFFERS: usize = 4096;
/// Path challenges waiting to be sent, at most (more are dropped: the peer's next datagram
/// from the new address asks again).
const MAX_PATH_OUT: usize = 64;
/// Senders whose stale datagrams an epoch notice answers, remembered at most (a replayer
/// needs captures from more starts of senders than this to wear the memory out).
const STALE_SENDERS: usize = 32;
/// Evicted peers whose newest authenticated datagram is remembered, at most.
const EVICTED_SEALS: usize = 64;
/// Epoch notices waiting to be sent, at most (more are not queued: the sender's next
/// retransmission asks again).
const MAX_EPOCH_NOTICES: usize = 8;

/// The node's sealing keys and counter.
#[derive(Debug)]
struct NodeSeal {
    /// The key datagrams are sealed with.
    current: KeySchedule,
    /// The key before the last rotation, still accepted until the instant given.
    previous: Option<(KeySchedule, Instant)>,
    epoch: u64,
    aead: Aead,
    /// The next nonce counter (one sequence for all peers).
    counter: u64,
}

/// Least time between two `SEAL_MISMATCH` notices of a node (at most ten a second: they
/// answer unauthenticated datagrams, so they must not be a reflector).
const NOTICE_INTERVAL: Duration = Duration::from_millis(100);

/// Where a datagram of a stale epoch of its sender stands (see [`probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probing {
    /// Not stale.
    No,
    /// Stale; if authentic, it starts a probe of its epoch.
    Start,
    /// Stale, of an epoch being probed: it may carry the response.
    Running,
}

/// How a datagram's records were vouched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    /// Not at all: a plaintext datagram.
    Plaintext,
    /// Authenticated and not a replay; `newest` if its counter is the peer's highest yet.
    Sealed { newest: bool },
}

/// One a3m node: exactly-once sessions with its peers, as a sans-I/O state machine.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    config: NodeConfig,
    env: Env,
    peers: BTreeMap<NodeId, Peer>,
    /// Peers that may have something to send, in round-robin order.
    ready: VecDeque<NodeId>,
    /// Payloads this node sent to itself that did not fit in the inbox yet.
    self_queue: VecDeque<Vec<u8>>,
    /// Keys, when datagrams are sealed.
    seal: Option<NodeSeal>,
    /// Where sealed datagrams are opened.
    scratch: Vec<u8>,
    /// Secret of the path challenges' bytes.
    path_secret: [u8; 32],
    /// Path challenges made so far (makes each one's bytes unique).
    path_counter: u64,
    /// Path challenges to send: (peer, address to challenge, bytes).
    path_out: VecDeque<(NodeId, SocketAddr, [u8; PATH_DATA_LEN])>,
    /// Rate limit of all path challenges (each peer has its own too).
    challenge_bucket: TokenBucket,
    /// Epoch notices to send: (node, at address, its epoch), answers to datagrams sealed for
    /// another epoch of this node.
    epoch_notices: heapless::Deque<(NodeId, SocketAddr, u64), MAX_EPOCH_NOTICES>,
    /// Rate limit of the epoch notices.
    notice_bucket: TokenBucket,
    /// The newest datagram an epoch notice answered, per sender: replays of one capture
    /// are answered once at most.
    stale_answers: NewestSeen<STALE_SENDERS>,
    /// The newest datagram authenticated from peers whose entry was evicted: their replay
    /// windows, kept (in short) so that an eviction does not let old captures in again.
    evicted_seals: NewestSeen<EVICTED_SEALS>,
    /// Challenges to peers' stale epochs, for starts whose clock went back.
    probes: EpochProbes,
    /// Rate limit of new probes.
    probe_bucket: TokenBucket,
    /// Probe challenges to send.
    probe_out: heapless::Deque<ProbeChallenge, MAX_PROBES>,
    /// The last datagram refused for a configuration mismatch.
    refusal: Option<Refusal>,
    /// A `SEAL_MISMATCH` notice to send: (to node, at address, reason).
    notice: Option<(NodeId, SocketAddr, u8)>,
    /// When the last notice was queued.
    notice_at: Option<Instant>,
}

impl Node {
    /// A node named `id`; out-of-range values of `config` are brought into range.
    pub fn new(id: NodeId, config: NodeConfig) -> Self {
        let config = config.validated();
        let env = Env {
            params: Params::new(&config),
            clock: config.initial_clock,
            pool: BufPool::new(POOL_BUFFERS, config.max_datagram),
            inbox: Inbox::new(config.max_inbox),
            stats: NodeStats::default(),
            closing: false,
            sealed: false,
        };
        Self {
            id,
            config,
            env,
            peers: BTreeMap::new(),
            ready: VecDeque::new(),
            self_queue: VecDeque::new(),
            seal: None,
            scratch: Vec::new(),
            path_secret: [0; 32],
            path_counter: 0,
            path_out: VecDeque::new(),
            challenge_bucket: TokenBucket::new(),
            epoch_notices: heapless::Deque::new(),
            notice_bucket: TokenBucket::new(),
            stale_answers: NewestSeen::new(),
            evicted_seals: NewestSeen::new(),
            probes: EpochProbes::new(),
            probe_bucket: TokenBucket::new(),
            probe_out: heapless::Deque::new(),
            refusal: None,
            notice: None,
            notice_at: None,
        }
    }

    /// Seals every datagram from now on with `seal`'s key and refuses plaintext ones (see
    /// [`crate::seal`]). Call it before any traffic: datagrams exchanged before were
    /// plaintext. Lowers the largest payload by the seal's [`SEAL_OVERHEAD`] bytes if
    /// needed (see [`Node::max_payload`]).
    pub fn set_seal(&mut self, seal: SealConfig) {
        let room = self.config.max_datagram - TOKEN_OVERHEAD - SEAL_OVERHEAD;
        self.config.max_payload = self.config.max_payload.min(room);
        self.seal = Some(NodeSeal {
            current: KeySchedule::new(&seal.psk),
            previous: None,
            epoch: seal.epoch,
            aead: seal.aead,
            counter: 0,
        });
        for peer in self.peers.values_mut() {
            peer.seal = None;
        }
        self.env.sealed = true;
    }

    /// True if this node seals its datagrams.
    pub fn is_sealed(&self) -> bool {
        self.seal.is_some()
    }

    /// Switches to a new pre-shared key: datagrams are sealed with `psk` from now on, and
    /// ones sealed with the previous key are still accepted until `now + grace` (peers
    /// rotate too within that time; what they send meanwhile is not lost, only held until
    /// they do). Does nothing on a node without a key. The new key must have another
    /// [`crate::seal::Psk::id`] than the current one (one in 256 keys does not): then it is
    /// refused and `false` returned.
    pub fn rotate_psk(&mut self, now: Instant, psk: &crate::seal::Psk, grace: Duration) -> bool {
        let Some(seal) = &mut self.seal else { return false };
        let next = KeySchedule::new(psk);
        if next.id() == seal.current.id() {
            return false;
        }
        let old = core::mem::replace(&mut seal.current, next);
        seal.previous = Some((old, now + grace));
        true
    }

    /// Gives the node a secret for the bytes of its path challenges (see [`crate::wire`]):
    /// without one (the default is all zeros) an off-path attacker could predict them. The
    /// std adapters draw it from the operating system's random source.
    pub fn set_path_secret(&mut self, secret: [u8; 32]) {
        self.path_secret = secret;
    }

    /// The last datagram refused because this node and the peer disagree on sealing (one has
    /// a key, the other not, or not the same key): why a link to that peer does not come up.
    /// Forgotten once a datagram from that peer is accepted (the disagreement is over).
    pub fn last_refusal(&self) -> Option<&Refusal> {
        self.refusal.as_ref()
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The configuration in force (after validation).
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Largest payload [`Node::submit`] accepts.
    pub fn max_payload(&self) -> usize {
        self.config.max_payload
    }

    /// The node clock: above every incarnation and slot id this node has used. Persist it to
    /// restart with `initial_clock` above it.
    pub fn clock(&self) -> u64 {
        self.env.clock
    }

    /// Counters.
    pub fn stats(&self) -> &NodeStats {
        &self.env.stats
    }

    /// Tells the node where a peer lives (it also learns addresses from traffic). Setting
    /// this node's own address does nothing.
    pub fn set_peer_addr(&mut self, peer: NodeId, addr: SocketAddr) -> Result<(), NodeError> {
        if peer == self.id {
            return Ok(());
        }
        if !self.peers.contains_key(&peer) && !self.make_room() {
            return Err(NodeError::PeerTableFull);
        }
        let entry =
            self.peers.entry(peer).or_insert_with(|| Peer::new(&self.env, Instant::ZERO, None));
        entry.set_addr(addr);
        entry.registered = true;
        Ok(())
    }

    /// The address a peer is known at.
    pub fn peer_addr(&self, peer: &NodeId) -> Option<SocketAddr> {
        self.peers.get(peer).and_then(|p| p.addr)
    }

    /// The smoothed round-trip time measured to a peer, once there is a sample.
    pub fn peer_rtt(&self, peer: &NodeId) -> Option<Duration> {
        self.peers.get(peer).and_then(|p| p.rtt.srtt())
    }

    /// Number of peers in the table.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Number of send records (half-connections towards peers) alive.
    pub fn send_records(&self) -> usize {
        self.peers.values().filter(|p| p.send.is_some()).count()
    }

    /// Number of receive records (half-connections from peers) alive.
    pub fn receive_records(&self) -> usize {
        self.peers.values().filter(|p| p.recv.is_some()).count()
    }

    /// Accepts a copy of `payload` for exactly-once delivery to `to` (this node itself
    /// included: then it goes straight to the inbox, or waits for room there).
    ///
    /// Fails, taking nothing, with [`NodeError::PayloadTooLarge`], [`NodeError::UnknownPeer`]
    /// (no address known) or [`NodeError::QueueFull`] (`max_queued` payloads wait already).
    pub fn submit(&mut self, now: Instant, to: &NodeId, payload: &[u8]) -> Result<(), NodeError> {
        if payload.len() > self.config.max_payload {
            return Err(NodeError::PayloadTooLarge {
                len: payload.len(),
                max: self.config.max_payload,
            });
        }
        if *to == self.id {
            return self.submit_to_self(payload);
        }
        let env = &mut self.env;
        let peer = self.peers.get_mut(to).filter(|p| p.addr.is_some());
        let peer = peer.ok_or(NodeError::UnknownPeer)?;
        let send = peer.send.get_or_insert_with(|| SendRecord::new(env, now));
        if send.queued() >= self.config.max_queued {
            return Err(NodeError::QueueFull);
        }
        let copy = env.pool.copy_of(payload);
        send.submit(env, now, copy);
        Self::mark_peer(&mut self.ready, to, peer, now);
        Ok(())
    }

    fn submit_to_self(&mut self, payload: &[u8]) -> Result<(), NodeError> {
        if self.self_queue.is_empty() && !self.env.inbox.is_full() {
            let copy = self.env.pool.copy_of(payload);
            self.env.inbox.push(self.id.clone(), copy);
            self.env.stats.self_delivered += 1;
        } else if self.self_queue.len() < self.config.max_queued {
            self.self_queue.push_back(self.env.pool.copy_of(payload));
        } else {
            return Err(NodeError::QueueFull);
        }
        Ok(())
    }

    /// Payloads accepted by [`Node::submit`] and not yet acknowledged (or, for this node
    /// itself, not yet in the inbox).
    pub fn unacknowledged(&self) -> usize {
        self.self_queue.len() + self.peers.values().map(Peer::unacknowledged).sum::<usize>()
    }

    /// Whether at least `limit` payloads are unacknowledged ([`Node::unacknowledged`]
    /// `>= limit`), counting only as far as `limit`.
    pub fn unacknowledged_reach(&self, limit: usize) -> bool {
        let mut count = self.self_queue.len();
        for peer in self.peers.values() {
            if count >= limit {
                return true;
            }
            count += peer.unacknowledged();
        }
        count >= limit
    }

    /// Whether any payload accepted by [`Node::submit`] is not yet acknowledged.
    pub fn has_unacknowledged(&self) -> bool {
        self.unacknowledged_reach(1)
    }

    /// Payloads accepted for `peer` and not yet acknowledged.
    pub fn unacknowledged_to(&self, peer: &NodeId) -> usize {
        if *peer == self.id {
            return self.self_queue.len();
        }
        self.peers.get(peer).map_or(0, Peer::unacknowledged)
    }

    /// True if [`Node::poll_delivery`] has a payload to return.
    pub fn has_delivery(&self) -> bool {
        self.env.inbox.len() > 0
    }

    /// Number of delivered payloads waiting for [`Node::poll_delivery`].
    pub fn pending_deliveries(&self) -> usize {
        self.env.inbox.len()
    }

    /// Copies the next delivered payload into `out` and says who sent it and how long it is.
    /// Payloads come exactly once, in no particular order. If `out` is too short, fails with
    /// [`NodeError::BufferTooSmall`] and keeps the payload.
    pub fn poll_delivery(&mut self, out: &mut [u8]) -> Result<Option<Delivery>, NodeError> {
        let Some((_, payload)) = self.env.inbox.front() else { return Ok(None) };
        if payload.len() > out.len() {
            return Err(NodeError::BufferTooSmall { needed: payload.len() });
        }
        let Some((from, payload)) = self.env.inbox.pop() else { return Ok(None) };
        let len = payload.len();
        out[..len].copy_from_slice(&payload);
        self.env.pool.recycle(payload);
        self.refill_inbox();
        Ok(Some(Delivery { from, len }))
    }

    /// Takes the next delivered payload and who sent it, without copying it: the zero-copy
    /// form of [`Node::poll_delivery`]. Give the buffer back with [`Node::recycle`] once
    /// read, so that steady traffic does not allocate.
    pub fn take_delivery(&mut self) -> Option<(NodeId, Vec<u8>)> {
        let delivery = self.env.inbox.pop()?;
        self.refill_inbox();
        Some(delivery)
    }

    /// Gives a buffer from [`Node::take_delivery`] back for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.env.pool.recycle(buf);
    }

    /// Moves payloads this node sent itself into the inbox as room appears.
    fn refill_inbox(&mut self) {
        while !self.env.inbox.is_full() {
            let Some(next) = self.self_queue.pop_front() else { break };
            self.env.inbox.push(self.id.clone(), next);
            self.env.stats.self_delivered += 1;
        }
    }

    /// Makes room for one more peer by dropping one that holds nothing worth keeping.
    fn make_room(&mut self) -> bool {
        if self.peers.len() < self.config.max_peers {
            return true;
        }
        // Prefer an entry without any record, else one whose receive record is safe to forget.
        let victim = self
            .peers
            .iter()
            .find(|(_, p)| p.evictable() && p.recv.is_none())
            .or_else(|| self.peers.iter().find(|(_, p)| p.evictable()))
            .map(|(id, _)| id.clone());
        let Some(victim) = victim else { return false };
        let Some(peer) = self.peers.remove(&victim) else { return true };
        if peer.recv.is_some() {
            self.env.stats.receive_records_collected += 1;
        }
        if let Some(ps) = &peer.seal
            && let (Some(epoch), Some(newest)) = (ps.epoch, ps.window.newest())
        {
            // Without this, the peer's captures would be new again to a fresh entry. A peer
            // talked to below its ceiling (its clock went back) is remembered by the
            // ceiling, all of it seen: its live start proves itself again (see `probe`).
            if ps.ceiling > epoch {
                self.evicted_seals.record(&victim, ps.ceiling, u64::MAX);
            } else {
                self.evicted_seals.record(&victim, epoch, newest);
            }
        }
        true
    }

    fn mark_peer(ready: &mut VecDeque<NodeId>, id: &NodeId, peer: &mut Peer, now: Instant) {
        if peer.has_output() {
            peer.pending_since.get_or_insert(now);
            if !peer.in_ready {
                peer.in_ready = true;
                ready.push_back(id.clone());
            }
        }
    }

    /// Handles a datagram received from `from`. Invalid or foreign datagrams are counted
    /// and dropped; nothing panics. On a node with a key, a datagram is authenticated and
    /// checked against replays before anything in the node changes or is looked up by what
    /// it says (beyond the peer table lookup of its source id).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let stats = &mut self.env.stats;
        stats.datagrams_received += 1;
        stats.bytes_received += bytes.len() as u64;
        if bytes.len() > wire::MAX_DATAGRAM_LEN {
            stats.oversized_dropped += 1;
            return;
        }
        let Ok((header, header_len)) = wire::decode_header(bytes) else {
            stats.malformed_dropped += 1;
            return;
        };
        if header.dst != self.id.as_str() {
            stats.wrong_destination_dropped += 1;
            return;
        }
        let src = match NodeId::new(header.src) {
            Ok(src) if src != self.id => src,
            _ => {
                stats.malformed_dropped += 1;
                return;
            }
        };
        if header.flags & FLAG_SEALED != 0 {
            self.handle_sealed(now, from, bytes, src);
            return;
        }
        let Ok(datagram) = wire::decode_records(header, &bytes[header_len..]) else {
            self.env.stats.malformed_dropped += 1;
            return;
        };
        if let (1, Some(Record::SealMismatch(reason))) =
            (datagram.record_count(), datagram.records().next())
        {
            // A peer tells why it refuses us: a diagnostic only (anyone can send it).
            self.env.stats.seal_mismatch_received += 1;
            let reason = match reason {
                wire::SEAL_MISMATCH_NO_KEY if self.seal.is_some() => RefusalReason::PeerHasNoKey,
                wire::SEAL_MISMATCH_KEY_REQUIRED if self.seal.is_none() => {
                    RefusalReason::PeerRequiresKey
                }
                wire::SEAL_MISMATCH_UNKNOWN_KEY if self.seal.is_some() => {
                    RefusalReason::PeerHasOtherKey
                }
                _ => return,
            };
            self.refuse(reason, src, from);
            return;
        }
        if self.seal.is_some() {
            self.env.stats.plaintext_refused += 1;
            self.refuse(RefusalReason::PlaintextWithKey, src.clone(), from);
            self.notify_mismatch(now, src, from, wire::SEAL_MISMATCH_KEY_REQUIRED);
            return;
        }
        self.handle_records(now, from, src, &datagram, Proof::Plaintext);
    }

    fn refuse(&mut self, reason: RefusalReason, peer: NodeId, addr: SocketAddr) {
        self.refusal = Some(Refusal { reason, peer, addr });
    }

    /// Queues a `SEAL_MISMATCH` notice for `peer` at `addr`, unless one went out less than
    /// [`NOTICE_INTERVAL`] ago.
    fn notify_mismatch(&mut self, now: Instant, peer: NodeId, addr: SocketAddr, reason: u8) {
        if self.notice_at.is_some_and(|at| now < at + NOTICE_INTERVAL) {
            return;
        }
        self.notice_at = Some(now);
        self.notice = Some((peer, addr, reason));
    }

    /// Opens a sealed datagram: epoch, replay and destination epoch checks, then the AEAD,
    /// then (only if all pass) its records.
    fn handle_sealed(&mut self, now: Instant, from: SocketAddr, bytes: &[u8], src: NodeId) {
        let stats = &mut self.env.stats;
        let Some(seal) = &self.seal else {
            stats.sealed_refused += 1;
            self.refuse(RefusalReason::SealedWithoutKey, src.clone(), from);
            self.notify_mismatch(now, src, from, wire::SEAL_MISMATCH_NO_KEY);
            return;
        };
        let Ok(parts) = wire::decode_sealed(bytes) else {
            stats.sealed_malformed += 1;
            return;
        };
        let Some(aead) = Aead::from_id(parts.aead) else {
            stats.sealed_malformed += 1;
            return;
        };
        let peer = self.peers.get(&src);
        let peer_seal = peer.and_then(|p| p.seal.as_deref());
        // Cheap checks first: a replay costs no decryption. A datagram of a stale epoch is
        // dropped too, unless it may prove (or start proving) that the peer's clock went
        // back (see `probe`).
        let mut stale = false;
        if peer_seal.and_then(|ps| ps.epoch).is_none()
            && let Some((epoch, newest)) = self.evicted_seals.newest(&src)
        {
            // A peer whose entry was evicted: its window is kept in short.
            if parts.epoch < epoch {
                stale = true;
            } else if parts.epoch == epoch && parts.counter <= newest {
                stats.replay_too_old += 1;
                return;
            }
        }
        if let Some(ps) = peer_seal
            && let Some(epoch) = ps.epoch
        {
            if ps.is_stale(parts.epoch) {
                stale = true;
            } else if parts.epoch == epoch {
                match ps.window.check(parts.counter) {
                    Verdict::Replayed => {
                        stats.replayed += 1;
                        return;
                    }
                    Verdict::TooOld => {
                        stats.replay_too_old += 1;
                        return;
                    }
                    Verdict::Newest | Verdict::Fresh => {}
                }
            }
        }
        let probing = if stale {
            match self.probes.find_mut(&src, parts.epoch) {
                Some(probe) if parts.counter > probe.newest => Probing::Running,
                None if peer.is_none_or(|p| p.silent_for(now, PROBE_SILENCE))
                    && self.probe_bucket.has_token(now, NODE_ANSWERS) =>
                {
                    Probing::Start
                }
                _ => {
                    stats.stale_epoch += 1;
                    return;
                }
            }
        } else {
            Probing::No
        };
        let current = (seal.current.id() == parts.key_id).then_some(&seal.current);
        let previous = seal
            .previous
            .as_ref()
            .filter(|(k, until)| k.id() == parts.key_id && now <= *until)
            .map(|(k, _)| k);
        if current.is_none() && previous.is_none() {
            stats.sealed_unknown_key += 1;
            self.refuse(RefusalReason::UnknownKey, src.clone(), from);
            // Plaintext: a peer sealing with another key could not open a sealed notice.
            self.notify_mismatch(now, src, from, wire::SEAL_MISMATCH_UNKNOWN_KEY);
            return;
        }
        if parts.dst_epoch != 0 && parts.dst_epoch != seal.epoch {
            // Sealed for another start of this node: maybe a capture from before this one
            // started, which no replay window here remembers. Never opened for its records.
            stats.stale_dst_epoch += 1;
            self.answer_stale_epoch(now, from, bytes, &parts, aead, src);
            return;
        }
        let mut scratch = core::mem::take(&mut self.scratch);
        let n = parts.ciphertext.len();
        if scratch.len() < n {
            scratch.resize(n, 0);
        }
        let aad = &bytes[..parts.aad_len];
        let cached = peer_seal
            .and_then(|ps| ps.rx.as_ref())
            .filter(|(id, a, e, _)| *id == parts.key_id && *a == aead && *e == parts.epoch);
        let mut opened = None;
        let (counter, tag, ciphertext) = (parts.counter, &parts.tag, parts.ciphertext);
        if let Some((_, _, _, cipher)) = cached {
            if cipher.open_into(counter, aad, ciphertext, &mut scratch[..n], tag).is_ok() {
                opened = Some(None);
            }
        } else {
            for ks in [current, previous].into_iter().flatten() {
                let cipher = ks.cipher(aead, parts.epoch, src.as_str(), self.id.as_str());
                if cipher.open_into(counter, aad, ciphertext, &mut scratch[..n], tag).is_ok() {
                    opened = Some(Some(cipher));
                    break;
                }
            }
        }
        let Some(new_cipher) = opened else {
            self.env.stats.sealed_bad_tag += 1;
            self.scratch = scratch;
            return;
        };
        let Ok(datagram) = wire::decode_records(parts.header, &scratch[..n]) else {
            self.env.stats.malformed_dropped += 1;
            self.scratch = scratch;
            return;
        };
        // Authentic and not a replay: from here on the datagram may change state.
        let proven = match probing {
            Probing::No => false,
            Probing::Start => {
                // Authentic, of a stale epoch, from a silent peer: challenge that epoch.
                self.probe_bucket.take(now, NODE_ANSWERS);
                let data = challenge_bytes(&self.path_secret, &mut self.path_counter, from);
                self.probes.start(now, src, parts.epoch, from, data, counter);
                self.queue_probe_challenges(now);
                self.env.stats.stale_epoch += 1;
                self.scratch = scratch;
                return;
            }
            Probing::Running => {
                let Some(probe) = self.probes.find_mut(&src, parts.epoch) else { return };
                let answered = datagram
                    .records()
                    .any(|r| matches!(r, Record::PathResponse(data) if data == probe.data));
                if !answered {
                    probe.newest = counter;
                    if probe.addr != from {
                        // Newer than any datagram opened for the probe, so not a replay of
                        // one: the start itself is there (a replayer who started the probe
                        // from elsewhere must not keep its challenges).
                        probe.redirect(now, from);
                        self.queue_probe_challenges(now);
                    }
                    self.env.stats.stale_epoch += 1;
                    self.scratch = scratch;
                    return;
                }
                self.probes.remove(&src, parts.epoch);
                self.env.stats.epoch_probes_proven += 1;
                true
            }
        };
        // What an evicted entry of this peer left behind, if a new window is to start: taken
        // before making room (evicting another peer records it, and could push this one's
        // entry out of the memory), and only then (not a lookup per datagram).
        let known_epoch = self.peers.get(&src).and_then(|p| p.seal.as_ref()).and_then(|s| s.epoch);
        let remembered =
            if known_epoch == Some(parts.epoch) { None } else { self.evicted_seals.take(&src) };
        if !self.peers.contains_key(&src) {
            if !self.make_room() {
                if let Some((epoch, newest)) = remembered {
                    self.evicted_seals.record(&src, epoch, newest);
                }
                self.env.stats.peer_limit_dropped += 1;
                self.scratch = scratch;
                return;
            }
            self.peers.insert(src.clone(), Peer::new(&self.env, now, Some(from)));
        }
        let Some(peer) = self.peers.get_mut(&src) else { return };
        let ps = peer.seal.get_or_insert_with(|| Box::new(PeerSeal::new()));
        let restarted = ps.epoch.is_some_and(|e| e != parts.epoch);
        let remembered_epoch = remembered.map_or(0, |(epoch, _)| epoch);
        ps.ceiling = ps.ceiling.max(ps.epoch.unwrap_or(0)).max(remembered_epoch).max(parts.epoch);
        let newest = if proven {
            // A start whose clock went back, proven live: everything it sealed before its
            // response (captures of it included) is behind.
            ps.epoch = Some(parts.epoch);
            ps.window = crate::seal::ReplayWindow::seen_through(counter);
            true
        } else {
            if ps.epoch != Some(parts.epoch) {
                // The peer restarted (or this is its first datagram): a new window, unless
                // an evicted entry of this epoch left its newest counter behind. Everything
                // sealed for it from now on names this epoch as its destination's.
                ps.epoch = Some(parts.epoch);
                ps.window = match remembered {
                    Some((epoch, newest)) if epoch == parts.epoch => {
                        crate::seal::ReplayWindow::seen_through(newest)
                    }
                    _ => crate::seal::ReplayWindow::new(),
                };
            }
            ps.window.commit(counter) == Verdict::Newest
        };
        if let Some(cipher) = new_cipher {
            ps.rx = Some((parts.key_id, aead, parts.epoch, cipher));
        }
        if restarted && let Some(send) = &mut peer.send {
            // What was backing off waited for the peer's previous start (which may have
            // dropped it for its destination epoch): probe the new one now.
            send.on_path_change();
        }
        self.env.stats.sealed_opened += 1;
        self.handle_records(now, from, src, &datagram, Proof::Sealed { newest });
        self.scratch = scratch;
    }

    /// A datagram from `src` was sealed for another epoch of this node: if it is authentic
    /// (any key this node accepts), and not itself such an answer, and the rate limit allows,
    /// queues a sealed notice that tells `src` this node's epoch. Changes nothing else: no
    /// peer slot, no replay window, no record is looked at beyond telling an answer apart.
    fn answer_stale_epoch(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        parts: &wire::SealedDatagram<'_>,
        aead: Aead,
        src: NodeId,
    ) {
        let Some(seal) = &self.seal else { return };
        if self.epoch_notices.is_full()
            || !self.notice_bucket.has_token(now, NODE_ANSWERS)
            || !self.stale_answers.is_new(&src, parts.epoch, parts.counter)
        {
            return;
        }
        let previous = seal.previous.as_ref().filter(|(_, until)| now <= *until).map(|(k, _)| k);
        let keys = [Some(&seal.current), previous].into_iter().flatten();
        let mut scratch = core::mem::take(&mut self.scratch);
        let n = parts.ciphertext.len();
        if scratch.len() < n {
            scratch.resize(n, 0);
        }
        let aad = &bytes[..parts.aad_len];
        let mut opened = false;
        for ks in keys.filter(|k| k.id() == parts.key_id) {
            let cipher = ks.cipher(aead, parts.epoch, src.as_str(), self.id.as_str());
            let (counter, tag) = (parts.counter, &parts.tag);
            if cipher.open_into(counter, aad, parts.ciphertext, &mut scratch[..n], tag).is_ok() {
                opened = true;
                break;
            }
        }
        // An answer is never answered, so that two nodes that both restarted cannot bounce
        // notices between them.
        let answer = opened
            && wire::decode_records(parts.header, &scratch[..n])
                .is_ok_and(|d| d.records().all(|r| matches!(r, Record::SealMismatch(_))));
        self.scratch = scratch;
        if opened && !answer && self.notice_bucket.take(now, NODE_ANSWERS) {
            self.stale_answers.record(&src, parts.epoch, parts.counter);
            let _ = self.epoch_notices.push_back((src, from, parts.epoch));
        }
    }

    /// Handles the records of a datagram from `src` that passed every check its kind needs.
    fn handle_records(
        &mut self,
        now: Instant,
        from: SocketAddr,
        src: NodeId,
        datagram: &wire::Datagram<'_>,
        proof: Proof,
    ) {
        if self.refusal.as_ref().is_some_and(|r| r.peer == src) {
            // Traffic with this peer works now: the old reason no longer explains anything.
            self.refusal = None;
        }
        if !self.peers.contains_key(&src) {
            if !self.make_room() {
                self.env.stats.peer_limit_dropped += 1;
                return;
            }
            self.peers.insert(src.clone(), Peer::new(&self.env, now, Some(from)));
        }
        let Some(peer) = self.peers.get_mut(&src) else { return };
        let stats = &mut self.env.stats;
        if peer.addr.is_none() {
            peer.set_addr(from);
        }
        if peer.addr == Some(from) {
            // A datagram of path records only does not prove that the peer has our traffic:
            // a node that moved keeps announcing itself until it gets some.
            let path_only = datagram.records().all(|r| {
                matches!(
                    r,
                    Record::PathChallenge(_) | Record::PathResponse(_) | Record::SealMismatch(_)
                )
            });
            peer.heard(now, !path_only);
        } else {
            // Mobility: the peer's traffic moves only to an address it proved it receives at.
            let proven = datagram.records().any(|r| match r {
                Record::PathResponse(data) => peer.response_matches(from, &data),
                _ => false,
            });
            if proven {
                stats.path_validated += 1;
                if peer.validated_move(now, from) {
                    stats.address_changes += 1;
                }
            } else {
                // Challenge the new address (sealed datagrams: only for a datagram newer than
                // any before, so a late one from an old path does not).
                let may_challenge = match proof {
                    Proof::Plaintext => true,
                    Proof::Sealed { newest } => newest,
                };
                let (secret, counter) = (&self.path_secret, &mut self.path_counter);
                if may_challenge && self.path_out.len() < MAX_PATH_OUT {
                    let bucket = &mut self.challenge_bucket;
                    match peer
                        .challenge(now, from, bucket, || challenge_bytes(secret, counter, from))
                    {
                        ChallengeOutcome::Send(data) => {
                            self.path_out.push_back((src.clone(), from, data));
                            stats.path_challenges_sent += 1;
                        }
                        ChallengeOutcome::Limited => stats.path_challenges_limited += 1,
                        ChallengeOutcome::NotDue => {}
                    }
                }
                if proof == Proof::Plaintext {
                    // Anyone can write a plaintext datagram: from an unproven address only
                    // a challenge is answered (to the proven address).
                    for record in datagram.records() {
                        if let Record::PathChallenge(data) = record {
                            peer.owe_response(data);
                        }
                    }
                    stats.path_unverified += 1;
                    Self::mark_peer(&mut self.ready, &src, peer, now);
                    return;
                }
            }
        }
        for record in datagram.records() {
            peer.on_record(&mut self.env, now, &src, record);
        }
        Self::mark_peer(&mut self.ready, &src, peer, now);
    }

    /// Tells every peer in the table where this node is now, after its address changed
    /// (peers otherwise learn it only from the next datagram this node sends them). Each peer
    /// gets a small status record, repeated with backoff a few times until it answers; send
    /// records probe at once and restart their backoff (it waited for the old path).
    pub fn announce(&mut self, now: Instant) {
        for peer in self.peers.values_mut() {
            if peer.addr.is_some() {
                peer.announce(now);
            }
        }
        self.handle_timeout(now);
    }

    /// Queues the challenges of epoch probes that are due.
    fn queue_probe_challenges(&mut self, now: Instant) {
        let out = &mut self.probe_out;
        self.probes.due(now, |challenge| {
            // A full queue skips one attempt: the probe's next one comes.
            let _ = out.push_back(challenge);
        });
    }

    /// Runs the timers that are due: retransmissions, probes, garbage collection.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.queue_probe_challenges(now);
        for (id, peer) in self.peers.iter_mut() {
            while self.path_out.len() < MAX_PATH_OUT
                && let Some((addr, data)) = peer.challenge_due(now)
            {
                // Retransmissions share the node-wide limit (not the peer's: each challenge
                // has a few at most). One skipped still uses up its attempt, so that its
                // timer moves on.
                if self.challenge_bucket.take(now, NODE_ANSWERS) {
                    self.path_out.push_back((id.clone(), addr, data));
                    self.env.stats.path_challenges_sent += 1;
                } else {
                    self.env.stats.path_challenges_limited += 1;
                }
            }
            peer.on_timeout(&mut self.env, now);
            Self::mark_peer(&mut self.ready, id, peer, now);
        }
    }

    /// True if [`Node::poll_transmit`] may have a datagram to write now. False means it has
    /// none: payloads accepted since wait for slots or acknowledgements, whose arrival
    /// (a datagram to [`Node::handle_datagram`]) or a timer makes them sendable.
    pub fn wants_transmit(&self) -> bool {
        !self.ready.is_empty()
            || !self.path_out.is_empty()
            || !self.epoch_notices.is_empty()
            || !self.probe_out.is_empty()
            || self.notice.is_some()
    }

    /// Changes [`NodeConfig::ack_delay`] (at most `rto_min` / 2). Zero also makes every
    /// acknowledgement held back so far due now: a node about to stop calls this so that
    /// its peers do not wait for ACKs it would never send.
    pub fn set_ack_delay(&mut self, now: Instant, delay: Duration) {
        let delay = delay.min(self.config.rto_min / 2);
        self.config.ack_delay = delay;
        self.env.params.ack_delay = delay;
        if delay.is_zero() {
            for (id, peer) in self.peers.iter_mut() {
                if let Some(recv) = &mut peer.recv {
                    recv.acknowledge_now();
                }
                Self::mark_peer(&mut self.ready, id, peer, now);
            }
        }
    }

    /// Starts closing the node: acknowledges at once from now on ([`Node::set_ack_delay`]
    /// to zero), and asks every peer that may still wait for an ACK of ours to confirm it
    /// got them, probing with backoff until it does or a few probes went unanswered
    /// ([`Node::receives_settled`]); its own send records report their progress at once. A node
    /// that stops as soon as its own messages are acknowledged may otherwise leave a peer
    /// retransmitting into the void because its last ACK was lost.
    pub fn begin_close(&mut self, now: Instant) {
        self.set_ack_delay(now, Duration::ZERO);
        self.env.closing = true;
        for (id, peer) in self.peers.iter_mut() {
            peer.begin_settling(now);
            Self::mark_peer(&mut self.ready, id, peer, now);
        }
        self.handle_timeout(now);
    }

    /// True if no peer may still be waiting for an acknowledgement from this node: every
    /// payload delivered here was confirmed by its sender (it reported that it no longer
    /// holds the token). A closing node waits for this, as for [`Node::unacknowledged`].
    pub fn receives_settled(&self) -> bool {
        self.peers.values().all(Peer::receive_settled)
    }

    /// When [`Node::handle_timeout`] should be called next (`None`: nothing to wait for).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let coalesce = self.config.coalesce_delay;
        let peers = self.peers.values().filter_map(|p| p.deadline(&self.env, coalesce)).min();
        match (peers, self.probes.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Writes the next datagram into `buf` (at most `max_datagram` of it is used) and returns
    /// where to send it and its length; `None` once nothing is left to send now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let out = self.transmit(now, buf, false)?;
        debug_assert!(out.seal.is_none());
        Some((out.to, out.len))
    }

    /// As [`Node::poll_transmit`], but a datagram to a peer is left for the caller to seal
    /// with [`Transmit::seal`], after releasing whatever lock guards the node: sealing a
    /// large datagram takes microseconds that other threads need not wait for. The caller
    /// must seal the datagram before sending it, in the same buffer.
    pub fn poll_transmit_deferred(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.transmit(now, buf, true)
    }

    fn transmit(&mut self, now: Instant, buf: &mut [u8], defer: bool) -> Option<Transmit> {
        let limit = buf.len().min(self.config.max_datagram);
        let coalesce = self.config.coalesce_delay;
        if let Some((peer, addr, reason)) = self.notice.take() {
            // Plaintext even from a node with a key: the peer could not read it otherwise.
            let header = Header { src: self.id.as_str(), dst: peer.as_str(), flags: 0 };
            if let Ok(out) =
                wire::encode_datagram(&mut buf[..limit], &header, &[Record::SealMismatch(reason)])
            {
                self.env.stats.seal_mismatch_sent += 1;
                self.env.stats.datagrams_sent += 1;
                self.env.stats.bytes_sent += out.len as u64;
                return Some(Transmit { to: addr, len: out.len, seal: None });
            }
        }
        if !self.epoch_notices.is_empty()
            && let Some((to, len)) = self.transmit_epoch_notice(&mut buf[..limit])
        {
            return Some(Transmit { to, len, seal: None });
        }
        if !self.path_out.is_empty()
            && let Some((to, len)) = self.transmit_challenge(now, &mut buf[..limit])
        {
            return Some(Transmit { to, len, seal: None });
        }
        if !self.probe_out.is_empty()
            && let Some((to, len)) = self.transmit_probe(&mut buf[..limit])
        {
            return Some(Transmit { to, len, seal: None });
        }
        for _ in 0..self.ready.len() {
            let id = self.ready.pop_front()?;
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            peer.in_ready = false;
            if !peer.has_output() {
                peer.pending_since = None;
                continue;
            }
            if peer.addr.is_none() {
                peer.pending_since = None;
                continue;
            }
            let waited = peer.pending_since.is_none_or(|since| now >= since + coalesce);
            if !coalesce.is_zero() && !waited && peer.pending_bytes() < limit / 2 {
                // Give the producer a moment to add more to this datagram.
                peer.in_ready = true;
                self.ready.push_back(id);
                continue;
            }
            let dst_epoch = peer.dst_epoch();
            let prefix = self.seal.as_mut().map(|seal| seal.next_prefix(dst_epoch));
            let flags = if prefix.is_some() { FLAG_SEALED } else { 0 };
            let header = Header { src: self.id.as_str(), dst: id.as_str(), flags };
            let writer = match &prefix {
                None => DatagramWriter::new(&mut buf[..limit], &header),
                Some(prefix) => DatagramWriter::new_sealed(&mut buf[..limit], &header, prefix),
            };
            let Ok(mut writer) = writer else {
                // The caller's buffer cannot even hold a header; keep the output for later.
                peer.in_ready = true;
                self.ready.push_back(id);
                return None;
            };
            peer.write(&mut self.env, now, &mut writer);
            let written = writer.finish();
            let mut deferred = None;
            let len = match (&prefix, &self.seal) {
                _ if written.records == 0 => None,
                (Some(prefix), Some(seal)) => {
                    let ps = peer.seal.get_or_insert_with(|| Box::new(PeerSeal::new()));
                    if defer {
                        let sealed = written.len + SEAL_TAG_LEN;
                        (sealed <= limit).then(|| {
                            let cipher = seal.tx_cipher(ps, &header).clone();
                            let aad_len = header.encoded_len() + SEAL_PREFIX_LEN;
                            let (counter, len) = (prefix.counter, written.len);
                            deferred = Some(DeferredSeal { cipher, counter, aad_len, len });
                            sealed
                        })
                    } else {
                        seal.seal(ps, &header, prefix, &mut buf[..limit], written.len)
                    }
                }
                _ => Some(written.len),
            };
            if peer.has_output() {
                peer.in_ready = true;
                self.ready.push_back(id);
            } else {
                peer.pending_since = None;
            }
            let Some(len) = len else { continue };
            let Some(addr) = peer.destination(now) else { continue };
            self.env.stats.datagrams_sent += 1;
            self.env.stats.bytes_sent += len as u64;
            return Some(Transmit { to: addr, len, seal: deferred });
        }
        None
    }

    /// Writes the next epoch notice waiting, if any can be written: a sealed datagram of one
    /// `SEAL_MISMATCH` record whose seal carries this node's epoch, and the peer's as its
    /// destination epoch (so the peer accepts it whatever it knew of this node).
    fn transmit_epoch_notice(&mut self, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        while let Some((peer, addr, dst_epoch)) = self.epoch_notices.pop_front() {
            let record = Record::SealMismatch(wire::SEAL_MISMATCH_STALE_EPOCH);
            let Some(len) = self.seal_lone_record(&peer, dst_epoch, &record, buf) else {
                continue;
            };
            self.env.stats.epoch_notices_sent += 1;
            return Some((addr, len));
        }
        None
    }

    /// Writes the next epoch probe's challenge waiting, if any can be written: a sealed
    /// datagram of one `PATH_CHALLENGE` whose destination epoch is the probed one, so that
    /// only the peer's start at that epoch opens it.
    fn transmit_probe(&mut self, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        while let Some((peer, addr, dst_epoch, data)) = self.probe_out.pop_front() {
            let record = Record::PathChallenge(data);
            let Some(len) = self.seal_lone_record(&peer, dst_epoch, &record, buf) else {
                continue;
            };
            self.env.stats.epoch_probes_sent += 1;
            return Some((addr, len));
        }
        None
    }

    /// Writes into `buf` a datagram to `peer` of `record` alone, sealed with a one-off cipher
    /// (the peer may have no slot here; these answers are rate-limited, so rare) and
    /// `dst_epoch` as its destination epoch; counts it as sent and returns its length.
    fn seal_lone_record(
        &mut self,
        peer: &NodeId,
        dst_epoch: u64,
        record: &Record<'_>,
        buf: &mut [u8],
    ) -> Option<usize> {
        let seal = self.seal.as_mut()?;
        let prefix = seal.next_prefix(dst_epoch);
        let header = Header { src: self.id.as_str(), dst: peer.as_str(), flags: FLAG_SEALED };
        let mut writer = DatagramWriter::new_sealed(buf, &header, &prefix).ok()?;
        writer.push(record).ok()?;
        let written = writer.finish();
        let cipher = seal.current.cipher(seal.aead, seal.epoch, header.src, header.dst);
        let aad_len = header.encoded_len() + SEAL_PREFIX_LEN;
        let len = cipher.seal(prefix.counter, buf, aad_len, written.len).ok()?;
        self.env.stats.datagrams_sent += 1;
        self.env.stats.bytes_sent += len as u64;
        Some(len)
    }

    /// Writes the next path challenge waiting, if any can be written.
    fn transmit_challenge(&mut self, _now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        while let Some((id, addr, data)) = self.path_out.pop_front() {
            let dst_epoch = self.peers.get(&id).map_or(0, Peer::dst_epoch);
            let prefix = self.seal.as_mut().map(|seal| seal.next_prefix(dst_epoch));
            let flags = if prefix.is_some() { FLAG_SEALED } else { 0 };
            let header = Header { src: self.id.as_str(), dst: id.as_str(), flags };
            let writer = match &prefix {
                None => DatagramWriter::new(buf, &header),
                Some(prefix) => DatagramWriter::new_sealed(buf, &header, prefix),
            };
            let Ok(mut writer) = writer else { continue };
            if writer.push(&Record::PathChallenge(data)).is_err() {
                continue;
            }
            let written = writer.finish();
            let len = match (&prefix, &self.seal, self.peers.get_mut(&id)) {
                (None, _, _) => written.len,
                (Some(prefix), Some(seal), Some(peer)) => {
                    let ps = peer.seal.get_or_insert_with(|| Box::new(PeerSeal::new()));
                    let Some(len) = seal.seal(ps, &header, prefix, buf, written.len) else {
                        continue;
                    };
                    len
                }
                _ => continue,
            };
            self.env.stats.datagrams_sent += 1;
            self.env.stats.bytes_sent += len as u64;
            return Some((addr, len));
        }
        None
    }
}

impl NodeSeal {
    /// The seal prefix of the next datagram to a peer whose epoch, as far as this node
    /// authenticated it, is `dst_epoch` (0: none yet); takes a counter.
    fn next_prefix(&mut self, dst_epoch: u64) -> SealPrefix {
        let counter = self.counter;
        self.counter += 1;
        SealPrefix {
            aead: self.aead.id(),
            key_id: self.current.id(),
            dst_epoch,
            epoch: self.epoch,
            counter,
        }
    }

    /// Seals the datagram of `len` bytes in `buf` for the peer of `ps` (header `header`);
    /// returns the sealed length.
    fn seal(
        &self,
        ps: &mut PeerSeal,
        header: &Header<'_>,
        prefix: &SealPrefix,
        buf: &mut [u8],
        len: usize,
    ) -> Option<usize> {
        let cipher = self.tx_cipher(ps, header);
        let aad_len = header.encoded_len() + SEAL_PREFIX_LEN;
        cipher.seal(prefix.counter, buf, aad_len, len).ok()
    }

    /// The cipher sealing this node's datagrams to the peer of `ps` (header `header`), made
    /// when first needed or when the key or the algorithm changed.
    fn tx_cipher<'p>(&self, ps: &'p mut PeerSeal, header: &Header<'_>) -> &'p Cipher {
        let key_id = self.current.id();
        if ps.tx.as_ref().is_some_and(|(id, c)| *id != key_id || c.aead() != self.aead) {
            ps.tx = None;
        }
        let (_, cipher) = ps.tx.get_or_insert_with(|| {
            (key_id, self.current.cipher(self.aead, self.epoch, header.src, header.dst))
        });
        cipher
    }
}

/// A datagram [`Node::poll_transmit_deferred`] wrote: where it goes, its length once
/// sealed, and, for a sealed one, the sealing still to do.
#[derive(Debug)]
#[must_use = "a datagram with a pending seal must be sealed before it is sent"]
pub struct Transmit {
    /// The destination.
    pub to: SocketAddr,
    /// The datagram's length: with its tag if it is to be sealed.
    pub len: usize,
    /// `Some`: the records are still plaintext; seal them before sending.
    pub seal: Option<DeferredSeal>,
}

/// The sealing of one datagram, taken out of the node so that it can run without the node.
/// Holds a copy of the peer's cipher, wiped when dropped (moves of it may leave copies on
/// the stack, as any move of key material in Rust may). Applied once: it owns the counter.
#[derive(Debug)]
#[must_use = "the datagram stays unsealed until this is applied"]
pub struct DeferredSeal {
    cipher: Cipher,
    counter: u64,
    aad_len: usize,
    len: usize,
}

impl DeferredSeal {
    /// Seals the datagram in `buf` (the buffer [`Node::poll_transmit_deferred`] wrote it
    /// into) in place; returns its sealed length, [`Transmit::len`]. Consumes the seal, so
    /// its counter (the nonce) seals one datagram only.
    pub fn apply(self, buf: &mut [u8]) -> Result<usize, SealError> {
        self.cipher.seal(self.counter, buf, self.aad_len, self.len)
    }
}

/// The bytes of a path challenge: unpredictable without the node's secret, unique per
/// challenge.
fn challenge_bytes(secret: &[u8; 32], counter: &mut u64, addr: SocketAddr) -> [u8; PATH_DATA_LEN] {
    use sha2::{Digest, Sha256};
    *counter += 1;
    let mut h = Sha256::new();
    h.update(b"a3m path challenge");
    h.update(secret);
    h.update(counter.to_be_bytes());
    match addr {
        SocketAddr::V4(a) => h.update(a.ip().octets()),
        SocketAddr::V6(a) => h.update(a.ip().octets()),
    }
    h.update(addr.port().to_be_bytes());
    let digest = h.finalize();
    let mut out = [0u8; PATH_DATA_LEN];
    out.copy_from_slice(&digest[..PATH_DATA_LEN]);
    out
}
