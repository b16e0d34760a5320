//! The reactor on Linux: wake-ups, deadlines and socket readiness.
#![cfg(target_os = "linux")]

use a3m_platform::reactor::{Event, Events, Interest, Reactor, Token};
use a3m_platform::udp::{RecvBatch, UdpSocket};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Bounds every wait so a missing event fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(5);

fn count(events: &Events, wanted: Event) -> usize {
    events.iter().filter(|e| *e == wanted).count()
}

/// Waits until `wanted` is reported, failing if a wait of `PATIENCE` sees nothing.
fn wait_for(reactor: &mut Reactor, events: &mut Events, wanted: Event) {
    loop {
        reactor.wait(events, Some(PATIENCE)).unwrap();
        assert!(!events.is_empty(), "no event within {PATIENCE:?} while waiting for {wanted:?}");
        if events.contains(wanted) {
            return;
        }
    }
}

fn loopback() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap()
}

#[test]
fn wake_from_another_thread_interrupts_wait() {
    let mut reactor = Reactor::new().unwrap();
    let waker = reactor.waker();
    let waking = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        waker.wake().unwrap();
    });
    let mut events = Events::new();
    reactor.wait(&mut events, Some(PATIENCE)).unwrap();
    assert_eq!(count(&events, Event::Woken), 1, "events: {events:?}");
    waking.join().unwrap();
}

#[test]
fn many_wakes_coalesce_into_one_event() {
    let mut reactor = Reactor::new().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let waker = reactor.waker();
            thread::spawn(move || (0..250).for_each(|_| waker.wake().unwrap()))
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let mut events = Events::new();
    reactor.wait(&mut events, Some(PATIENCE)).unwrap();
    assert_eq!(count(&events, Event::Woken), 1, "events: {events:?}");
    reactor.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty(), "a second event for coalesced wakes: {events:?}");
    // The reported wake re-enables notification.
    reactor.waker().wake().unwrap();
    reactor.wait(&mut events, Some(PATIENCE)).unwrap();
    assert_eq!(count(&events, Event::Woken), 1, "events: {events:?}");
}

#[test]
fn no_wake_is_lost_under_contention() {
    const LAST: u64 = 20_000;
    let mut reactor = Reactor::new().unwrap();
    let published = Arc::new(AtomicU64::new(0));
    let producer = {
        let (waker, published) = (reactor.waker(), published.clone());
        thread::spawn(move || {
            for i in 1..=LAST {
                published.store(i, Ordering::Release);
                waker.wake().unwrap();
            }
        })
    };
    let mut events = Events::new();
    let mut wakes = 0u64;
    while published.load(Ordering::Acquire) < LAST || wakes == 0 {
        reactor.wait(&mut events, Some(PATIENCE)).unwrap();
        assert!(events.contains(Event::Woken), "lost wake-up: {events:?}");
        wakes += 1;
    }
    producer.join().unwrap();
    assert!(wakes <= LAST);
}

#[test]
fn waker_outlives_reactor() {
    let reactor = Reactor::new().unwrap();
    let waker = reactor.waker();
    drop(reactor);
    waker.wake().unwrap();
    waker.clone().wake().unwrap();
}

#[test]
fn deadline_fires_and_not_early() {
    let mut reactor = Reactor::new().unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_millis(50);
    reactor.set_deadline(Some(deadline)).unwrap();
    assert_eq!(reactor.deadline(), Some(deadline));
    let mut events = Events::new();
    wait_for(&mut reactor, &mut events, Event::Deadline);
    let now = Instant::now();
    assert!(now >= deadline, "deadline reported {:?} early", deadline - now);
    assert!(now - start < PATIENCE);
    assert_eq!(reactor.deadline(), None);
    assert_eq!(count(&events, Event::Deadline), 1);
    // Reported once: nothing more until a new deadline.
    reactor.wait(&mut events, Some(Duration::from_millis(100))).unwrap();
    assert!(!events.contains(Event::Deadline), "deadline reported twice: {events:?}");
}

#[test]
fn replaced_deadline_fires_at_the_new_time() {
    let mut reactor = Reactor::new().unwrap();
    reactor.set_deadline(Some(Instant::now() + Duration::from_millis(10))).unwrap();
    let later = Instant::now() + Duration::from_millis(120);
    reactor.set_deadline(Some(later)).unwrap();
    let mut events = Events::new();
    wait_for(&mut reactor, &mut events, Event::Deadline);
    assert!(Instant::now() >= later);
}

#[test]
fn expired_then_replaced_deadline_is_not_reported_early() {
    let mut reactor = Reactor::new().unwrap();
    reactor.set_deadline(Some(Instant::now() + Duration::from_millis(1))).unwrap();
    // Let the OS timer expire without waiting on it, then move the deadline.
    thread::sleep(Duration::from_millis(30));
    let later = Instant::now() + Duration::from_millis(100);
    reactor.set_deadline(Some(later)).unwrap();
    let mut events = Events::new();
    wait_for(&mut reactor, &mut events, Event::Deadline);
    assert!(Instant::now() >= later);
}

#[test]
fn cleared_deadline_does_not_fire() {
    let mut reactor = Reactor::new().unwrap();
    reactor.set_deadline(Some(Instant::now() + Duration::from_millis(20))).unwrap();
    reactor.set_deadline(None).unwrap();
    let mut events = Events::new();
    reactor.wait(&mut events, Some(Duration::from_millis(150))).unwrap();
    assert!(!events.contains(Event::Deadline), "cleared deadline fired: {events:?}");
}

#[test]
fn past_deadline_fires_on_the_next_wait() {
    let mut reactor = Reactor::new().unwrap();
    let past = Instant::now();
    thread::sleep(Duration::from_millis(2));
    reactor.set_deadline(Some(past)).unwrap();
    let mut events = Events::new();
    wait_for(&mut reactor, &mut events, Event::Deadline);
}

#[test]
fn same_deadline_again_after_it_fired_fires_again() {
    let mut reactor = Reactor::new().unwrap();
    let deadline = Instant::now() + Duration::from_millis(5);
    let mut events = Events::new();
    reactor.set_deadline(Some(deadline)).unwrap();
    wait_for(&mut reactor, &mut events, Event::Deadline);
    reactor.set_deadline(Some(deadline)).unwrap();
    wait_for(&mut reactor, &mut events, Event::Deadline);
}

#[test]
fn wake_and_deadline_together() {
    let mut reactor = Reactor::new().unwrap();
    reactor.set_deadline(Some(Instant::now())).unwrap();
    reactor.waker().wake().unwrap();
    thread::sleep(Duration::from_millis(5));
    let mut events = Events::new();
    let mut seen = (false, false);
    while !(seen.0 && seen.1) {
        reactor.wait(&mut events, Some(PATIENCE)).unwrap();
        assert!(!events.is_empty());
        seen.0 |= events.contains(Event::Woken);
        seen.1 |= events.contains(Event::Deadline);
    }
}

#[test]
fn udp_socket_becomes_readable_when_a_datagram_arrives() {
    let mut reactor = Reactor::new().unwrap();
    let receiver = loopback();
    let sender = loopback();
    reactor.register(&receiver, Token(7), Interest::READABLE).unwrap();
    let mut events = Events::new();
    reactor.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty(), "readable before any datagram: {events:?}");

    sender.send_to(b"ping", receiver.local_addr().unwrap()).unwrap();
    wait_for(&mut reactor, &mut events, Event::Readable(Token(7)));
    // Level-triggered: still readable until read.
    reactor.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.contains(Event::Readable(Token(7))));

    let mut batch = RecvBatch::new(8, 64);
    assert_eq!(receiver.recv_batch(&mut batch).unwrap(), 1);
    assert_eq!(batch.get(0).unwrap().data, b"ping");
    let err = receiver.recv_batch(&mut batch).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    reactor.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty(), "readable after draining: {events:?}");
}

#[test]
fn writable_interest_can_be_changed_and_removed() {
    let mut reactor = Reactor::new().unwrap();
    let socket = loopback();
    let sender = loopback();
    let mut events = Events::new();

    reactor.register(&socket, Token(1), Interest::READABLE | Interest::WRITABLE).unwrap();
    wait_for(&mut reactor, &mut events, Event::Writable(Token(1)));
    assert!(!events.contains(Event::Readable(Token(1))));

    reactor.reregister(&socket, Token(2), Interest::READABLE).unwrap();
    reactor.wait(&mut events, Some(Duration::ZERO)).unwrap();
    assert!(events.is_empty(), "events: {events:?}");
    sender.send_to(b"x", socket.local_addr().unwrap()).unwrap();
    wait_for(&mut reactor, &mut events, Event::Readable(Token(2)));
    assert!(!events.contains(Event::Writable(Token(2))));

    reactor.deregister(&socket).unwrap();
    reactor.wait(&mut events, Some(Duration::from_millis(20))).unwrap();
    assert!(events.is_empty(), "events after deregister: {events:?}");
}

#[test]
fn registering_twice_fails() {
    let reactor = Reactor::new().unwrap();
    let socket = loopback();
    reactor.register(&socket, Token(1), Interest::READABLE).unwrap();
    let err = reactor.register(&socket, Token(1), Interest::READABLE).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
}

#[test]
fn small_event_storage_reports_the_rest_next_time() {
    let mut reactor = Reactor::new().unwrap();
    let sender = loopback();
    let sockets: Vec<_> = (0..3).map(|_| loopback()).collect();
    for (i, socket) in sockets.iter().enumerate() {
        reactor.register(socket, Token(i), Interest::READABLE).unwrap();
        sender.send_to(b"x", socket.local_addr().unwrap()).unwrap();
    }
    let mut events = Events::with_capacity(1);
    reactor.wait(&mut events, Some(PATIENCE)).unwrap();
    assert_eq!(events.len(), 1);
    // Level-triggered sockets not reported stay ready: three waits see all three.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let Some(Event::Readable(token)) = events.iter().next() else {
            panic!("unexpected events: {events:?}");
        };
        seen.insert(token);
        let mut batch = RecvBatch::new(1, 8);
        sockets[token.0].recv_batch(&mut batch).unwrap();
        reactor.wait(&mut events, Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(seen.len(), 3);
}

#[test]
fn types_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Reactor>();
    send_sync::<a3m_platform::reactor::ReactorWaker>();
    send_sync::<Events>();
}
