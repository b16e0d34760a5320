//! Pollers and one-shot polls with real threads, through the public API only.
#![cfg(all(feature = "alloc", not(loom)))]

use a3m_core::poll::{
    Events, Interest, PollError, PollEvent, PollId, PollRequest, PollSource, Pollable, Poller, poll,
};
use a3m_core::time::Instant;
use a3m_core::wait::{SleepOutcome, Sleeper, WaitQueue, Waiters};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::task::{Wake, Waker};
use std::thread;
use std::time::Duration;

/// A minimal thread sleeper for these tests (the real one is `a3m_platform::parker`).
struct ThreadSleeper(Arc<Unparker>);

struct Unparker {
    thread: thread::Thread,
    notified: AtomicBool,
}

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

fn now() -> Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    Instant::from_micros(epoch.elapsed().as_micros() as u64)
}

impl ThreadSleeper {
    fn new() -> Self {
        Self(Arc::new(Unparker { thread: thread::current(), notified: AtomicBool::new(false) }))
    }
}

impl Sleeper for ThreadSleeper {
    fn waker(&self) -> Waker {
        Waker::from(self.0.clone())
    }
    fn sleep_until(&self, deadline: Option<Instant>) -> SleepOutcome {
        loop {
            if self.0.notified.swap(false, Ordering::Acquire) {
                return SleepOutcome::Woken;
            }
            match deadline {
                None => thread::park(),
                Some(d) if now() >= d => return SleepOutcome::TimedOut,
                Some(d) => thread::park_timeout(d - now()),
            }
        }
    }
}

/// Runs `f` on a thread and fails the test, instead of hanging, if it takes over `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(f()).expect("test body outlived its receiver"));
    rx.recv_timeout(limit).expect("test body hung: an event or wake-up was lost")
}

/// A pollable implemented directly: a count of pending messages, readable while non-zero.
struct Mailbox {
    id: PollId,
    pending: AtomicUsize,
    closed: AtomicBool,
    queue: WaitQueue<4>,
}

impl Mailbox {
    fn new(id: u64) -> Self {
        Self {
            id: PollId(id),
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            queue: WaitQueue::new(),
        }
    }

    fn push(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.queue.wake(Events::IN.bits(), 1);
    }

    fn try_take(&self) -> bool {
        self.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok()
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.queue.close(Events::HUP.bits());
    }
}

impl Pollable for Mailbox {
    fn id(&self) -> PollId {
        self.id
    }
    fn events(&self) -> Events {
        let mut events = Events::empty();
        if self.pending.load(Ordering::Acquire) > 0 {
            events |= Events::IN;
        }
        if self.closed.load(Ordering::Acquire) {
            events |= Events::HUP;
        }
        events
    }
    fn waiters(&self) -> &dyn Waiters {
        &self.queue
    }
}

/// Several threads drain several mailboxes through one edge-triggered poller while producers
/// fill them: every message is taken exactly once, every hang-up reported, nobody hangs.
fn drain_through_one_poller(interest: Interest) {
    const MAILBOXES: u64 = 4;
    const MESSAGES: usize = 2_000;
    const CONSUMERS: usize = 3;
    within(Duration::from_secs(60), move || {
        let poller = Arc::new(Poller::new());
        let mailboxes: Vec<Arc<Mailbox>> =
            (0..MAILBOXES).map(|id| Arc::new(Mailbox::new(id))).collect();
        for mailbox in &mailboxes {
            poller.add(mailbox.clone(), interest).unwrap();
        }
        let by_id: Arc<HashMap<PollId, Arc<Mailbox>>> =
            Arc::new(mailboxes.iter().map(|m| (m.id, m.clone())).collect());
        let taken = Arc::new(AtomicUsize::new(0));
        let hang_ups = Arc::new(AtomicUsize::new(0));
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let (poller, by_id) = (poller.clone(), by_id.clone());
                let (taken, hang_ups) = (taken.clone(), hang_ups.clone());
                thread::spawn(move || {
                    let sleeper = ThreadSleeper::new();
                    let mut out = [PollEvent::EMPTY; 2];
                    loop {
                        let n = match poller.wait(&mut out, &sleeper, None) {
                            Ok(n) => n,
                            Err(PollError::Closed) => return,
                            Err(e) => panic!("wait failed: {e}"),
                        };
                        for event in &out[..n] {
                            let mailbox = &by_id[&event.id];
                            // Edge-triggered: drain until it would block.
                            while mailbox.try_take() {
                                taken.fetch_add(1, Ordering::AcqRel);
                            }
                            if event.events.contains(Events::HUP) {
                                hang_ups.fetch_add(1, Ordering::AcqRel);
                            }
                            if interest.is_oneshot() && !event.events.contains(Events::HUP) {
                                // Re-arm (it may have been dropped after a hang-up meanwhile).
                                match poller.modify(event.id, interest) {
                                    Ok(()) | Err(PollError::NotFound) => {}
                                    Err(e) => panic!("modify failed: {e}"),
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        let producers: Vec<_> = mailboxes
            .iter()
            .map(|mailbox| {
                let mailbox = mailbox.clone();
                thread::spawn(move || {
                    for _ in 0..MESSAGES {
                        mailbox.push();
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.join().unwrap();
        }
        for mailbox in &mailboxes {
            mailbox.close();
        }
        while !poller.is_empty() {
            thread::sleep(Duration::from_millis(1));
        }
        poller.close();
        for consumer in consumers {
            consumer.join().unwrap();
        }
        assert_eq!(taken.load(Ordering::Acquire), MAILBOXES as usize * MESSAGES);
        assert_eq!(hang_ups.load(Ordering::Acquire), MAILBOXES as usize);
    });
}

#[test]
fn edge_triggered_poller_delivers_every_message_once() {
    drain_through_one_poller(Interest::new(Events::IN).edge_triggered());
}

#[test]
fn level_triggered_poller_delivers_every_message_once() {
    drain_through_one_poller(Interest::new(Events::IN));
}

#[test]
fn oneshot_poller_delivers_every_message_once() {
    drain_through_one_poller(Interest::new(Events::IN).edge_triggered().oneshot());
}

#[test]
fn exclusive_pollers_split_the_events() {
    within(Duration::from_secs(60), || {
        const EVENTS: usize = 500;
        let source = Arc::new(PollSource::<4>::new(PollId(7)));
        let pollers: Vec<Arc<Poller>> = (0..2).map(|_| Arc::new(Poller::new())).collect();
        for poller in &pollers {
            poller
                .add(source.clone(), Interest::new(Events::IN).edge_triggered().exclusive())
                .unwrap();
        }
        // One poller per event: the first two events wake one poller each, later ones find
        // both already woken (not yet reported) and coalesce.
        let woken: Vec<usize> = (0..EVENTS).map(|_| source.raise(Events::IN).total()).collect();
        assert_eq!(woken[..2], [1, 1]);
        assert!(woken[2..].iter().all(|w| *w == 0));
        let mut out = [PollEvent::EMPTY; 1];
        for poller in &pollers {
            assert_eq!(poller.try_wait(&mut out), Ok(1));
            assert_eq!(poller.try_wait(&mut out), Ok(0));
        }
        source.close(false);
        for poller in &pollers {
            assert_eq!(poller.try_wait(&mut out), Ok(1));
            assert_eq!(out[0].events, Events::IN | Events::HUP);
            assert!(poller.is_empty());
        }
    });
}

#[test]
fn blocked_wait_times_out_with_no_events() {
    let poller = Poller::new();
    let source = Arc::new(PollSource::<2>::new(PollId(1)));
    poller.add(source, Interest::new(Events::IN)).unwrap();
    let mut out = [PollEvent::EMPTY; 4];
    let deadline = now() + Duration::from_millis(5);
    assert_eq!(poller.wait(&mut out, &ThreadSleeper::new(), Some(deadline)), Ok(0));
}

#[test]
fn one_shot_poll_wakes_on_any_listed_pollable() {
    within(Duration::from_secs(60), || {
        let sources: Arc<Vec<PollSource<2>>> =
            Arc::new((0..3).map(|id| PollSource::new(PollId(id))).collect());
        let poller_thread = {
            let sources = sources.clone();
            thread::spawn(move || {
                let mut list: Vec<PollRequest<'_>> =
                    sources.iter().map(|s| PollRequest::new(s, Events::IN)).collect();
                let n = poll(&mut list, &ThreadSleeper::new(), None).unwrap();
                let found: Vec<_> = list.iter().map(|r| r.found()).collect();
                (n, found)
            })
        };
        while sources[2].queue().is_empty() {
            thread::yield_now();
        }
        sources[2].raise(Events::IN | Events::OUT);
        let (n, found) = poller_thread.join().unwrap();
        assert_eq!(n, 1);
        assert_eq!(found, [Events::empty(), Events::empty(), Events::IN]);
        assert!(sources.iter().all(|s| s.queue().is_empty()));
    });
}

#[test]
fn one_shot_poll_times_out() {
    let source = PollSource::<1>::new(PollId(1));
    let mut list = [PollRequest::new(&source, Events::OUT)];
    let deadline = now() + Duration::from_millis(5);
    assert_eq!(poll(&mut list, &ThreadSleeper::new(), Some(deadline)), Ok(0));
    assert!(list[0].found().is_empty());
}
