//! Exactly-once between real processes through a faulty network: the `push`/`pull` and `rpc`
//! example programs, each as its own OS process, talk through the UDP fault relay
//! (`a3m_tests::relay`, run in this process) that loses, duplicates and reorders datagrams in
//! both directions, or blacks the path out.
//!
//! Every case checks both halves of exactly-once (DESIGN.md, "Safety and liveness"):
//! - safety: `pull` exits 0 only if it received every message exactly once and in order
//!   (`rpc` fails on any reply that is not its request, and its server counts the requests);
//! - liveness: both processes exit, successfully, within a stated bound ([`PUSH_PULL`],
//!   [`RPC`], [`BLACKOUT_RESUME`]); at the bound they are killed and the case fails with its
//!   seed, the relay counters and the tail of both processes' output.
//!
//! `FAULT_SEEDS` (default 2) seeds run per case, from `FAULT_SEED_BASE` (default 1); the seeds
//! of one test run at the same time, each with its own ports. The example programs are taken
//! from the target directory of this test binary (`cargo test` builds them) or built once with
//! `cargo build --example ...` if missing.

mod support;

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use a3m_tests::relay::{Blackout, Counters, Faults, Relay, RelayConfig, RelayHandle};

/// Duplication and reordering in every loss case (both directions).
const DUP: f64 = 0.02;
const REORDER: f64 = 0.05;

/// Size of each pushed message, in bytes.
const MESSAGE_SIZE: usize = 64;

/// `--timeout` given to the processes (seconds): far above every bound, so the bound, not
/// the program, decides when a case has stalled.
const PROCESS_TIMEOUT: u64 = 300;

/// One push/pull loss level: loss probability, messages, liveness bound.
///
/// The bound runs from starting the two processes to both having exited. Derivation:
/// - Fixed part, 10 s: start-up, linking and closing take well under 3 s in a debug build
///   (measured: 20 000 messages through a fault-free relay in 0.2 s, 2.2 s at 5 % loss
///   including the close), doubled and more for a loaded CI machine running tests in parallel.
/// - Loss part: a message is delivered once its TOKEN and the ACK both get through, which
///   fails with q = 1 − (1 − p)² per attempt. Retransmissions back off from the RTT-based
///   timeout (at least `rto_min` = 10 ms) by doubling up to `rto_max` = 1 s, so k failures
///   in a row cost at most Σ min(10 ms · 2ⁱ, 1 s) ≈ 1.3 s + (k − 7) · 1 s beyond k = 7. The
///   longest streak among N messages is about ln N / ln(1/q): 2.5 at 1 % and 4.3 at 5 %
///   (N = 20 000), 9 at 20 % and 14 at 30 % (N = 10 000), i.e. 0.03 s, 0.3 s, 3.3 s and
///   8 s. The window (1024 slots) lets the stream run past one slow message, so such tails
///   mostly overlap; the bound still allows four of them to add up, then rounds up:
///   1 %: 10 + 0.1 → 20 s; 5 %: 10 + 1.2 → 20 s; 20 %: 10 + 13 → 30 s; 30 %: 10 + 32 → 45 s.
const PUSH_PULL: [(f64, u64, Duration); 4] = [
    (0.01, 20_000, Duration::from_secs(20)),
    (0.05, 20_000, Duration::from_secs(20)),
    (0.20, 10_000, Duration::from_secs(30)),
    (0.30, 10_000, Duration::from_secs(45)),
];

/// RPC cases: loss probability, round trips (over [`RPC_CLIENTS`] client threads), bound.
///
/// A round trip is four crossings (request TOKEN and ACK, reply TOKEN and ACK) and waits for
/// every lost one: with loss p it needs a retransmission with probability 1 − (1 − p)⁴ (4 %,
/// 19 %, 59 %, 76 %), each costing one retransmission timeout (RTT-based, at least 10 ms;
/// about 0.1 s while the first estimate is `rto_initial`, doubled per repeat). Per client
/// thread that is at most 500 × 0.04, 250 × 0.19, 125 × 0.59 and 75 × 0.76 retransmissions,
/// 20 to 57, times a pessimistic 0.2 s each is at most 12 s; plus the 10 s fixed part (as
/// for push/pull) and a streak allowance as above → 30 s for 1 % and 5 %, 45 s for 20 % and
/// 30 %.
const RPC: [(f64, u64, Duration); 4] = [
    (0.01, 2_000, Duration::from_secs(30)),
    (0.05, 1_000, Duration::from_secs(30)),
    (0.20, 500, Duration::from_secs(45)),
    (0.30, 300, Duration::from_secs(45)),
];

/// Client threads of the `rpc` cases.
const RPC_CLIENTS: usize = 4;

/// Messages of the blackout case: enough that the stream is still running when the blackout
/// opens (a fault-free run of 200 000 messages takes about a second in a debug build).
const BLACKOUT_MESSAGES: u64 = 200_000;

/// Length of the blackout.
const BLACKOUT: Duration = Duration::from_secs(3);

/// The blackout opens once the relay forwarded this many datagrams from push to pull.
const BLACKOUT_AFTER_DATAGRAMS: u64 = 20;

/// From the end of the blackout until a datagram crosses the relay in both directions again:
/// the sender's retransmission timer has backed off to at most `rto_max` = 1 s during the
/// blackout, so it retransmits within 1 s of the heal and the receiver answers within one
/// round trip (under a millisecond here); 3 s leaves room for a loaded machine.
const BLACKOUT_RESUME: Duration = Duration::from_secs(3);

/// Whole blackout case, from starting the processes: the blackout, plus the fault-free
/// transfer and start-up/close allowance of [`PUSH_PULL`] (10 s), plus [`BLACKOUT_RESUME`],
/// plus 2 s before the blackout opens.
const BLACKOUT_BOUND: Duration = Duration::from_secs(3 + 10 + 3 + 2);

/// How many lines of each process's output a failure shows.
const TAIL_LINES: usize = 15;

// ---------------------------------------------------------------------------------------
// Test cases

#[test]
fn push_pull_loss_1pct_default_datagram() {
    push_pull_level(0, None);
}

#[test]
fn push_pull_loss_1pct_datagram_1400() {
    push_pull_level(0, Some(1400));
}

#[test]
fn push_pull_loss_5pct_default_datagram() {
    push_pull_level(1, None);
}

#[test]
fn push_pull_loss_5pct_datagram_1400() {
    push_pull_level(1, Some(1400));
}

#[test]
fn push_pull_loss_20pct_default_datagram() {
    push_pull_level(2, None);
}

#[test]
fn push_pull_loss_20pct_datagram_1400() {
    push_pull_level(2, Some(1400));
}

#[test]
fn push_pull_loss_30pct_default_datagram() {
    push_pull_level(3, None);
}

#[test]
fn push_pull_loss_30pct_datagram_1400() {
    push_pull_level(3, Some(1400));
}

#[test]
fn rpc_loss_1pct() {
    rpc_level(0);
}

#[test]
fn rpc_loss_5pct() {
    rpc_level(1);
}

#[test]
fn rpc_loss_20pct() {
    rpc_level(2);
}

#[test]
fn rpc_loss_30pct() {
    rpc_level(3);
}

/// Sealed (`--key-file` on both sides, issue 15): the 5 % loss level, exactly once, within
/// the same bound as plaintext (sealing costs microseconds, the bound is seconds).
#[test]
fn push_pull_loss_5pct_sealed() {
    push_pull_level_keyed(1, None, true);
}

/// Sealed, path-MTU datagrams: the 20 % loss level.
#[test]
fn push_pull_loss_20pct_datagram_1400_sealed() {
    push_pull_level_keyed(2, Some(1400), true);
}

/// A 3 s blackout in both directions opens mid-stream, then heals: traffic must cross the
/// relay again within [`BLACKOUT_RESUME`] of the heal and the stream complete, exactly once,
/// within [`BLACKOUT_BOUND`].
#[test]
fn push_pull_blackout_3s_then_heal() {
    let results = for_each_seed(|seed| blackout_case(seed, false));
    report("push_pull_blackout_3s_then_heal", results);
}

/// The blackout case sealed: the same bounds.
#[test]
fn push_pull_blackout_3s_then_heal_sealed() {
    let results = for_each_seed(|seed| blackout_case(seed, true));
    report("push_pull_blackout_3s_then_heal_sealed", results);
}

// ---------------------------------------------------------------------------------------
// Cases

/// What a case is, for its report.
#[derive(Debug, Clone, Copy)]
struct Case {
    program: &'static str,
    loss: f64,
    dup: f64,
    reorder: f64,
    datagram: Option<usize>,
    seed: u64,
    count: u64,
    bound: Duration,
    /// Both processes seal with the key of [`key_file`].
    sealed: bool,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{} loss={}% dup={}% reorder={}% datagram={} count={} seed={} bound={:?}",
            self.program,
            if self.sealed { " sealed" } else { "" },
            self.loss * 100.0,
            self.dup * 100.0,
            self.reorder * 100.0,
            self.datagram.map_or("default".to_string(), |d| d.to_string()),
            self.count,
            self.seed,
            self.bound
        )
    }
}

fn faults(loss: f64) -> Faults {
    Faults { loss, dup: DUP, reorder: REORDER, ..Faults::none() }
}

fn push_pull_level(level: usize, datagram: Option<usize>) {
    push_pull_level_keyed(level, datagram, false);
}

fn push_pull_level_keyed(level: usize, datagram: Option<usize>, sealed: bool) {
    let (loss, count, bound) = PUSH_PULL[level];
    let results = for_each_seed(|seed| {
        let case = Case {
            program: "push/pull",
            loss,
            dup: DUP,
            reorder: REORDER,
            datagram,
            seed,
            count,
            bound,
            sealed,
        };
        push_pull_case(case, faults(loss), |_, _| Ok(())).map(|d| (case, d))
    });
    let name = format!(
        "push_pull{} loss {}% datagram {}",
        if sealed { " sealed" } else { "" },
        loss * 100.0,
        datagram.map_or("default".into(), |d| d.to_string())
    );
    report(&name, results);
}

fn rpc_level(level: usize) {
    let (loss, count, bound) = RPC[level];
    let results = for_each_seed(|seed| {
        let case = Case {
            program: "rpc",
            loss,
            dup: DUP,
            reorder: REORDER,
            datagram: None,
            seed,
            count,
            bound,
            sealed: false,
        };
        rpc_case(case).map(|d| (case, d))
    });
    report(&format!("rpc loss {}%", loss * 100.0), results);
}

/// Runs `pull` then `push` through a relay with `faults`; `watch` is called every few
/// milliseconds while they run (with the relay and the processes) and may fail the case.
/// Returns how long the processes took.
fn push_pull_case(
    case: Case,
    faults: Faults,
    mut watch: impl FnMut(&RelayHandle, &mut [Proc]) -> Result<(), String>,
) -> Result<Duration, String> {
    let count = case.count.to_string();
    let timeout = PROCESS_TIMEOUT.to_string();
    let datagram = case.datagram.map(|d| d.to_string());
    let mut extra: Vec<&str> = vec!["--timeout", &timeout];
    if let Some(d) = &datagram {
        extra.extend(["--datagram", d]);
    }
    let key = key_file().to_string_lossy().into_owned();
    if case.sealed {
        extra.extend(["--key-file", &key]);
    }
    let start = Instant::now();
    let (pull, pull_addr) = start_server(|addr| {
        let mut args = vec!["--node", "B", "--bind", addr, "--tag", "sink", "--count", &count];
        args.extend(&extra);
        spawn("pull", &example("pull"), &args)
    })
    .map_err(|e| format!("{case}: {e}"))?;
    let relay = start_relay(pull_addr, faults, case.seed)?;
    let peer = format!("B={}", relay.local_addr());
    let size = MESSAGE_SIZE.to_string();
    let mut args = vec!["--node", "A", "--bind", "127.0.0.1:0", "--peer", &peer];
    args.extend(["--link", "B/sink", "--count", &count, "--size", &size]);
    args.extend(&extra);
    let push = spawn("push", &example("push"), &args).map_err(|e| format!("{case}: {e}"))?;
    let mut procs = [pull, push];
    let statuses = wait_all(&mut procs, start + case.bound, |procs| watch(&relay, procs));
    let elapsed = start.elapsed();
    let counters = relay.stop();
    let statuses = statuses.map_err(|why| failure(&case, &why, elapsed, &counters, &procs))?;
    let [pull, push] = &procs;
    let expected = format!("pull received={count} in_order=true duplicates=0");
    if !statuses[0].success() || pull.last_line() != expected {
        let why = format!("SAFETY: pull exited with {} (expected: {expected})", statuses[0]);
        return Err(failure(&case, &why, elapsed, &counters, &procs));
    }
    if !statuses[1].success() || !push.output().contains("push sent=") {
        let why = format!("push exited with {}", statuses[1]);
        return Err(failure(&case, &why, elapsed, &counters, &procs));
    }
    Ok(elapsed)
}

fn rpc_case(case: Case) -> Result<Duration, String> {
    let size = MESSAGE_SIZE.to_string();
    let clients = RPC_CLIENTS.to_string();
    let count = case.count.to_string();
    let timeout = PROCESS_TIMEOUT.to_string();
    let start = Instant::now();
    let (server, server_addr) = start_server(|addr| {
        let args = ["server", addr, &size, &clients, &count, "--timeout", &timeout];
        spawn("rpc server", &example("rpc"), &args)
    })
    .map_err(|e| format!("{case}: {e}"))?;
    let relay = start_relay(server_addr, faults(case.loss), case.seed)?;
    let relay_addr = relay.local_addr().to_string();
    let args = ["client", &relay_addr, &size, &clients, &count, "--timeout", &timeout];
    let client = spawn("rpc client", &example("rpc"), &args).map_err(|e| format!("{case}: {e}"))?;
    let mut procs = [server, client];
    let statuses = wait_all(&mut procs, start + case.bound, |_| Ok(()));
    let elapsed = start.elapsed();
    let counters = relay.stop();
    let statuses = statuses.map_err(|why| failure(&case, &why, elapsed, &counters, &procs))?;
    for (status, proc) in statuses.iter().zip(&procs) {
        if !status.success() {
            let why = format!("{} exited with {status}", proc.name);
            return Err(failure(&case, &why, elapsed, &counters, &procs));
        }
    }
    if !procs[1].output().contains("a3m_rpc clients=") {
        let why = "the rpc client printed no result".to_string();
        return Err(failure(&case, &why, elapsed, &counters, &procs));
    }
    Ok(elapsed)
}

/// The blackout case for one seed.
fn blackout_case(seed: u64, sealed: bool) -> Result<(Case, Duration), String> {
    let case = Case {
        program: "push/pull blackout",
        loss: 0.0,
        dup: 0.0,
        reorder: 0.0,
        datagram: None,
        seed,
        count: BLACKOUT_MESSAGES,
        bound: BLACKOUT_BOUND,
        sealed,
    };
    // Phases: waiting for the stream, blacked out (until `heal`), healed (waiting for traffic
    // in both directions, counted at `heal`), resumed.
    let mut heal: Option<(Instant, Counters)> = None;
    let mut resumed: Option<Duration> = None;
    let watch = |relay: &RelayHandle, procs: &mut [Proc]| {
        let now = Instant::now();
        let counters = relay.counters();
        match heal {
            None if counters.upstream.forwarded >= BLACKOUT_AFTER_DATAGRAMS => {
                if procs.iter_mut().any(|p| p.exited()) {
                    return Err("the stream ended before the blackout opened: raise \
                                BLACKOUT_MESSAGES"
                        .to_string());
                }
                let start = relay.started().elapsed();
                relay.add_blackout(Blackout { start, duration: BLACKOUT });
                heal = Some((now + BLACKOUT, counters));
            }
            None => {}
            Some((at, ref mut at_heal)) if now < at => *at_heal = counters,
            Some((at, at_heal)) if resumed.is_none() => {
                if counters.upstream.forwarded > at_heal.upstream.forwarded
                    && counters.downstream.forwarded > at_heal.downstream.forwarded
                {
                    resumed = Some(now - at);
                } else if now - at > BLACKOUT_RESUME {
                    return Err(format!(
                        "LIVENESS: no traffic in both directions within {BLACKOUT_RESUME:?} \
                         of the heal"
                    ));
                }
            }
            Some(_) => {}
        }
        Ok(())
    };
    let elapsed = push_pull_case(case, Faults::none(), watch)?;
    if heal.is_none() {
        return Err(format!("{case}: the blackout never opened (the stream was too short)"));
    }
    eprintln!("{case}: traffic resumed {:?} after the heal", resumed.unwrap_or_default());
    Ok((case, elapsed))
}

// ---------------------------------------------------------------------------------------
// Seeds and reports

/// The seeds to run: `FAULT_SEEDS` (default 2) from `FAULT_SEED_BASE` (default 1).
fn seeds() -> Vec<u64> {
    fn var(name: &str, default: u64) -> u64 {
        match std::env::var(name) {
            Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?}: not a number")),
            Err(_) => default,
        }
    }
    let (n, base) = (var("FAULT_SEEDS", 2), var("FAULT_SEED_BASE", 1));
    (base..base + n).collect()
}

/// Runs `case` for every seed, all at once (each case has its own ports and relay).
fn for_each_seed<F>(case: F) -> Vec<Result<(Case, Duration), String>>
where
    F: Fn(u64) -> Result<(Case, Duration), String> + Sync,
{
    let case = &case;
    thread::scope(|s| {
        let runs: Vec<_> = seeds().into_iter().map(|seed| s.spawn(move || case(seed))).collect();
        runs.into_iter()
            .map(|run| run.join().unwrap_or_else(|_| Err("the case panicked".to_string())))
            .collect()
    })
}

/// Prints every case's outcome and fails the test if any failed.
fn report(name: &str, results: Vec<Result<(Case, Duration), String>>) {
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok((case, elapsed)) => eprintln!("ok: {case}: finished in {elapsed:.2?}"),
            Err(why) => failures.push(why),
        }
    }
    if !failures.is_empty() {
        panic!("{name}: {} case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
    }
}

fn failure(case: &Case, why: &str, elapsed: Duration, relay: &Counters, procs: &[Proc]) -> String {
    let mut text = format!("FAILED {case}: {why} (after {elapsed:.2?})\n  relay: {relay}");
    for proc in procs {
        text += &format!("\n  --- {} (last {TAIL_LINES} lines) ---\n{}", proc.name, proc.tail());
    }
    text
}

// ---------------------------------------------------------------------------------------
// Processes

/// A running example program with its output (stdout and stderr, interleaved by line).
struct Proc {
    name: &'static str,
    child: Child,
    output: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Proc {
    fn output(&self) -> String {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn last_line(&self) -> String {
        self.output().lines().rfind(|l| !l.starts_with("[stderr]")).unwrap_or("").to_string()
    }

    fn tail(&self) -> String {
        let output = self.output();
        let lines: Vec<&str> = output.lines().collect();
        let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
        if tail.is_empty() { "    (no output)".to_string() } else { tail.join("\n") }
    }

    /// True once the process has exited (its status is kept).
    fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status.is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Copies a pipe into `output` line by line (stderr lines marked).
fn capture(pipe: impl Read + Send + 'static, output: Arc<Mutex<String>>, prefix: &'static str) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut output = output.lock().unwrap_or_else(|e| e.into_inner());
            output.push_str(prefix);
            output.push_str(&line);
            output.push('\n');
        }
    });
}

fn spawn(name: &'static str, program: &Path, args: &[&str]) -> Result<Proc, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let output = Arc::new(Mutex::new(String::new()));
    if let Some(out) = child.stdout.take() {
        capture(out, Arc::clone(&output), "");
    }
    if let Some(err) = child.stderr.take() {
        capture(err, Arc::clone(&output), "[stderr] ");
    }
    Ok(Proc { name, child, output, status: None })
}

/// Waits until every process exited or `deadline`, calling `watch` every 5 ms; at the
/// deadline (or if `watch` fails) kills the rest and says why.
fn wait_all(
    procs: &mut [Proc],
    deadline: Instant,
    mut watch: impl FnMut(&mut [Proc]) -> Result<(), String>,
) -> Result<Vec<ExitStatus>, String> {
    let outcome = loop {
        if procs.iter_mut().all(Proc::exited) {
            break Ok(());
        }
        if let Err(why) = watch(procs) {
            break Err(why);
        }
        if Instant::now() >= deadline {
            let running: Vec<_> =
                procs.iter_mut().filter_map(|p| (!p.exited()).then_some(p.name)).collect();
            break Err(format!(
                "LIVENESS: {} still running at the bound (killed)",
                running.join(" and ")
            ));
        }
        thread::sleep(Duration::from_millis(5));
    };
    if let Err(why) = outcome {
        for proc in procs.iter_mut() {
            if !proc.exited() {
                let _ = proc.child.kill();
                proc.status = proc.child.wait().ok();
            }
        }
        // Let the output threads take the last lines.
        thread::sleep(Duration::from_millis(50));
        return Err(why);
    }
    thread::sleep(Duration::from_millis(20));
    Ok(procs.iter().map(|p| p.status.expect("exited")).collect())
}

/// A loopback address with a port that was free a moment ago.
fn free_addr() -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on loopback");
    socket.local_addr().expect("bound").to_string()
}

/// Starts the server process of a case on a free port and waits until it bound it; retries
/// with another port if the port was taken in between (tests run in parallel).
fn start_server(
    mut start: impl FnMut(&str) -> Result<Proc, String>,
) -> Result<(Proc, SocketAddr), String> {
    let mut last = String::new();
    for _ in 0..5 {
        let addr = free_addr();
        let mut proc = start(&addr)?;
        // The pull example says when it listens; the rpc server says nothing, so a short
        // grace period shows whether it failed to bind.
        let grace = Instant::now() + Duration::from_millis(300);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if proc.exited() {
                break;
            }
            let listening = proc.output().contains("listening on");
            if listening || (proc.name != "pull" && Instant::now() >= grace) {
                return Ok((proc, addr.parse().expect("an address")));
            }
            if Instant::now() >= deadline {
                return Err(format!("{} did not start within 10 s:\n{}", proc.name, proc.tail()));
            }
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(20));
        last = proc.tail();
        if !last.contains("cannot start node") {
            break;
        }
    }
    Err(format!("the server process failed to start:\n{last}"))
}

fn start_relay(to: SocketAddr, faults: Faults, seed: u64) -> Result<RelayHandle, String> {
    let config =
        RelayConfig { listen: "127.0.0.1:0".parse().expect("an address"), to, faults, seed };
    Relay::bind(config)
        .and_then(Relay::spawn)
        .map_err(|e| format!("cannot start the relay to {to}: {e}"))
}

// ---------------------------------------------------------------------------------------
// Example binaries

/// A key file (mode 0600) shared by the sealed cases of this run.
// In cargo's scratch directory for tests (target/tmp), not /tmp: a static is never
// dropped, so nothing would remove it there.
fn key_file() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("a3m-fault-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("key directory");
        let path = dir.join("psk");
        let _ = std::fs::remove_file(&path);
        let key = a3m::keyfile::generate_key().expect("random key");
        a3m::keyfile::write_key_file(&path, &key).expect("key file");
        path
    })
}

/// The path of example `name`, built beside this test binary (`target/<profile>/examples`).
fn example(name: &str) -> PathBuf {
    examples_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// `target/<profile>/examples`, with the programs built (once per test binary).
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| support::built_examples(&["push", "pull", "rpc"]))
}
