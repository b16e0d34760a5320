//! Closing through the public API over UDP loopback: messages in flight are all delivered,
//! a close that times out reports what it dropped, stages of a pipeline see the end of the
//! stream, and a closed socket or node fails every call with `Closed`.

mod socket_support;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use a3m::{Error, Events, LinkEvent, SocketOptions};
use socket_support::{BRIEF, WAIT, eventually, node, node_knowing, number, numbered, pull};

#[test]
fn close_with_messages_in_flight_delivers_them_all() {
    const COUNT: u64 = 5000;
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(50).notify_if_none(true));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    // (The sink has notify-if-none: wait on the sender's side.)
    source.wait_for_link(Some(WAIT)).unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            for n in 0..COUNT {
                source.send(&numbered(n, 100)).unwrap();
            }
            // Most messages are still on their way or waiting at the receiver.
            let report = source.close(WAIT).unwrap();
            assert_eq!(report.aborted_links, 0);
            assert_eq!(report.dropped_messages, 0);
            assert!(matches!(source.send(b"late"), Err(Error::Closed)));
        });
        for n in 0..COUNT {
            assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), n);
        }
        assert!(matches!(sink.recv_timeout(WAIT), Err(Error::NoLinks)));
    });
    assert!(source.readiness().contains(Events::HUP));
}

#[test]
fn a_dropped_socket_still_delivers_what_it_sent() {
    const COUNT: u64 = 500;
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(COUNT as u32).notify_if_none(true));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    // (The sink has notify-if-none: wait on the sender's side.)
    source.wait_for_link(Some(WAIT)).unwrap();
    eventually("credits arrived", || source.links().first().is_some_and(|l| l.credits > 0));
    for n in 0..COUNT {
        source.send(&numbered(n, 8)).unwrap();
    }
    drop(source);
    for n in 0..COUNT {
        assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), n);
    }
    assert!(matches!(sink.recv_timeout(WAIT), Err(Error::NoLinks)));
}

#[test]
fn a_close_that_times_out_reports_the_links_it_dropped() {
    // A peer node that never answers: its address is a socket nobody reads.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = node("A");
    a.add_peer("Z", silent.local_addr().unwrap()).unwrap();
    let source = a.push("src").unwrap();
    source.link("Z/sink").unwrap();
    let report = source.close(Duration::from_millis(100)).unwrap();
    assert_eq!(report.aborted_links, 1, "the unanswered link was dropped");
    // The LINK itself is never acknowledged: the node reports it when it closes.
    assert!(a.close(Duration::from_millis(100)).unwrap().unacknowledged > 0);

    // A receiver that closes while messages wait for it drops them, and says so.
    let b = node("B");
    let c = node_knowing("C", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(10));
    let sender = c.push("src").unwrap();
    sender.link("B/sink").unwrap();
    sink.wait_for_link(Some(WAIT)).unwrap();
    for n in 0..10 {
        sender.send(&numbered(n, 8)).unwrap();
    }
    eventually("the messages arrived", || sink.links().first().is_some_and(|l| l.queued == 10));
    let report = sink.close(Duration::ZERO).unwrap();
    assert_eq!(report.aborted_links, 1);
    assert_eq!(report.dropped_messages, 10);
    // The sender's side of the link closed normally: everything it sent was received.
    eventually("the sender is link-free", || sender.links().is_empty());
}

#[test]
fn each_stage_of_a_pipeline_sees_the_end_of_the_stream() {
    const COUNT: u64 = 10_000;
    let sink_node = node("K");
    let work_node = node_knowing("W", &sink_node);
    let source_node = node_knowing("S", &work_node);
    let eof = SocketOptions::new().notify_if_none(true);
    let sink = pull(&sink_node, "in", eof);
    let work_in = pull(&work_node, "in", eof);
    let work_out = work_node.push("out").unwrap();
    let source = source_node.push("out").unwrap();
    work_out.link("K/in").unwrap();
    source.link("W/in").unwrap();
    // (The receivers have notify-if-none: wait on the senders' side.)
    work_out.wait_for_link(Some(WAIT)).unwrap();
    source.wait_for_link(Some(WAIT)).unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            for n in 0..COUNT {
                source.send(&numbered(n, 16)).unwrap();
            }
            source.unlink("W/in").unwrap();
        });
        s.spawn(|| {
            let mut handled = 0;
            loop {
                match work_in.recv_timeout(WAIT) {
                    Ok(m) => {
                        work_out.send(&numbered(number(&m) * 2, 16)).unwrap();
                        handled += 1;
                    }
                    Err(Error::NoLinks) => break,
                    Err(e) => panic!("worker: {e}"),
                }
            }
            assert_eq!(handled, COUNT, "the worker saw the end only after every message");
            assert_eq!(work_out.close(WAIT).unwrap().aborted_links, 0);
        });
        let mut n = 0;
        loop {
            match sink.recv_timeout(WAIT) {
                Ok(m) => {
                    assert_eq!(number(&m), 2 * n);
                    n += 1;
                }
                Err(Error::NoLinks) => break,
                Err(e) => panic!("sink: {e}"),
            }
        }
        assert_eq!(n, COUNT, "the sink saw the end only after every message");
    });
    let events = sink.events();
    assert!(
        matches!(events.as_slice(), [.., LinkEvent::Closed { .. }, LinkEvent::LinkFree]),
        "{events:?}"
    );
}

#[test]
fn closed_sockets_and_nodes_fail_with_closed() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = Arc::new(b.pull("sink").unwrap());
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    source.wait_for_link(Some(WAIT)).unwrap();
    assert_eq!(source.close(WAIT).unwrap().aborted_links, 0);
    assert!(matches!(source.send(b"x"), Err(Error::Closed)));
    assert!(matches!(source.link("B/sink"), Err(Error::Closed)));
    assert!(matches!(source.wait_for_link(Some(BRIEF)), Err(Error::Closed)));
    assert!(matches!(source.next_event(Some(BRIEF)), Err(Error::Closed)));
    assert!(source.close(WAIT).is_ok(), "closing twice is harmless");

    // A receiver blocked when its node closes is woken with Closed.
    let waiter = {
        let sink = Arc::clone(&sink);
        thread::spawn(move || sink.recv())
    };
    thread::sleep(BRIEF);
    let report = b.close(WAIT).unwrap();
    assert_eq!(report.sockets_open, 0);
    assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
    assert!(matches!(sink.try_recv(), Err(Error::Closed)));
    assert!(sink.readiness().contains(Events::HUP));
}
