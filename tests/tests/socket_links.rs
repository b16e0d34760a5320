//! Links through the public API over UDP loopback: refusals with their reasons, retries
//! until the peer socket exists, concurrent link/unlink races, notify-if-none.

mod socket_support;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use a3m::{Error, LinkEvent, LinkPhase, RefusalCode, SocketOptions};
use socket_support::{BRIEF, WAIT, eventually, node, node_knowing, number, numbered, pull, push};

#[test]
fn incompatible_protocols_are_refused_with_the_reason() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let _other_push = b.push("push").unwrap();
    let source = a.push("src").unwrap();
    source.link("B/push").unwrap();
    match source.wait_for_link(Some(WAIT)) {
        Err(Error::IncompatibleProtocol(reason)) => {
            assert!(reason.contains("B/push"), "the reason names the peer: {reason}");
            assert!(reason.contains("push socket"), "the reason says why: {reason}");
        }
        other => panic!("expected an incompatible-protocol refusal, got {other:?}"),
    }
    let events = source.events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            LinkEvent::Refused { code: RefusalCode::Incompatible, peer, .. } if peer.to_string() == "B/push"
        )),
        "the refusal is an event too: {events:?}"
    );
    assert!(matches!(events.last(), Some(LinkEvent::LinkFree)), "{events:?}");
    assert!(source.links().is_empty());
    // The refusal is reported once; the socket is link-free afterwards.
    assert!(matches!(source.wait_for_link(Some(BRIEF)), Err(Error::Timeout)));
}

#[test]
fn a_socket_that_takes_no_link_requests_refuses_with_a_reason() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let _closed_door = pull(&b, "sink", SocketOptions::new().accept_incoming(false));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    match source.wait_for_link(Some(WAIT)) {
        Err(Error::LinkRefused(reason)) => assert!(reason.contains("no link requests"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_link_is_retried_until_the_peer_socket_appears() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let fast_retry =
        SocketOptions::new().link_retry(Duration::from_millis(10), Duration::from_millis(40), None);
    let source = push(&a, "src", fast_retry);
    source.link("B/late").unwrap();
    // No socket "late" yet: the link cannot be established.
    assert!(matches!(source.wait_for_link(Some(Duration::from_millis(200))), Err(Error::Timeout)));
    assert_eq!(source.links().len(), 1, "the link is kept while it retries");
    let late = pull(&b, "late", SocketOptions::new());
    let peer = source.wait_for_link(Some(WAIT)).expect("the link is established");
    assert_eq!(peer.to_string(), "B/late");
    source.send(b"finally").unwrap();
    assert_eq!(late.recv_timeout(WAIT).unwrap(), b"finally");
}

#[test]
fn a_link_whose_retries_run_out_is_refused() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let options = SocketOptions::new().link_retry(
        Duration::from_millis(5),
        Duration::from_millis(5),
        Some(3),
    );
    let source = push(&a, "src", options);
    source.link("B/nobody").unwrap();
    match source.wait_for_link(Some(WAIT)) {
        Err(Error::LinkRefused(reason)) => assert!(reason.contains("B/nobody"), "{reason}"),
        other => panic!("expected a refusal after the retries, got {other:?}"),
    }
}

#[test]
fn bad_link_arguments_are_refused_at_once() {
    let a = node("A");
    let source = a.push("src").unwrap();
    assert!(matches!(source.link("no-slash"), Err(Error::InvalidArgument(_))));
    assert!(matches!(source.link("C/x"), Err(Error::UnknownPeer(node)) if node == "C"));
    assert!(matches!(source.link("A/src"), Err(Error::InvalidArgument(_))));
    assert!(matches!(source.unlink("A/other"), Err(Error::InvalidArgument(_))));
    assert!(matches!(a.push("src"), Err(Error::InvalidArgument(_))), "tag in use");
    assert!(matches!(a.push(""), Err(Error::InvalidArgument(_))));
    let bad = SocketOptions::new().credit_batch_percent(0);
    assert!(matches!(
        a.socket_with("x", Box::new(a3m::Pull::new()), bad),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn both_sides_linking_at_once_make_one_link() {
    let b = node("B");
    let a = node_knowing("A", &b);
    a.add_peer("B", b.local_addr()).unwrap();
    b.add_peer("A", a.local_addr()).unwrap();
    for round in 0..20 {
        let source = a.push(&format!("src-{round}")).unwrap();
        let sink = b.pull(&format!("sink-{round}")).unwrap();
        thread::scope(|s| {
            s.spawn(|| source.link(format!("B/sink-{round}")).unwrap());
            s.spawn(|| sink.link(format!("A/src-{round}")).unwrap());
        });
        source.wait_for_link(Some(WAIT)).unwrap();
        sink.wait_for_link(Some(WAIT)).unwrap();
        assert_eq!(source.links().len(), 1, "round {round}: {:?}", source.links());
        assert_eq!(sink.links().len(), 1, "round {round}: {:?}", sink.links());
        source.send(&numbered(round, 8)).unwrap();
        assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), round);
    }
}

#[test]
fn racing_link_and_unlink_leave_consistent_sockets() {
    let b = node("B");
    let a = node_knowing("A", &b);
    b.add_peer("A", a.local_addr()).unwrap();
    let source = Arc::new(a.push("src").unwrap());
    let sink = Arc::new(pull(&b, "sink", SocketOptions::new()));
    // Several threads link and unlink the same pair as fast as they can, from both ends.
    thread::scope(|s| {
        for t in 0..4 {
            let (source, sink) = (Arc::clone(&source), Arc::clone(&sink));
            s.spawn(move || {
                for i in 0..200 {
                    let (linker, peer) =
                        if t % 2 == 0 { (&source, "B/sink") } else { (&sink, "A/src") };
                    linker.link(peer).unwrap();
                    if i % 3 != 0 {
                        // Unlinking may find the link already gone: another thread unlinked.
                        match linker.unlink(peer) {
                            Ok(()) | Err(Error::InvalidArgument(_)) => {}
                            Err(e) => panic!("unlink: {e}"),
                        }
                    }
                }
            });
        }
    });
    // Whatever state the races left, the two can still talk: link and exchange messages.
    eventually("the links settle", || {
        let _ = source.link("B/sink");
        source.links().iter().all(|l| l.phase == LinkPhase::Established)
            && sink.links().iter().all(|l| l.phase == LinkPhase::Established)
            && source.links().len() == 1
            && sink.links().len() == 1
    });
    for n in 0..100 {
        source.send(&numbered(n, 8)).unwrap();
    }
    for n in 0..100 {
        assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), n);
    }
    // Unlinking for good leaves both link-free.
    source.unlink("B/sink").unwrap();
    eventually("both sides are link-free", || source.links().is_empty() && sink.links().is_empty());
    assert!(matches!(sink.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn relinking_right_after_unlinking_keeps_every_message_once_and_in_order() {
    const ROUNDS: u64 = 30;
    const PER_ROUND: u64 = 50;
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(8));
    let source = a.push("src").unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            for round in 0..ROUNDS {
                // A new link to the same peer opens only once the old one has closed, that
                // is once the sink has taken everything sent on it.
                source.link("B/sink").unwrap();
                for n in 0..PER_ROUND {
                    source.send(&numbered(round * PER_ROUND + n, 8)).unwrap();
                }
                source.unlink("B/sink").unwrap();
            }
        });
        for n in 0..ROUNDS * PER_ROUND {
            assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), n);
        }
    });
    eventually("both sides are link-free", || source.links().is_empty() && sink.links().is_empty());
    let established =
        sink.events().iter().filter(|e| matches!(e, LinkEvent::Established { .. })).count();
    assert!(established >= 2, "the sink saw the links come and go: {established}");
}

#[test]
fn cancelling_a_link_during_its_handshake_frees_the_socket() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let _sink = b.pull("sink").unwrap();
    let source = a.push("src").unwrap();
    for _ in 0..50 {
        source.link("B/sink").unwrap();
        source.unlink("B/sink").unwrap();
    }
    eventually("the socket is link-free", || source.links().is_empty());
    assert!(source.events().contains(&LinkEvent::LinkFree));
}

#[test]
fn notify_if_none_reports_no_links() {
    let b = node("B");
    let a = node_knowing("A", &b);
    // A send on a link-free socket fails at once.
    let lonely = push(&a, "lonely", SocketOptions::new().notify_if_none(true));
    assert!(matches!(lonely.send(b"x"), Err(Error::NoLinks)));
    assert!(matches!(lonely.try_send(b"x"), Err(Error::NoLinks)));
    // Without notify-if-none the same send waits (for a link that may come).
    let patient = a.push("patient").unwrap();
    assert!(matches!(patient.send_timeout(b"x", BRIEF), Err(Error::Timeout)));
    assert!(matches!(patient.try_send(b"x"), Err(Error::WouldBlock)));

    // A receiver blocked while its last link closes gets NoLinks.
    let sink = Arc::new(pull(&b, "sink", SocketOptions::new().notify_if_none(true)));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    // (The sink has notify-if-none: wait on the sender's side.)
    source.wait_for_link(Some(WAIT)).unwrap();
    let receiver = {
        let sink = Arc::clone(&sink);
        thread::spawn(move || sink.recv())
    };
    source.send(b"last").unwrap();
    source.unlink("B/sink").unwrap();
    let first = receiver.join().unwrap();
    let mut got = vec![first];
    // The message, then the end of the stream (whichever the blocked call saw first).
    got.push(sink.recv_timeout(WAIT));
    match got.as_slice() {
        [Ok(m), Err(Error::NoLinks)] => assert_eq!(m, b"last"),
        other => panic!("expected the message then NoLinks, got {other:?}"),
    }

    // Turning notify-if-none on wakes a receiver waiting on a link-free socket.
    let idle = Arc::new(b.pull("idle").unwrap());
    let waiter = {
        let idle = Arc::clone(&idle);
        thread::spawn(move || idle.recv_timeout(WAIT))
    };
    // Most likely the receiver is blocked by now; if not, it sees the option at once.
    thread::sleep(BRIEF);
    idle.set_notify_if_none(true).unwrap();
    assert!(matches!(waiter.join().unwrap(), Err(Error::NoLinks)));
}

#[test]
fn sockets_of_one_node_link_to_each_other() {
    let a = node("A");
    let sink = a.pull("sink").unwrap();
    let source = a.push("src").unwrap();
    source.link("A/sink").unwrap();
    for n in 0..1000 {
        source.send(&numbered(n, 16)).unwrap();
        assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), n);
    }
    assert_eq!(source.close(WAIT).unwrap().aborted_links, 0);
}
