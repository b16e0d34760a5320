//! The A3M calls around links (thesis §4.3.3–§4.3.7) and links that say why they fail
//! (issue 21): waiting for the link with one peer, per-link hang-up, state queries,
//! sockets by tag, the poller's size, and every failed link attempt with its reason.

mod socket_support;

use std::time::{Duration, Instant};

use a3m::{
    Error, Events, Interest, Lifecycle, LinkEvent, LinkFailure, LinkPhase, Poller, RefusalCode,
    SocketOptions,
};
use socket_support::{BRIEF, WAIT, eventually, node, node_knowing, number, numbered, pull, push};

/// The first failed attempt among the socket's events, waiting for it.
fn next_failure(socket: &a3m::Socket) -> (u32, LinkFailure) {
    loop {
        match socket.next_event(Some(WAIT)).expect("an event") {
            LinkEvent::AttemptFailed { attempt, failure, .. } => return (attempt, failure),
            LinkEvent::Established { .. } => panic!("established"),
            _ => {}
        }
    }
}

#[test]
fn wait_for_the_link_with_one_peer_and_for_its_hang_up() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new());
    let other = pull(&b, "other", SocketOptions::new());
    let source = push(&a, "source", SocketOptions::new());
    // No link with that peer, established or being made: an error at once.
    let started = Instant::now();
    assert!(matches!(source.wait_for_link_to("B/sink", Some(WAIT)), Err(Error::NoSuchLink(_))));
    assert!(started.elapsed() < Duration::from_secs(1));
    source.link("B/sink").unwrap();
    source.link("B/other").unwrap();
    source.wait_for_link_to("B/sink", Some(WAIT)).unwrap();
    source.wait_for_link_to("B/other", Some(WAIT)).unwrap();
    // The receiver sees the sender's link, and it has not hung up.
    sink.wait_for_link_to("A/source", Some(WAIT)).unwrap();
    assert!(matches!(sink.wait_for_link_closed("A/source", Some(BRIEF)), Err(Error::Timeout)));
    for i in 0..40 {
        source.send(&numbered(i, 8)).unwrap();
    }
    // The sender hangs up on one peer: that link closes once everything was received.
    source.unlink("B/sink").unwrap();
    assert!(matches!(source.wait_for_link_to("B/sink", Some(WAIT)), Err(Error::NoSuchLink(_))));
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while sink.wait_for_link_closed("A/source", Some(Duration::ZERO)).is_err() {
        assert!(Instant::now() < deadline, "the link never closed");
        if let Ok(m) = sink.recv_timeout(BRIEF) {
            got.push(number(&m));
        }
    }
    // (A receive may have taken messages ahead of the link: they are still here.)
    while let Ok(m) = sink.try_recv() {
        got.push(number(&m));
    }
    for _ in got.len()..40 {
        got.push(number(&other.recv_timeout(WAIT).unwrap()));
    }
    got.sort_unstable();
    assert_eq!(got, (0..40).collect::<Vec<_>>(), "nothing sent is lost");
    source.wait_for_link_closed("B/sink", Some(WAIT)).unwrap();
    assert!(
        sink.events()
            .iter()
            .any(|e| matches!(e, LinkEvent::Closed { peer, .. } if peer.to_string() == "A/source"))
    );
    // The other link is still there.
    source.wait_for_link_to("B/other", Some(Duration::ZERO)).unwrap();
}

#[test]
fn waiting_for_a_link_refused_for_good_reports_the_refusal() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let _push = push(&b, "push", SocketOptions::new());
    let source = push(&a, "source", SocketOptions::new());
    source.link("B/push").unwrap();
    assert!(matches!(
        source.wait_for_link_to("B/push", Some(WAIT)),
        Err(Error::IncompatibleProtocol(_))
    ));
}

#[test]
fn node_and_socket_states_sockets_by_tag_and_the_pollers_size() {
    let b = node("B");
    let a = node_knowing("A", &b);
    assert_eq!(a.state(), Lifecycle::Open);
    let sink = pull(&b, "sink", SocketOptions::new());
    let source = push(&a, "source", SocketOptions::new());
    assert_eq!(source.state(), Lifecycle::Open);
    // Another handle by tag: dropping it leaves the socket open.
    let again = a.socket_by_tag("source").unwrap().expect("the socket");
    assert_eq!(again.id(), source.id());
    drop(again);
    assert_eq!(source.state(), Lifecycle::Open);
    assert!(a.socket_by_tag("nobody").unwrap().is_none());
    assert!(matches!(a.socket_by_tag(&"x".repeat(100)), Err(Error::InvalidArgument(_))));

    source.link("B/sink").unwrap();
    source.wait_for_link(Some(WAIT)).unwrap();
    for i in 0..5 {
        source.send(&numbered(i, 8)).unwrap();
    }
    source.close(WAIT).unwrap();
    assert_eq!(source.state(), Lifecycle::Closed);
    for i in 0..5 {
        assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), i);
    }
    // A socket whose link waits for an answer that never comes stays closing until its
    // close times out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    a.add_peer("Z", silent.local_addr().unwrap()).unwrap();
    let stuck = push(&a, "stuck", SocketOptions::new());
    stuck.link("Z/nobody").unwrap();
    std::thread::scope(|scope| {
        let closer = scope.spawn(|| stuck.close(Duration::from_millis(500)));
        eventually("closing", || stuck.state() == Lifecycle::Closing);
        assert!(a.socket_by_tag("stuck").unwrap().is_none(), "a closing socket is not handed out");
        let report = closer.join().unwrap().unwrap();
        assert_eq!(report.aborted_links, 1);
    });
    assert_eq!(stuck.state(), Lifecycle::Closed);

    let poller = Poller::new();
    assert!(poller.is_empty() && !poller.is_closed());
    poller.add(&sink, Interest::new(Events::IN)).unwrap();
    assert_eq!(poller.len(), 1);
    poller.close();
    assert!(poller.is_closed());
}

#[test]
fn failed_attempts_say_why_unknown_socket_then_established() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let source = push(&a, "source", SocketOptions::new());
    source.link("B/late").unwrap();
    assert_eq!(next_failure(&source), (1, LinkFailure::UnknownSocket));
    assert_eq!(next_failure(&source), (2, LinkFailure::UnknownSocket));
    let link = source.links().pop().expect("the link is listed while attempted");
    assert!(matches!(link.phase, LinkPhase::RetryWait | LinkPhase::Linking), "{link:?}");
    assert!(link.attempts >= 2, "{link:?}");
    assert_eq!(link.last_failure, Some(LinkFailure::UnknownSocket));
    let sink = pull(&b, "late", SocketOptions::new());
    source.wait_for_link_to("B/late", Some(WAIT)).unwrap();
    let link = &source.links()[0];
    assert_eq!((link.attempts, link.last_failure.clone()), (0, None));
    source.send(b"hello").unwrap();
    assert_eq!(sink.recv_timeout(WAIT).unwrap(), b"hello");
}

#[test]
fn failed_attempts_say_why_incompatible_and_refused() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let _push = push(&b, "push", SocketOptions::new());
    let _closed = pull(&b, "closed", SocketOptions::new().accept_incoming(false));
    let source = push(&a, "source", SocketOptions::new());
    source.link("B/push").unwrap();
    match next_failure(&source) {
        (1, LinkFailure::IncompatibleProtocol(why)) => assert!(why.contains("push"), "{why}"),
        other => panic!("{other:?}"),
    }
    source.link("B/closed").unwrap();
    match next_failure(&source) {
        (1, LinkFailure::Refused { code: RefusalCode::NotAllowed, reason }) => {
            assert!(!reason.is_empty(), "the peer's reason comes along")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_link_to_a_dead_address_is_reported_after_the_first_retry_interval() {
    // Something holds the port, and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let a = node("A");
    a.add_peer("Z", addr).unwrap();
    let interval = Duration::from_millis(50);
    let options = SocketOptions::new().link_retry(interval, Duration::from_millis(200), None);
    let source = push(&a, "source", options);
    let started = Instant::now();
    source.link("Z/sink").unwrap();
    assert_eq!(next_failure(&source), (1, LinkFailure::NoAnswer));
    assert!(started.elapsed() >= interval, "reported after {:?}", started.elapsed());
    let link = &source.links()[0];
    assert_eq!((link.phase, link.attempts), (LinkPhase::Linking, 1), "{link:?}");
    assert_eq!(link.last_failure, Some(LinkFailure::NoAnswer));
    assert!(matches!(source.send_timeout(b"x", BRIEF), Err(Error::Timeout)));
    // It keeps being reported while nothing answers.
    assert_eq!(next_failure(&source), (1, LinkFailure::NoAnswer));

    // The peer comes up at that address: the LINK still on its way gets there, and the
    // link is made once its socket exists.
    drop(silent);
    let z = a3m::NodeBuilder::new("Z").bind(addr).start().unwrap();
    let sink = pull(&z, "sink", SocketOptions::new());
    source.wait_for_link_to("Z/sink", Some(WAIT)).unwrap();
    for i in 0..10 {
        source.send(&numbered(i, 8)).unwrap();
    }
    for i in 0..10 {
        assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), i);
    }
}
