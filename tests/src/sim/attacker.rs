//! An attacker beside every node: a [`SimNode`] wrapper that injects bad datagrams at a high
//! rate into the node it wraps, and counts what the node sends to the attacker's addresses.
//!
//! The attacker sees every datagram that reaches its node (it sits on the path), keeps the
//! last ones, and for every genuine datagram delivered injects [`Attacked::rate`] of its own
//! before it, each one of: a replay of a captured datagram from its true source or from an
//! attacker address, a bit-flipped copy, a truncated copy, a plaintext forgery claiming a
//! peer's id, a sealed-looking forgery with a fresh epoch and counter, a copy of a captured
//! datagram delayed far beyond any replay window. Nothing here can read sealed datagrams, as
//! in life. The wrapped node must deliver every message exactly once regardless, and must
//! never send its traffic to an attacker address ([`AttackStats::victim_to_attacker`]; path
//! challenges that an injection provoked are counted apart).

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::collections::VecDeque;

use a3m_core::id::NodeId;
use a3m_core::node::Node;
use a3m_core::time::Instant;
use a3m_core::wire::{self, Record};

use super::endpoint::{LivenessHints, SimNode, SubmitError};
use super::rng::Rng;

/// Captured datagrams kept for replays.
const CAPTURED: usize = 4096;

/// The attacker's source addresses: outside every node's (10.x.x.x).
pub fn attacker_addr(k: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, (k % 200) as u8 + 1)), 6000 + k)
}

fn is_attacker(addr: SocketAddr) -> bool {
    matches!(addr.ip(), IpAddr::V4(ip) if ip.octets()[..3] == [192, 0, 2])
}

/// What an attacker did and provoked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AttackStats {
    /// Datagrams injected, by kind: replay from the source, replay from an attacker address,
    /// bit flip, truncation, plaintext forgery, sealed forgery, old replay.
    pub injected: [u64; 7],
    /// Datagrams the node sent to an attacker address that carried only path challenges or
    /// a sealing-mismatch notice (provoked by the attacker, and harmless).
    pub challenges_to_attacker: u64,
    /// Datagrams the node sent to an attacker address carrying anything else, or that could
    /// not be read (sealed): the victim's traffic. Must stay 0.
    pub victim_to_attacker: u64,
}

/// A node with an attacker injecting datagrams into it.
pub struct Attacked {
    /// The node under attack.
    pub node: Node,
    /// What the attacker did.
    pub stats: AttackStats,
    /// Bad datagrams injected per genuine one.
    pub rate: u32,
    /// The kinds of [`AttackStats::injected`] used (default all; a plaintext node cannot
    /// survive bit flips from its peer's own address, so its tests leave those out).
    pub kinds: Vec<usize>,
    rng: Rng,
    captured: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Peer ids seen, for forgeries.
    peers: Vec<NodeId>,
    /// Datagrams handled in all (for old replays).
    seen: u64,
}

impl Attacked {
    /// `node` under an attacker that injects `rate` bad datagrams per genuine one.
    pub fn new(node: Node, rate: u32, seed: u64) -> Self {
        Self {
            node,
            stats: AttackStats::default(),
            rate,
            kinds: (0..7).collect(),
            rng: Rng::new(seed ^ 0xA77AC4),
            captured: VecDeque::new(),
            peers: Vec::new(),
            seen: 0,
        }
    }

    fn inject(&mut self, now: Instant, genuine_from: SocketAddr) {
        if self.captured.is_empty() {
            return;
        }
        for _ in 0..self.rate {
            let kind = self.kinds[self.rng.below(self.kinds.len() as u64) as usize];
            let pick = self.rng.below(self.captured.len() as u64) as usize;
            let (src, bytes) = self.captured[pick].clone();
            let attacker = attacker_addr(self.rng.below(50) as u16);
            let (from, datagram) = match kind {
                0 => (src, bytes),
                1 => (attacker, bytes),
                2 => {
                    let mut b = bytes;
                    let i = self.rng.below(b.len() as u64) as usize;
                    b[i] ^= 1 << self.rng.below(8);
                    (if self.rng.below(2) == 0 { src } else { attacker }, b)
                }
                3 => {
                    let mut b = bytes;
                    b.truncate(self.rng.below(b.len() as u64) as usize);
                    (src, b)
                }
                4 => (attacker, self.forge_plaintext()),
                5 => (attacker, self.forge_sealed(&bytes)),
                _ => {
                    // The oldest captured datagram, from the genuine source: far behind.
                    let (src, b) = self.captured.front().cloned().unwrap_or((src, bytes));
                    (if self.rng.below(2) == 0 { src } else { genuine_from }, b)
                }
            };
            self.stats.injected[kind] += 1;
            self.node.handle_datagram(now, from, &datagram);
        }
    }

    fn forge_plaintext(&mut self) -> Vec<u8> {
        let src = self.pick_peer();
        let start = self.rng.below(1 << 20);
        let inc = self.rng.below(1 << 20);
        let records = [
            Record::ReqSlots(wire::ReqSlots { start, count: 8, lowest: 0 }),
            Record::Slots(wire::Slots { start, incarnation: inc, count: 8 }),
            Record::Token(wire::Token { slot: start, incarnation: inc, payload: b"forged" }),
        ];
        let header = wire::Header { src: src.as_str(), dst: self.node.id().as_str(), flags: 0 };
        let mut buf = [0u8; 256];
        match wire::encode_datagram(&mut buf, &header, &records) {
            Ok(out) => buf[..out.len].to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// The header and seal prefix of a captured sealed datagram with a fresh epoch and
    /// counter, then garbage.
    fn forge_sealed(&mut self, captured: &[u8]) -> Vec<u8> {
        let Ok(sealed) = wire::decode_sealed(captured) else { return self.forge_plaintext() };
        let mut d = captured[..sealed.aad_len].to_vec();
        let n = d.len();
        let epoch = sealed.epoch + self.rng.below(3);
        d[n - 16..n - 8].copy_from_slice(&epoch.to_be_bytes());
        let counter = sealed.counter + 1 + self.rng.below(1 << 16);
        d[n - 8..].copy_from_slice(&counter.to_be_bytes());
        let len = 17 + self.rng.below(200) as usize;
        d.extend((0..len).map(|_| self.rng.below(256) as u8));
        d
    }

    fn pick_peer(&mut self) -> NodeId {
        if self.peers.is_empty() {
            return NodeId::new("nobody").expect("a valid id");
        }
        let i = self.rng.below(self.peers.len() as u64) as usize;
        self.peers[i].clone()
    }
}

impl SimNode for Attacked {
    fn max_datagram(&self) -> usize {
        self.node.max_datagram()
    }

    fn max_payload(&self) -> usize {
        SimNode::max_payload(&self.node)
    }

    fn set_peer_addr(&mut self, peer: &NodeId, addr: SocketAddr) -> Result<(), String> {
        self.peers.push(peer.clone());
        SimNode::set_peer_addr(&mut self.node, peer, addr)
    }

    fn submit(&mut self, now: Instant, to: &NodeId, payload: &[u8]) -> Result<(), SubmitError> {
        SimNode::submit(&mut self.node, now, to, payload)
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.inject(now, from);
        self.seen += 1;
        if self.captured.len() == CAPTURED {
            // Keep the very first ones (old replays) and the most recent ones.
            self.captured.remove(CAPTURED / 2);
        }
        self.captured.push_back((from, bytes.to_vec()));
        self.node.handle_datagram(now, from, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let (to, len) = self.node.poll_transmit(now, buf)?;
        // Answers to a node id no peer has (a flipped bit in a source id) are provoked.
        let for_peer = wire::decode_header(&buf[..len])
            .is_ok_and(|(h, _)| self.peers.iter().any(|p| p.as_str() == h.dst));
        if is_attacker(to) && !for_peer {
            self.stats.challenges_to_attacker += 1;
        } else if is_attacker(to) {
            let challenge_only = wire::decode_datagram(&buf[..len]).is_ok_and(|d| {
                d.records().all(|r| matches!(r, Record::PathChallenge(_) | Record::SealMismatch(_)))
            });
            if challenge_only {
                self.stats.challenges_to_attacker += 1;
            } else if self.node.is_sealed()
                && wire::decode_sealed(&buf[..len])
                    .is_ok_and(|s| s.ciphertext.len() == 9 || s.ciphertext.len() == 2)
            {
                // A sealed datagram of one 9-byte record: a sealed path challenge; of one
                // 2-byte record: an epoch notice (answering a replay sealed for another
                // epoch of the node).
                self.stats.challenges_to_attacker += 1;
            } else {
                self.stats.victim_to_attacker += 1;
            }
        }
        Some((to, len))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.node.poll_timeout()
    }

    fn poll_delivery(&mut self, out: &mut [u8]) -> Result<Option<(NodeId, usize)>, String> {
        SimNode::poll_delivery(&mut self.node, out)
    }

    fn unacknowledged(&self) -> usize {
        SimNode::unacknowledged(&self.node)
    }

    fn open_records(&self) -> usize {
        self.node.open_records()
    }

    fn liveness_hints(&self) -> LivenessHints {
        self.node.liveness_hints()
    }

    fn describe_state(&self) -> String {
        format!("{} attack {:?}", self.node.describe_state(), self.stats)
    }

    fn address_changed(&mut self, now: Instant) {
        self.node.address_changed(now);
    }

    fn describe_datagram(&self, bytes: &[u8]) -> String {
        self.node.describe_datagram(bytes)
    }
}
