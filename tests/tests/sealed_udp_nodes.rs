//! Sealed nodes over UDP loopback through the public API (issue 15): `NodeBuilder::psk`,
//! `psk_file`, sockets and raw datagrams exactly once, a sealing mismatch reported on both
//! sides, key rotation mid-stream, and a peer moving to a new port (proven by a sealed path
//! challenge).

mod socket_support;

use std::time::{Duration, Instant};

use a3m::core::node::RefusalReason;
use a3m::{Node, NodeBuilder};
use socket_support::{WAIT, loopback, sealed_builder};

const KEY: [u8; 32] = [0x3c; 32];

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sealed_sockets_and_raw_datagrams_arrive_exactly_once() {
    let b = sealed_builder("B", Some(KEY)).start().unwrap();
    let a = sealed_builder("A", Some(KEY)).peer("B", b.local_addr()).start().unwrap();
    assert!(a.is_sealed() && b.is_sealed());
    let sink = b.pull("sink").unwrap();
    let source = a.push("source").unwrap();
    source.link("B/sink").unwrap();
    // (The link's credits bound what may wait unreceived: receive meanwhile.)
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..1000u32 {
                assert_eq!(sink.recv_timeout(WAIT).unwrap(), i.to_le_bytes());
            }
        });
        for i in 0..1000u32 {
            source.send(&i.to_le_bytes()).unwrap();
        }
    });
    a.send_to("B", b"raw").unwrap();
    let d = b.recv_timeout(WAIT).unwrap();
    assert_eq!((d.from.as_str(), &d.payload[..]), ("A", &b"raw"[..]));
    let stats = b.stats();
    assert!(stats.sealed_opened > 0);
    assert_eq!(stats.plaintext_refused + stats.sealed_bad_tag + stats.replayed, 0);
}

#[test]
fn a_key_file_seals_and_a_world_readable_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("a3m-sealed-udp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("psk");
    let _ = std::fs::remove_file(&path);
    a3m::keyfile::write_key_file(&path, &KEY).unwrap();
    let b = NodeBuilder::new("B").bind(loopback()).psk_file(&path).unwrap().start().unwrap();
    let a = sealed_builder("A", Some(KEY)).peer("B", b.local_addr()).start().unwrap();
    a.send_to("B", b"from a key file").unwrap();
    assert_eq!(b.recv_timeout(WAIT).unwrap().payload, b"from a key file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = NodeBuilder::new("C").psk_file(&path).unwrap_err().to_string();
    assert!(err.contains("group or others"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sealing_mismatch_is_reported_on_both_sides() {
    let b = sealed_builder("B", Some(KEY)).start().unwrap();
    let a = sealed_builder("A", None).peer("B", b.local_addr()).start().unwrap();
    a.send_to("B", b"plaintext").unwrap();
    wait_until("the refusal", || b.last_refusal().is_some() && a.last_refusal().is_some());
    assert_eq!(b.last_refusal().unwrap().reason, RefusalReason::PlaintextWithKey);
    assert_eq!(a.last_refusal().unwrap().reason, RefusalReason::PeerRequiresKey);
    assert!(b.stats().plaintext_refused > 0);
    assert!(b.try_recv().is_err(), "a refused datagram was delivered");

    let c = sealed_builder("C", Some([9; 32])).peer("B", b.local_addr()).start().unwrap();
    c.send_to("B", b"other key").unwrap();
    wait_until("the unknown key", || b.stats().sealed_unknown_key + b.stats().sealed_bad_tag > 0);
}

#[test]
fn rotating_the_key_mid_stream_loses_nothing() {
    let b = sealed_builder("B", Some(KEY)).start().unwrap();
    let a = sealed_builder("A", Some(KEY)).peer("B", b.local_addr()).start().unwrap();
    let next = [0x99; 32];
    let received = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let mut n = 0;
            while b.recv_timeout(WAIT).is_ok() {
                n += 1;
                if n == 2000 {
                    break;
                }
            }
            n
        });
        for i in 0..2000u32 {
            if i == 500 {
                a.rotate_psk(next, Duration::from_secs(30)).unwrap();
            }
            if i == 1000 {
                b.rotate_psk(next, Duration::from_secs(30)).unwrap();
            }
            a.send_to("B", &i.to_le_bytes()).unwrap();
        }
        receiver.join().unwrap()
    });
    assert_eq!(received, 2000);
    wait_until("every datagram acknowledged", || a.unacknowledged() == 0);
}

#[test]
fn a_sealed_peer_that_moves_is_followed_after_a_path_challenge() {
    let b = sealed_builder("B", Some(KEY)).start().unwrap();
    let a: Node = sealed_builder("A", Some(KEY)).peer("B", b.local_addr()).start().unwrap();
    a.send_to("B", b"before").unwrap();
    assert_eq!(b.recv_timeout(WAIT).unwrap().payload, b"before");
    wait_until("the first ack", || a.unacknowledged() == 0);
    a.rebind(loopback()).unwrap();
    for i in 0..100u32 {
        a.send_to("B", &i.to_le_bytes()).unwrap();
    }
    for _ in 0..100 {
        b.recv_timeout(WAIT).unwrap();
    }
    wait_until("every datagram acknowledged after the move", || a.unacknowledged() == 0);
    let stats = b.stats();
    assert!(stats.path_validated >= 1, "{stats:?}");
    assert!(stats.address_changes >= 1, "{stats:?}");
}

#[test]
fn a_link_across_a_sealing_mismatch_says_why_it_does_not_come_up() {
    let b = sealed_builder("B", Some(KEY)).start().unwrap();
    let a = sealed_builder("A", None).peer("B", b.local_addr()).start().unwrap();
    let _sink = b.pull("sink").unwrap();
    let source = a.push("source").unwrap();
    source.link("B/sink").unwrap();
    // The link keeps being retried (the reason is advice, from unauthenticated datagrams),
    // and every failed attempt names the mismatch instead of a bare "no answer".
    let mismatch = |f: &a3m::LinkFailure| matches!(f, a3m::LinkFailure::SealingMismatch(_));
    wait_until("the link's last failure to name the mismatch", || {
        source.links().iter().any(|l| l.last_failure.as_ref().is_some_and(mismatch))
    });
    let failure = source.links()[0].last_failure.clone().unwrap();
    assert!(failure.to_string().contains("key"), "{failure}");
    // A wait that times out says why (and still only when it times out).
    assert!(matches!(
        source.wait_for_link(Some(Duration::from_millis(200))),
        Err(a3m::Error::LinkTimeout(t)) if mismatch(&t.last_failure)
    ));
    let events = source.events();
    assert!(
        events.iter().any(
            |e| matches!(e, a3m::LinkEvent::AttemptFailed { failure, .. } if mismatch(failure))
        ),
        "{events:?}"
    );
}

/// A wall clock in microseconds, as the std adapters take for the sealing epoch.
const NOW_MICROS: u64 = 1_800_000_000_000_000;
/// A day, in microseconds: how far the clocks below go back.
const DAY_MICROS: u64 = 86_400_000_000;
/// The bound on a restarted node getting through: its peer's silence (250 ms) and a few
/// round trips, with a wide margin for a loaded machine.
const LET_IN: Duration = Duration::from_secs(10);

#[test]
fn a_sender_restarted_with_its_clock_set_back_gets_through() {
    let b = sealed_builder("B", Some(KEY)).seal_epoch(NOW_MICROS).start().unwrap();
    let sink = b.pull("sink").unwrap();
    let stream = |a: &Node, numbers: std::ops::Range<u64>| {
        let source = a.push("source").unwrap();
        source.link("B/sink").unwrap();
        for i in numbers.clone() {
            source.send_timeout(&i.to_le_bytes(), LET_IN).unwrap();
        }
        for i in numbers {
            assert_eq!(sink.recv_timeout(LET_IN).unwrap(), i.to_le_bytes());
        }
    };
    let a = sealed_builder("A", Some(KEY)).seal_epoch(NOW_MICROS).peer("B", b.local_addr());
    let a = a.start().unwrap();
    stream(&a, 0..100);
    a.close(WAIT).unwrap();
    // The same node again, its clock a day behind: B holds that epoch for a replay until A
    // answers B's challenge to it.
    let a = sealed_builder("A", Some(KEY)).seal_epoch(NOW_MICROS - DAY_MICROS);
    let a = a.peer("B", b.local_addr()).start().unwrap();
    stream(&a, 100..200);
    wait_until("every message acknowledged", || a.unacknowledged() == 0);
    let stats = b.stats();
    assert_eq!(stats.epoch_probes_proven, 1, "{stats:?}");
    assert!(stats.stale_epoch >= 1, "{stats:?}");
}

#[test]
fn a_receiver_restarted_with_its_clock_set_back_is_found_again() {
    let b = sealed_builder("B", Some(KEY)).seal_epoch(NOW_MICROS).start().unwrap();
    let b_addr = b.local_addr();
    let a = sealed_builder("A", Some(KEY)).peer("B", b_addr).start().unwrap();
    a.send_to("B", b"before").unwrap();
    assert_eq!(b.recv_timeout(WAIT).unwrap().payload, b"before");
    wait_until("the first ack", || a.unacknowledged() == 0);
    drop(b);
    // B again, on the same port, its clock a day behind: A, which knows B's later epoch,
    // holds B's answers for replays until B answers A's challenge to the new epoch.
    let b = NodeBuilder::new("B").bind(b_addr).psk(KEY).seal_epoch(NOW_MICROS - DAY_MICROS);
    let b = b.start().unwrap();
    a.send_to("B", b"after").unwrap();
    let d = b.recv_timeout(LET_IN).unwrap();
    assert_eq!((d.from.as_str(), &d.payload[..]), ("A", &b"after"[..]));
    wait_until("the ack", || a.unacknowledged() == 0);
    assert_eq!(a.stats().epoch_probes_proven, 1, "{:?}", a.stats());
}
