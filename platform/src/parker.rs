//! The std thread parker: how a std thread sleeps in the core's wait queues.
//!
//! [`Parker`] implements the core's [`Sleeper`]: its [`Waker`] sets a flag and unparks the
//! thread the parker belongs to, and [`Sleeper::sleep_until`] parks that thread until the
//! flag is set or the deadline passes (`std::thread::park_timeout`, which keeps an unpark
//! that arrives before the park, so no wake-up is lost).
//!
//! [`StdClock`] maps the core's [`Instant`] (microseconds since an epoch) to and from
//! `std::time::Instant`. The process-wide clock ([`StdClock::process`]) counts from the first
//! time it is used; every std part of a3m that hands instants to the core should use it.
//!
//! ```
//! use a3m_core::wait::{wait_until, WaitOptions, WaitQueue};
//! use a3m_platform::parker::{Parker, StdClock};
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::time::Duration;
//!
//! let queue = WaitQueue::<4>::new();
//! let ready = AtomicBool::new(false);
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         ready.store(true, Ordering::Release);
//!         queue.wake_one();
//!     });
//!     let deadline = StdClock::process().deadline_after(Duration::from_secs(10));
//!     let options = WaitOptions::exclusive().deadline(Some(deadline));
//!     let got = wait_until(&queue, &Parker::current(), options, || {
//!         ready.load(Ordering::Acquire).then_some(())
//!     });
//!     assert_eq!(got, Ok(()));
//! });
//! ```

use a3m_core::time::Instant;
use a3m_core::wait::{Clock, SleepOutcome, Sleeper};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

/// Converts between the core's [`Instant`] and `std::time::Instant` around a fixed epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StdClock {
    epoch: std::time::Instant,
}

impl StdClock {
    /// The process-wide clock; its epoch is the first call.
    pub fn process() -> Self {
        static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
        Self { epoch: *EPOCH.get_or_init(std::time::Instant::now) }
    }

    /// A clock whose [`Instant::ZERO`] is `epoch` (for tests and simulations).
    pub const fn with_epoch(epoch: std::time::Instant) -> Self {
        Self { epoch }
    }

    /// The std instant of [`Instant::ZERO`].
    pub fn epoch(&self) -> std::time::Instant {
        self.epoch
    }

    /// The core instant of `instant` (instants before the epoch become [`Instant::ZERO`]).
    pub fn from_std(&self, instant: std::time::Instant) -> Instant {
        let micros = instant.saturating_duration_since(self.epoch).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// The std instant of `instant`, or `None` if std cannot represent it (so far in the
    /// future, such as [`Instant::MAX`], that it means "never").
    pub fn to_std(&self, instant: Instant) -> Option<std::time::Instant> {
        self.epoch.checked_add(Duration::from_micros(instant.as_micros()))
    }

    /// The deadline `timeout` from now.
    pub fn deadline_after(&self, timeout: Duration) -> Instant {
        self.now() + timeout
    }
}

impl Clock for StdClock {
    fn now(&self) -> Instant {
        self.from_std(std::time::Instant::now())
    }
}

/// The shared half of a parker: what its wakers hold.
#[derive(Debug)]
struct Unparker {
    thread: Thread,
    notified: AtomicBool,
}

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Only the waker that raises the flag needs to unpark; later ones find it raised.
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

/// A [`Sleeper`] that parks the thread it was created on.
///
/// It is tied to that thread (neither `Send` nor `Sync`); its wakers may go anywhere.
/// [`Parker::current`] reuses one parker per thread, so waiting allocates nothing after the
/// first wait. A wake left over from an earlier wait makes one later sleep return early,
/// which the [`Sleeper`] contract allows.
#[derive(Debug, Clone)]
pub struct Parker {
    unparker: Arc<Unparker>,
    clock: StdClock,
    not_send: PhantomData<*const ()>,
}

impl Parker {
    /// The current thread's parker, on the process clock.
    pub fn current() -> Self {
        thread_local! {
            static CURRENT: Arc<Unparker> = Arc::new(Unparker {
                thread: thread::current(),
                notified: AtomicBool::new(false),
            });
        }
        let unparker = CURRENT.with(Arc::clone);
        Self { unparker, clock: StdClock::process(), not_send: PhantomData }
    }

    /// The current thread's parker, reading deadlines on `clock`.
    pub fn with_clock(clock: StdClock) -> Self {
        Self { clock, ..Self::current() }
    }

    /// The clock deadlines are read on.
    pub fn clock(&self) -> StdClock {
        self.clock
    }
}

impl Sleeper for Parker {
    fn waker(&self) -> Waker {
        Waker::from(Arc::clone(&self.unparker))
    }

    fn sleep_until(&self, deadline: Option<Instant>) -> SleepOutcome {
        debug_assert_eq!(
            thread::current().id(),
            self.unparker.thread.id(),
            "parker used off its thread"
        );
        let deadline = deadline.map(|d| self.clock.to_std(d));
        loop {
            if self.unparker.notified.swap(false, Ordering::Acquire) {
                return SleepOutcome::Woken;
            }
            match deadline {
                Some(Some(at)) => {
                    let now = std::time::Instant::now();
                    if now >= at {
                        return SleepOutcome::TimedOut;
                    }
                    thread::park_timeout(at - now);
                }
                // No deadline, or one too far away to represent.
                None | Some(None) => thread::park(),
            }
        }
    }
}

/// Runs `future` to completion on the current thread, parking between polls.
///
/// For blocking callers of async code (such as [`a3m_core::wait::wait_async`]); it drives
/// only this future.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let parker = Parker::current();
    let waker = parker.waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        parker.sleep_until(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_round_trips_and_saturates() {
        let epoch = std::time::Instant::now();
        let clock = StdClock::with_epoch(epoch);
        assert_eq!(clock.epoch(), epoch);
        let later = epoch + Duration::from_millis(1500);
        assert_eq!(clock.from_std(later), Instant::from_micros(1_500_000));
        assert_eq!(clock.to_std(Instant::from_micros(1_500_000)), Some(later));
        assert_eq!(
            clock.from_std(epoch.checked_sub(Duration::from_secs(1)).unwrap_or(epoch)),
            Instant::ZERO
        );
        assert!(clock.deadline_after(Duration::from_secs(5)) >= Instant::from_micros(5_000_000));
    }

    #[test]
    fn wake_before_sleep_is_kept() {
        let parker = Parker::current();
        parker.waker().wake();
        assert_eq!(parker.sleep_until(None), SleepOutcome::Woken);
    }

    #[test]
    fn past_deadline_times_out() {
        let parker = Parker::current();
        let deadline = parker.clock().now();
        assert_eq!(parker.sleep_until(Some(deadline)), SleepOutcome::TimedOut);
    }

    #[test]
    fn wake_from_another_thread_ends_the_sleep() {
        let parker = Parker::current();
        let waker = parker.waker();
        let handle = thread::spawn(move || waker.wake());
        assert_eq!(parker.sleep_until(None), SleepOutcome::Woken);
        handle.join().expect("waking thread panicked");
    }

    #[test]
    fn unrepresentable_deadline_means_never() {
        let parker = Parker::with_clock(StdClock::process());
        parker.waker().wake_by_ref();
        assert_eq!(parker.sleep_until(Some(Instant::MAX)), SleepOutcome::Woken);
    }

    #[test]
    fn block_on_drives_a_wait_async() {
        use a3m_core::wait::{WaitOptions, WaitQueue, wait_async};
        let queue = WaitQueue::<2>::new();
        let ready = AtomicBool::new(false);
        thread::scope(|s| {
            s.spawn(|| {
                while queue.is_empty() {
                    thread::yield_now();
                }
                ready.store(true, Ordering::Release);
                queue.wake_one();
            });
            let got = block_on(wait_async(&queue, WaitOptions::exclusive(), || {
                ready.load(Ordering::Acquire).then_some(5)
            }));
            assert_eq!(got, Ok(5));
        });
    }
}
