//! A deterministic network simulator for sans-I/O nodes.
//!
//! N nodes run on virtual time ([`Instant`]); nothing reads a clock or starts a thread. One
//! event queue, ordered by time and then by the order events were scheduled, holds datagrams in
//! flight, node deadlines, workload bursts and address changes, so a seed fixes the whole run.
//! Each node is driven only through the four sans-I/O calls (`handle_datagram`,
//! `handle_timeout`, `poll_transmit`, `poll_timeout`) plus `submit` and `poll_delivery`; an
//! [`ExactlyOnceChecker`] records every delivery and reports what was lost or duplicated.
//!
//! Faults: per-path loss, Gilbert-Elliott burst loss, duplication, reordering, delay and
//! jitter ([`PathConditions`]),
//! partitions between two groups of nodes ([`Partition`]), and nodes changing address
//! ([`AddressChange`]: datagrams to the old address are lost from then on; the node's own
//! datagrams carry the new source address, so peers learn it by the mobility rule; a node
//! that moves silently and never sends to a peer again cannot be found by that peer, which is
//! why [`Scenario`] moves a node early enough that it still sends to everyone afterwards).
//! A slow application can be modelled with [`SimConfig::drain_interval`], and
//! [`SimConfig::log`] prints every event, for studying one seed.
//!
//! Every run is checked for safety (the checker) and for liveness: it must finish, i.e.
//! deliver everything and have everything acknowledged (and with [`SimConfig::quiesce`] every
//! record closed), by a completion bound derived from the scenario (module [`liveness`]).
//! The simulator keeps running past the bound (to [`SimConfig::time_limit`]) so a late run
//! says how late it is, and a run whose nodes stop arming timers before finishing is reported
//! as deadlocked rather than ended early.
//!
//! ```text
//! let config = Scenario { loss: 0.3, ..Scenario::default() }.config(seed);
//! let report = Simulator::new(config, |index, id| MyNode::new(id))?.run();
//! assert!(report.ok(), "{report}");
//! ```

pub mod attacker;
pub mod campaign;
pub mod checker;
mod core_node;
pub mod endpoint;
pub mod liveness;
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
pub use endpoint::{LivenessHints, SimNode, SubmitError};
pub use liveness::Bound;
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
    /// The run stops at this virtual time even if messages are missing. `None`: when twice
    /// the completion bound's allowance has passed after the faults end (so a late run shows
    /// how late it is), but at most an hour of virtual time past the bound.
    pub time_limit: Option<Instant>,
    /// Also require every node to close every protocol record
    /// ([`SimNode::open_records`] = 0) before the run counts as finished: the close phase
    /// must complete within the bound too.
    pub quiesce: bool,
    /// Also hash every datagram's bytes into the trace (slower; for determinism tests).
    pub hash_datagrams: bool,
    /// `None`: the application takes deliveries as soon as a node has them. `Some(d)`: a slow
    /// application that empties every node's inbox only every `d`, so inboxes fill up.
    pub drain_interval: Option<Duration>,
    /// Print every event of the run to stdout (for debugging one seed).
    pub log: bool,
}

impl Default for SimConfig {
    /// Three nodes on perfect 10 ms paths, the default workload, the limit from the bound.
    fn default() -> Self {
        SimConfig {
            seed: 0,
            nodes: 3,
            paths: PathConditions::default(),
            path_overrides: Vec::new(),
            partitions: Vec::new(),
            address_changes: Vec::new(),
            workload: Workload::default(),
            time_limit: None,
            quiesce: false,
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
    /// Datagrams lost in a burst (the burst model's bad state).
    pub burst_lost: u64,
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
        self.burst_lost += o.burst_lost;
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
    /// True if the run finished (see [`liveness`]) before the time limit.
    pub completed: bool,
    /// Virtual time when the run stopped: when it finished, if it did.
    pub end_time: Instant,
    /// The completion bound: the run is live only if it was complete by `bound.at` (and with
    /// quiesce closed by `bound.close_at`).
    pub bound: Bound,
    /// When every message had been delivered and acknowledged, if that happened.
    pub complete_at: Option<Instant>,
    /// With quiesce: when every record had been closed too, if that happened.
    pub closed_at: Option<Instant>,
    /// True if the run stopped because no node had a timer armed and nothing was in flight,
    /// with messages still missing or unacknowledged (nothing could ever happen again).
    pub deadlocked: bool,
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
    /// Protocol records still open, summed over nodes, when the run stopped.
    pub open_records: u64,
    /// Number of anomalies: node misbehaviour outside the checker's counts (submit rejected,
    /// delivery errors, deadlines that never advance, oversize datagrams).
    pub anomalies: u64,
    /// The first few anomalies, described.
    pub anomaly_texts: Vec<String>,
    /// A few messages accepted but never delivered, as (sender, seq).
    pub missing: Vec<(usize, u32)>,
    /// Hash of everything that happened, in order: equal for equal runs.
    pub trace_hash: u64,
    /// For a run that is not live: every node's [`SimNode::describe_state`] when it stopped.
    pub node_states: Vec<String>,
}

impl RunReport {
    /// True if the run completed by its bound with every message delivered exactly once and
    /// no anomaly.
    pub fn ok(&self) -> bool {
        self.live() && self.check.exactly_once() && self.anomalies == 0
    }

    /// True if the run finished, was complete by its bound and, with quiesce, closed by its
    /// close bound.
    pub fn live(&self) -> bool {
        let by =
            |t: Option<Instant>, bound: Option<Instant>| t.zip(bound).is_some_and(|(t, b)| t <= b);
        self.completed
            && by(self.complete_at, self.bound.at)
            && (self.bound.close_at.is_none() || by(self.closed_at, self.bound.close_at))
    }

    /// When the run was complete (every message delivered and acknowledged), or when it
    /// stopped if it never was.
    pub fn completion(&self) -> Instant {
        self.complete_at.unwrap_or(self.end_time)
    }

    /// Virtual time from the end of the faults to [`RunReport::completion`].
    pub fn recovery(&self) -> core::time::Duration {
        self.completion().saturating_since(self.bound.fault_end)
    }

    /// Why the run is not live, if it is not: `stalled: N of M delivered ... at virtual T,
    /// bound B`, or `late: finished at T, bound B`.
    pub fn liveness_failure(&self) -> Option<String> {
        if self.live() {
            return None;
        }
        let t = self.end_time.as_micros() as f64 / 1e6;
        let bound = &self.bound;
        let secs = |t: Instant| t.as_micros() as f64 / 1e6;
        if self.completed {
            let complete = self.complete_at.map_or(t, secs);
            let closed =
                self.closed_at.map_or(String::new(), |c| format!(", closed {:.3}s", secs(c)));
            return Some(format!(
                "late: complete at virtual {complete:.3}s{closed}, bound {bound}"
            ));
        }
        let c = &self.check;
        let why = if self.deadlocked {
            "deadlocked (no timer armed, nothing in flight)"
        } else {
            "stopped at the time limit"
        };
        Some(format!(
            "stalled: {} of {} delivered, {} unacknowledged, {} records open at virtual {t:.3}s, \
             bound {bound}; {why}",
            c.delivered, c.planned, self.unacknowledged, self.open_records
        ))
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.check;
        let n = &self.net;
        write!(
            f,
            "seed={} completed={} end={:.3}s bound={} planned={} accepted={} delivered={} \
             lost={} duplicated={} misrouted={} corrupt={} unacked={} open_records={} \
             anomalies={} | datagrams sent={} lost={} burst_lost={} partitioned={} dup={} \
             reordered={} unroutable={} arrived={} | events={} timeouts={} backpressure={} \
             trace={:016x}",
            self.seed,
            self.completed,
            self.end_time.as_micros() as f64 / 1e6,
            self.bound.at.map_or("none".into(), |b| format!("{:.3}s", b.as_micros() as f64 / 1e6)),
            c.planned,
            c.accepted,
            c.delivered,
            c.lost,
            c.duplicated,
            c.misrouted,
            c.corrupt,
            self.unacknowledged,
            self.open_records,
            self.anomalies,
            n.sent,
            n.lost,
            n.burst_lost,
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
        if let Some(why) = self.liveness_failure() {
            write!(f, "\n  {why}")?;
        }
        for s in &self.node_states {
            write!(f, "\n  node {s}")?;
        }
        Ok(())
    }
}

/// What the network did with a datagram when it was sent (see [`Simulator::set_tap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFate {
    /// On its way (it may still be dropped on arrival by a partition or a move).
    InFlight,
    /// Lost at random.
    Lost,
    /// Lost in a burst.
    BurstLost,
    /// Dropped by a partition.
    Partitioned,
    /// No node has the destination address.
    Unroutable,
}

/// One datagram as a node sent it, shown to a tap.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// When it was sent.
    pub at: Instant,
    /// The sending node.
    pub from: usize,
    /// The node that has the destination address, if any.
    pub to: Option<usize>,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// What the network did with it.
    pub fate: SendFate,
}

/// A callback that sees every datagram sent.
type Tap = Box<dyn FnMut(&Sent<'_>)>;

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
    bound: Bound,
    quiesce: bool,
    deadlocked: bool,
    tap: Option<Tap>,
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
    /// When everything was first delivered and acknowledged, and (with quiesce) closed.
    complete_at: Option<Instant>,
    closed_at: Option<Instant>,

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

        let hints = liveness::combine(nodes.iter().map(SimNode::liveness_hints));
        let max_transit = config
            .path_overrides
            .iter()
            .map(|o| o.2.max_transit())
            .fold(config.paths.max_transit(), core::cmp::Ord::max);
        let bound = liveness::bound(&config, &plan, &hints, max_transit);
        let time_limit = config.time_limit.unwrap_or_else(|| {
            // Twice the allowance, but at most an hour past the bound.
            let hour = Duration::from_secs(3600);
            match bound.close_at.or(bound.at) {
                Some(last) => last + (last - bound.fault_end).min(hour),
                None => bound.fault_end + hour,
            }
        });
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
            time_limit,
            bound,
            quiesce: config.quiesce,
            deadlocked: false,
            tap: None,
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
            complete_at: None,
            closed_at: None,
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

    /// The completion bound of this run.
    pub fn bound(&self) -> Bound {
        self.bound
    }

    /// Calls `tap` with every datagram a node sends, and what the network does with it at
    /// that moment (for tests that look at which records are lost when).
    pub fn set_tap(&mut self, tap: impl FnMut(&Sent<'_>) + 'static) {
        self.tap = Some(Box::new(tap));
    }

    /// Runs until the run finishes (every message delivered and acknowledged, with `quiesce`
    /// every record closed, and the network drained), or until the time limit, and reports.
    /// It does not stop at the completion bound: a late run goes on to tell how late it is.
    /// Call it once per simulator.
    pub fn run(&mut self) -> RunReport {
        for i in 0..self.nodes.len() {
            self.service(i);
        }
        let mut completed = false;
        loop {
            let Some(next) = self.queue.pop() else {
                // Nothing scheduled: no timer, no datagram, no burst. Unless finished, the run
                // can never make progress again.
                self.deadlocked = true;
                break;
            };
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
        let mut report = RunReport {
            seed: self.seed,
            check: self.checker.report(),
            completed,
            end_time: self.now,
            bound: self.bound,
            complete_at: self.complete_at,
            closed_at: self.closed_at,
            deadlocked: self.deadlocked && !completed,
            net: self.net,
            events: self.events,
            timeouts: self.timeouts,
            backpressure: self.backpressure,
            unacknowledged: self.nodes.iter().map(|n| n.unacknowledged() as u64).sum(),
            open_records: self.nodes.iter().map(|n| n.open_records() as u64).sum(),
            anomalies: self.anomalies,
            anomaly_texts: self.anomaly_texts.clone(),
            missing: self.checker.missing(8),
            trace_hash: self.trace,
            node_states: Vec::new(),
        };
        if !report.live() {
            report.node_states = self.nodes.iter().map(SimNode::describe_state).collect();
        }
        report
    }

    /// True when the run can stop: all delivered, all acknowledged, with `quiesce` all records
    /// closed, and every datagram that was in flight at that moment has landed (so a late
    /// duplicate would have been seen).
    fn finished(&mut self) -> bool {
        if !self.checker.all_delivered() {
            return false;
        }
        if self.settle_until.is_none() {
            if self.nodes.iter().any(|n| n.unacknowledged() != 0) {
                return false;
            }
            self.complete_at.get_or_insert(self.now);
            if self.quiesce {
                if self.nodes.iter().any(|n| n.open_records() != 0) {
                    return false;
                }
                self.closed_at = Some(self.now);
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
            self.tap(from, None, buf, len, SendFate::Unroutable);
            self.net.unroutable += 1;
            self.pool.put(buf);
            return;
        };
        let fate = self.network.fate(&mut self.rng, from, to, self.now);
        let seen = match fate {
            Fate::Lost => SendFate::Lost,
            Fate::BurstLost => SendFate::BurstLost,
            Fate::Partitioned => SendFate::Partitioned,
            Fate::Arrives { .. } => SendFate::InFlight,
        };
        self.tap(from, Some(to), buf, len, seen);
        let (first, copy, reordered) = match fate {
            Fate::BurstLost => {
                if self.log {
                    self.say("  lost in a burst");
                }
                self.net.burst_lost += 1;
                self.pool.put(buf);
                return;
            }
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

    fn tap(&mut self, from: usize, to: Option<usize>, buf: u32, len: usize, fate: SendFate) {
        if let Some(tap) = &mut self.tap {
            let bytes = &self.pool.buffers[buf as usize][..len];
            tap(&Sent { at: self.now, from, to, bytes, fate });
        }
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
