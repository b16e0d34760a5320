//! A tiny deterministic network for the exactly-once tests: moves datagrams between nodes on
//! a fake clock, losing, duplicating, reordering and replaying them from a seeded generator.
//! Set `EO_TRACE_LOST=1` to print every datagram the network loses.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use a3m_core::id::NodeId;
use a3m_core::node::{Node, NodeConfig, NodeError};
use a3m_core::time::Instant;

/// Decides whether to drop a datagram: (bytes, sender index) -> drop.
pub type DropFilter = Box<dyn FnMut(&[u8], usize) -> bool>;

pub struct Packet {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// Nodes plus the links between them.
pub struct Net {
    pub nodes: Vec<Node>,
    pub ids: Vec<NodeId>,
    pub addrs: Vec<SocketAddr>,
    pub now: Instant,
    rng: u64,
    seq: u64,
    /// Percent of datagrams lost.
    pub loss: u64,
    /// Percent of datagrams duplicated.
    pub dup: u64,
    /// Percent of datagrams also replayed much later (up to `late_by`): stale records.
    pub late: u64,
    /// Longest delay of a replayed datagram.
    pub late_by: Duration,
    /// One-way latency.
    pub latency: Duration,
    /// Extra random delay up to this, which reorders datagrams.
    pub jitter: Duration,
    /// Everything sent is lost while true.
    pub partitioned: bool,
    /// Nodes cut off from the network: what they send or should receive is lost.
    pub cut_off: Vec<bool>,
    /// Drops datagrams for which this returns true (bytes, sender index).
    pub drop_if: Option<DropFilter>,
    /// Deliveries each node's application reads per step (None: all).
    pub read_limit: Option<usize>,
    in_flight: Vec<Packet>,
    /// Payloads each node received, in order: (sender, payload).
    pub received: Vec<Vec<(NodeId, Vec<u8>)>>,
    pub steps: u64,
    buf: Vec<u8>,
}

pub fn id(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

impl Net {
    /// `n` nodes named n0, n1, ... at 10.0.0.1:7000, 10.0.0.2:7000, ..., all knowing each other.
    pub fn new(n: usize, seed: u64, config: NodeConfig) -> Self {
        let ids: Vec<NodeId> = (0..n).map(|i| id(&format!("n{i}"))).collect();
        let addrs: Vec<SocketAddr> =
            (0..n).map(|i| format!("10.0.0.{}:7000", i + 1).parse().unwrap()).collect();
        let mut nodes: Vec<Node> =
            ids.iter().map(|i| Node::new(i.clone(), config.clone())).collect();
        for node in &mut nodes {
            for (peer, addr) in ids.iter().zip(&addrs) {
                node.set_peer_addr(peer.clone(), *addr).unwrap();
            }
        }
        Self {
            nodes,
            ids,
            addrs,
            now: Instant::from_micros(1_000_000),
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            seq: 0,
            loss: 0,
            dup: 0,
            late: 0,
            late_by: Duration::from_secs(20),
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            partitioned: false,
            cut_off: vec![false; n],
            drop_if: None,
            read_limit: None,
            in_flight: Vec::new(),
            received: vec![Vec::new(); n],
            steps: 0,
            buf: vec![0; 65_536],
        }
    }

    pub fn rand(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn chance(&mut self, percent: u64) -> bool {
        percent > 0 && self.rand() % 100 < percent
    }

    fn send(&mut self, from: usize, to: SocketAddr, bytes: &[u8]) {
        if self.partitioned || self.cut_off[from] || self.chance(self.loss) {
            if std::env::var("EO_TRACE_LOST").is_ok() {
                eprintln!("LOST n{from} -> {to} {} bytes", bytes.len());
            }
            return;
        }
        if let Some(f) = &mut self.drop_if
            && f(bytes, from)
        {
            return;
        }
        if self.chance(self.late) {
            let delay = self.rand() % (self.late_by.as_micros() as u64 + 1);
            let at = self.now + Duration::from_micros(delay);
            self.seq += 1;
            let packet =
                Packet { at, seq: self.seq, from: self.addrs[from], to, bytes: bytes.to_vec() };
            self.in_flight.push(packet);
        }
        let copies = if self.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let jitter = if self.jitter.is_zero() {
                0
            } else {
                self.rand() % (self.jitter.as_micros() as u64 + 1)
            };
            let at = self.now + self.latency + Duration::from_micros(jitter);
            self.seq += 1;
            let packet =
                Packet { at, seq: self.seq, from: self.addrs[from], to, bytes: bytes.to_vec() };
            self.in_flight.push(packet);
        }
    }

    /// Datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Drops everything in flight.
    pub fn flush_network(&mut self) {
        self.in_flight.clear();
    }

    /// One round: every node transmits, time jumps to the next event, due datagrams and
    /// timers are handled, applications read. Returns false if nothing is scheduled at all.
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        let mut buf = std::mem::take(&mut self.buf);
        for i in 0..self.nodes.len() {
            while let Some((to, len)) = self.nodes[i].poll_transmit(self.now, &mut buf) {
                self.send(i, to, &buf[..len]);
            }
        }
        self.buf = buf;
        let next_packet = self.in_flight.iter().map(|p| p.at).min();
        let next_timer = self.nodes.iter().filter_map(Node::poll_timeout).min();
        let next = match (next_packet, next_timer) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => {
                    // Nothing scheduled: let time pass for the test's own events.
                    self.now += Duration::from_millis(10);
                    self.read();
                    return false;
                }
            },
        };
        if next > self.now {
            self.now = next;
        }
        let now = self.now;
        let mut due: Vec<Packet> = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() {
            if self.in_flight[i].at <= now {
                due.push(self.in_flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|p| (p.at, p.seq));
        for p in due {
            if let Some(n) = self.addrs.iter().position(|a| *a == p.to)
                && !self.cut_off[n]
            {
                self.nodes[n].handle_datagram(now, p.from, &p.bytes);
            }
        }
        for node in &mut self.nodes {
            if node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
            }
        }
        self.read();
        true
    }

    fn read(&mut self) {
        let mut out = vec![0u8; 65_536];
        for (n, node) in self.nodes.iter_mut().enumerate() {
            let mut taken = 0;
            while self.read_limit.is_none_or(|l| taken < l) {
                match node.poll_delivery(&mut out).unwrap() {
                    Some(d) => {
                        self.received[n].push((d.from, out[..d.len].to_vec()));
                        taken += 1;
                    }
                    None => break,
                }
            }
        }
    }

    /// Steps until `done` holds (checked before every step); panics after `max_steps`.
    pub fn run_until(&mut self, max_steps: u64, mut done: impl FnMut(&mut Net) -> bool) {
        for _ in 0..max_steps {
            if done(self) {
                return;
            }
            self.step();
        }
        self.dump();
        panic!("not done after {max_steps} steps (now = {:?})", self.now);
    }

    /// Prints the nodes' counters and what each still holds for each peer.
    pub fn dump(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            let held: Vec<usize> = self.ids.iter().map(|p| node.unacknowledged_to(p)).collect();
            eprintln!(
                "n{i} at {} received {} unacknowledged {:?} send records {} receive records {} next timeout {:?}\n{:?}",
                self.addrs[i],
                self.received[i].len(),
                held,
                node.send_records(),
                node.receive_records(),
                node.poll_timeout(),
                node.stats()
            );
        }
    }

    /// Steps until the fake clock has advanced by `d`.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Total payloads not yet acknowledged, over all nodes.
    pub fn unacknowledged(&self) -> usize {
        self.nodes.iter().map(Node::unacknowledged).sum()
    }
}

/// Payload `seq` from node `from`, `size` bytes long (at least 9).
pub fn payload(from: usize, seq: u64, size: usize) -> Vec<u8> {
    let mut p = vec![from as u8];
    p.extend_from_slice(&seq.to_le_bytes());
    p.resize(size.max(9), (seq % 251) as u8);
    p
}

/// A producer that submits numbered payloads on given flows as fast as the nodes accept.
pub struct Traffic {
    /// (from, to, total, next seq)
    pub flows: Vec<(usize, usize, u64, u64)>,
    pub size: usize,
    /// Most submissions per flow per step.
    pub burst: u64,
    pub queue_full: u64,
}

impl Traffic {
    pub fn new(flows: &[(usize, usize, u64)], size: usize) -> Self {
        Self {
            flows: flows.iter().map(|&(f, t, n)| (f, t, n, 0)).collect(),
            size,
            burst: 64,
            queue_full: 0,
        }
    }

    /// Submits what the nodes accept now.
    pub fn pump(&mut self, net: &mut Net) {
        for flow in &mut self.flows {
            let (from, to, total, next) = flow;
            let mut n = 0;
            while *next < *total && n < self.burst {
                let p = payload(*from, *next, self.size);
                let dest = net.ids[*to].clone();
                match net.nodes[*from].submit(net.now, &dest, &p) {
                    Ok(()) => {
                        *next += 1;
                        n += 1;
                    }
                    Err(NodeError::QueueFull) => {
                        self.queue_full += 1;
                        break;
                    }
                    Err(e) => panic!("submit failed: {e}"),
                }
            }
        }
    }

    pub fn all_submitted(&self) -> bool {
        self.flows.iter().all(|f| f.3 == f.2)
    }

    /// True once everything was submitted, delivered and acknowledged.
    pub fn finished(&self, net: &Net) -> bool {
        let expected: u64 = self.flows.iter().map(|f| f.2).sum();
        let got: usize = net.received.iter().map(Vec::len).sum();
        self.all_submitted() && got as u64 >= expected && net.unacknowledged() == 0
    }

    /// Runs the traffic to completion.
    pub fn run(&mut self, net: &mut Net, max_steps: u64) {
        net.run_until(max_steps, |net| {
            self.pump(net);
            self.finished(net)
        });
    }
}

/// Asserts every submitted payload arrived exactly once, intact, at its destination.
pub fn assert_exactly_once(net: &Net, traffic: &Traffic) {
    let mut expected: HashMap<(usize, usize), u64> = HashMap::new();
    for &(from, to, total, _) in &traffic.flows {
        *expected.entry((from, to)).or_default() += total;
    }
    for (to, received) in net.received.iter().enumerate() {
        let mut seen = HashSet::new();
        for (from_id, p) in received {
            let from = net.ids.iter().position(|i| i == from_id).expect("known sender");
            assert_eq!(p[0] as usize, from, "payload names its sender");
            let seq = u64::from_le_bytes(p[1..9].try_into().unwrap());
            assert_eq!(p, &payload(from, seq, traffic.size), "payload intact");
            assert!(
                seen.insert((from, seq)),
                "payload {seq} from n{from} delivered twice to n{to}"
            );
        }
        for from in 0..net.nodes.len() {
            let want = expected.get(&(from, to)).copied().unwrap_or(0);
            let got = seen.iter().filter(|(f, _)| *f == from).count() as u64;
            assert_eq!(got, want, "payloads from n{from} to n{to}");
            for seq in 0..want {
                assert!(seen.contains(&(from, seq)), "payload {seq} from n{from} to n{to} lost");
            }
        }
    }
}

/// True if the datagram decodes and one of its records satisfies `pred`.
pub fn has_record(bytes: &[u8], mut pred: impl FnMut(&a3m_core::wire::Record<'_>) -> bool) -> bool {
    a3m_core::wire::decode_datagram(bytes).is_ok_and(|d| d.records().any(|r| pred(&r)))
}
