//! Credit flow control and order through the public API over UDP loopback: the receive
//! queue never exceeds the capacity, capacity changes at run time reach the sender, and
//! 100,000 messages arrive in order.

mod socket_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use a3m::{Error, SocketOptions};
use socket_support::{WAIT, eventually, node, node_knowing, number, numbered, pull};

/// Messages waiting in a socket's links.
fn queued(socket: &a3m::Socket) -> usize {
    socket.links().iter().map(|l| l.queued).sum()
}

#[test]
fn the_receive_queue_never_exceeds_the_capacity() {
    const CAPACITY: u32 = 5;
    const COUNT: u64 = 300;
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(CAPACITY).credit_batch_percent(40));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            for n in 0..COUNT {
                source.send(&numbered(n, 32)).unwrap();
            }
            done.store(true, Ordering::Release);
        });
        // The receiver is slow: it looks at its queue before every message.
        let mut most = 0;
        for n in 0..COUNT {
            if n % 50 == 0 {
                eventually("the sender fills the queue", || queued(&sink) == CAPACITY as usize);
            }
            let q = queued(&sink);
            most = most.max(q);
            assert!(q <= CAPACITY as usize, "{q} messages queued with a capacity of {CAPACITY}");
            for link in source.links() {
                assert!(link.credits <= i64::from(CAPACITY), "sender credits {}", link.credits);
            }
            assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), n);
        }
        assert_eq!(most, CAPACITY as usize);
    });
    assert!(done.load(Ordering::Acquire));
}

#[test]
fn capacity_changes_at_run_time_reach_the_sender() {
    const COUNT: u64 = 2000;
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(2));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            for n in 0..COUNT {
                source.send(&numbered(n, 16)).unwrap();
            }
        });
        eventually("two messages wait", || queued(&sink) == 2);
        eventually("the sender is out of credits", || {
            source.links().first().is_some_and(|l| l.credits == 0)
        });

        // More room: the sender may fill it, and no more.
        sink.set_capacity(50).unwrap();
        assert_eq!(sink.options().unwrap().capacity, 50);
        assert_eq!(sink.links()[0].capacity, 50);
        eventually("fifty messages wait", || queued(&sink) == 50);
        assert_eq!(source.links()[0].credits, 0);

        // Less room: what was sent still arrives, and the sender's credits shrink.
        sink.set_capacity(10).unwrap();
        assert_eq!(sink.links()[0].capacity, 10);
        let mut next = 0;
        while next < COUNT {
            let q = queued(&sink);
            assert!(q <= 50, "{q} messages queued; the capacity was never above 50");
            assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), next);
            next += 1;
        }
    });
    // All taken and the sender idle: it holds at most the new capacity in credits.
    eventually("the sender's credits settle", || {
        source.links().first().is_some_and(|l| (8..=10).contains(&l.credits))
    });
    assert!(matches!(sink.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn a_hundred_thousand_messages_arrive_in_order_over_udp() {
    const COUNT: u64 = 100_000;
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(1000).notify_if_none(true));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    // (The sink has notify-if-none: wait on the sender's side.)
    source.wait_for_link(Some(WAIT)).unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            for n in 0..COUNT {
                source.send(&numbered(n, 64)).unwrap();
            }
            let report = source.close(WAIT).unwrap();
            assert_eq!(report.aborted_links, 0);
        });
        let mut buf = vec![0u8; 2048];
        for n in 0..COUNT {
            let len = sink.recv_into(&mut buf, Some(WAIT)).unwrap();
            assert_eq!(len, 64);
            assert_eq!(number(&buf[..len]), n, "message {n} out of order");
        }
        assert!(matches!(sink.recv_into(&mut buf, Some(WAIT)), Err(Error::NoLinks)));
    });
}

#[test]
fn many_threads_share_a_socket() {
    const PER_THREAD: u64 = 2000;
    const THREADS: u64 = 4;
    let b = node("B");
    let a = node_knowing("A", &b);
    let sink = pull(&b, "sink", SocketOptions::new().capacity(16).notify_if_none(true));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    // (The sink has notify-if-none: wait on the sender's side.)
    source.wait_for_link(Some(WAIT)).unwrap();
    let received = thread::scope(|s| {
        for t in 0..THREADS {
            let source = &source;
            s.spawn(move || {
                for n in 0..PER_THREAD {
                    source.send(&numbered(t * PER_THREAD + n, 16)).unwrap();
                }
            });
        }
        let receivers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        match sink.recv_timeout(WAIT) {
                            Ok(m) => got.push(number(&m)),
                            Err(Error::NoLinks) => return got,
                            Err(e) => panic!("receive: {e}"),
                        }
                    }
                })
            })
            .collect();
        eventually("everything is sent", || {
            source.links().first().is_some_and(|l| l.sent == THREADS * PER_THREAD)
        });
        source.unlink("B/sink").unwrap();
        receivers.into_iter().flat_map(|r| r.join().unwrap()).collect::<Vec<_>>()
    });
    let mut sorted = received.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..THREADS * PER_THREAD).collect::<Vec<_>>(), "each message exactly once");
}

#[test]
fn messages_the_transport_cannot_take_yet_wait_in_order() {
    // The transport queues at most 2 payloads per peer: with 1000 credits, most messages
    // wait in the socket layer's held queue for B before the transport takes them.
    const COUNT: u64 = 3000;
    let b = node("B");
    let a = a3m::NodeBuilder::new("A")
        .peer(b.id().as_str(), b.local_addr())
        .linger(std::time::Duration::from_secs(5))
        .configure(|c| c.max_queued = 2)
        .start()
        .expect("node starts");
    let sink = pull(&b, "sink", SocketOptions::new().capacity(1000));
    let source = a.push("src").unwrap();
    source.link("B/sink").unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            for n in 0..COUNT {
                source.send(&numbered(n, 32)).unwrap();
            }
        });
        for n in 0..COUNT {
            assert_eq!(number(&sink.recv_timeout(WAIT).unwrap()), n);
        }
    });
}
