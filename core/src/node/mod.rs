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
//! traffic: a valid datagram naming a known node id as its source, from a new address, moves
//! that peer there (mobility). A node that moved calls [`Node::announce`] so that peers it has
//! nothing to send to learn its new address too. Because a datagram delayed on the old path
//! can move a peer back to its old address, a peer silent for two retransmission timeouts
//! gets every other datagram at its previous address, until a second datagram from its
//! current address confirms the move. Datagrams that do not parse, name
//! another destination, or come from a new peer while the table is full are dropped and
//! counted in [`NodeStats`]; the peer table never exceeds `max_peers` (entries that hold
//! nothing worth keeping are evicted for newcomers).
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
mod peer;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

pub use config::{Delivery, MIN_DATAGRAM, NodeConfig, NodeError, NodeStats, TOKEN_OVERHEAD};
use peer::Peer;

use crate::eo::buffers::{BufPool, Inbox};
use crate::eo::send::SendRecord;
use crate::eo::{Env, Params};
use crate::id::NodeId;
use crate::time::Instant;
use crate::wire::{self, DatagramWriter, Header};

/// Idle payload buffers kept for reuse, at most.
const POOL_BUFFERS: usize = 4096;

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
        };
        Self {
            id,
            config,
            env,
            peers: BTreeMap::new(),
            ready: VecDeque::new(),
            self_queue: VecDeque::new(),
        }
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
        if let Some(peer) = self.peers.remove(&victim)
            && peer.recv.is_some()
        {
            self.env.stats.receive_records_collected += 1;
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
    /// and dropped; nothing panics.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let stats = &mut self.env.stats;
        stats.datagrams_received += 1;
        stats.bytes_received += bytes.len() as u64;
        if bytes.len() > wire::MAX_DATAGRAM_LEN {
            stats.oversized_dropped += 1;
            return;
        }
        let Ok(datagram) = wire::decode_datagram(bytes) else {
            stats.malformed_dropped += 1;
            return;
        };
        if datagram.header.dst != self.id.as_str() {
            stats.wrong_destination_dropped += 1;
            return;
        }
        let src = match NodeId::new(datagram.header.src) {
            Ok(src) if src != self.id => src,
            _ => {
                stats.malformed_dropped += 1;
                return;
            }
        };
        if !self.peers.contains_key(&src) {
            if !self.make_room() {
                self.env.stats.peer_limit_dropped += 1;
                return;
            }
            self.peers.insert(src.clone(), Peer::new(&self.env, now, Some(from)));
        }
        let Some(peer) = self.peers.get_mut(&src) else { return };
        // Mobility: the peer now sends from here.
        if peer.heard(now, from) {
            self.env.stats.address_changes += 1;
            // Whatever was backing off waited for the old path: probe the new one now.
            if let Some(send) = &mut peer.send {
                send.on_path_change();
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

    /// Runs the timers that are due: retransmissions, probes, garbage collection.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, peer) in self.peers.iter_mut() {
            peer.on_timeout(&mut self.env, now);
            Self::mark_peer(&mut self.ready, id, peer, now);
        }
    }

    /// True if [`Node::poll_transmit`] may have a datagram to write now. False means it has
    /// none: payloads accepted since wait for slots or acknowledgements, whose arrival
    /// (a datagram to [`Node::handle_datagram`]) or a timer makes them sendable.
    pub fn wants_transmit(&self) -> bool {
        !self.ready.is_empty()
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
        self.peers.values().filter_map(|p| p.deadline(&self.env, coalesce)).min()
    }

    /// Writes the next datagram into `buf` (at most `max_datagram` of it is used) and returns
    /// where to send it and its length; `None` once nothing is left to send now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let limit = buf.len().min(self.config.max_datagram);
        let coalesce = self.config.coalesce_delay;
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
            let header = Header { src: self.id.as_str(), dst: id.as_str(), flags: 0 };
            let Ok(mut writer) = DatagramWriter::new(&mut buf[..limit], &header) else {
                // The caller's buffer cannot even hold a header; keep the output for later.
                peer.in_ready = true;
                self.ready.push_back(id);
                return None;
            };
            peer.write(&mut self.env, now, &mut writer);
            let written = writer.finish();
            if peer.has_output() {
                peer.in_ready = true;
                self.ready.push_back(id);
            } else {
                peer.pending_since = None;
            }
            if written.records == 0 {
                continue;
            }
            let Some(addr) = peer.destination(now) else { continue };
            self.env.stats.datagrams_sent += 1;
            self.env.stats.bytes_sent += written.len as u64;
            return Some((addr, written.len));
        }
        None
    }
}
