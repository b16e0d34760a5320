//! Real address changes under a stream, between two processes (issue 13, items 4 and 5).
//!
//! `examples/push` runs in network namespace A bound to `0.0.0.0`, `examples/pull` in
//! namespace B, with a veth pair between them (DESIGN.md, "A real address change"). When about
//! a third of the stream has arrived, an address changes, and nobody calls `rebind()`: the
//! moved node's next datagram comes from its new address and its peer learns it there.
//!
//! Every test checks both halves of exactly-once:
//! - safety: pull exits 0 (all messages arrived, once each, in order) and so does push;
//! - liveness: the pull process receives datagrams at a tenth of the stream's earlier rate
//!   again within [`RESUME_BOUND`] of the change (sampled every [`SAMPLE`] from its UDP
//!   counters), and both processes exit within the change + [`RESUME_BOUND`] + three times
//!   what the rest of the stream took at the earlier rate + [`CLOSE_SLACK`].
//!
//! A move is `ip addr add NEW; ip addr del OLD` with `promote_secondaries` on in the
//! namespace: otherwise deleting OLD (the subnet's primary address) deletes NEW too and the
//! node is left with no address at all (`ci/mobility.sh` runs that case as well, and reports
//! it). `ci/mobility.sh` runs the same scenarios with 8 M messages and a 10 s blackout.
//!
//! Every case runs twice: plain, and sealed (`*_sealed`: both programs get `--key-file` with a
//! fresh pre-shared key, written with mode 0600 into a directory of the test's own, issue 15).
//! With sealing on, a moved peer's new address is adopted only after an authenticated,
//! non-replayed datagram and a path challenge answered from there (`a3m_core::node`), and the
//! sealed case is held to the same bounds. Each test prints how long delivery took to resume
//! after the change, and the two programs' path and sealing counters (`--stats`).
//!
//! Needs root and `ip netns`: without them each test prints why and returns. The programs are
//! the example binaries of this test's profile (target/PROFILE/examples/push and pull, built
//! by the test through cargo if stale), or those in `A3M_MOBILITY_BIN_DIR` (for example
//! release ones); `A3M_MOBILITY_COUNT` changes the message count. The tests run one at a time
//! (they time things).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Delivery must resume this soon after the change (the bound).
const RESUME_BOUND: Duration = Duration::from_secs(1);
/// How often the pull process's UDP counters are read.
const SAMPLE: Duration = Duration::from_millis(10);
/// The blackout of [`blackout_heals_within_a_second`] (`ci/mobility.sh` uses 10 s).
/// Time between A's move and B's in [`Change::BothMove`]: enough for A's announcement to
/// reach B at its old address (a debug build on a loaded machine takes a few milliseconds).
const BOTH_MOVE_GAP: Duration = Duration::from_millis(200);

const BLACKOUT: Duration = Duration::from_secs(3);
/// How long the sender has no address in [`sender_gets_a_new_address_after_losing_its_own`].
const OFFLINE: Duration = Duration::from_secs(1);
/// Time allowed, beyond the stream, for both processes to close.
const CLOSE_SLACK: Duration = Duration::from_secs(5);
/// Message size (push's `--size`).
const SIZE: u64 = 100;

/// The tests measure time: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The push node (A, bound to 0.0.0.0) moves: 10.77.0.1 -> 10.77.0.3.
#[test]
fn sender_moves_without_rebind() {
    scenario(Change::SenderMoves, false);
}

/// [`sender_moves_without_rebind`] with sealed datagrams.
#[test]
fn sender_moves_without_rebind_sealed() {
    scenario(Change::SenderMoves, true);
}

/// The pull node (B, bound to 0.0.0.0:7001) moves: 10.77.0.2 -> 10.77.0.4. Push only knows
/// B=10.77.0.2:7001 and must learn the new address from B's datagrams.
#[test]
fn receiver_moves_without_rebind() {
    scenario(Change::ReceiverMoves, false);
}

/// [`receiver_moves_without_rebind`] with sealed datagrams.
#[test]
fn receiver_moves_without_rebind_sealed() {
    scenario(Change::ReceiverMoves, true);
}

/// Both move, A first, then B [`BOTH_MOVE_GAP`] later: each one's only known address of the
/// other disappears. (Two moves within about one round trip of each other cannot be
/// recovered without a third party: each side's announcement goes to the other's dead
/// address. Finding peers anew is discovery's job.)
#[test]
fn both_move_without_rebind() {
    scenario(Change::BothMove, false);
}

/// [`both_move_without_rebind`] with sealed datagrams.
#[test]
fn both_move_without_rebind_sealed() {
    scenario(Change::BothMove, true);
}

/// A's link goes down for [`BLACKOUT`], then up: delivery resumes within [`RESUME_BOUND`]
/// of the link coming back.
#[test]
fn blackout_heals_within_a_second() {
    scenario(Change::Blackout, false);
}

/// [`blackout_heals_within_a_second`] with sealed datagrams.
#[test]
fn blackout_heals_within_a_second_sealed() {
    scenario(Change::Blackout, true);
}

/// A loses its only address, and gets 10.77.0.3 [`OFFLINE`] later: delivery resumes within
/// [`RESUME_BOUND`] of the new address appearing.
#[test]
fn sender_gets_a_new_address_after_losing_its_own() {
    scenario(Change::SenderReaddressed, false);
}

/// [`sender_gets_a_new_address_after_losing_its_own`] with sealed datagrams.
#[test]
fn sender_gets_a_new_address_after_losing_its_own_sealed() {
    scenario(Change::SenderReaddressed, true);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    SenderMoves,
    ReceiverMoves,
    BothMove,
    Blackout,
    SenderReaddressed,
}

impl Change {
    fn tag(self) -> &'static str {
        match self {
            Change::SenderMoves => "snd",
            Change::ReceiverMoves => "rcv",
            Change::BothMove => "both",
            Change::Blackout => "dark",
            Change::SenderReaddressed => "readdr",
        }
    }

    /// Where pull binds: a wildcard address when its own address is going to change.
    fn pull_bind(self) -> &'static str {
        match self {
            Change::ReceiverMoves | Change::BothMove => "0.0.0.0:7001",
            _ => "10.77.0.2:7001",
        }
    }
}

/// One test: a change, with or without sealing.
#[derive(Debug, Clone, Copy)]
struct Case {
    change: Change,
    /// Both programs seal their datagrams with a pre-shared key (`--key-file`).
    sealed: bool,
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.change, if self.sealed { "sealed" } else { "plain" })
    }
}

/// A fresh pre-shared key in a file of its own (mode 0600, in a directory only the test's
/// user may enter), removed with its directory on drop.
struct KeyFile {
    dir: PathBuf,
    path: PathBuf,
}

impl KeyFile {
    fn new(tag: &str) -> KeyFile {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = std::env::temp_dir().join(format!("a3m-mt-key-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("key directory {}: {e}", dir.display()));
        let path = dir.join("psk");
        let key = a3m::keyfile::generate_key().expect("a fresh key");
        a3m::keyfile::write_key_file(&path, &key).expect("write the key file");
        let mode = fs::metadata(&path).expect("key file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file {} has mode {mode:03o}", path.display());
        KeyFile { dir, path }
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The example programs to run.
struct Programs {
    push: PathBuf,
    pull: PathBuf,
    count: u64,
}

/// Why the tests cannot run here, if they cannot.
fn prerequisites() -> Result<Programs, String> {
    let status = fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc: {e}"))?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
    if euid.as_deref() != Some("0") {
        return Err("needs root (network namespaces)".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "`ip netns list` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Err(e) => return Err(format!("no `ip` command: {e}")),
    }
    let dir = programs_dir()?;
    let release = dir.components().any(|c| c.as_os_str() == "release");
    let count = match std::env::var("A3M_MOBILITY_COUNT") {
        Ok(v) => v.parse().map_err(|_| format!("A3M_MOBILITY_COUNT={v}: not a number"))?,
        // 1.5 to 2.5 s of stream on a 2-processor machine either way.
        Err(_) if release => 4_000_000,
        Err(_) => 500_000,
    };
    Ok(Programs { push: dir.join("push"), pull: dir.join("pull"), count })
}

/// The directory with the push and pull binaries (see the module doc).
fn programs_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("A3M_MOBILITY_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    Ok(support::built_examples(&["push", "pull"]))
}

/// Runs `ip ARGS`, panicking with its error output if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Output lines of a child process, collected by a thread.
type Lines = Arc<Mutex<Vec<String>>>;

fn collect(stream: impl std::io::Read + Send + 'static) -> Lines {
    let lines: Lines = Arc::default();
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// One process of the scenario with its output.
struct Proc {
    name: &'static str,
    child: Child,
    stdout: Lines,
    stderr: Lines,
    status: Option<ExitStatus>,
}

impl Proc {
    fn spawn(name: &'static str, netns: &str, program: &Path, args: &[String]) -> Proc {
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Proc { name, child, stdout, stderr, status: None }
    }

    /// True once the process has exited (its status is kept).
    fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status.is_some()
    }

    fn printed(&self, needle: &str) -> bool {
        self.stdout.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    fn report(&self) -> String {
        let tail = |lines: &Lines| {
            let lines = lines.lock().unwrap();
            lines[lines.len().saturating_sub(8)..].join("\n    ")
        };
        format!(
            "{} ({:?}):\n  stdout:\n    {}\n  stderr:\n    {}\n",
            self.name,
            self.status,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// The two namespaces, their veth pair and the processes in them; all removed on drop.
struct Pair {
    a: String,
    b: String,
    procs: Vec<Proc>,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let id = std::process::id();
        let pair = Pair {
            a: format!("a3m-mt-a-{id}-{tag}"),
            b: format!("a3m-mt-b-{id}-{tag}"),
            procs: vec![],
        };
        let _ = Command::new("ip").args(["netns", "del", &pair.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &pair.b]).output();
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "link", "add", "va", "netns", &pair.a, "type", "veth", "peer", "name", "vb", "netns",
            &pair.b,
        ]);
        for (ns, dev, addr) in [(&pair.a, "va", "10.77.0.1/24"), (&pair.b, "vb", "10.77.0.2/24")] {
            // A move keeps the new address only if it is promoted when the old one goes.
            let conf = "/proc/sys/net/ipv4/conf";
            let sysctl = format!(
                "for c in all default {dev}; do echo 1 > {conf}/$c/promote_secondaries; done"
            );
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "sh", "-c", &sysctl])
                .output()
                .expect("run sh");
            assert!(
                out.status.success(),
                "promote_secondaries: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }

    /// The IPv4 addresses of va and vb, e.g. "A: 10.77.0.3/24, B: 10.77.0.2/24".
    fn addresses(&self) -> String {
        let show = |ns: &str, dev: &str| {
            let out = Command::new("ip")
                .args(["-n", ns, "-4", "-o", "addr", "show", "dev", dev])
                .output();
            let text =
                out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            let addrs: Vec<&str> = text
                .lines()
                .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
                .collect();
            if addrs.is_empty() { "none".to_string() } else { addrs.join(" ") }
        };
        format!("A: {}, B: {}\n", show(&self.a, "va"), show(&self.b, "vb"))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for proc in &mut self.procs {
            if !proc.exited() {
                let _ = proc.child.kill();
                let _ = proc.child.wait();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).output();
    }
}

/// One reading of the pull process's counters (its namespace's, through /proc/PID/net).
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// UDP datagrams delivered to sockets in namespace B.
    udp_in: u64,
    /// Bytes received by vb.
    rx_bytes: u64,
}

fn read_sample(pid: u32) -> Option<Sample> {
    let snmp = fs::read_to_string(format!("/proc/{pid}/net/snmp")).ok()?;
    let udp_in = snmp
        .lines()
        .filter(|l| l.starts_with("Udp:"))
        .nth(1)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let dev = fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let rx_bytes = dev
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("vb:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Sample { at: Instant::now(), udp_in, rx_bytes })
}

/// Samples the pull process every [`SAMPLE`] until it exits or `stop` is set.
fn sampler(pid: u32, stop: Arc<AtomicBool>) -> Arc<Mutex<Vec<Sample>>> {
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let sink = Arc::clone(&samples);
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Some(sample) = read_sample(pid) else { break };
            sink.lock().unwrap().push(sample);
            thread::sleep(SAMPLE);
        }
    });
    samples
}

/// The end of the first sample interval wholly after `reference` in which the pull received
/// at least a tenth of the datagrams the stream brought in as long before the change (and at
/// least 3). `rate` is in datagrams per second.
fn resumed_at(samples: &[Sample], reference: Instant, rate: f64) -> Option<Instant> {
    samples.windows(2).find_map(|w| {
        let (before, after) = (w[0], w[1]);
        let need = (rate * (after.at - before.at).as_secs_f64() / 10.0).max(3.0);
        (before.at >= reference && (after.udp_in - before.udp_in) as f64 >= need)
            .then_some(after.at)
    })
}

/// Stops everything and panics with `why`, the processes' output and the last samples.
fn fail(
    case: Case,
    pair: &mut Pair,
    stop: &AtomicBool,
    samples: Option<&[Sample]>,
    why: String,
) -> ! {
    stop.store(true, Ordering::Relaxed);
    for proc in &mut pair.procs {
        if !proc.exited() {
            let _ = proc.child.kill();
            proc.status = proc.child.wait().ok();
        }
    }
    thread::sleep(Duration::from_millis(100)); // the output threads finish
    let mut report = format!("{case}: {why}\n{}", pair.addresses());
    for proc in &pair.procs {
        report += &proc.report();
    }
    if let Some(samples) = samples
        && let Some(first) = samples.first()
    {
        let tail: Vec<String> = samples[samples.len().saturating_sub(30)..]
            .iter()
            .map(|s| format!("{:.3}s:{}", (s.at - first.at).as_secs_f64(), s.udp_in))
            .collect();
        report +=
            &format!("pull's UDP datagrams in (time since linked: count): {}\n", tail.join(" "));
    }
    panic!("{report}");
}

fn scenario(change: Change, sealed: bool) {
    let case = Case { change, sealed };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let programs = match prerequisites() {
        Ok(programs) => programs,
        Err(why) => {
            eprintln!("mobility_netns {case}: skipped: {why}");
            return;
        }
    };
    let count = programs.count;
    eprintln!("mobility_netns {case}: {count} messages, programs {}", programs.push.display());
    let tag = format!("{}{}", change.tag(), if sealed { "-k" } else { "" });
    // Declared before the pair: the processes are gone before their key file is.
    let key = sealed.then(|| KeyFile::new(&tag));
    let mut pair = Pair::new(&tag);
    let (a, b) = (pair.a.clone(), pair.b.clone());

    let quiet = (BLACKOUT + Duration::from_secs(10)).as_secs().to_string();
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let key_args = match &key {
        Some(key) => args(&["--key-file", &key.path.to_string_lossy()]),
        None => vec![],
    };
    let mut pull_args = args(&[
        "--stats",
        "--node",
        "B",
        "--bind",
        change.pull_bind(),
        "--tag",
        "sink",
        "--count",
        &count.to_string(),
        "--timeout",
        &quiet,
    ]);
    pull_args.extend(key_args.iter().cloned());
    pair.procs.push(Proc::spawn("pull", &b, &programs.pull, &pull_args));
    let pull_pid = pair.procs[0].child.id();
    let mut push_args = args(&[
        "--stats",
        "--node",
        "A",
        "--bind",
        "0.0.0.0:0",
        "--peer",
        "B=10.77.0.2:7001",
        "--link",
        "B/sink",
        "--count",
        &count.to_string(),
        "--size",
        &SIZE.to_string(),
        "--timeout",
        "30",
    ]);
    push_args.extend(key_args);
    pair.procs.push(Proc::spawn("push", &a, &programs.push, &push_args));

    let stop = Arc::new(AtomicBool::new(false));
    let fail = |pair: &mut Pair, stop: &AtomicBool, samples: Option<&[Sample]>, why: String| {
        fail(case, pair, stop, samples, why)
    };

    // The stream starts once pull is linked.
    let linked_by = Instant::now() + Duration::from_secs(30);
    while !pair.procs[0].printed("linked from") {
        if Instant::now() > linked_by || pair.procs[0].exited() || pair.procs[1].exited() {
            fail(&mut pair, &stop, None, "the link never came up".into());
        }
        thread::sleep(Duration::from_millis(5));
    }
    let samples = sampler(pull_pid, Arc::clone(&stop));
    let snapshot = |samples: &Arc<Mutex<Vec<Sample>>>| samples.lock().unwrap().clone();
    let start = loop {
        if let Some(first) = samples.lock().unwrap().first().copied() {
            break first;
        }
        thread::sleep(Duration::from_millis(1));
    };

    // Change when about a third of the messages' bytes have arrived (wire overhead makes
    // that fewer than a third of the messages): the stream is well under way, and the rest
    // takes about twice as long again.
    let third = count * SIZE / 3;
    let progress_by = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let last = samples.lock().unwrap().last().copied().unwrap();
        if last.rx_bytes - start.rx_bytes >= third {
            break last;
        }
        if pair.procs[0].exited() || Instant::now() > progress_by {
            let s = snapshot(&samples);
            fail(
                &mut pair,
                &stop,
                Some(&s),
                "the stream ended or stalled before the change".into(),
            );
        }
        thread::sleep(Duration::from_millis(2));
    };
    let ran = before.at - start.at;
    let rate = (before.udp_in - start.udp_in) as f64 / ran.as_secs_f64().max(1e-3);

    match change {
        Change::SenderMoves => {
            ip(&["-n", &a, "addr", "add", "10.77.0.3/24", "dev", "va"]);
            ip(&["-n", &a, "addr", "del", "10.77.0.1/24", "dev", "va"]);
        }
        Change::ReceiverMoves => {
            ip(&["-n", &b, "addr", "add", "10.77.0.4/24", "dev", "vb"]);
            ip(&["-n", &b, "addr", "del", "10.77.0.2/24", "dev", "vb"]);
        }
        Change::BothMove => {
            ip(&["-n", &a, "addr", "add", "10.77.0.3/24", "dev", "va"]);
            ip(&["-n", &a, "addr", "del", "10.77.0.1/24", "dev", "va"]);
            thread::sleep(BOTH_MOVE_GAP);
            ip(&["-n", &b, "addr", "add", "10.77.0.4/24", "dev", "vb"]);
            ip(&["-n", &b, "addr", "del", "10.77.0.2/24", "dev", "vb"]);
        }
        Change::Blackout => {
            ip(&["-n", &a, "link", "set", "va", "down"]);
            thread::sleep(BLACKOUT);
            ip(&["-n", &a, "link", "set", "va", "up"]);
        }
        Change::SenderReaddressed => {
            ip(&["-n", &a, "addr", "del", "10.77.0.1/24", "dev", "va"]);
            thread::sleep(OFFLINE);
            ip(&["-n", &a, "addr", "add", "10.77.0.3/24", "dev", "va"]);
        }
    }
    let reference = Instant::now();
    let addresses = pair.addresses();
    // The rest of the stream took about twice `ran` before the change.
    let deadline = reference + RESUME_BOUND + 3 * 2 * ran + CLOSE_SLACK;

    let mut resumed = None;
    loop {
        let pull_done = pair.procs[0].exited();
        let push_done = pair.procs[1].exited();
        if resumed.is_none() {
            resumed = resumed_at(&snapshot(&samples), reference, rate);
            if resumed.is_none() && pull_done {
                // Everything left arrived within one sample interval.
                resumed = Some(Instant::now());
            }
        }
        if pull_done && push_done {
            break;
        }
        let now = Instant::now();
        if resumed.is_none() && now > reference + RESUME_BOUND + Duration::from_millis(500) {
            let s = snapshot(&samples);
            let why = format!(
                "LIVENESS: no delivery within {:?} of the change ({ran:?} of stream before it, \
                 {rate:.0} datagrams/s)",
                now - reference
            );
            fail(&mut pair, &stop, Some(&s), why);
        }
        if now > deadline {
            let s = snapshot(&samples);
            let why = format!(
                "LIVENESS: the processes did not exit within {:?} of the change \
                 (stream before it: {ran:?})",
                deadline - reference
            );
            fail(&mut pair, &stop, Some(&s), why);
        }
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let finished = Instant::now();
    thread::sleep(Duration::from_millis(50)); // the output threads finish
    let gap = resumed.unwrap() - reference;
    eprintln!(
        "mobility_netns {case}: {ran:?} of stream before the change, delivery resumed \
         {gap:?} after it, done {:?} after it\n{addresses}",
        finished - reference
    );
    let (pull, push) = (&pair.procs[0], &pair.procs[1]);
    let (pull_stats, push_stats) = (pull.stats(), push.stats());
    for (name, stats) in [("pull", &pull_stats), ("push", &push_stats)] {
        eprintln!("  {name}: {}", shown(stats.as_ref()));
    }
    eprintln!("mobility_netns {case}: RECOVERY {:.1} ms", gap.as_secs_f64() * 1e3);
    let complete = pull.printed(&format!("pull received={count} in_order=true duplicates=0"));
    if !complete || !pull.status.unwrap().success() || !push.status.unwrap().success() {
        fail(&mut pair, &stop, None, "SAFETY: pull and push must exit 0".into());
    }
    assert!(
        gap <= RESUME_BOUND,
        "{case}: LIVENESS: delivery resumed {gap:?} after the change, more than {RESUME_BOUND:?}"
    );
    // A sealed case must really have been sealed, and a plain one not.
    for (name, stats) in [("pull", &pull_stats), ("push", &push_stats)] {
        let opened = stats.as_ref().and_then(|s| counter(s, "sealed_opened"));
        assert!(
            if sealed { opened > Some(0) } else { opened == Some(0) },
            "{case}: {name} opened {opened:?} sealed datagrams"
        );
    }
}

/// The counters of a program's `--stats` line (`NAME transport: NodeStats { field: N, .. }`).
type Stats = Vec<(String, u64)>;

/// One counter of `stats`.
fn counter(stats: &Stats, name: &str) -> Option<u64> {
    stats.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
}

/// The counters that tell how an address change was taken, from `stats`.
fn shown(stats: Option<&Stats>) -> String {
    const SHOWN: &[&str] = &[
        "address_changes",
        "path_challenges_sent",
        "path_responses_sent",
        "path_validated",
        "path_unverified",
        "sealed_opened",
        "replayed",
        "replay_too_old",
        "sealed_bad_tag",
        "tokens_retransmitted",
        "probe_timeouts",
        "reqslots_sent",
    ];
    let Some(stats) = stats else { return "no --stats line".into() };
    let shown: Vec<String> =
        SHOWN.iter().filter_map(|name| Some(format!("{name}={}", counter(stats, name)?))).collect();
    shown.join(" ")
}

impl Proc {
    /// The counters the program printed with `--stats`, if it did.
    fn stats(&self) -> Option<Stats> {
        let lines = self.stderr.lock().unwrap();
        let line = lines.iter().rev().find(|l| l.contains(" transport: NodeStats {"))?;
        let fields = line.split_once('{')?.1.trim_end().trim_end_matches('}');
        Some(
            fields
                .split(',')
                .filter_map(|field| {
                    let (name, value) = field.split_once(':')?;
                    Some((name.trim().to_string(), value.trim().parse().ok()?))
                })
                .collect(),
        )
    }
}
