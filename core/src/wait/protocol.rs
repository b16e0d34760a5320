//! The check-then-sleep protocol, for a blocking waiter ([`wait_until`]) and for an async
//! task ([`wait_async`]).
//!
//! Both run the same loop over a caller's `attempt` closure, which tries to take what the
//! caller waits for (a message, a credit) and returns `Some` on success:
//!
//! 1. attempt; on success return at once (no registration on the fast path);
//! 2. register an entry in the queue;
//! 3. attempt again: anything that became available between 1 and 2 is seen here, and
//!    anything that becomes available after 2 wakes the entry, so no wake-up is lost;
//! 4. sleep until the entry is woken (spurious returns of the sleeper are absorbed by
//!    looking at the entry's state);
//! 5. re-arm the entry (consuming the wake) and go to 3;
//! 6. on success or failure remove the entry. A wake that reached the entry after its last
//!    re-arm was not acted on and, for an exclusive entry, is handed to the next exclusive
//!    waiter.
//!
//! Deadlines: when the sleeper reports that the deadline passed, the entry is removed under
//! the queue lock, so it is either still waiting (no wake was spent on it: plain timeout) or
//! already woken. A waiter woken just as it timed out attempts once more: if that succeeds,
//! the wait succeeds (it consumed the wake); otherwise the exclusive wake is handed to the
//! next exclusive waiter and the wait times out. Either way the wake is not lost.

use super::WaitMode;
use super::queue::{EntryState, RegisterError, WaitEntry, Waiters};
use super::sleep::{SleepOutcome, Sleeper};
use crate::time::Instant;
use core::future::poll_fn;
use core::task::Poll;

/// Why a wait ended without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitError {
    /// The deadline passed first.
    TimedOut,
    /// The queue was closed (its owner closed) and the attempt still failed.
    Closed,
    /// The queue had no room for another waiter.
    QueueFull,
}

impl From<RegisterError> for WaitError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::Full => WaitError::QueueFull,
            RegisterError::Closed => WaitError::Closed,
        }
    }
}

impl core::fmt::Display for WaitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WaitError::TimedOut => f.write_str("wait timed out"),
            WaitError::Closed => f.write_str("waited-on object was closed"),
            WaitError::QueueFull => f.write_str("wait queue is full"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WaitError {}

/// How to wait: entry mode, interest mask and deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WaitOptions {
    /// Shared or exclusive entry.
    pub mode: WaitMode,
    /// The events that wake the entry (see [`super::ALL_EVENTS`]).
    pub interest: u32,
    /// When to give up; `None` waits for ever.
    pub deadline: Option<Instant>,
}

impl WaitOptions {
    /// An exclusive wait for any event, without deadline (a blocking send or receive).
    pub const fn exclusive() -> Self {
        Self { mode: WaitMode::Exclusive, interest: super::ALL_EVENTS, deadline: None }
    }

    /// A shared wait for any event, without deadline (an observer such as `poll`).
    pub const fn shared() -> Self {
        Self { mode: WaitMode::Shared, interest: super::ALL_EVENTS, deadline: None }
    }

    /// The same wait, but only for events in `interest`.
    pub const fn interest(mut self, interest: u32) -> Self {
        self.interest = interest;
        self
    }

    /// The same wait, giving up at `deadline` (`None`: never).
    pub const fn deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }
}

/// Blocks on `sleeper` until `attempt` succeeds, the deadline passes or the queue closes.
///
/// `attempt` is called with no lock of the queue held; it may take its object's own lock.
/// See the module docs for the protocol and how a deadline racing a wake is resolved.
pub fn wait_until<T, S>(
    queue: &dyn Waiters,
    sleeper: &S,
    options: WaitOptions,
    mut attempt: impl FnMut() -> Option<T>,
) -> Result<T, WaitError>
where
    S: Sleeper + ?Sized,
{
    if let Some(value) = attempt() {
        return Ok(value);
    }
    let entry = WaitEntry::register(queue, &sleeper.waker(), options.mode, options.interest)?;
    loop {
        if let Some(value) = attempt() {
            entry.finish();
            return Ok(value);
        }
        if queue.is_closed() {
            return Err(WaitError::Closed);
        }
        loop {
            match sleeper.sleep_until(options.deadline) {
                SleepOutcome::Woken => {
                    if entry.rearm().is_some_and(EntryState::is_woken) {
                        break;
                    }
                }
                SleepOutcome::TimedOut => return time_out(entry, options, &mut attempt),
            }
        }
    }
}

/// The deadline passed: remove the entry and settle a wake that raced the timeout.
fn time_out<T>(
    entry: WaitEntry<'_>,
    options: WaitOptions,
    attempt: &mut impl FnMut() -> Option<T>,
) -> Result<T, WaitError> {
    let queue = entry.queue();
    match entry.take() {
        Some(EntryState::Woken { events }) => {
            if let Some(value) = attempt() {
                return Ok(value);
            }
            if queue.is_closed() {
                return Err(WaitError::Closed);
            }
            if options.mode == WaitMode::Exclusive {
                queue.pass_on(events);
            }
            Err(WaitError::TimedOut)
        }
        _ => Err(WaitError::TimedOut),
    }
}

/// Waits asynchronously until `attempt` succeeds or the queue closes: the task's own
/// `cx.waker()` is the entry's waker. `options.deadline` is ignored (the core has no timer:
/// race this future against the executor's timer instead). Dropping the future removes the
/// entry and hands on an exclusive wake it did not use.
pub async fn wait_async<T>(
    queue: &dyn Waiters,
    options: WaitOptions,
    mut attempt: impl FnMut() -> Option<T>,
) -> Result<T, WaitError> {
    let mut entry: Option<WaitEntry<'_>> = None;
    poll_fn(move |cx| {
        match &entry {
            None => {
                if let Some(value) = attempt() {
                    return Poll::Ready(Ok(value));
                }
                entry =
                    Some(WaitEntry::register(queue, cx.waker(), options.mode, options.interest)?);
            }
            Some(registered) => {
                registered.set_waker(cx.waker());
                if !registered.rearm().is_some_and(EntryState::is_woken) {
                    return Poll::Pending;
                }
            }
        }
        if let Some(value) = attempt() {
            if let Some(registered) = entry.take() {
                registered.finish();
            }
            return Poll::Ready(Ok(value));
        }
        if queue.is_closed() {
            return Poll::Ready(Err(WaitError::Closed));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{AtomicU64, AtomicUsize, Ordering};
    use crate::wait::{SpinSleeper, WaitQueue};
    use core::pin::pin;
    use core::task::{Context, Waker};

    fn take(counter: &AtomicUsize) -> Option<usize> {
        counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).ok()
    }

    #[test]
    fn fast_path_does_not_register() {
        let q = WaitQueue::<1>::new();
        let sleeper = SpinSleeper::new(|| Instant::ZERO);
        let got = wait_until(&q, &sleeper, WaitOptions::exclusive(), || Some(7));
        assert_eq!(got, Ok(7));
        assert!(q.is_empty());
    }

    #[test]
    fn times_out_on_the_sleepers_clock() {
        let q = WaitQueue::<1>::new();
        let now = AtomicU64::new(0);
        let sleeper =
            SpinSleeper::new(|| Instant::from_micros(now.fetch_add(1, Ordering::Relaxed)));
        let options = WaitOptions::exclusive().deadline(Some(Instant::from_micros(50)));
        assert_eq!(wait_until(&q, &sleeper, options, || None::<()>), Err(WaitError::TimedOut));
        assert!(q.is_empty());
    }

    #[test]
    fn close_racing_the_deadline_reports_closed() {
        let q = WaitQueue::<1>::new();
        // The clock closes the queue as the deadline passes: the entry is woken by the close
        // when the waiter times out.
        let sleeper = SpinSleeper::new(|| {
            q.close(1);
            Instant::MAX
        });
        let options = WaitOptions::exclusive().deadline(Some(Instant::ZERO));
        assert_eq!(wait_until(&q, &sleeper, options, || None::<()>), Err(WaitError::Closed));
        assert!(q.is_empty());
    }

    #[test]
    fn full_and_closed_queues_fail_the_wait() {
        let sleeper = SpinSleeper::new(|| Instant::ZERO);
        let q = WaitQueue::<0>::new();
        assert_eq!(
            wait_until(&q, &sleeper, WaitOptions::shared(), || None::<()>),
            Err(WaitError::QueueFull)
        );
        let q = WaitQueue::<1>::new();
        q.close(1);
        assert_eq!(
            wait_until(&q, &sleeper, WaitOptions::shared(), || None::<()>),
            Err(WaitError::Closed)
        );
    }

    #[test]
    fn async_wait_registers_then_completes_when_woken() {
        let q = WaitQueue::<2>::new();
        let credits = AtomicUsize::new(0);
        let mut fut = pin!(wait_async(&q, WaitOptions::exclusive(), || take(&credits)));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(q.len(), 1);
        // A spurious poll does not attempt.
        credits.store(1, Ordering::Release);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(q.wake_one().exclusive, 1);
        // `take` returns the count before taking.
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(1)));
        assert!(q.is_empty());
    }

    #[test]
    fn dropped_async_wait_hands_its_wake_on() {
        let q = WaitQueue::<2>::new();
        let other;
        {
            let mut cx = Context::from_waker(Waker::noop());
            let mut fut = pin!(wait_async(&q, WaitOptions::exclusive(), || None::<()>));
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            other =
                q.register(Waker::noop(), WaitMode::Exclusive, crate::wait::ALL_EVENTS).unwrap();
            // The future's entry is older, so it gets the wake, then is dropped unused.
            assert_eq!(q.wake_one().exclusive, 1);
            assert_eq!(q.state(other), Some(EntryState::Waiting));
        }
        assert_eq!(q.len(), 1);
        assert!(q.state(other).unwrap().is_woken());
    }

    #[test]
    fn async_wait_sees_close() {
        let q = WaitQueue::<1>::new();
        let mut fut = pin!(wait_async(&q, WaitOptions::shared(), || None::<()>));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        q.close(1);
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Err(WaitError::Closed)));
    }
}
