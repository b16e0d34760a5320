//! Every blocking call of a socket has a timeout (or non-blocking) variant, and each one
//! gives up with `Timeout` (or `WouldBlock`) when nothing can happen; misuse gives clear
//! errors.

mod socket_support;

use std::time::Duration;

use a3m::{Error, Events, Interest, PollEvent, PollRequest, Poller, SocketOptions};
use socket_support::{BRIEF, WAIT, node, node_knowing, pull};

#[test]
fn every_blocking_call_times_out() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(1));
    let source = a.push("src").unwrap();

    // No link yet.
    assert!(matches!(source.wait_for_link(Some(BRIEF)), Err(Error::Timeout)));
    assert!(matches!(source.send_timeout(b"x", BRIEF), Err(Error::Timeout)));
    assert!(matches!(source.next_event(Some(BRIEF)), Err(Error::Timeout)));
    assert!(matches!(sink.recv_timeout(BRIEF), Err(Error::Timeout)));
    assert!(matches!(sink.try_recv(), Err(Error::WouldBlock)));

    source.link("B/sink").unwrap();
    source.wait_for_link(Some(WAIT)).unwrap();
    assert!(matches!(source.next_event(Some(WAIT)), Ok(a3m::LinkEvent::Established { .. })));
    // One credit: the first send goes, the second waits for a credit that never comes.
    source.send_timeout(b"one", WAIT).unwrap();
    assert!(matches!(source.send_timeout(b"two", BRIEF), Err(Error::Timeout)));
    assert!(matches!(source.try_send(b"two"), Err(Error::WouldBlock)));

    assert_eq!(sink.recv_timeout(WAIT).unwrap(), b"one");
    let mut buf = [0u8; 16];
    assert!(matches!(sink.recv_into(&mut buf, Some(BRIEF)), Err(Error::Timeout)));
    assert!(matches!(sink.recv_from(Some(BRIEF)), Err(Error::Timeout)));
    assert!(matches!(sink.recv_into(&mut buf, Some(Duration::ZERO)), Err(Error::Timeout)));

    // Pollers time out with no events.
    let poller = Poller::new();
    poller.add(&sink, Interest::new(Events::IN)).unwrap();
    let mut events = [PollEvent::EMPTY; 4];
    assert_eq!(poller.wait(&mut events, Some(BRIEF)).unwrap(), 0);
    let mut requests = [PollRequest::new(&sink, Events::IN)];
    assert_eq!(a3m::poll(&mut requests, Some(BRIEF)).unwrap(), 0);

    // The credit came back: the second send goes through now.
    source.send_timeout(b"two", WAIT).unwrap();
    assert_eq!(sink.recv_timeout(WAIT).unwrap(), b"two");
}

#[test]
fn misuse_gives_clear_errors() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = b.pull("sink").unwrap();
    let source = a.push("src").unwrap();
    assert!(matches!(sink.send(b"x"), Err(Error::Unsupported(_))));
    assert!(matches!(source.recv_timeout(BRIEF), Err(Error::Unsupported(_))));
    source.link("B/sink").unwrap();
    source.wait_for_link(Some(WAIT)).unwrap();
    let too_big = vec![0u8; source.max_message() + 1];
    assert!(matches!(
        source.send(&too_big),
        Err(Error::MessageTooLarge { size, max }) if size == too_big.len() && max == source.max_message()
    ));
    source.send(&[7; 100]).unwrap();
    let mut small = [0u8; 10];
    assert!(matches!(
        sink.recv_into(&mut small, Some(WAIT)),
        Err(Error::BufferTooSmall { needed: 100 })
    ));
    // The message stayed queued.
    let mut big = [0u8; 100];
    assert_eq!(sink.recv_into(&mut big, Some(WAIT)).unwrap(), 100);
}

#[test]
fn nodes_that_never_spin_still_deliver_and_time_out_and_long_spins_are_refused() {
    let quiet = |id: &str| a3m::NodeBuilder::new(id).spin(Duration::ZERO);
    let b = quiet("B").start().unwrap();
    let a = quiet("A").peer("B", b.local_addr()).start().unwrap();
    let sink = pull(&b, "sink", SocketOptions::new().capacity(4));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    source.wait_for_link(Some(WAIT)).unwrap();
    for n in 0..100u32 {
        source.send_timeout(&n.to_le_bytes(), WAIT).unwrap();
        assert_eq!(sink.recv_timeout(WAIT).unwrap(), n.to_le_bytes());
    }
    assert!(matches!(sink.recv_timeout(BRIEF), Err(Error::Timeout)));

    let refused = a3m::NodeBuilder::new("C").spin(Duration::from_secs(1)).start();
    assert!(matches!(refused, Err(Error::InvalidArgument(_))), "{:?}", refused.err());
    assert_eq!(a3m::DEFAULT_SPIN, Duration::from_micros(50));
}
