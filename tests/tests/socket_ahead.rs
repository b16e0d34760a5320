//! Receiving ahead: from a capacity of 64 up, a receive takes more messages off the links
//! for the receives after it. Nothing may be lost, duplicated or reordered by that, the
//! socket's readiness must still say whether a receive would block, and a short buffer
//! must leave the message queued.

mod socket_support;

use std::collections::HashSet;
use std::sync::Mutex;
use std::thread;

use a3m::{Error, Events, Node, Socket, SocketOptions};
use socket_support::{WAIT, eventually, node, node_knowing, number, numbered, pull};

/// A capacity at which receives take messages ahead.
const CAPACITY: u32 = 256;

/// Nodes B and A, B's pull socket `sink` (capacity [`CAPACITY`]) and A's push socket linking
/// to it: (B, A, sink, source). The nodes must outlive the sockets' use.
fn linked() -> (Node, Node, Socket, Socket) {
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(CAPACITY));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    (b, a, sink, source)
}

#[test]
fn messages_taken_ahead_arrive_once_and_in_order() {
    const COUNT: u64 = 20_000;
    let (_b, _a, sink, source) = linked();
    thread::scope(|s| {
        s.spawn(|| {
            for n in 0..COUNT {
                source.send(&numbered(n, 24)).unwrap();
            }
        });
        // Alternate the three receive calls: they share the messages taken ahead.
        let mut buf = [0u8; 64];
        for n in 0..COUNT {
            let got = match n % 3 {
                0 => sink.recv_timeout(WAIT).unwrap(),
                1 => sink.recv_from(Some(WAIT)).unwrap().0,
                _ => {
                    let len = sink.recv_into(&mut buf, Some(WAIT)).unwrap();
                    buf[..len].to_vec()
                }
            };
            assert_eq!(number(&got), n, "message {n} arrives in order, once");
        }
    });
    assert!(matches!(sink.try_recv(), Err(Error::WouldBlock)));
    assert!(!sink.readiness().contains(Events::IN), "nothing left: not readable");
}

#[test]
fn readiness_clears_when_the_last_message_taken_ahead_is_received() {
    let (_b, _a, sink, source) = linked();
    for n in 0..10 {
        source.send(&numbered(n, 8)).unwrap();
    }
    eventually("ten messages wait", || sink.links().iter().map(|l| l.queued).sum::<usize>() == 10);
    // The first receive takes the other nine ahead: the links hold nothing, yet the socket
    // is still readable until the ninth of them is taken.
    assert_eq!(number(&sink.try_recv().unwrap()), 0);
    for n in 1..10 {
        assert!(sink.readiness().contains(Events::IN), "readable before message {n}");
        assert_eq!(number(&sink.try_recv().unwrap()), n);
    }
    assert!(!sink.readiness().contains(Events::IN));
    assert!(matches!(sink.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn a_short_buffer_leaves_a_message_taken_ahead_queued() {
    let (_b, _a, sink, source) = linked();
    source.send(&numbered(0, 8)).unwrap();
    source.send(&numbered(1, 100)).unwrap();
    eventually("two messages wait", || sink.links().iter().map(|l| l.queued).sum::<usize>() == 2);
    let mut small = [0u8; 16];
    assert_eq!(sink.recv_into(&mut small, Some(WAIT)).unwrap(), 8);
    // The second message was taken ahead by that receive; it is too long for the buffer.
    assert!(matches!(
        sink.recv_into(&mut small, Some(WAIT)),
        Err(Error::BufferTooSmall { needed: 100 })
    ));
    let mut large = [0u8; 128];
    assert_eq!(sink.recv_into(&mut large, Some(WAIT)).unwrap(), 100);
    assert_eq!(number(&large), 1);
}

#[test]
fn threads_sharing_a_socket_split_the_messages_taken_ahead() {
    const COUNT: u64 = 20_000;
    const THREADS: usize = 4;
    let (_b, _a, sink, source) = linked();
    let seen = Mutex::new(HashSet::new());
    thread::scope(|s| {
        s.spawn(|| {
            for n in 0..COUNT {
                source.send(&numbered(n, 16)).unwrap();
            }
        });
        for _ in 0..THREADS {
            s.spawn(|| {
                loop {
                    if seen.lock().unwrap().len() as u64 == COUNT {
                        return;
                    }
                    match sink.recv_timeout(std::time::Duration::from_millis(20)) {
                        Ok(m) => assert!(seen.lock().unwrap().insert(number(&m)), "a duplicate"),
                        Err(Error::Timeout) => {}
                        Err(e) => panic!("receive: {e}"),
                    }
                }
            });
        }
    });
    assert_eq!(seen.into_inner().unwrap().len() as u64, COUNT);
}

#[test]
fn every_blocked_receiver_wakes_for_messages_taken_ahead() {
    const THREADS: usize = 6;
    const BURST: u64 = 40;
    let (_b, _a, sink, source) = linked();
    source.send(&numbered(999, 8)).unwrap();
    assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), 999);
    let got = thread::scope(|s| {
        let receivers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| sink.recv_timeout(std::time::Duration::from_secs(5)).map(|m| number(&m)))
            })
            .collect();
        // Let them all block, then send a burst the first receive takes ahead.
        thread::sleep(std::time::Duration::from_millis(300));
        for n in 0..BURST {
            source.send(&numbered(n, 8)).unwrap();
        }
        receivers.into_iter().map(|r| r.join().unwrap()).collect::<Vec<_>>()
    });
    let failed = got.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "no receiver times out while messages wait: {got:?}");
    // Take the rest, so that the nodes need not linger for them.
    for _ in THREADS as u64..BURST {
        sink.recv_timeout(WAIT).unwrap();
    }
}

#[test]
fn close_reports_messages_taken_ahead_and_never_received() {
    let (_b, _a, sink, source) = linked();
    for n in 0..10 {
        source.send(&numbered(n, 8)).unwrap();
    }
    eventually("ten messages wait", || sink.links().iter().map(|l| l.queued).sum::<usize>() == 10);
    assert_eq!(number(&sink.try_recv().unwrap()), 0);
    // Nine were taken ahead; nobody receives them before the timeout.
    let report = sink.close(std::time::Duration::from_millis(300)).unwrap();
    assert_eq!(report.dropped_messages, 9, "{report:?}");
    assert!(matches!(sink.try_recv(), Err(Error::Closed)));
}
