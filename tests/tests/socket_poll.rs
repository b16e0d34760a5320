//! Waiting on several sockets: the epoll-like `Poller` and the one-shot `poll`.

mod socket_support;

use std::thread;

use a3m::{Error, Events, Interest, PollEvent, PollRequest, Poller, SocketOptions};
use socket_support::{WAIT, node, node_knowing, number, numbered, pull};

#[test]
fn a_poller_reports_which_socket_can_receive() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let left = pull(&b, "left", SocketOptions::new());
    let right = pull(&b, "right", SocketOptions::new());
    let to_left = a.push("to-left").unwrap();
    let to_right = a.push("to-right").unwrap();
    to_left.link("B/left").unwrap();
    to_right.link("B/right").unwrap();
    to_left.wait_for_link(Some(WAIT)).unwrap();
    to_right.wait_for_link(Some(WAIT)).unwrap();

    let poller = Poller::new();
    poller.add(&left, Interest::new(Events::IN)).unwrap();
    poller.add(&right, Interest::new(Events::IN)).unwrap();
    let mut events = [PollEvent::EMPTY; 4];
    let mut got = Vec::new();
    thread::scope(|s| {
        s.spawn(|| {
            for n in 0..100 {
                let socket = if n % 3 == 0 { &to_left } else { &to_right };
                socket.send(&numbered(n, 8)).unwrap();
            }
        });
        while got.len() < 100 {
            let n = poller.wait(&mut events, Some(WAIT)).unwrap();
            assert!(n > 0, "events before the timeout");
            for event in &events[..n] {
                assert!(event.events.contains(Events::IN));
                let socket = if event.id == left.poll_id() { &left } else { &right };
                assert!(event.id == left.poll_id() || event.id == right.poll_id());
                // Level-triggered: drain what is there.
                loop {
                    match socket.try_recv() {
                        Ok(m) => got.push((event.id == left.poll_id(), number(&m))),
                        Err(Error::WouldBlock) => break,
                        Err(e) => panic!("receive: {e}"),
                    }
                }
            }
        }
    });
    for (from_left, n) in &got {
        assert_eq!(*from_left, n % 3 == 0, "message {n} came from the socket it was sent to");
    }
    // Closing a socket is reported as a hang-up.
    left.close(WAIT).unwrap();
    let n = poller.wait(&mut events, Some(WAIT)).unwrap();
    assert!(events[..n].iter().any(|e| e.id == left.poll_id() && e.events.contains(Events::HUP)));
}

#[test]
fn a_one_shot_poll_sees_writable_and_readable_sockets() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = b.pull("sink").unwrap();
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    let mut requests = [PollRequest::new(&source, Events::OUT)];
    assert_eq!(a3m::poll(&mut requests, Some(WAIT)).unwrap(), 1);
    assert!(requests[0].found().contains(Events::OUT));
    source.send(b"hello").unwrap();
    let mut requests = [PollRequest::new(&sink, Events::IN), PollRequest::new(&source, Events::IN)];
    assert_eq!(a3m::poll(&mut requests, Some(WAIT)).unwrap(), 1);
    assert!(requests[0].found().contains(Events::IN));
    assert!(requests[1].found().is_empty());
    assert!(sink.readiness().contains(Events::IN));
    assert_eq!(sink.try_recv().unwrap(), b"hello");
    assert!(!sink.readiness().contains(Events::IN));
}
