//! loom models of the wait queue and the check-then-sleep protocol.
//!
//! Run with `ci/loom.sh` (or `RUSTFLAGS="--cfg loom" cargo test -p a3m-core --features std
//! --release --test loom_wait`). A lost wake-up shows up as a loom deadlock: a waiter parked
//! with nobody left to unpark it.
#![cfg(loom)]

use a3m_core::sync::{AtomicUsize, Ordering};
use a3m_core::time::Instant;
use a3m_core::wait::{ALL_EVENTS, WaitError, WaitMode, WaitOptions, WaitQueue, Woke, wait_until};
use loom::thread;
use std::sync::Arc;
use std::task::{Wake, Waker};

mod loom_support;
use loom_support::LoomSleeper;

/// Takes one credit if there is one.
fn take(credits: &AtomicUsize) -> Option<()> {
    credits.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).ok().map(drop)
}

/// A waker that counts how often it fires.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn no_lost_wake_up_between_check_and_sleep() {
    loom::model(|| {
        let queue = Arc::new(WaitQueue::<2>::new());
        let credits = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (queue, credits) = (queue.clone(), credits.clone());
            thread::spawn(move || {
                let sleeper = LoomSleeper::new();
                wait_until(&*queue, &sleeper, WaitOptions::exclusive(), || take(&credits))
            })
        };
        credits.fetch_add(1, Ordering::AcqRel);
        queue.wake_one();
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert!(queue.is_empty());
    });
}

#[test]
fn every_credit_reaches_a_waiter() {
    // A waiter that took a credit without needing a wake must hand on a wake that reached it
    // meanwhile, or the other waiter sleeps next to a free credit.
    loom::model(|| {
        let queue = Arc::new(WaitQueue::<2>::new());
        let credits = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (queue, credits) = (queue.clone(), credits.clone());
                thread::spawn(move || {
                    let sleeper = LoomSleeper::new();
                    wait_until(&*queue, &sleeper, WaitOptions::exclusive(), || take(&credits))
                })
            })
            .collect();
        for _ in 0..2 {
            credits.fetch_add(1, Ordering::AcqRel);
            queue.wake_one();
        }
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Ok(()));
        }
        assert!(queue.is_empty());
    });
}

#[test]
fn exclusive_wake_wakes_exactly_one() {
    loom::model(|| {
        let queue = Arc::new(WaitQueue::<2>::new());
        let wakers: Vec<Arc<CountingWaker>> =
            (0..2).map(|_| Arc::new(CountingWaker(AtomicUsize::new(0)))).collect();
        let registrars: Vec<_> = wakers
            .iter()
            .map(|w| {
                let (queue, waker) = (queue.clone(), Waker::from(w.clone()));
                thread::spawn(move || {
                    queue.register(&waker, WaitMode::Exclusive, ALL_EVENTS).unwrap()
                })
            })
            .collect();
        let woke: Woke = queue.wake_one();
        let keys: Vec<_> = registrars.into_iter().map(|t| t.join().unwrap()).collect();
        let woken = keys.iter().filter(|k| queue.state(**k).unwrap().is_woken()).count();
        let fired: usize = wakers.iter().map(|w| w.0.load(Ordering::Relaxed)).sum();
        assert!(woke.exclusive <= 1);
        assert_eq!(woke.shared, 0);
        assert_eq!(woken, woke.exclusive);
        assert_eq!(fired, woke.exclusive);
        // Whatever the interleaving, a second wake reaches the other entry if the first
        // reached one, and no more.
        let second = queue.wake_one();
        let woken = keys.iter().filter(|k| queue.state(**k).unwrap().is_woken()).count();
        assert_eq!(woken, woke.exclusive + second.exclusive);
        assert!(woken <= 2 && second.exclusive == 1);
    });
}

#[test]
fn close_wakes_every_waiter() {
    loom::model(|| {
        let queue = Arc::new(WaitQueue::<2>::new());
        let waiters: Vec<_> = [WaitOptions::exclusive(), WaitOptions::shared()]
            .into_iter()
            .map(|options| {
                let queue = queue.clone();
                thread::spawn(move || {
                    let sleeper = LoomSleeper::new();
                    wait_until(&*queue, &sleeper, options, || None::<()>)
                })
            })
            .collect();
        queue.close(1);
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Err(WaitError::Closed));
        }
        assert!(queue.is_empty());
    });
}

#[test]
fn timed_out_waiter_racing_a_wake_never_loses_it() {
    loom::model(|| {
        let queue = Arc::new(WaitQueue::<2>::new());
        let credits = Arc::new(AtomicUsize::new(0));
        let spawn_waiter = |deadline: Option<Instant>| {
            let (queue, credits) = (queue.clone(), credits.clone());
            thread::spawn(move || {
                let sleeper = LoomSleeper::new();
                let options = WaitOptions::exclusive().deadline(deadline);
                wait_until(&*queue, &sleeper, options, || take(&credits))
            })
        };
        let timed = spawn_waiter(Some(Instant::ZERO));
        let patient = spawn_waiter(None);
        credits.fetch_add(1, Ordering::AcqRel);
        queue.wake_one();
        let timed = timed.join().unwrap();
        match timed {
            // It took the credit: give the patient waiter its own.
            Ok(()) => {
                credits.fetch_add(1, Ordering::AcqRel);
                queue.wake_one();
            }
            Err(e) => assert_eq!(e, WaitError::TimedOut),
        }
        // If the timed-out waiter had swallowed the only wake, this would deadlock.
        assert_eq!(patient.join().unwrap(), Ok(()));
        assert_eq!(credits.load(Ordering::Acquire), 0);
        assert!(queue.is_empty());
    });
}
