//! A deterministic network simulator for sans-I/O nodes.
//!
//! N nodes run on virtual time ([`Instant`]); nothing reads a clock or starts a thread. One
//! event queue, ordered by time and then by the order events were scheduled, holds datagrams in
//! flight, node deadlines, workload bursts and address changes, so a seed fixes the whole run.
//! Each node is driven only through the four sans-I/O calls (`handle_datagram`,
//! `handle_timeout`, `poll_transmit`, `poll_timeout`) plus `submit` and `poll_delivery`; an
//! [`ExactlyOnceChecker`] records every delivery and reports what was lost or duplicated.
//!
//! Faults: per-path loss, duplication, reordering, delay and jitter ([`PathConditions`]),
//! partitions between two groups of nodes ([`Partition`]), and nodes changing address
//! ([`AddressChange`]: datagrams to the old address are lost from then on; the node's own
//! datagrams carry the new source address, so peers learn it by the mobility rule; a node
//! that moves silently and never sends to a peer again cannot be found by that peer, which is
//! why [`Scenario`] moves a node early enough that it still sends to everyone afterwards).
//! A slow application can be modelled with [`SimConfig::drain_interval`], and
//! [`SimConfig::log`] prints every event, for studying one seed.
//!
//! ```text
//! let config = Scenario { loss: 0.3, ..Scenario::default() }.config(seed);
//! let report = Simulator::new(config, |index, id| MyNode::new(id))?.run();
//! assert!(report.ok(), "{report}");
//! ```

pub mod campaign;
pub mod checker;
mod core_node;
pub mod endpoint;
pub mod naive;
pub mod network;
pub mod rng;
pub mod scenario;
pub mod workload;

use core::cmp::Ordering;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;
use std::collections::BinaryHeap;

use a3m_core::id::NodeId;
use a3m_core::time::Instant;

pub use campaign::{Totals, run_seeds};
pub use checker::{CheckReport, ExactlyOnceChecker, MessageTag, Verdict};
pub use endpoint::{SimNode, SubmitError};
pub use network::{AddressChange, MAX_NODES, Partition, PathConditions, node_addr};
pub use rng::Rng;
pub use scenario::Scenario;
pub use workload::Workload;

use network::{Fate, Network};
use workload::Plan;

/// Everything that defines one simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of the network's random choices.
    pub seed: u64,
    /// Number of nodes (2 to [`MAX_NODES`]); node `i` is named `n{i}` and starts at
    /// [`node_addr`]`(i, 0)`.
    pub nodes: usize,
    /// Conditions on every path not in `path_overrides`.
    pub paths: PathConditions,
    /// Conditions for particular `(from, to)` paths.
    pub path_overrides: Vec<(usize, usize, PathConditions)>,
    /// Windows in which groups of nodes cannot reach each other.
    pub partitions: Vec<Partition>,
    /// Nodes changing address during the run.
    pub address_changes: Vec<AddressChange>,
    /// What the nodes send.
    pub workload: Workload,
    /// The run stops at this virtual time even if messages are missing.
    pub time_limit: Instant,
    /// Also hash every datagram's bytes into the trace (slower; for determinism tests).
    pub hash_datagrams: bool,
    /// `None`: the application takes deliveries as soon as a node has them. `Some(d)`: a slow
    /// application that empties every node's inbox only every `d`, so inboxes fill up.
    pub drain_interval: Option<Duration>,
    /// Print every event of the run to stdout (for debugging one seed).
    pub log: bool,
}

impl Default for SimConfig {
    /// Three nodes on perfect 10 ms paths, the default workload, a 600 s limit.
    fn default() -> Self {
        SimConfig {
            seed: 0,
            nodes: 3,
            paths: PathConditions::default(),
            path_overrides: Vec::new(),
            partitions: Vec::new(),
            address_changes: Vec::new(),
            workload: Workload::default(),
            time_limit: Instant::from_micros(600_000_000),
            hash_datagrams: false,
            drain_interval: None,
            log: false,
        }
    }
}

/// A configuration the simulator cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid simulation: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What happened to datagrams in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetStats {
    /// Datagrams the nodes sent.
    pub sent: u64,
    /// Datagrams lost at random.
    pub lost: u64,
    /// Datagrams dropped by a partition (at sending or at arrival).
    pub partitioned: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Datagrams (or copies) that got the reordering delay.
    pub reordered: u64,
    /// Datagrams sent to, or arriving at, an address no node has (any more).
    pub unroutable: u64,
    /// Datagrams handed to a node.
    pub arrived: u64,
}

impl NetStats {
    /// Adds another run's counters to these.
    pub fn add(&mut self, o: &NetStats) {
        self.sent += o.sent;
        self.lost += o.lost;
        self.partitioned += o.partitioned;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.unroutable += o.unroutable;
        self.arrived += o.arrived;
    }
}

/// At most this many anomaly descriptions are kept per run (all are counted).
const MAX_ANOMALY_TEXTS: usize = 8;
/// Calls to `handle_timeout` at one instant after which a node's deadline is pushed 1 ms ahead.
const TIMER_SPIN_LIMIT: u32 = 10_000;

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The seed of the run.
    pub seed: u64,
    /// What the exactly-once checker found.
    pub check: CheckReport,
    /// True if every message was delivered and acknowledged and the network drained before the
    /// time limit.
    pub completed: bool,
    /// Virtual time when the run stopped.
    pub end_time: Instant,
    /// Datagram counters.
    pub net: NetStats,
    /// Events processed.
    pub events: u64,
    /// Calls to `handle_timeout`.
    pub timeouts: u64,
    /// Submits refused with backpressure (each retried later).
    pub backpressure: u64,
    /// Payloads still unacknowledged, summed over nodes, when the run stopped.
    pub unacknowledged: u64,
    /// Number of anomalies: node misbehaviour outside the checker's counts (submit rejected,
    /// delivery errors, deadlines that never advance, oversize datagrams).
    pub anomalies: u64,
    /// The first few anomalies, described.
    pub anomaly_texts: Vec<String>,
    /// A few messages accepted but never delivered, as (sender, seq).
    pub missing: Vec<(usize, u32)>,
    /// Hash of everything that happened, in order: equal for equal runs.
    pub trace_hash: u64,
}

impl RunReport {
    /// True if the run completed with every message delivered exactly once and no anomaly.
    pub fn ok(&self) -> bool {
        self.completed && self.check.exactly_once() && self.anomalies == 0
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.check;
        let n = &self.net;
        write!(
            f,
            "seed={} completed={} end={:.3}s planned={} accepted={} delivered={} lost={} \
             duplicated={} misrouted={} corrupt={} unacked={} anomalies={} | datagrams sent={} \
             lost={} partitioned={} dup={} reordered={} unroutable={} arrived={} | events={} \
             timeouts={} backpressure={} trace={:016x}",
            self.seed,
            self.completed,
            self.end_time.as_micros() as f64 / 1e6,
            c.planned,
            c.accepted,
            c.delivered,
            c.lost,
            c.duplicated,
            c.misrouted,
            c.corrupt,
            self.unacknowledged,
            self.anomalies,
            n.sent,
            n.lost,
            n.partitioned,
            n.duplicated,
            n.reordered,
            n.unroutable,
            n.arrived,
            self.events,
            self.timeouts,
            self.backpressure,
            self.trace_hash,
        )?;
        if !self.missing.is_empty() {
            write!(f, " missing(sender,seq)={:?}", self.missing)?;
        }
        for a in &self.anomaly_texts {
            write!(f, "\n  anomaly: {a}")?;
        }
        Ok(())
    }
}

/// The name of node `index`: `n{index}`.
pub fn node_id(index: usize) -> NodeId {
    NodeId::new(&format!("n{index}")).expect("short ASCII names are valid node ids")
}

/// Something that happens at a point of virtual time.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// A datagram reaches `dst` (whoever has that address at that moment).
    Arrive { from: u32, src: SocketAddr, dst: SocketAddr, buf: u32, len: u32 },
    /// A node's deadline (stale if the node re-armed it earlier since).
    Timer { node: u32 },
    /// The workload's next burst of submissions.
    Burst { index: u32 },
    /// `address_changes[change]` takes effect.
    Move { change: u32 },
    /// A slow application empties every inbox.
    Drain,
}

/// An event in the queue: ordered by time, then by the order it was scheduled.
#[derive(Debug, Clone, Copy)]
struct Scheduled {
    at: u64,
    order: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

/// Datagram buffers reused across the run, so the hot path does not allocate.
#[derive(Debug, Default)]
struct BufferPool {
    buffers: Vec<Vec<u8>>,
    free: Vec<u32>,
    len: usize,
}

impl BufferPool {
    fn take(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.buffers.push(vec![0; self.len]);
            (self.buffers.len() - 1) as u32
        })
    }

    fn put(&mut self, b: u32) {
        self.free.push(b);
    }
}

/// Folds `x` into the trace hash.
fn mix(h: u64, x: u64) -> u64 {
    let h = (h ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

fn mix_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
    }
    for &b in chunks.remainder() {
        h = mix(h, u64::from(b));
    }
    h
}

/// The simulator: nodes, the network between them, the event queue and the checker.
pub struct Simulator<N> {
    nodes: Vec<N>,
    ids: Vec<NodeId>,
    /// Current address of each node.
    addrs: Vec<SocketAddr>,
    network: Network,
    rng: Rng,
    plan: Plan,
    payload_len: usize,
    address_changes: Vec<AddressChange>,
    time_limit: Instant,
    hash_datagrams: bool,
    /// Microseconds between inbox drains (0: drain on every service).
    drain_every_us: u64,
    log: bool,
    seed: u64,

    queue: BinaryHeap<Scheduled>,
    next_order: u64,
    now: Instant,
    pool: BufferPool,
    in_flight: u64,
    /// Per node: the earliest deadline with a live `Timer` event in the queue.
    armed: Vec<Option<u64>>,
    /// Per node: instant of the last `handle_timeout` and how many calls it got.
    timer_spin: Vec<(u64, u32)>,
    /// Per node: messages due so far, and messages submitted (or given up) so far.
    due: Vec<u32>,
    submitted: Vec<u32>,
    payload: Vec<u8>,
    delivery: Vec<u8>,
    /// Once everything is delivered and acknowledged: when the last datagram in flight must
    /// have landed, to catch late duplicates.
    settle_until: Option<u64>,

    checker: ExactlyOnceChecker,
    net: NetStats,
    events: u64,
    timeouts: u64,
    backpressure: u64,
    anomalies: u64,
    anomaly_texts: Vec<String>,
    trace: u64,
}

impl<N: SimNode> Simulator<N> {
    /// Builds the nodes with `make_node(index, id)` and tells each where its peers are.
    pub fn new(
        config: SimConfig,
        mut make_node: impl FnMut(usize, NodeId) -> N,
    ) -> Result<Self, ConfigError> {
        let n = config.nodes;
        let bad = |why: String| Err(ConfigError(why));
        if !(2..=MAX_NODES).contains(&n) {
            return bad(format!("{n} nodes (2 to {MAX_NODES} supported)"));
        }
        if let Some(s) = config.workload.senders.iter().find(|&&s| s >= n) {
            return bad(format!("sender {s} is not one of the {n} nodes"));
        }
        if let Some(c) = config.address_changes.iter().find(|c| c.node >= n) {
            return bad(format!("address change of node {} (only {n} nodes)", c.node));
        }
        if let Some((a, b, _)) = config.path_overrides.iter().find(|(a, b, _)| *a >= n || *b >= n) {
            return bad(format!("path {a}->{b} names a node beyond {n}"));
        }
        let payload_len = config.workload.payload_len;
        if payload_len < checker::PAYLOAD_HEADER_LEN {
            return bad(format!(
                "payload of {payload_len} bytes (at least {} needed to identify a message)",
                checker::PAYLOAD_HEADER_LEN
            ));
        }
        let plan = Plan::new(&config.workload, n);
        if plan.per_sender.contains(&u32::MAX) {
            return bad("too many messages per sender".into());
        }

        let ids: Vec<NodeId> = (0..n).map(node_id).collect();
        let addrs: Vec<SocketAddr> = (0..n).map(|i| node_addr(i, 0)).collect();
        let mut nodes: Vec<N> =
            ids.iter().enumerate().map(|(i, id)| make_node(i, id.clone())).collect();
        let mut max_datagram = 0;
        for (i, node) in nodes.iter_mut().enumerate() {
            if payload_len > node.max_payload() {
                return bad(format!(
                    "payload {payload_len} > node max_payload {}",
                    node.max_payload()
                ));
            }
            max_datagram = max_datagram.max(node.max_datagram());
            for j in (0..n).filter(|&j| j != i) {
                if let Err(e) = node.set_peer_addr(&ids[j], addrs[j]) {
                    return bad(format!("node {i} refused peer {j}: {e}"));
                }
            }
        }
        let max_payload = nodes.iter().map(SimNode::max_payload).max().unwrap_or(0);

        let mut address_changes = config.address_changes;
        address_changes.sort_by_key(|c| c.at);
        let network = Network::new(n, &config.paths, &config.path_overrides, config.partitions);
        let checker = ExactlyOnceChecker::new(ids.clone(), &plan.per_sender);
        let mut sim = Simulator {
            nodes,
            ids,
            addrs,
            network,
            rng: Rng::new(config.seed),
            plan,
            payload_len,
            address_changes,
            time_limit: config.time_limit,
            hash_datagrams: config.hash_datagrams,
            log: config.log,
            drain_every_us: config
                .drain_interval
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)),
            seed: config.seed,
            queue: BinaryHeap::new(),
            next_order: 0,
            now: Instant::ZERO,
            pool: BufferPool { len: max_datagram, ..BufferPool::default() },
            in_flight: 0,
            armed: vec![None; n],
            timer_spin: vec![(u64::MAX, 0); n],
            due: vec![0; n],
            submitted: vec![0; n],
            payload: vec![0; payload_len],
            delivery: vec![0; max_payload],
            settle_until: None,
            checker,
            net: NetStats::default(),
            events: 0,
            timeouts: 0,
            backpressure: 0,
            anomalies: 0,
            anomaly_texts: Vec::new(),
            trace: mix(0, config.seed),
        };
        let first_burst = sim.plan.burst_time(0).as_micros();
        sim.schedule(first_burst, Event::Burst { index: 0 });
        for k in 0..sim.address_changes.len() {
            let at = sim.address_changes[k].at.as_micros();
            sim.schedule(at, Event::Move { change: k as u32 });
        }
        if sim.drain_every_us != 0 {
            sim.schedule(sim.drain_every_us, Event::Drain);
        }
        Ok(sim)
    }

    /// The nodes (for inspecting their state after a run).
    pub fn nodes(&self) -> &[N] {
        &self.nodes
    }

    /// The checker (for inspecting individual messages after a run).
    pub fn checker(&self) -> &ExactlyOnceChecker {
        &self.checker
    }

    /// Runs until every message is delivered and acknowledged and the network has drained, or
    /// until the time limit, and reports. Call it once per simulator.
    pub fn run(&mut self) -> RunReport {
        for i in 0..self.nodes.len() {
            self.service(i);
        }
        let mut completed = false;
        while let Some(next) = self.queue.pop() {
            if next.at > self.time_limit.as_micros() {
                self.now = self.time_limit;
                break;
            }
            self.now = Instant::from_micros(next.at);
            self.events += 1;
            self.handle(next.event);
            if self.finished() {
                completed = true;
                break;
            }
        }
        // A slow application may not have taken everything yet: a duplicate still waiting in
        // an inbox must be counted too.
        for i in 0..self.nodes.len() {
            self.take_deliveries(i);
        }
        self.report(completed)
    }

    fn report(&self, completed: bool) -> RunReport {
        RunReport {
            seed: self.seed,
            check: self.checker.report(),
            completed,
            end_time: self.now,
            net: self.net,
            events: self.events,
            timeouts: self.timeouts,
            backpressure: self.backpressure,
            unacknowledged: self.nodes.iter().map(|n| n.unacknowledged() as u64).sum(),
            anomalies: self.anomalies,
            anomaly_texts: self.anomaly_texts.clone(),
            missing: self.checker.missing(8),
            trace_hash: self.trace,
        }
    }

    /// True when the run can stop: all delivered, all acknowledged, and every datagram that was
    /// in flight at that moment has landed (so a late duplicate would have been seen).
    fn finished(&mut self) -> bool {
        if !self.checker.all_delivered() {
            return false;
        }
        if self.settle_until.is_none() {
            if self.nodes.iter().any(|n| n.unacknowledged() != 0) {
                return false;
            }
            self.settle_until = Some(self.now.as_micros() + self.network.max_transit_us());
        }
        self.in_flight == 0 || self.settle_until.is_some_and(|t| self.now.as_micros() >= t)
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.queue.push(Scheduled { at, order: self.next_order, event });
        self.next_order += 1;
    }

    fn anomaly(&mut self, text: String) {
        self.anomalies += 1;
        if self.anomaly_texts.len() < MAX_ANOMALY_TEXTS {
            let at = self.now.as_micros() as f64 / 1e6;
            self.anomaly_texts.push(format!("t={at:.6}s {text}"));
        }
    }

    /// Prints one line of the event log.
    fn say(&self, text: &str) {
        println!("t={:.6} {text}", self.now.as_micros() as f64 / 1e6);
    }

    fn node_at(&self, addr: SocketAddr) -> Option<usize> {
        self.addrs.iter().position(|a| *a == addr)
    }

    fn handle(&mut self, event: Event) {
        let now = self.now.as_micros();
        match event {
            Event::Arrive { from, src, dst, buf, len } => {
                self.in_flight -= 1;
                self.trace =
                    mix(mix(mix(self.trace, 1), now), u64::from(from) << 32 | u64::from(len));
                let target = self.node_at(dst);
                if self.log {
                    let fate = match target {
                        None => "nobody has that address now: lost".to_string(),
                        Some(to) if self.network.partitioned(from as usize, to, self.now) => {
                            format!("n{to}: partitioned, lost")
                        }
                        Some(to) => format!("n{to}"),
                    };
                    self.say(&format!("arrive n{from} ({src}) -> {dst} {len}B at {fate}"));
                }
                match target {
                    None => self.net.unroutable += 1,
                    Some(to) if self.network.partitioned(from as usize, to, self.now) => {
                        self.net.partitioned += 1;
                    }
                    Some(to) => {
                        self.net.arrived += 1;
                        let bytes = &self.pool.buffers[buf as usize][..len as usize];
                        if self.hash_datagrams {
                            self.trace = mix_bytes(self.trace, bytes);
                        }
                        self.nodes[to].handle_datagram(self.now, src, bytes);
                        self.pool.put(buf);
                        self.service(to);
                        return;
                    }
                }
                self.pool.put(buf);
            }
            Event::Timer { node } => {
                let i = node as usize;
                if self.armed[i] != Some(now) {
                    return; // superseded by an earlier deadline that already fired
                }
                self.armed[i] = None;
                self.trace = mix(mix(mix(self.trace, 2), now), u64::from(node));
                match self.nodes[i].poll_timeout() {
                    Some(t) if t.as_micros() <= now => {
                        if self.log {
                            self.say(&format!("timeout n{i}"));
                        }
                        self.timeouts += 1;
                        self.nodes[i].handle_timeout(self.now);
                        let spin = &mut self.timer_spin[i];
                        *spin = if spin.0 == now { (now, spin.1 + 1) } else { (now, 1) };
                        self.service(i);
                    }
                    _ => self.arm(i),
                }
            }
            Event::Burst { index } => {
                self.trace = mix(mix(mix(self.trace, 3), now), u64::from(index));
                for i in 0..self.nodes.len() {
                    let due = self.plan.due_after(i, index);
                    if due > self.due[i] {
                        self.due[i] = due;
                        self.service(i);
                    }
                }
                if index + 1 < self.plan.bursts() {
                    let at = self.plan.burst_time(index + 1).as_micros();
                    self.schedule(at, Event::Burst { index: index + 1 });
                }
            }
            Event::Move { change } => {
                let c = self.address_changes[change as usize];
                self.trace = mix(mix(mix(self.trace, 4), now), c.node as u64);
                if self.log {
                    let verb = if c.announce { "announces its" } else { "silently" };
                    self.say(&format!("move n{} {verb} move to {}", c.node, c.new_addr));
                }
                self.addrs[c.node] = c.new_addr;
                if c.announce {
                    self.nodes[c.node].address_changed(self.now);
                    self.service(c.node);
                }
            }
            Event::Drain => {
                self.trace = mix(mix(self.trace, 6), now);
                for i in 0..self.nodes.len() {
                    self.take_deliveries(i);
                    self.service(i);
                }
                self.schedule(now + self.drain_every_us, Event::Drain);
            }
        }
    }

    /// Lets node `i` act after an input: hand over its deliveries, submit what is due, send
    /// what it wants to send, and re-arm its deadline.
    fn service(&mut self, i: usize) {
        if self.drain_every_us == 0 {
            self.take_deliveries(i);
        }
        self.submit_due(i);
        self.transmit(i);
        self.arm(i);
    }

    fn take_deliveries(&mut self, i: usize) {
        loop {
            match self.nodes[i].poll_delivery(&mut self.delivery) {
                Ok(Some((from, len))) if len <= self.delivery.len() => {
                    let verdict = self.checker.record_delivery(i, &from, &self.delivery[..len]);
                    let code = match verdict {
                        Verdict::First(t) => u64::from(t.sender) << 32 | u64::from(t.seq),
                        Verdict::Duplicate(_) => 1 << 62,
                        Verdict::Misrouted(_) => 2 << 62,
                        Verdict::Corrupt => 3 << 62,
                    };
                    self.trace = mix(mix(self.trace, 5), code ^ i as u64);
                    if self.log {
                        self.say(&format!("deliver at n{i} from {from}: {verdict:?}"));
                    }
                }
                Ok(Some((_, len))) => {
                    self.anomaly(format!(
                        "node {i} reported a delivery of {len} bytes, buffer has {}",
                        self.delivery.len()
                    ));
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    self.anomaly(format!("node {i} poll_delivery failed: {e}"));
                    break;
                }
            }
        }
    }

    fn submit_due(&mut self, i: usize) {
        while self.submitted[i] < self.due[i] {
            let seq = self.submitted[i];
            let dest = self.plan.destination(i, seq);
            let tag = MessageTag { sender: i as u32, seq, dest: dest as u32 };
            checker::encode_payload(tag, &mut self.payload);
            match self.nodes[i].submit(self.now, &self.ids[dest], &self.payload) {
                Ok(()) => {
                    if self.log {
                        self.say(&format!("submit n{i} #{seq} -> n{dest}: accepted"));
                    }
                    self.checker.record_accepted(i, seq);
                    self.submitted[i] += 1;
                }
                Err(SubmitError::Backpressure) => {
                    if self.log {
                        self.say(&format!("submit n{i} #{seq} -> n{dest}: backpressure"));
                    }
                    self.backpressure += 1;
                    break;
                }
                Err(SubmitError::Rejected(why)) => {
                    // Never accepted, so the checker counts it lost: the run fails visibly.
                    self.anomaly(format!("node {i} rejected message {seq} to node {dest}: {why}"));
                    self.submitted[i] += 1;
                }
            }
        }
        debug_assert_eq!(self.payload.len(), self.payload_len);
    }

    fn transmit(&mut self, i: usize) {
        loop {
            let b = self.pool.take();
            let Some((dst, len)) =
                self.nodes[i].poll_transmit(self.now, &mut self.pool.buffers[b as usize])
            else {
                self.pool.put(b);
                return;
            };
            if len > self.pool.len {
                self.anomaly(format!(
                    "node {i} claims a {len}-byte datagram, buffer is {}",
                    self.pool.len
                ));
                self.pool.put(b);
                continue;
            }
            self.route(i, dst, b, len);
        }
    }

    /// Puts a datagram from node `from` on the wire.
    fn route(&mut self, from: usize, dst: SocketAddr, buf: u32, len: usize) {
        self.net.sent += 1;
        if self.log {
            let bytes = &self.pool.buffers[buf as usize][..len];
            let what = self.nodes[from].describe_datagram(bytes);
            self.say(&format!("send n{from} ({}) -> {dst} {what}", self.addrs[from]));
        }
        let Some(to) = self.node_at(dst) else {
            if self.log {
                self.say("  nobody has that address: lost");
            }
            self.net.unroutable += 1;
            self.pool.put(buf);
            return;
        };
        let (first, copy, reordered) = match self.network.fate(&mut self.rng, from, to, self.now) {
            Fate::Lost => {
                if self.log {
                    self.say("  lost");
                }
                self.net.lost += 1;
                self.pool.put(buf);
                return;
            }
            Fate::Partitioned => {
                if self.log {
                    self.say("  partitioned");
                }
                self.net.partitioned += 1;
                self.pool.put(buf);
                return;
            }
            Fate::Arrives { first, copy, reordered } => (first, copy, reordered),
        };
        if self.log {
            let copy =
                copy.map(|c| format!(", copy in {:.3}ms", c as f64 / 1e3)).unwrap_or_default();
            self.say(&format!("  in flight {:.3}ms{copy}", first as f64 / 1e3));
        }
        self.net.reordered += u64::from(reordered);
        let now = self.now.as_micros();
        let src = self.addrs[from];
        let (from, len32) = (from as u32, len as u32);
        if let Some(delay) = copy {
            let c = self.pool.take();
            let (original, duplicate) = if c > buf {
                let (lo, hi) = self.pool.buffers.split_at_mut(c as usize);
                (&lo[buf as usize], &mut hi[0])
            } else {
                let (lo, hi) = self.pool.buffers.split_at_mut(buf as usize);
                (&hi[0], &mut lo[c as usize])
            };
            duplicate[..len].copy_from_slice(&original[..len]);
            self.net.duplicated += 1;
            self.in_flight += 1;
            self.schedule(now + delay, Event::Arrive { from, src, dst, buf: c, len: len32 });
        }
        self.in_flight += 1;
        self.schedule(now + first, Event::Arrive { from, src, dst, buf, len: len32 });
    }

    /// Makes sure a `Timer` event exists for node `i`'s deadline (or an earlier one: when an
    /// early event fires it re-arms for the node's current deadline).
    fn arm(&mut self, i: usize) {
        let Some(deadline) = self.nodes[i].poll_timeout() else { return };
        let now = self.now.as_micros();
        let mut at = deadline.as_micros().max(now);
        let (spin_at, spins) = self.timer_spin[i];
        if at == now && spin_at == now && spins >= TIMER_SPIN_LIMIT {
            if spins == TIMER_SPIN_LIMIT {
                self.timer_spin[i].1 += 1;
                self.anomaly(format!(
                    "node {i}: deadline stays at or before now after {spins} handle_timeout calls"
                ));
            }
            at = now + 1000;
        }
        if self.armed[i].is_none_or(|armed| at < armed) {
            self.armed[i] = Some(at);
            self.schedule(at, Event::Timer { node: i as u32 });
        }
    }
}
