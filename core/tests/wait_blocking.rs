//! Wait queues with real threads: blocking waits, deadlines, close, async waits.
#![cfg(not(loom))]

use a3m_core::time::Instant;
use a3m_core::wait::{
    SleepOutcome, Sleeper, WaitError, WaitMode, WaitOptions, WaitQueue, wait_async, wait_until,
};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::task::{Context, Poll, Wake, Waker};
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

fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn now() -> Instant {
    Instant::from_micros(epoch().elapsed().as_micros() as u64)
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

fn take(credits: &AtomicUsize) -> Option<()> {
    credits.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).ok().map(drop)
}

/// Runs `f` on a thread and fails the test, instead of hanging, if it takes over `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(f()).expect("test body outlived its receiver"));
    rx.recv_timeout(limit).expect("test body hung: a wake-up was lost")
}

#[test]
fn every_credit_wakes_one_waiter() {
    within(Duration::from_secs(60), || {
        const WAITERS: usize = 6;
        const ROUNDS: usize = 200;
        let queue = Arc::new(WaitQueue::<WAITERS>::new());
        let credits = Arc::new(AtomicUsize::new(0));
        let taken = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..WAITERS)
            .map(|_| {
                let (queue, credits, taken) = (queue.clone(), credits.clone(), taken.clone());
                thread::spawn(move || {
                    let sleeper = ThreadSleeper::new();
                    for _ in 0..ROUNDS {
                        wait_until(&*queue, &sleeper, WaitOptions::exclusive(), || take(&credits))
                            .unwrap();
                        taken.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for _ in 0..WAITERS * ROUNDS {
            credits.fetch_add(1, Ordering::AcqRel);
            queue.wake_one();
        }
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(taken.load(Ordering::Relaxed), WAITERS * ROUNDS);
        assert_eq!(credits.load(Ordering::Relaxed), 0);
        assert!(queue.is_empty());
    });
}

#[test]
fn deadline_ends_a_wait_and_leaves_the_queue() {
    let queue = WaitQueue::<1>::new();
    let sleeper = ThreadSleeper::new();
    let options = WaitOptions::exclusive().deadline(Some(now() + Duration::from_millis(5)));
    assert_eq!(wait_until(&queue, &sleeper, options, || None::<()>), Err(WaitError::TimedOut));
    assert!(queue.is_empty());
}

#[test]
fn close_wakes_every_blocked_thread() {
    within(Duration::from_secs(60), || {
        let queue = Arc::new(WaitQueue::<4>::new());
        let waiters: Vec<_> = (0..4)
            .map(|i| {
                let queue = queue.clone();
                let options =
                    if i % 2 == 0 { WaitOptions::exclusive() } else { WaitOptions::shared() };
                thread::spawn(move || {
                    wait_until(&*queue, &ThreadSleeper::new(), options, || None::<()>)
                })
            })
            .collect();
        while queue.len() < 4 {
            thread::yield_now();
        }
        assert_eq!(queue.close(1).total(), 4);
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Err(WaitError::Closed));
        }
    });
}

#[test]
fn shared_waiters_all_see_one_wake() {
    within(Duration::from_secs(60), || {
        let queue = Arc::new(WaitQueue::<3>::new());
        let open = Arc::new(AtomicBool::new(false));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (queue, open) = (queue.clone(), open.clone());
                thread::spawn(move || {
                    wait_until(&*queue, &ThreadSleeper::new(), WaitOptions::shared(), || {
                        open.load(Ordering::Acquire).then_some(())
                    })
                })
            })
            .collect();
        open.store(true, Ordering::Release);
        queue.wake(1, 0);
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Ok(()));
        }
    });
}

#[test]
fn interest_mask_selects_the_waiters_to_wake() {
    within(Duration::from_secs(60), || {
        const READ: u32 = 1;
        const WRITE: u32 = 2;
        let queue = Arc::new(WaitQueue::<2>::new());
        let readable = Arc::new(AtomicBool::new(false));
        let reader = {
            let (queue, readable) = (queue.clone(), readable.clone());
            thread::spawn(move || {
                let options = WaitOptions::exclusive().interest(READ);
                wait_until(&*queue, &ThreadSleeper::new(), options, || {
                    readable.load(Ordering::Acquire).then_some(())
                })
            })
        };
        while queue.waiting(WaitMode::Exclusive) == 0 {
            thread::yield_now();
        }
        assert_eq!(queue.wake(WRITE, 1).total(), 0);
        readable.store(true, Ordering::Release);
        assert_eq!(queue.wake(READ, 1).exclusive, 1);
        assert_eq!(reader.join().unwrap(), Ok(()));
    });
}

fn block_on<F: Future>(future: F) -> F::Output {
    let sleeper = ThreadSleeper::new();
    let waker = sleeper.waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        sleeper.sleep_until(None);
    }
}

#[test]
fn async_waiters_are_woken_through_their_task_waker() {
    within(Duration::from_secs(60), || {
        let queue = Arc::new(WaitQueue::<4>::new());
        let credits = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (queue, credits) = (queue.clone(), credits.clone());
                thread::spawn(move || {
                    block_on(wait_async(&*queue, WaitOptions::exclusive(), || take(&credits)))
                })
            })
            .collect();
        for _ in 0..4 {
            credits.fetch_add(1, Ordering::AcqRel);
            queue.wake_one();
        }
        for task in tasks {
            assert_eq!(task.join().unwrap(), Ok(()));
        }
        assert!(queue.is_empty());
    });
}
