//! Runs the deterministic network simulator over many seeds and checks exactly-once delivery
//! (safety) and completion within a bound derived from the scenario (liveness).
//!
//! ```text
//! cargo run --release --example sim -- --seeds 1000 --messages 1000 --loss 0.3 --dup 0.1 \
//!     --reorder 0.3 --partition 10s --move
//! ```
//!
//! Each seed is one full run of `--nodes` nodes (default 3) in which every node sends, and
//! `--messages` is the number of messages PER SEED, shared evenly among the nodes (so the
//! command above checks 1,000,000 messages). Before it, `sim liveness:` gives the seeds that
//! missed their completion bound, the virtual goodput (messages per virtual second) and the
//! completion and recovery (after the faults end) times at p50/p99/max over the seeds. The last
//! line printed is always `sim seeds=S messages=M delivered=D lost=L duplicated=U` (sums over
//! all seeds); the exit status is 0 only if every seed delivered every message exactly once
//! (L = U = 0, and no misrouted or corrupt delivery, node anomaly or unfinished run) and
//! finished by its bound, 1 otherwise, 2 for bad arguments.

use std::process::ExitCode;
use std::time::Instant as WallClock;

use a3m_core::id::NodeId;
use a3m_core::node::{Node, NodeConfig};
use a3m_examples::{Args, fail};
use a3m_tests::sim::naive::{NaiveConfig, NaiveNode};
use a3m_tests::sim::scenario::{format_duration, parse_duration};
use a3m_tests::sim::{MAX_NODES, RunReport, Scenario, SimNode, Simulator, Totals, run_seeds};

const USAGE: &str = "\
usage: sim [--seeds N] [--seed-start N] [--messages N] [--nodes N] [--loss P] [--dup P]
           [--burst-loss P] [--burst-len N] [--reorder P] [--delay D] [--jitter D]
           [--reorder-delay D] [--partition D] [--move] [--announce] [--mover I]
           [--move-at A..B] [--quiesce] [--time-limit D] [--spread D] [--bursts N]
           [--payload BYTES] [--senders I,J,..] [--drain-every D] [--node core|naive]
           [--verbose] [--log]
           node settings (core only): [--window N] [--base-slots N] [--max-queued N]
           [--max-inbox N] [--max-datagram N] [--coalesce D] [--rto-min D] [--rto-max D]
           [--rto-initial D] [--idle-timeout D] [--receive-idle-timeout D] [--ack-delay D]
  --messages is per seed, shared by all nodes; P is a probability in [0, 1]; D is a duration
  such as 10s, 250ms or 1.5s. --burst-loss P --burst-len N adds Gilbert-Elliott burst loss:
  a share P of each path's datagrams is lost in bursts of N datagrams on average. --move
  moves one node (--mover I, default random) without telling it (like a NAT rebinding): its
  datagrams come from a new address and those sent to the old one are black-holed; with
  --announce its runtime notices and the node announces its new address. --move-at A..B
  (fractions of --spread, default 0.1..0.5) says when; above 1 is after the last submission.
  --quiesce also requires every node to close every record (the close phase) in the bound.
  Every run must finish by a completion bound derived from the scenario (tests/src/sim/
  liveness.rs); --time-limit (default: twice the bound's allowance) is when a run stops.
  Large datagrams: --max-datagram 65507 with small --payload and large bursts.
  --node core (default) runs a3m_core::node::Node with default NodeConfig; --node naive runs
  the simulator's own reference node. --senders limits which nodes send (default all);
  --drain-every makes the application empty inboxes only that often. --log prints every
  event (use with --seeds 1).";

const FLAGS: &[&str] = &[
    "seeds",
    "seed-start",
    "messages",
    "nodes",
    "loss",
    "burst-loss",
    "burst-len",
    "mover",
    "move-at",
    "quiesce",
    "dup",
    "reorder",
    "delay",
    "jitter",
    "reorder-delay",
    "partition",
    "move",
    "announce",
    "time-limit",
    "spread",
    "bursts",
    "payload",
    "node",
    "senders",
    "drain-every",
    "verbose",
    "log",
    "help",
    "window",
    "base-slots",
    "max-queued",
    "max-inbox",
    "max-datagram",
    "coalesce",
    "rto-min",
    "rto-max",
    "rto-initial",
    "idle-timeout",
    "receive-idle-timeout",
    "ack-delay",
];

/// Flags that set a field of the core node's configuration.
const NODE_FLAGS: &[&str] = &[
    "window",
    "base-slots",
    "max-queued",
    "max-inbox",
    "max-datagram",
    "coalesce",
    "rto-min",
    "rto-max",
    "rto-initial",
    "idle-timeout",
    "receive-idle-timeout",
    "ack-delay",
];

/// Which node implementation to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Core,
    Naive,
}

/// Parsed command line.
struct Options {
    seeds: u64,
    seed_start: u64,
    scenario: Scenario,
    node: NodeKind,
    node_config: NodeConfig,
    /// The node-setting flags given, as typed, for the reproduction command.
    node_flags: Vec<(String, String)>,
    verbose: bool,
}

fn node_config(args: &Args) -> (NodeConfig, Vec<(String, String)>) {
    let d = NodeConfig::default();
    let config = NodeConfig {
        window: args.get_or("window", d.window),
        base_slots: args.get_or("base-slots", d.base_slots),
        max_queued: args.get_or("max-queued", d.max_queued),
        max_inbox: args.get_or("max-inbox", d.max_inbox),
        max_datagram: args.get_or("max-datagram", d.max_datagram),
        coalesce_delay: duration_flag(args, "coalesce", d.coalesce_delay),
        rto_min: duration_flag(args, "rto-min", d.rto_min),
        rto_max: duration_flag(args, "rto-max", d.rto_max),
        rto_initial: duration_flag(args, "rto-initial", d.rto_initial),
        idle_timeout: duration_flag(args, "idle-timeout", d.idle_timeout),
        receive_idle_timeout: duration_flag(args, "receive-idle-timeout", d.receive_idle_timeout),
        ack_delay: duration_flag(args, "ack-delay", d.ack_delay),
        ..d
    };
    let given = NODE_FLAGS
        .iter()
        .filter_map(|name| args.get::<String>(name).map(|v| ((*name).to_string(), v)))
        .collect();
    (config, given)
}

fn senders_flag(args: &Args, nodes: usize) -> Vec<usize> {
    let Some(list) = args.get::<String>("senders") else { return Vec::new() };
    let senders: Vec<usize> = list
        .split(',')
        .map(|word| match word.trim().parse::<usize>() {
            Ok(i) if i < nodes => i,
            _ => fail(&format!("--senders {list}: '{word}' is not a node index below {nodes}")),
        })
        .collect();
    senders
}

fn duration_flag(args: &Args, name: &str, default: std::time::Duration) -> std::time::Duration {
    match args.get::<String>(name) {
        Some(text) => parse_duration(&text).unwrap_or_else(|e| fail(&format!("--{name}: {e}"))),
        None => default,
    }
}

fn probability_flag(args: &Args, name: &str) -> f64 {
    let p: f64 = args.get_or(name, 0.0);
    if !(0.0..=1.0).contains(&p) {
        fail(&format!("--{name} {p}: a probability must be between 0 and 1"));
    }
    p
}

/// Flags that take no value.
const SWITCHES: &[&str] = &["move", "announce", "quiesce", "verbose", "log", "help"];

/// Parses `A..B` (fractions of the spread) for --move-at.
fn move_at_flag(args: &Args, default: (f64, f64)) -> (f64, f64) {
    let Some(text) = args.get::<String>("move-at") else { return default };
    let parsed = text.split_once("..").and_then(|(a, b)| {
        let (a, b) = (a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?);
        (a.is_finite() && b.is_finite() && 0.0 <= a && a <= b).then_some((a, b))
    });
    parsed.unwrap_or_else(|| fail(&format!("--move-at {text}: expected A..B with 0 <= A <= B")))
}

fn parse_options() -> Options {
    // The shared parser would take the word after a switch as its value: refuse that here.
    let words: Vec<String> = std::env::args().skip(1).collect();
    for pair in words.windows(2) {
        let is_switch = pair[0].strip_prefix("--").is_some_and(|name| SWITCHES.contains(&name));
        if is_switch && !pair[1].starts_with("--") {
            fail(&format!("{} takes no value (got '{}')", pair[0], pair[1]));
        }
    }
    let args = Args::parse(words);
    if args.has("help") {
        println!("{USAGE}");
        std::process::exit(0);
    }
    args.reject_unknown(FLAGS);
    if let Some(word) = args.positional.first() {
        fail(&format!("unexpected argument '{word}'\n{USAGE}"));
    }
    let defaults = Scenario::default();
    let nodes: usize = args.get_or("nodes", defaults.nodes);
    if !(2..=MAX_NODES).contains(&nodes) {
        fail(&format!("--nodes {nodes}: must be between 2 and {MAX_NODES}"));
    }
    let partition = match args.get::<String>("partition") {
        None => None,
        Some(text) => match parse_duration(&text) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(e) => fail(&format!("--partition: {e}")),
        },
    };
    let scenario = Scenario {
        nodes,
        messages: args.get_or("messages", defaults.messages),
        payload_len: args.get_or("payload", defaults.payload_len),
        loss: probability_flag(&args, "loss"),
        burst_loss: probability_flag(&args, "burst-loss"),
        burst_len: args.get_or("burst-len", defaults.burst_len),
        duplicate: probability_flag(&args, "dup"),
        reorder: probability_flag(&args, "reorder"),
        delay: duration_flag(&args, "delay", defaults.delay),
        jitter: duration_flag(&args, "jitter", defaults.jitter),
        reorder_delay: duration_flag(&args, "reorder-delay", defaults.reorder_delay),
        partition,
        senders: senders_flag(&args, nodes),
        drain_interval: args.get::<String>("drain-every").map(|text| {
            parse_duration(&text).unwrap_or_else(|e| fail(&format!("--drain-every: {e}")))
        }),
        move_node: args.has("move"),
        mover: args.get::<usize>("mover"),
        move_at: move_at_flag(&args, defaults.move_at),
        quiesce: args.has("quiesce"),
        log: args.has("log"),
        announce_move: args.has("announce"),
        spread: duration_flag(&args, "spread", defaults.spread),
        bursts: args.get_or("bursts", defaults.bursts),
        time_limit: args.get::<String>("time-limit").map(|text| {
            parse_duration(&text).unwrap_or_else(|e| fail(&format!("--time-limit: {e}")))
        }),
    };
    if scenario.loss >= 1.0 {
        fail("--loss 1 loses everything: nothing could ever be delivered");
    }
    if scenario.announce_move && !scenario.move_node {
        fail("--announce needs --move");
    }
    if (scenario.mover.is_some() || args.has("move-at")) && !scenario.move_node {
        fail("--mover and --move-at need --move");
    }
    if scenario.mover.is_some_and(|m| m >= nodes) {
        fail(&format!("--mover must be a node index below {nodes}"));
    }
    if scenario.burst_loss >= 1.0 {
        fail("--burst-loss 1 loses everything: nothing could ever be delivered");
    }
    if !(scenario.burst_len >= 1.0 && scenario.burst_len.is_finite()) {
        fail("--burst-len must be at least 1 (datagrams)");
    }
    if scenario.bursts == 0 {
        fail("--bursts must be at least 1");
    }
    let node = match args.get::<String>("node").as_deref() {
        None | Some("core") => NodeKind::Core,
        Some("naive") => NodeKind::Naive,
        Some(other) => fail(&format!("--node {other}: expected core or naive")),
    };
    let (node_config, node_flags) = node_config(&args);
    if node == NodeKind::Naive && !node_flags.is_empty() {
        fail("node settings such as --window apply to --node core only");
    }
    Options {
        node_config,
        node_flags,
        seeds: args.get_or("seeds", 1000),
        seed_start: args.get_or("seed-start", 0),
        scenario,
        node,
        verbose: args.has("verbose"),
    }
}

/// The command that reruns exactly one seed of this campaign.
fn reproduce(o: &Options, seed: u64) -> String {
    let s = &o.scenario;
    let mut cmd = format!(
        "cargo run --release --example sim -- --seeds 1 --seed-start {seed} --messages {} \
         --nodes {} --loss {} --dup {} --reorder {} --delay {} --jitter {} --reorder-delay {} \
         --spread {} --bursts {} --payload {} --node {}",
        s.messages,
        s.nodes,
        s.loss,
        s.duplicate,
        s.reorder,
        format_duration(s.delay),
        format_duration(s.jitter),
        format_duration(s.reorder_delay),
        format_duration(s.spread),
        s.bursts,
        s.payload_len,
        match o.node {
            NodeKind::Core => "core",
            NodeKind::Naive => "naive",
        },
    );
    if let Some(t) = s.time_limit {
        cmd += &format!(" --time-limit {}", format_duration(t));
    }
    if s.burst_loss > 0.0 {
        cmd += &format!(" --burst-loss {} --burst-len {}", s.burst_loss, s.burst_len);
    }
    if let Some(p) = s.partition {
        cmd += &format!(" --partition {}", format_duration(p));
    }
    if s.move_node {
        cmd += &format!(" --move --move-at {}..{}", s.move_at.0, s.move_at.1);
        if let Some(m) = s.mover {
            cmd += &format!(" --mover {m}");
        }
    }
    if s.quiesce {
        cmd += " --quiesce";
    }
    if s.announce_move {
        cmd += " --announce";
    }
    if !s.senders.is_empty() {
        let list: Vec<String> = s.senders.iter().map(|i| i.to_string()).collect();
        cmd += &format!(" --senders {}", list.join(","));
    }
    if let Some(d) = s.drain_interval {
        cmd += &format!(" --drain-every {}", format_duration(d));
    }
    for (name, value) in &o.node_flags {
        cmd += &format!(" --{name} {value}");
    }
    cmd + " --verbose"
}

/// Prints failures in full (the first few), every report if verbose, and progress at every
/// tenth of the seeds.
struct Printer<'a> {
    options: &'a Options,
    started: WallClock,
    done: u64,
    failures: u64,
    messages: u64,
}

const FAILURES_SHOWN: u64 = 10;

impl Printer<'_> {
    fn report(&mut self, r: &RunReport) {
        self.done += 1;
        self.messages += r.check.planned;
        if self.options.verbose {
            println!("{r}");
        }
        if !r.ok() {
            self.failures += 1;
            if self.failures <= FAILURES_SHOWN {
                if !self.options.verbose {
                    println!("FAILED {r}");
                }
                println!("  reproduce: {}", reproduce(self.options, r.seed));
            }
        }
        let step = (self.options.seeds / 10).max(1);
        if self.done.is_multiple_of(step) && self.done < self.options.seeds {
            println!(
                "sim progress: {}/{} seeds, {} messages, {} failed seeds, {:.1}s",
                self.done,
                self.options.seeds,
                self.messages,
                self.failures,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

fn campaign<N: SimNode>(o: &Options, mut make: impl FnMut(usize, NodeId) -> N) -> Totals {
    // A scenario without a finite completion bound would fail every seed: say why up front.
    match Simulator::new(o.scenario.config(o.seed_start), &mut make) {
        Ok(sim) if sim.bound().at.is_none() => {
            fail(&format!("this scenario has no completion bound: {}", sim.bound().unbounded))
        }
        Ok(_) => {}
        Err(e) => fail(&e.to_string()),
    }
    let mut printer =
        Printer { options: o, started: WallClock::now(), done: 0, failures: 0, messages: 0 };
    let seeds = o.seed_start..o.seed_start.saturating_add(o.seeds);
    run_seeds(&o.scenario, seeds, make, |r| printer.report(r))
}

fn main() -> ExitCode {
    let o = parse_options();
    let started = WallClock::now();
    let totals = match o.node {
        NodeKind::Core => campaign(&o, |_, id| Node::new(id, o.node_config.clone())),
        NodeKind::Naive => campaign(&o, |_, id| NaiveNode::new(id, NaiveConfig::default())),
    };
    let c = &totals.check;
    let n = &totals.net;
    println!(
        "sim details: {} failed seeds, misrouted={} corrupt={} anomalies={} | datagrams sent={} \
         lost={} burst_lost={} partitioned={} duplicated={} reordered={} unroutable={} | \
         events={} campaign-trace={:016x} | {:.2}s wall",
        totals.failed_seeds.len(),
        c.misrouted,
        c.corrupt,
        totals.anomalies,
        n.sent,
        n.lost,
        n.burst_lost,
        n.partitioned,
        n.duplicated,
        n.reordered,
        n.unroutable,
        totals.events,
        totals.trace_hash,
        started.elapsed().as_secs_f64(),
    );
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let bound = |us: u64| {
        if us == u64::MAX { "none".to_string() } else { format!("{:.1}s", us as f64 / 1e6) }
    };
    let stalled: Vec<String> = totals.stalled_seeds.iter().take(20).map(u64::to_string).collect();
    println!(
        "sim liveness: stalled={} [{}] goodput={:.1} msg/s completion p50={:.3}s p99={:.3}s \
         max={:.3}s | after faults p50={:.3}s p99={:.3}s max={:.3}s | bound {}..{}, worst use \
         {:.0}% of allowance",
        totals.stalled_seeds.len(),
        stalled.join(","),
        totals.goodput(),
        secs(totals.completion(0.5)),
        secs(totals.completion(0.99)),
        secs(totals.completion(1.0)),
        secs(totals.recovery(0.5)),
        secs(totals.recovery(0.99)),
        secs(totals.recovery(1.0)),
        bound(totals.bound_us.0),
        bound(totals.bound_us.1),
        totals.worst_bound_use_ppm.min(u64::MAX / 2) as f64 / 1e4,
    );
    if !totals.close_us.is_empty() {
        println!(
            "sim close phase: every record closed, after faults p50={:.3}s p99={:.3}s max={:.3}s",
            secs(totals.close(0.5)),
            secs(totals.close(0.99)),
            secs(totals.close(1.0)),
        );
    }
    println!(
        "sim seeds={} messages={} delivered={} lost={} duplicated={}",
        totals.seeds, c.planned, c.delivered, c.lost, c.duplicated
    );
    if totals.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
