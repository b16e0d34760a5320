//! Two nodes over UDP loopback exchange payloads exactly once: in one process, in two
//! processes, while one of them moves to a new UDP port mid-stream, and across restarts of
//! the receiving process (one of them a crash behind a lossy relay).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use a3m::{Error, Node, NodeBuilder};

const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
const WAIT: Duration = Duration::from_secs(30);

fn start(id: &str) -> Node {
    start_at(id, LOOPBACK)
}

fn start_at(id: &str, bind: SocketAddr) -> Node {
    NodeBuilder::new(id)
        .bind(bind)
        .max_datagram(65_507)
        .socket_buffers(4 << 20, 4 << 20)
        .start()
        .expect("node starts")
}

/// Receives `count` payloads numbered by a little-endian u64 and checks each arrives once.
fn receive_all(node: &Node, count: u64) {
    let mut seen = HashSet::with_capacity(count as usize);
    let mut buf = vec![0u8; 65_536];
    for i in 0..count {
        let (from, len) = node
            .recv_into(&mut buf, Some(WAIT))
            .unwrap_or_else(|e| panic!("receive {i} of {count}: {e}"));
        assert_eq!(from.as_str(), "A");
        assert!(len >= 8, "payload too short: {len}");
        let n = u64::from_le_bytes(buf[..8].try_into().unwrap());
        assert!(n < count, "payload number {n} out of range");
        assert!(seen.insert(n), "payload {n} delivered twice");
    }
    assert!(
        matches!(node.recv_timeout(Duration::from_millis(200)), Err(Error::Timeout)),
        "an extra payload arrived after all {count}"
    );
}

fn payload(n: u64, size: usize) -> Vec<u8> {
    let mut p = vec![0xAB; size.max(8)];
    p[..8].copy_from_slice(&n.to_le_bytes());
    p
}

#[test]
fn two_nodes_in_one_process_exchange_100k_payloads_exactly_once() {
    let b = start("B");
    let a = start("A");
    a.add_peer("B", b.local_addr()).unwrap();
    const COUNT: u64 = 100_000;
    let sender = std::thread::spawn(move || {
        for n in 0..COUNT {
            a.send_to("B", &payload(n, 16)).expect("send");
        }
        let report = a.close(WAIT).expect("close");
        assert_eq!(report.unacknowledged, 0, "every payload is acknowledged by close");
    });
    receive_all(&b, COUNT);
    sender.join().unwrap();
}

/// The receiving half of `two_processes_exchange_100k_payloads_exactly_once`; runs only when
/// that test starts this binary with `A3M_CHILD_ADDR_FILE` set.
#[test]
fn child_receiver_process() {
    let Ok(addr_file) = std::env::var("A3M_CHILD_ADDR_FILE") else { return };
    let count: u64 = std::env::var("A3M_CHILD_COUNT").unwrap().parse().unwrap();
    let bind = std::env::var("A3M_CHILD_BIND").map_or(LOOPBACK, |a| a.parse().unwrap());
    let b = start_at("B", bind);
    std::fs::write(&addr_file, b.local_addr().to_string()).unwrap();
    receive_all(&b, count);
    // Stay up a little so the final acknowledgements reach the sender.
    drop(b);
}

/// Starts `child_receiver_process` in a new process, to receive `count` payloads (at `bind`,
/// if given); returns it and the address it bound.
fn spawn_receiver(
    addr_file: &std::path::Path,
    count: u64,
    bind: Option<SocketAddr>,
) -> (std::process::Child, SocketAddr) {
    spawn_child(
        "child_receiver_process",
        addr_file,
        &[("A3M_CHILD_COUNT", count.to_string())],
        bind,
    )
}

/// Runs this binary's test `test` in a new process with `env` (and `A3M_CHILD_BIND`, if
/// `bind` is given); returns the process and the address it writes to `addr_file`.
fn spawn_child(
    test: &str,
    addr_file: &std::path::Path,
    env: &[(&str, String)],
    bind: Option<SocketAddr>,
) -> (std::process::Child, SocketAddr) {
    let _ = std::fs::remove_file(addr_file);
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env("A3M_CHILD_ADDR_FILE", addr_file)
        .envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(bind) = bind {
        command.env("A3M_CHILD_BIND", bind.to_string());
    }
    let mut child = command.spawn().expect("child process starts");
    for _ in 0..300 {
        if let Ok(text) = std::fs::read_to_string(addr_file)
            && let Ok(a) = text.parse::<SocketAddr>()
        {
            return (child, a);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("child process wrote no address within 30 s");
}

#[test]
fn two_processes_exchange_100k_payloads_exactly_once() {
    const COUNT: u64 = 100_000;
    let dir = std::env::temp_dir().join(format!("a3m-udp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut child, addr) = spawn_receiver(&dir.join("addr"), COUNT, None);
    let a = start("A");
    a.add_peer("B", addr).unwrap();
    for n in 0..COUNT {
        a.send_to("B", &payload(n, 16)).expect("send");
    }
    let report = a.close(WAIT).expect("close");
    assert_eq!(report.unacknowledged, 0);
    exits_within(&mut child, WAIT, "the child receiver");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_node_that_rebinds_mid_stream_loses_and_duplicates_nothing() {
    const COUNT: u64 = 20_000;
    let b = start("B");
    let a = start("A");
    a.add_peer("B", b.local_addr()).unwrap();
    let old_addr = a.local_addr();
    let sender = std::thread::spawn(move || {
        for n in 0..COUNT {
            if n == COUNT / 2 {
                let new_addr = a.rebind(LOOPBACK).expect("rebind");
                assert_ne!(new_addr, old_addr);
            }
            a.send_to("B", &payload(n, 100)).expect("send");
        }
        let report = a.close(WAIT).expect("close");
        assert_eq!(report.unacknowledged, 0);
    });
    receive_all(&b, COUNT);
    sender.join().unwrap();
}

#[test]
fn the_receiver_moving_is_learned_from_its_next_datagram() {
    const COUNT: u64 = 10_000;
    let b = start("B");
    let a = start("A");
    a.add_peer("B", b.local_addr()).unwrap();
    b.add_peer("A", a.local_addr()).unwrap();
    std::thread::scope(|scope| {
        // B drains concurrently: its inbox is bounded, so a sender alone would block (by design).
        let receiver = scope.spawn(|| receive_all(&b, COUNT));
        for n in 0..COUNT / 2 {
            a.send_to("B", &payload(n, 32)).unwrap();
        }
        let new_b = b.rebind(LOOPBACK).unwrap();
        assert_eq!(new_b, b.local_addr());
        b.send_to("A", b"moved").unwrap();
        assert_eq!(a.recv_timeout(WAIT).unwrap().payload, b"moved");
        for n in COUNT / 2..COUNT {
            a.send_to("B", &payload(n, 32)).unwrap();
        }
        receiver.join().unwrap();
    });
    assert!(a.stats().address_changes >= 1, "A learned B's new address");
}

#[test]
fn errors_are_clear() {
    let a = start("A");
    assert!(matches!(NodeBuilder::new("").start(), Err(Error::InvalidArgument(_))));
    assert!(matches!(a.send_to("nobody", b"x"), Err(Error::UnknownPeer(_))));
    assert!(matches!(a.try_recv(), Err(Error::WouldBlock)));
    assert!(matches!(a.recv_timeout(Duration::from_millis(10)), Err(Error::Timeout)));
    let huge = vec![0u8; 1 << 20];
    a.add_peer("B", "127.0.0.1:9".parse().unwrap()).unwrap();
    assert!(matches!(a.send_to("B", &huge), Err(Error::MessageTooLarge { .. })));
}

/// A node that stops right after receiving acknowledges what it received first (std nodes
/// hold ACKs back for a reply to carry them): the sender's close finds nothing unacknowledged.
#[test]
fn a_closing_node_sends_the_acks_it_held_back() {
    for _ in 0..20 {
        let b = start("B");
        let a = start("A");
        a.add_peer("B", b.local_addr()).unwrap();
        a.send_to("B", b"last words").unwrap();
        assert_eq!(b.recv_timeout(Duration::from_secs(10)).unwrap().payload, b"last words");
        let report = b.close(Duration::from_secs(10)).unwrap();
        assert_eq!(report.unacknowledged, 0);
        let report = a.close(Duration::from_secs(10)).unwrap();
        assert_eq!(report.unacknowledged, 0, "B acknowledged before it stopped");
    }
}

#[test]
fn a_restarted_peer_resumes_without_its_clock() {
    // A process restarts (every start begins at clock 1): its peer, which kept its records,
    // learns from the new start's traffic that they belong to the previous one.
    let b = a3m::NodeBuilder::new("B").bind(([127, 0, 0, 1], 0).into()).start().unwrap();
    let b_addr = b.local_addr();
    let start_a =
        || a3m::NodeBuilder::new("A").bind(([127, 0, 0, 1], 0).into()).peer("B", b_addr).start();
    let bound = std::time::Duration::from_secs(10);
    let a = start_a().unwrap();
    for round in 0..3u32 {
        for i in 0..100u32 {
            a.send_to_timeout("B", &(round * 100 + i).to_le_bytes(), bound).unwrap();
        }
        for i in 0..100u32 {
            let d = b.recv_timeout(bound).unwrap();
            assert_eq!(d.payload, (round * 100 + i).to_le_bytes(), "round {round}");
        }
    }
    let a = {
        a.close(bound).unwrap();
        start_a().unwrap()
    };
    a.send_to_timeout("B", b"after A restarted", bound).unwrap();
    assert_eq!(b.recv_timeout(bound).unwrap().payload, b"after A restarted");
    drop(b);
    let b = a3m::NodeBuilder::new("B").bind(b_addr).start().unwrap();
    a.send_to_timeout("B", b"after B restarted", bound).unwrap();
    assert_eq!(b.recv_timeout(bound).unwrap().payload, b"after B restarted");
    assert!(b.try_recv().is_err(), "nothing twice");
}

#[test]
fn a_receiver_process_that_restarts_gets_the_stream_again() {
    // Real processes: B receives 1000 payloads and exits; a new B process (nothing
    // persisted, its clock from the wall clock) binds the same port; A, which kept its
    // session with the first, sends 1000 more, and every one arrives exactly once, within
    // the bound.
    const COUNT: u64 = 1000;
    let dir = std::env::temp_dir().join(format!("a3m-udp-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut first, addr) = spawn_receiver(&dir.join("addr1"), COUNT, None);
    let a = start("A");
    a.add_peer("B", addr).unwrap();
    for n in 0..COUNT {
        a.send_to_timeout("B", &payload(n, 16), WAIT).expect("send to the first B");
    }
    exits_within(&mut first, WAIT, "the first receiver");
    let (mut second, again) = spawn_receiver(&dir.join("addr2"), COUNT, Some(addr));
    assert_eq!(again, addr);
    for n in 0..COUNT {
        a.send_to_timeout("B", &payload(n, 16), WAIT).expect("send to the second B");
    }
    let report = a.close(WAIT).expect("close");
    assert_eq!(report.unacknowledged, 0);
    exits_within(&mut second, WAIT, "the restarted receiver");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The receiving half of `a_receiver_process_that_crashes_mid_stream_behind_a_lossy_relay_gets_the_rest_once`;
/// runs only when that test starts this binary with `A3M_LOG_FILE` set. It logs every
/// payload number it receives to that file, one write per payload, then either crashes
/// (`A3M_LOG_MODE=crash`: exits without closing its node once it has `A3M_LOG_FIRST`
/// payloads) or receives until it has every payload from `A3M_LOG_FIRST` to
/// `A3M_LOG_END`, and a second longer, then closes.
#[test]
fn child_logging_receiver_process() {
    use std::io::Write;
    let Ok(log) = std::env::var("A3M_LOG_FILE") else { return };
    let addr_file = std::env::var("A3M_CHILD_ADDR_FILE").unwrap();
    let bind = std::env::var("A3M_CHILD_BIND").map_or(LOOPBACK, |a| a.parse().unwrap());
    let crash = std::env::var("A3M_LOG_MODE").unwrap() == "crash";
    let first: u64 = std::env::var("A3M_LOG_FIRST").unwrap().parse().unwrap();
    let end: u64 = std::env::var("A3M_LOG_END").unwrap().parse().unwrap();
    let b = start_at("B", bind);
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    std::fs::write(&addr_file, b.local_addr().to_string()).unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut received = 0u64;
    let mut missing: HashSet<u64> = (first..end).collect();
    let mut linger_until = None;
    loop {
        let timeout = linger_until.map_or(WAIT, |t: std::time::Instant| {
            t.saturating_duration_since(std::time::Instant::now())
        });
        let (_, len) = match b.recv_into(&mut buf, Some(timeout)) {
            Ok(got) => got,
            Err(Error::Timeout) if linger_until.is_some() => break,
            Err(e) => panic!("receive after {received}: {e}"),
        };
        assert!(len >= 8);
        let n = u64::from_le_bytes(buf[..8].try_into().unwrap());
        // Logged before anything else happens: a crash loses nothing of what was received.
        writeln!(log, "{n}").unwrap();
        received += 1;
        missing.remove(&n);
        if crash && received == first {
            // A crash: no close, no final acknowledgements.
            std::process::exit(0);
        }
        if !crash && missing.is_empty() && linger_until.is_none() {
            linger_until = Some(std::time::Instant::now() + Duration::from_secs(1));
        }
    }
    drop(b);
}

/// Starts `child_logging_receiver_process`; returns it and the address it bound.
fn spawn_logging_receiver(
    dir: &std::path::Path,
    name: &str,
    crash: bool,
    (first, end): (u64, u64),
    bind: Option<SocketAddr>,
) -> (std::process::Child, SocketAddr) {
    let env = [
        ("A3M_LOG_FILE", dir.join(format!("{name}.log")).display().to_string()),
        ("A3M_LOG_MODE", if crash { "crash" } else { "complete" }.to_string()),
        ("A3M_LOG_FIRST", first.to_string()),
        ("A3M_LOG_END", end.to_string()),
    ];
    let addr_file = dir.join(format!("{name}.addr"));
    spawn_child("child_logging_receiver_process", &addr_file, &env, bind)
}

/// Waits for `child` to exit successfully within `bound`; kills it otherwise.
fn exits_within(child: &mut std::process::Child, bound: Duration, what: &str) {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{what} failed: {status}");
            return;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The payload numbers a logging receiver wrote, in order.
fn logged(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().expect("a payload number"))
        .collect()
}

#[test]
fn a_receiver_process_that_crashes_mid_stream_behind_a_lossy_relay_gets_the_rest_once() {
    // Real processes over a relay that loses 5 %, duplicates 2 % and reorders 5 % of the
    // datagrams both ways: B receives the first 8000 payloads and crashes (no close, its
    // last acknowledgements never sent); a new B process (its clock from the wall clock)
    // binds the same port; A, which kept its session, sends 12000 more. The first start
    // delivered each of its payloads once, the second each of the rest once, and repeats
    // only payloads the first had delivered (those it had not acknowledged): nothing lost,
    // nothing twice within a start, all within the bound.
    use a3m_tests::relay::{Faults, Relay, RelayConfig};
    const FIRST: u64 = 8_000;
    const END: u64 = 20_000;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("a3m-udp-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut first, b_addr) = spawn_logging_receiver(&dir, "first", true, (FIRST, END), None);
    let faults = Faults { loss: 0.05, dup: 0.02, reorder: 0.05, ..Faults::none() };
    let relay = Relay::bind(RelayConfig { listen: LOOPBACK, to: b_addr, faults, seed: 13 })
        .and_then(Relay::spawn)
        .expect("relay starts");
    let a = start("A");
    a.add_peer("B", relay.local_addr()).unwrap();
    for n in 0..FIRST {
        a.send_to_timeout("B", &payload(n, 16), WAIT).expect("send to the first B");
    }
    exits_within(&mut first, WAIT, "the first receiver");
    let (mut second, again) =
        spawn_logging_receiver(&dir, "second", false, (FIRST, END), Some(b_addr));
    assert_eq!(again, b_addr);
    for n in FIRST..END {
        a.send_to_timeout("B", &payload(n, 16), WAIT).expect("send to the second B");
    }
    let report = a.close(WAIT).expect("close");
    assert_eq!(report.unacknowledged, 0);
    exits_within(&mut second, WAIT, "the second receiver");
    let (mut by_first, mut by_second) =
        (logged(&dir.join("first.log")), logged(&dir.join("second.log")));
    by_first.sort_unstable();
    assert_eq!(by_first, (0..FIRST).collect::<Vec<_>>(), "the first start, each once");
    let count = by_second.len();
    by_second.sort_unstable();
    by_second.dedup();
    assert_eq!(by_second.len(), count, "the second start delivered a payload twice");
    let (repeated, rest): (Vec<u64>, Vec<u64>) = by_second.iter().partition(|&&n| n < FIRST);
    assert_eq!(rest, (FIRST..END).collect::<Vec<_>>(), "the second start, each of the rest");
    eprintln!(
        "second start: {} payloads, {} of them repeated from the first start",
        count,
        repeated.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
