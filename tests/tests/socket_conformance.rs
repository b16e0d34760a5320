//! Conformance of blocking calls, options and timers (issue 21): notify-if-none for every
//! blocking call, options a socket type does not use, capacity 0, and link retry timers
//! that never fire early.

mod socket_support;

use std::time::{Duration, Instant};

use a3m::{Error, Events, Interest, LinkEvent, LinkPhase, PollEvent, Poller, SocketOptions};
use socket_support::{BRIEF, WAIT, eventually, node, node_knowing, number, numbered, pull, push};

/// "At once": far below the timeouts the calls were given.
const AT_ONCE: Duration = Duration::from_millis(500);

fn assert_no_links<T: std::fmt::Debug>(what: &str, call: impl FnOnce() -> a3m::Result<T>) {
    let started = Instant::now();
    let result = call();
    assert!(matches!(result, Err(Error::NoLinks)), "{what}: expected NoLinks, got {result:?}");
    assert!(started.elapsed() < AT_ONCE, "{what} waited {:?}", started.elapsed());
}

#[test]
fn every_blocking_call_on_a_link_free_socket_with_notify_if_none_fails_at_once() {
    let n = node("N");
    let options = SocketOptions::new().notify_if_none(true);
    let sink = pull(&n, "sink", options);
    let source = push(&n, "source", options);
    let second = Duration::from_secs(1);
    assert_no_links("wait_for_link", || sink.wait_for_link(Some(second)));
    assert_no_links("wait_for_link without timeout", || source.wait_for_link(None));
    assert_no_links("recv", || sink.recv());
    assert_no_links("recv_timeout", || sink.recv_timeout(second));
    assert_no_links("poll IN", || sink.poll(Events::IN, Some(second)));
    assert_no_links("send", || source.send(b"x"));
    assert_no_links("send_timeout", || source.send_timeout(b"x", second));
    assert_no_links("poll OUT (a credit)", || source.poll(Events::OUT, None));
    // A poller reports the socket at once (ERR: a receive would fail with NoLinks).
    let poller = Poller::new();
    poller.add(&sink, Interest::new(Events::IN)).unwrap();
    let mut ready = [PollEvent::EMPTY; 4];
    let started = Instant::now();
    assert_eq!(poller.wait(&mut ready, Some(second)).unwrap(), 1);
    assert!(started.elapsed() < AT_ONCE);
    assert!(ready[0].events.contains(Events::ERR), "{:?}", ready[0]);
    // Without notify-if-none the same calls wait.
    sink.set_notify_if_none(false).unwrap();
    assert!(matches!(sink.wait_for_link(Some(BRIEF)), Err(Error::Timeout)));
    assert!(matches!(sink.poll(Events::IN, Some(BRIEF)), Err(Error::Timeout)));
    assert_eq!(poller.wait(&mut ready, Some(BRIEF)).unwrap(), 0, "{:?}", ready[0]);
}

#[test]
fn a_link_being_made_counts_as_a_link_and_nothing_sent_is_lost() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let options = SocketOptions::new().notify_if_none(true);
    let source = push(&a, "source", options);
    // The peer socket does not exist yet: the link waits to retry, and still counts.
    source.link("B/late").unwrap();
    eventually("a failed attempt", || {
        source.links().iter().any(|l| l.attempts >= 1 && l.last_failure.is_some())
    });
    assert!(matches!(source.wait_for_link(Some(BRIEF)), Err(Error::Timeout)));
    assert!(matches!(source.send_timeout(b"x", BRIEF), Err(Error::Timeout)));
    assert!(matches!(source.poll(Events::OUT, Some(BRIEF)), Err(Error::Timeout)));
    let sink = pull(&b, "late", options);
    assert_eq!(source.wait_for_link(Some(WAIT)).unwrap().to_string(), "B/late");
    for i in 0..50 {
        source.send(&numbered(i, 16)).unwrap();
    }
    // The end of the stream: every message, then NoLinks for every blocking call.
    source.close(WAIT).unwrap();
    let mut got = Vec::new();
    loop {
        match sink.recv_timeout(WAIT) {
            Ok(m) => got.push(number(&m)),
            Err(Error::NoLinks) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    assert_no_links("wait_for_link at the end of the stream", || sink.wait_for_link(Some(WAIT)));
    assert_no_links("poll at the end of the stream", || sink.poll(Events::IN, Some(WAIT)));
}

#[test]
fn options_a_socket_type_does_not_use_are_refused_with_their_name() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new());
    let source = push(&a, "source", SocketOptions::new());
    match source.set_capacity(10) {
        Err(Error::Unsupported(why)) => assert!(why.contains("capacity"), "{why}"),
        other => panic!("a push has no capacity: {other:?}"),
    }
    let batch = source.options().unwrap().credit_batch_percent(50);
    match source.set_options(batch) {
        Err(Error::Unsupported(why)) => assert!(why.contains("credit_batch_percent"), "{why}"),
        other => panic!("a push returns no credits: {other:?}"),
    }
    let refused =
        a.socket_with("other", Box::new(a3m::Push::new()), SocketOptions::new().capacity(5));
    assert!(matches!(refused, Err(Error::Unsupported(ref why)) if why.contains("capacity")));
    // What a push uses is taken, the pull takes its capacity, and nothing changed.
    source.set_linger(Some(WAIT)).unwrap();
    source.set_notify_if_none(true).unwrap();
    sink.set_capacity(7).unwrap();
    assert_eq!(source.options().unwrap().capacity, SocketOptions::new().capacity);
    source.link("B/sink").unwrap();
    source.wait_for_link(Some(WAIT)).unwrap();
    // (Capacity 7: send no more than that ahead of the receiver.)
    for i in 0..20 {
        source.send_timeout(&numbered(i, 8), WAIT).unwrap();
        assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), i);
    }
}

#[test]
fn capacity_zero_pauses_the_senders_and_raising_it_resumes() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(10));
    let source = push(&a, "source", SocketOptions::new());
    source.link("B/sink").unwrap();
    source.wait_for_link(Some(WAIT)).unwrap();
    for i in 0..10 {
        source.send(&numbered(i, 8)).unwrap();
    }
    // Pause: the sender's credits are taken back; what was sent still arrives.
    sink.set_capacity(0).unwrap();
    assert_eq!(sink.options().unwrap().capacity, 0);
    for i in 0..10 {
        assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), i);
    }
    eventually("the sender has no credit left", || {
        source.links().first().is_some_and(|l| l.credits == 0)
    });
    assert!(matches!(source.send_timeout(&numbered(10, 8), BRIEF * 4), Err(Error::Timeout)));
    assert!(matches!(source.try_send(&numbered(10, 8)), Err(Error::WouldBlock)));
    assert!(matches!(sink.try_recv(), Err(Error::WouldBlock)));
    let link = &source.links()[0];
    assert_eq!(link.phase, LinkPhase::Established, "paused, not unlinked");
    // Resume.
    sink.set_capacity(3).unwrap();
    for i in 10..30 {
        source.send_timeout(&numbered(i, 8), WAIT).unwrap();
        assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), i);
    }
}

#[test]
fn link_retry_timers_never_fire_before_their_interval() {
    // Many links retrying after 20 ms: each gives up at its second failed attempt, which
    // comes after the retry timer; none may be seen earlier than 20 ms after `link`. The
    // first failure is handled by the calling thread (on the coarse clock).
    const SOCKETS: usize = 200;
    let interval = Duration::from_millis(20);
    let n = node("N");
    let options = SocketOptions::new().link_retry(interval, interval, Some(2));
    let sockets: Vec<_> = (0..SOCKETS).map(|i| push(&n, &format!("s{i}"), options)).collect();
    let mut started = Vec::new();
    for (i, socket) in sockets.iter().enumerate() {
        started.push(Instant::now());
        socket.link(format!("N/missing{i}")).unwrap();
    }
    for (socket, started) in sockets.iter().zip(started) {
        loop {
            match socket.next_event(Some(WAIT)).unwrap() {
                LinkEvent::Refused { .. } => break,
                LinkEvent::AttemptFailed { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= interval, "{}: gave up after {elapsed:?}", socket.id());
    }
}
