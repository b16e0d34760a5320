//! Synchronized publish-subscribe over UDP loopback, through the public API: 1, 10 and 100
//! subscribers with different topics, one of them slow. Nobody loses a message, each gets
//! every matching message exactly once and in order, and the publisher slows to the slow
//! one's pace; a blocked publish sleeps rather than spins; an xsub/xpub broker forwards
//! publications one way and subscriptions the other. Every test finishes within
//! [`WAIT`] (each receive and publish is bounded by it, and the runs by [`RUN_BOUND`]).

mod socket_support;

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use a3m::{Error, Events, Interest, PollEvent, Poller, SubSocket, Subscription};
use socket_support::{WAIT, node, node_knowing};

/// The longest a whole fan-out run may take (debug build, shared machine).
const RUN_BOUND: Duration = Duration::from_secs(20);

/// Message `n`'s topic: `a.<n%4>` for even numbers, `b.<n%4>` for odd ones.
fn topic(n: u64) -> Vec<u8> {
    format!("{}.{}", if n.is_multiple_of(2) { "a" } else { "b" }, n % 4).into_bytes()
}

/// Subscriber `i`'s prefix: everything, the a's, or the b's.
fn prefix(i: usize) -> &'static [u8] {
    [&b""[..], b"a.", b"b."][i % 3]
}

/// Checks that a subscriber got exactly the messages of its prefix, in order.
fn check(i: usize, got: &[u64], count: u64) {
    let want: Vec<u64> = (0..count).filter(|&n| topic(n).starts_with(prefix(i))).collect();
    assert_eq!(got, want, "subscriber {i} (prefix {:?})", String::from_utf8_lossy(prefix(i)));
}

/// Receives a publication and checks its topic; returns its number.
fn take(i: usize, s: &SubSocket) -> Option<u64> {
    match s.try_recv() {
        Ok(m) => {
            let n = u64::from_le_bytes(m.payload[..8].try_into().unwrap());
            assert_eq!(m.topic, topic(n), "subscriber {i}");
            Some(n)
        }
        Err(Error::WouldBlock) => None,
        Err(e) => panic!("subscriber {i}: {e}"),
    }
}

/// One publisher, `subs` subscribers (subscriber 0, subscribed to everything, takes
/// `pause` per message with a window of 4), `count` messages.
fn fan_out(subs: usize, count: u64, pause: Duration) {
    const SLOW_WINDOW: u32 = 4;
    let started = Instant::now();
    let p = node("P");
    let s = node_knowing("S", &p);
    let publisher = p.publisher("pub").unwrap();
    let sockets: Vec<SubSocket> = (0..subs)
        .map(|i| {
            let sub = s.subscriber(&format!("sub{i}")).unwrap();
            if i == 0 {
                sub.set_options(sub.options().unwrap().capacity(SLOW_WINDOW)).unwrap();
            }
            sub.subscribe(prefix(i)).unwrap();
            sub.link("P/pub").unwrap();
            sub
        })
        .collect();
    publisher.wait_for_subscribers(subs, WAIT).unwrap();
    let (slow, fast) = sockets.split_first().unwrap();

    let publish_time = thread::scope(|scope| {
        let slow_thread = scope.spawn(move || {
            let mut got = Vec::new();
            while (got.len() as u64) < count {
                let m = slow.recv_timeout(WAIT).expect("the slow subscriber's message");
                got.push(u64::from_le_bytes(m.payload[..8].try_into().unwrap()));
                thread::sleep(pause);
            }
            got
        });
        let fast_thread = scope.spawn(move || {
            let poller = Poller::new();
            let mut index = HashMap::new();
            for (i, sub) in fast.iter().enumerate() {
                poller.add(sub.as_socket(), Interest::new(Events::IN)).unwrap();
                index.insert(sub.as_socket().poll_id(), i);
            }
            let mut got: Vec<Vec<u64>> = vec![Vec::new(); fast.len()];
            let want: Vec<usize> = (1..=fast.len())
                .map(|i| (0..count).filter(|&n| topic(n).starts_with(prefix(i))).count())
                .collect();
            let deadline = Instant::now() + WAIT;
            let mut events = vec![PollEvent::EMPTY; 64];
            while got.iter().zip(&want).any(|(g, w)| g.len() < *w) {
                assert!(Instant::now() < deadline, "the fast subscribers did not finish");
                let n = poller.wait(&mut events, Some(Duration::from_millis(100))).unwrap();
                for ev in &events[..n] {
                    let i = index[&ev.id];
                    while let Some(m) = take(i + 1, &fast[i]) {
                        got[i].push(m);
                    }
                }
            }
            got
        });
        let t0 = Instant::now();
        for n in 0..count {
            let mut payload = n.to_le_bytes().to_vec();
            payload.resize(32, 0x5A);
            publisher.publish_timeout(&topic(n), &payload, WAIT).expect("publish");
        }
        let publish_time = t0.elapsed();
        check(0, &slow_thread.join().unwrap(), count);
        for (i, got) in fast_thread.join().unwrap().iter().enumerate() {
            check(i + 1, got, count);
        }
        publish_time
    });
    // The slow subscriber sets the pace: all but its window (and the messages it held when
    // the last publish went) waited for it.
    let paced = pause * (count as u32 - 2 * SLOW_WINDOW);
    assert!(publish_time >= paced, "published in {publish_time:?}, faster than {paced:?}");
    // Nothing stays queued anywhere; the subscribers have nothing more.
    for (i, sub) in sockets.iter().enumerate() {
        assert!(matches!(sub.try_recv(), Err(Error::WouldBlock)), "subscriber {i} has extra");
    }
    assert!(started.elapsed() < RUN_BOUND, "took {:?}", started.elapsed());
}

#[test]
fn one_slow_subscriber() {
    fan_out(1, 1000, Duration::from_micros(300));
}

#[test]
fn ten_subscribers_one_slow() {
    fan_out(10, 600, Duration::from_micros(500));
}

#[test]
fn a_hundred_subscribers_one_slow() {
    fan_out(100, 200, Duration::from_millis(1));
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    Duration::from_nanos(stat.split_whitespace().next().unwrap().parse().unwrap())
}

#[test]
fn a_blocked_publish_sleeps_and_times_out_having_sent_to_nobody() {
    let p = node("P");
    let s = node_knowing("S", &p);
    let publisher = p.publisher("pub").unwrap();
    let stuck = s.subscriber("stuck").unwrap();
    stuck.set_options(stuck.options().unwrap().capacity(1)).unwrap();
    let other = s.subscriber("other").unwrap();
    for sub in [&stuck, &other] {
        sub.subscribe(b"").unwrap();
        sub.link("P/pub").unwrap();
    }
    publisher.wait_for_subscribers(2, WAIT).unwrap();
    publisher.publish(b"t", b"0").unwrap();
    // OUT says some publish may go (the other subscriber has credits); this one cannot.
    assert!(matches!(publisher.try_publish(b"t", b"x"), Err(Error::WouldBlock)));
    let cpu = thread_cpu();
    let t0 = Instant::now();
    let blocked = publisher.publish_timeout(b"t", b"1", Duration::from_millis(500));
    let waited = t0.elapsed();
    let used = thread_cpu() - cpu;
    assert!(matches!(blocked, Err(Error::Timeout)), "{blocked:?}");
    assert!(waited >= Duration::from_millis(500));
    assert!(used < Duration::from_millis(100), "a blocked publish used {used:?} of CPU");
    // Sent to nobody: the other subscriber has only the first message.
    assert_eq!(other.recv_timeout(WAIT).unwrap().payload, b"0");
    assert!(matches!(other.recv_timeout(Duration::from_millis(50)), Err(Error::Timeout)));
    // A publish waiting for the stuck one goes as soon as it reads.
    thread::scope(|scope| {
        let waiting = scope.spawn(|| publisher.publish_timeout(b"t", b"2", WAIT));
        thread::sleep(Duration::from_millis(50));
        assert_eq!(stuck.recv_timeout(WAIT).unwrap().payload, b"0");
        waiting.join().unwrap().unwrap();
    });
    assert_eq!(stuck.recv_timeout(WAIT).unwrap().payload, b"2");
    assert_eq!(other.recv_timeout(WAIT).unwrap().payload, b"2");
}

#[test]
fn a_broker_forwards_publications_and_subscriptions() {
    let source = node("source");
    let broker = node_knowing("broker", &source);
    let readers = node_knowing("readers", &broker);
    let back = broker.xsub("back").unwrap();
    let front = broker.xpub("front").unwrap();
    back.link("source/news").unwrap();
    let news = source.publisher("news").unwrap();
    let a = readers.subscriber("a").unwrap();
    let b = readers.subscriber("b").unwrap();
    a.subscribe(b"x").unwrap();
    b.subscribe(b"x").unwrap();
    b.subscribe(b"y").unwrap();
    a.link("broker/front").unwrap();
    b.link("broker/front").unwrap();
    // Three subscription messages reach the broker; forwarded, they make two upstream.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let s = front.recv_subscription(Some(WAIT)).unwrap();
        back.send_subscription(&s).unwrap();
        seen.push(s);
    }
    seen.sort_by(|l, r| l.topic.cmp(&r.topic));
    let sub = |t: &[u8]| Subscription { subscribe: true, topic: t.to_vec() };
    assert_eq!(seen, [sub(b"x"), sub(b"x"), sub(b"y")]);
    let deadline = Instant::now() + WAIT;
    while news.subscriptions().unwrap() < 2 {
        assert!(Instant::now() < deadline, "the broker's subscriptions did not arrive");
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(news.subscribers().unwrap(), 1);
    for (t, body) in [(&b"x1"[..], &b"one"[..]), (b"z", b"none"), (b"y1", b"two")] {
        news.publish_timeout(t, body, WAIT).unwrap();
        // The broker forwards what its back end receives.
        if t != b"z" {
            let frames = back.recv_multipart(Some(WAIT)).unwrap();
            front.publish_multipart_timeout(&frames[0], &frames[1..], WAIT).unwrap();
        }
    }
    assert!(matches!(back.recv_multipart(Some(Duration::from_millis(50))), Err(Error::Timeout)));
    assert_eq!(a.recv_timeout(WAIT).unwrap().payload, b"one");
    assert_eq!(b.recv_timeout(WAIT).unwrap().payload, b"one");
    assert_eq!(b.recv_timeout(WAIT).unwrap().payload, b"two");
    // One subscriber leaves: its unsubscription reaches the broker; "x" stays upstream
    // (counted) while the other still wants it.
    a.close(WAIT).unwrap();
    let gone = front.recv_subscription(Some(WAIT)).unwrap();
    assert_eq!(gone, Subscription { subscribe: false, topic: b"x".to_vec() });
    back.send_subscription(&gone).unwrap();
    b.unsubscribe(b"x").unwrap();
    let gone = front.recv_subscription(Some(WAIT)).unwrap();
    back.send_subscription(&gone).unwrap();
    let deadline = Instant::now() + WAIT;
    while news.subscriptions().unwrap() != 1 {
        assert!(Instant::now() < deadline, "the last unsubscription did not arrive");
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_blocked_publish_goes_when_its_subscribers_free_whatever_the_others_do() {
    // "a" has one subscriber, "b" another that never reads: a publish on "a" waiting for its
    // subscriber must go as soon as that one reads.
    let n = node("N");
    let publisher = n.publisher("pub").unwrap();
    let s1 = n.subscriber("s1").unwrap();
    let s2 = n.subscriber("s2").unwrap();
    for (s, t) in [(&s1, b"a"), (&s2, b"b")] {
        s.set_options(s.options().unwrap().capacity(4)).unwrap();
        s.subscribe(t).unwrap();
        s.link("N/pub").unwrap();
    }
    publisher.wait_for_subscribers(2, WAIT).unwrap();
    while publisher.try_publish(b"b", b"x").is_ok() {}
    let mut queued = 0;
    while publisher.try_publish(b"a", b"x").is_ok() {
        queued += 1;
    }
    thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let started = Instant::now();
            (publisher.publish_timeout(b"a", b"y", WAIT), started)
        });
        thread::sleep(Duration::from_millis(100));
        for _ in 0..queued {
            s1.recv_timeout(WAIT).unwrap();
        }
        let freed = Instant::now();
        let (result, _) = waiting.join().unwrap();
        result.expect("the publish went once its subscriber read");
        assert!(freed.elapsed() < Duration::from_secs(2), "woken late: {:?}", freed.elapsed());
    });
    assert_eq!(s1.recv_timeout(WAIT).unwrap().payload, b"y");
}

#[test]
fn a_subscriber_blocked_in_recv_hears_of_a_refused_subscription() {
    let n = node("Q");
    let _publisher = n.socket("pub", a3m::Pub::new().with_max_subscriptions(1)).unwrap();
    let s = n.subscriber("s").unwrap();
    s.subscribe(b"a").unwrap();
    s.link("Q/pub").unwrap();
    s.wait_for_link(Some(WAIT)).unwrap();
    thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(Duration::from_millis(200));
            s.subscribe(b"b").unwrap();
        });
        let started = Instant::now();
        let got = s.recv_timeout(WAIT);
        assert!(matches!(got, Err(Error::Refused(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "woken late: {:?}", started.elapsed());
    });
}
