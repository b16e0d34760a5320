//! A deliberately simple node for testing the simulator itself: one message per datagram,
//! retransmitted until acknowledged, duplicates filtered by remembering every sequence number.
//!
//! It is exactly-once only with `dedup` and `retransmit` on (and its memory grows with the
//! messages it has seen, which the real node must not do). Turning either off gives a node the
//! checker must catch: duplicates without `dedup`, losses without `retransmit`.

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use a3m_core::id::NodeId;
use a3m_core::time::Instant;

use super::endpoint::{LivenessHints, SimNode, SubmitError};

const KIND_DATA: u8 = 0;
const KIND_ACK: u8 = 1;

/// Behaviour switches and limits of a [`NaiveNode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NaiveConfig {
    /// Deliver a sequence number only once per peer.
    pub dedup: bool,
    /// Retransmit unacknowledged messages every `rto` (otherwise send once and forget).
    pub retransmit: bool,
    /// Retransmission interval.
    pub rto: Duration,
    /// Unacknowledged messages per peer beyond which submit reports backpressure.
    pub max_unacked: usize,
    /// Largest payload accepted.
    pub max_payload: usize,
}

impl Default for NaiveConfig {
    /// Exactly-once (dedup and retransmit on), 200 ms RTO, 64 unacknowledged per peer, 1 KiB payloads.
    fn default() -> Self {
        NaiveConfig {
            dedup: true,
            retransmit: true,
            rto: Duration::from_millis(200),
            max_unacked: 64,
            max_payload: 1024,
        }
    }
}

#[derive(Debug)]
struct Peer {
    id: NodeId,
    addr: SocketAddr,
    next_seq: u64,
    /// seq -> (payload, retransmission deadline)
    unacked: BTreeMap<u64, (Vec<u8>, Instant)>,
    delivered: BTreeSet<u64>,
}

/// The simple at-least-once (optionally exactly-once) node described in the module docs.
#[derive(Debug)]
pub struct NaiveNode {
    id: NodeId,
    config: NaiveConfig,
    peers: Vec<Peer>,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    inbox: VecDeque<(NodeId, Vec<u8>)>,
}

impl NaiveNode {
    /// A node named `id` with no peers yet.
    pub fn new(id: NodeId, config: NaiveConfig) -> Self {
        NaiveNode { id, config, peers: Vec::new(), outbox: VecDeque::new(), inbox: VecDeque::new() }
    }

    fn frame(&self, kind: u8, seq: u64, payload: &[u8]) -> Vec<u8> {
        let id = self.id.as_str().as_bytes();
        let mut f = Vec::with_capacity(2 + id.len() + 8 + payload.len());
        f.push(kind);
        f.push(id.len() as u8);
        f.extend_from_slice(id);
        f.extend_from_slice(&seq.to_le_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn peer_index(&self, id: &[u8]) -> Option<usize> {
        self.peers.iter().position(|p| p.id.as_str().as_bytes() == id)
    }
}

/// Splits a frame into (kind, sender id, seq, payload).
fn parse(bytes: &[u8]) -> Option<(u8, &[u8], u64, &[u8])> {
    let (&kind, rest) = bytes.split_first()?;
    let (&id_len, rest) = rest.split_first()?;
    let id = rest.get(..id_len as usize)?;
    let rest = &rest[id_len as usize..];
    let seq = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    Some((kind, id, seq, &rest[8..]))
}

impl SimNode for NaiveNode {
    fn max_datagram(&self) -> usize {
        2 + a3m_core::id::NODE_ID_MAX_LEN + 8 + self.config.max_payload
    }

    fn max_payload(&self) -> usize {
        self.config.max_payload
    }

    fn set_peer_addr(&mut self, peer: &NodeId, addr: SocketAddr) -> Result<(), String> {
        match self.peers.iter_mut().find(|p| p.id == *peer) {
            Some(p) => p.addr = addr,
            None => self.peers.push(Peer {
                id: peer.clone(),
                addr,
                next_seq: 0,
                unacked: BTreeMap::new(),
                delivered: BTreeSet::new(),
            }),
        }
        Ok(())
    }

    fn submit(&mut self, now: Instant, to: &NodeId, payload: &[u8]) -> Result<(), SubmitError> {
        if payload.len() > self.config.max_payload {
            return Err(SubmitError::Rejected(format!("{} bytes is too large", payload.len())));
        }
        let Some(p) = self.peers.iter().position(|p| p.id == *to) else {
            return Err(SubmitError::Rejected(format!("unknown peer {to}")));
        };
        if self.peers[p].unacked.len() >= self.config.max_unacked {
            return Err(SubmitError::Backpressure);
        }
        let seq = self.peers[p].next_seq;
        let frame = self.frame(KIND_DATA, seq, payload);
        let peer = &mut self.peers[p];
        peer.next_seq += 1;
        self.outbox.push_back((peer.addr, frame));
        if self.config.retransmit {
            peer.unacked.insert(seq, (payload.to_vec(), now + self.config.rto));
        }
        Ok(())
    }

    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some((kind, id, seq, payload)) = parse(bytes) else { return };
        let Some(p) = self.peer_index(id) else { return };
        // Mobility: a peer is wherever its datagrams come from.
        self.peers[p].addr = from;
        match kind {
            KIND_DATA => {
                let ack = self.frame(KIND_ACK, seq, &[]);
                self.outbox.push_back((from, ack));
                let peer = &mut self.peers[p];
                if !self.config.dedup || peer.delivered.insert(seq) {
                    self.inbox.push_back((peer.id.clone(), payload.to_vec()));
                }
            }
            KIND_ACK => {
                self.peers[p].unacked.remove(&seq);
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        for p in 0..self.peers.len() {
            let due: Vec<u64> = self.peers[p]
                .unacked
                .iter()
                .filter(|(_, (_, deadline))| *deadline <= now)
                .map(|(&seq, _)| seq)
                .collect();
            for seq in due {
                let (payload, _) = &self.peers[p].unacked[&seq];
                let frame = self.frame(KIND_DATA, seq, payload);
                let peer = &mut self.peers[p];
                self.outbox.push_back((peer.addr, frame));
                if let Some(entry) = peer.unacked.get_mut(&seq) {
                    entry.1 = now + self.config.rto;
                }
            }
        }
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let (to, frame) = self.outbox.pop_front()?;
        buf[..frame.len()].copy_from_slice(&frame);
        Some((to, frame.len()))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.peers.iter().flat_map(|p| p.unacked.values().map(|(_, d)| *d)).min()
    }

    fn poll_delivery(&mut self, out: &mut [u8]) -> Result<Option<(NodeId, usize)>, String> {
        let Some((from, payload)) = self.inbox.front() else { return Ok(None) };
        if payload.len() > out.len() {
            return Err(format!("payload of {} bytes, buffer of {}", payload.len(), out.len()));
        }
        out[..payload.len()].copy_from_slice(payload);
        let delivered = (from.clone(), payload.len());
        self.inbox.pop_front();
        Ok(Some(delivered))
    }

    fn unacknowledged(&self) -> usize {
        self.peers.iter().map(|p| p.unacked.len()).sum()
    }

    fn liveness_hints(&self) -> LivenessHints {
        LivenessHints {
            retransmit_max: self.config.rto,
            window: self.config.max_unacked as u64,
            ..LivenessHints::default()
        }
    }

    fn describe_state(&self) -> String {
        let mut text = format!("{}:", self.id);
        for p in &self.peers {
            text += &format!(" to {}@{} unacked={}", p.id, p.addr, p.unacked.len());
        }
        text
    }
}
