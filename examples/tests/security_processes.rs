//! Attacks on real processes (issue 15): the `push` and `pull` examples, each its own OS
//! process, stream through a forwarder run by this test, while an attacker on another
//! loopback port replays, bit-flips and forges datagrams, or floods the receiver.
//!
//! - Hijack: 1 in 20 of push's datagrams is re-sent unchanged, plus a bit-flipped copy, from
//!   the attacker's port, along with forged datagrams claiming push's node id. The stream
//!   must complete exactly once and the attacker must receive none of the victim's traffic,
//!   only what it provoked: sealed, notices that its plaintext is refused (rate-limited);
//!   plaintext, path challenges.
//! - Flood: 1,000,000 forged datagrams at full speed during a stream. Exactly once; sealed,
//!   the receiver's peak RSS grows less than 5 % over the same stream without a flood, and a
//!   new legitimate peer exchanges with the receiver meanwhile; plaintext, it stays bounded
//!   by the peer table and the stream completes.
//!
//! The figures are printed (`cargo test -- --nocapture` shows them).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use a3m_core::seal::Psk;
use a3m_core::wire::{self, Record};

/// Liveness bound of every case, from the start of the processes.
const BOUND: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// Cases

#[test]
fn hijack_by_replay_and_forgery_sealed() {
    let r = hijack_case(true);
    eprintln!("hijack sealed: {r:?}");
    assert!(r.replayed > 0 && r.forged > 0);
    assert_eq!(r.attacker_victim_traffic, 0, "a sealed victim sent its traffic to the attacker");
    // What it provoked: notices that its plaintext forgeries are refused (at most 10 a second).
    assert!(r.attacker_received <= 10 * BOUND.as_secs(), "{r:?}");
}

#[test]
fn hijack_by_replay_and_forgery_plaintext() {
    let r = hijack_case(false);
    eprintln!("hijack plaintext: {r:?}");
    assert!(r.replayed > 0 && r.forged > 0);
    assert_eq!(r.attacker_victim_traffic, 0, "the victim's traffic went to the attacker");
}

#[test]
fn flood_of_forgeries_sealed() {
    // Five runs of each: one run's peak RSS varies by a few percent on its own (allocator
    // arenas, batch sizes), so medians are compared.
    let median = |flood: Option<u64>| {
        let mut runs: Vec<StreamResult> = (0..5).map(|_| stream_case(true, flood)).collect();
        // Liveness in every run, not only the median one.
        let newcomers_ok = runs.iter().all(|r| r.newcomer_ok);
        assert!(newcomers_ok, "a legitimate new peer could not exchange in a run ({flood:?})");
        runs.sort_by_key(|r| r.peak_rss_kb);
        let kb: Vec<u64> = runs.iter().map(|r| r.peak_rss_kb).collect();
        (runs.swap_remove(2), kb)
    };
    let (baseline, baseline_runs) = median(None);
    let (warm, warm_runs) = median(Some(WARM));
    let (flooded, flooded_runs) = median(Some(FLOOD));
    let growth = |over: u64| flooded.peak_rss_kb as f64 / over as f64 - 1.0;
    eprintln!(
        "flood sealed: pull peak RSS (median of {baseline_runs:?}) {} kB without a flood, \
         ({warm_runs:?}) {} kB with {WARM} forgeries, ({flooded_runs:?}) {} kB with {FLOOD} \
         ({:+.1} % over none, {:+.1} % over {WARM}); new peer exchanged during the flood: {}",
        baseline.peak_rss_kb,
        warm.peak_rss_kb,
        flooded.peak_rss_kb,
        growth(baseline.peak_rss_kb) * 100.0,
        growth(warm.peak_rss_kb) * 100.0,
        flooded.newcomer_ok
    );
    // Flat: a million forgeries take no more than a few thousand.
    assert!(growth(warm.peak_rss_kb) < 0.05, "peak RSS grew with the size of the flood");
    // Less than 5 % over no flood at all.
    assert!(growth(baseline.peak_rss_kb) < 0.05, "peak RSS grew under the flood");
    assert!(flooded.newcomer_ok, "a legitimate new peer could not exchange during the flood");
}

#[test]
fn flood_of_forgeries_plaintext() {
    let baseline = stream_case(false, None);
    let flooded = stream_case(false, Some(FLOOD));
    eprintln!(
        "flood plaintext: {FLOOD} forged datagrams; pull peak RSS {} kB without, {} kB with",
        baseline.peak_rss_kb, flooded.peak_rss_kb
    );
    // Bounded by the peer table (1024 peers): far below what a million peers would take.
    assert!(flooded.peak_rss_kb < baseline.peak_rss_kb + 64 * 1024);
}

/// Forgeries of the warm-up flood: enough to fill the receive batch many times over.
const WARM: u64 = 20_000;
const FLOOD: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------
// Hijack

#[derive(Debug)]
struct HijackResult {
    replayed: u64,
    forged: u64,
    /// Datagrams that reached the attacker's port.
    attacker_received: u64,
    /// Of those, how many carried anything but path challenges and sealing-mismatch notices
    /// (the victim's traffic).
    attacker_victim_traffic: u64,
}

fn hijack_case(sealed: bool) -> HijackResult {
    let count = 50_000u64;
    let (mut pull, pull_addr) = start_pull(count, sealed);
    let fwd = Forwarder::start(pull_addr);
    let attacker = Arc::clone(&fwd.attacker);
    let push = start_push(fwd.front_addr, count, sealed);
    let mut procs = [&mut pull, &mut { push }];
    let ok = wait_all(&mut procs, BOUND);
    let stats = fwd.stop();
    let tails = format!("pull:\n{}\npush:\n{}", procs[0].tail(), procs[1].tail());
    assert!(ok, "LIVENESS: not done within {BOUND:?}\n{tails}");
    assert_eq!(
        procs[0].last_line(),
        format!("pull received={count} in_order=true duplicates=0"),
        "SAFETY\n{tails}"
    );
    assert!(procs[1].status_ok(), "push failed\n{tails}");
    drop(attacker);
    assert!(stats.replayed > 0 && stats.forged > 0, "the attacker did not attack: {stats:?}");
    HijackResult {
        replayed: stats.replayed,
        forged: stats.forged,
        attacker_received: stats.attacker_received,
        attacker_victim_traffic: stats.attacker_victim_traffic,
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ForwarderStats {
    forwarded: u64,
    replayed: u64,
    forged: u64,
    attacker_received: u64,
    attacker_victim_traffic: u64,
}

/// A forwarder between push (at `front`) and pull, with the attacker's socket beside it.
struct Forwarder {
    front_addr: SocketAddr,
    attacker: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<ForwarderStats>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Forwarder {
    fn start(pull: SocketAddr) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let attacker = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        for s in [&front, &back, &attacker] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(ForwarderStats::default()));
        let push_addr: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let front_addr = front.local_addr().unwrap();
        let mut threads = Vec::new();
        {
            // push -> pull, with replays, flipped copies and forgeries from the attacker.
            let (front, back, attacker) = (front.clone(), back.clone(), attacker.clone());
            let (stop, stats, push_addr) = (stop.clone(), stats.clone(), push_addr.clone());
            threads.push(thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = front.recv_from(&mut buf) else { continue };
                    *push_addr.lock().unwrap() = Some(from);
                    let _ = back.send_to(&buf[..len], pull);
                    n += 1;
                    let mut s = stats.lock().unwrap();
                    s.forwarded += 1;
                    if n.is_multiple_of(20) {
                        let _ = attacker.send_to(&buf[..len], pull);
                        let mut flipped = buf[..len].to_vec();
                        let i = (n as usize * 7919) % len;
                        flipped[i] ^= 1 << (n % 8);
                        let _ = attacker.send_to(&flipped, pull);
                        s.replayed += 2;
                        // A forgery claiming push's id: a plaintext REQSLOTS and ACK.
                        let _ = attacker.send_to(&forged_plaintext("A", "B", n), pull);
                        s.forged += 1;
                    }
                }
            }));
        }
        {
            // pull -> push.
            let (front, back) = (front.clone(), back.clone());
            let (stop, push_addr) = (stop.clone(), push_addr.clone());
            threads.push(thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, _)) = back.recv_from(&mut buf) else { continue };
                    if let Some(to) = *push_addr.lock().unwrap() {
                        let _ = front.send_to(&buf[..len], to);
                    }
                }
            }));
        }
        {
            // What reaches the attacker.
            let attacker = attacker.clone();
            let (stop, stats) = (stop.clone(), stats.clone());
            threads.push(thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, _)) = attacker.recv_from(&mut buf) else { continue };
                    let mut s = stats.lock().unwrap();
                    s.attacker_received += 1;
                    // The victim's traffic is what is meant for push's node id "A" but path
                    // challenges and notices that plaintext is refused (both provoked).
                    // Answers to other ids (a bit flip in the source id makes a new node) are
                    // provoked by the attacker too.
                    let bytes = &buf[..len];
                    let for_victim = match wire::decode_header(bytes) {
                        Ok((header, _)) => header.dst == "A",
                        Err(_) => true,
                    };
                    let provoked = wire::decode_datagram(bytes).is_ok_and(|d| {
                        d.records().all(|r| {
                            matches!(r, Record::PathChallenge(_) | Record::SealMismatch(_))
                        })
                    });
                    if for_victim && !provoked {
                        s.attacker_victim_traffic += 1;
                    }
                }
            }));
        }
        Self { front_addr, attacker, stop, stats, threads }
    }

    fn stop(self) -> ForwarderStats {
        // Let late answers to the attacker arrive.
        thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        *self.stats.lock().unwrap()
    }
}

/// A plaintext datagram from `src` to `dst` with a REQSLOTS and an ACK made from `n`.
fn forged_plaintext(src: &str, dst: &str, n: u64) -> Vec<u8> {
    let ranges = [wire::SlotRange { start: n % 1000, end: n % 1000 + 3 }];
    let records = [
        Record::ReqSlots(wire::ReqSlots { start: n, count: 16, lowest: 0 }),
        Record::Ack(wire::Ack::new(n, &ranges)),
    ];
    let mut buf = [0u8; 256];
    let header = wire::Header { src, dst, flags: 0 };
    let out = wire::encode_datagram(&mut buf, &header, &records).unwrap();
    buf[..out.len].to_vec()
}

/// A sealed-looking forgery from `src` to `dst` with key id `key_id`: the right framing, a
/// fresh epoch and counter, garbage for ciphertext and tag. Its destination epoch is 0
/// ("unknown"), so that it is not dropped before the tag is checked.
fn forged_sealed(src: &str, dst: &str, key_id: u8, n: u64) -> Vec<u8> {
    let mut d = vec![0xA3, 0x4D, 1, wire::FLAG_SEALED, src.len() as u8];
    d.extend(src.as_bytes());
    d.push(dst.len() as u8);
    d.extend(dst.as_bytes());
    d.extend([1, key_id]);
    d.extend(0u64.to_be_bytes());
    d.extend(u64::MAX.wrapping_sub(n % 7).to_be_bytes());
    d.extend(n.to_be_bytes());
    d.extend((0..48).map(|i| (n as u8).wrapping_mul(31).wrapping_add(i)));
    d
}

// ---------------------------------------------------------------------------------------
// Flood

#[derive(Debug)]
struct StreamResult {
    peak_rss_kb: u64,
    newcomer_ok: bool,
}

fn stream_case(sealed: bool, flood: Option<u64>) -> StreamResult {
    let count = 300_000u64;
    let (mut pull, pull_addr) = start_pull(count, sealed);
    let mut push = start_push(pull_addr, count, sealed);
    let pid = pull.child.id();
    // The flood starts once push linked, and runs at full speed from its own socket.
    let deadline = Instant::now() + BOUND;
    while !push.output().contains("push linked") {
        assert!(Instant::now() < deadline && !push.exited(), "push did not link:\n{}", push.tail());
        thread::sleep(Duration::from_millis(5));
    }
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kb) = vm_hwm_kb(pid) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let key_id = Psk::new(*key()).id();
    let flooder = flood.map(|n| {
        thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            for i in 0..n {
                let d = if sealed {
                    // Half claim push's id, half a fresh fake id.
                    let src = if i % 2 == 0 { "A".to_string() } else { format!("f{i}") };
                    forged_sealed(&src, "B", key_id, i)
                } else {
                    // REQSLOTS from distinct fake node ids, each asking for a receive record.
                    forged_plaintext(&format!("f{i}"), "B", i)
                };
                let _ = socket.send_to(&d, pull_addr);
            }
        })
    });
    // A legitimate new peer exchanges with the receiver during the flood.
    // (In every run, so that its peer state is in the baseline too.)
    let newcomer_ok = newcomer(pull_addr, sealed);
    let ok = wait_all(&mut [&mut pull, &mut push], BOUND);
    if let Some(f) = flooder {
        f.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let tails = format!("pull:\n{}\npush:\n{}", pull.tail(), push.tail());
    assert!(ok, "LIVENESS: not done within {BOUND:?}\n{tails}");
    assert_eq!(
        pull.last_line(),
        format!("pull received={count} in_order=true duplicates=0"),
        "SAFETY\n{tails}"
    );
    assert!(push.status_ok(), "push failed\n{tails}");
    StreamResult { peak_rss_kb: peak.load(Ordering::Relaxed), newcomer_ok }
}

/// A new node "C" sends a raw datagram to the pull node "B" and waits until B acknowledges
/// it: it got a peer slot and exchanged authenticated traffic.
fn newcomer(pull: SocketAddr, sealed: bool) -> bool {
    let mut builder = a3m::NodeBuilder::new("C").peer("B", pull);
    if sealed {
        builder = builder.psk(*key());
    }
    let node = builder.start().expect("node C");
    if node.send_to("B", b"hello from a newcomer").is_err() {
        return false;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.unacknowledged() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    node.unacknowledged() == 0
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Processes

fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| a3m::keyfile::generate_key().expect("random key"))
}

// In cargo's scratch directory for tests (target/tmp), not /tmp: a static is never
// dropped, so nothing would remove it there.
fn key_file() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("a3m-security-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("key directory");
        let path = dir.join("psk");
        let _ = std::fs::remove_file(&path);
        a3m::keyfile::write_key_file(&path, key()).expect("key file");
        path
    })
}

fn start_pull(count: u64, sealed: bool) -> (Proc, SocketAddr) {
    for _ in 0..5 {
        let addr = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let count = count.to_string();
        let key = key_file().to_string_lossy().into_owned();
        let mut args = vec!["--node", "B", "--bind", &addr, "--tag", "sink", "--count", &count];
        args.extend(["--timeout", "100", "--datagram", "1400"]);
        if sealed {
            args.extend(["--key-file", &key]);
        }
        let mut proc = spawn(&example("pull"), &args);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !proc.exited() {
            if proc.output().contains("listening on") {
                return (proc, addr.parse().unwrap());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
    panic!("pull did not start");
}

fn start_push(to: SocketAddr, count: u64, sealed: bool) -> Proc {
    let peer = format!("B={to}");
    let count = count.to_string();
    let key = key_file().to_string_lossy().into_owned();
    let mut args = vec!["--node", "A", "--bind", "127.0.0.1:0", "--peer", &peer];
    args.extend(["--link", "B/sink", "--count", &count, "--size", "64"]);
    args.extend(["--timeout", "100", "--datagram", "1400"]);
    if sealed {
        args.extend(["--key-file", &key]);
    }
    spawn(&example("push"), &args)
}

struct Proc {
    child: Child,
    output: Arc<Mutex<String>>,
    status: Option<std::process::ExitStatus>,
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
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status.is_some()
    }

    fn status_ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
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

fn spawn(program: &Path, args: &[&str]) -> Proc {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let output = Arc::new(Mutex::new(String::new()));
    if let Some(out) = child.stdout.take() {
        capture(out, Arc::clone(&output), "");
    }
    if let Some(err) = child.stderr.take() {
        capture(err, Arc::clone(&output), "[stderr] ");
    }
    Proc { child, output, status: None }
}

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

/// Waits until every process exited, or kills them at `bound`; true if they all exited.
fn wait_all(procs: &mut [&mut Proc], bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if procs.iter_mut().all(|p| p.exited()) {
            thread::sleep(Duration::from_millis(20));
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

fn example(name: &str) -> PathBuf {
    examples_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// `target/<profile>/examples`, with `push` and `pull` built (once per test binary).
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| support::built_examples(&["push", "pull"]))
}
