//! How a blocked waiter sleeps and is woken: the [`Sleeper`] trait and a bare-metal spinner.
//!
//! A waiter is always woken through a [`core::task::Waker`], the one wake-up handle every
//! `no_std` executor, RTOS port and thread library can produce:
//!
//! * an async task registers its `cx.waker()` directly (see [`super::wait_async`]);
//! * a blocking waiter owns a [`Sleeper`]: the sleeper hands out the `Waker` to register and
//!   blocks in [`Sleeper::sleep_until`] until that waker fires or a deadline passes. The std
//!   thread parker lives in `a3m-platform` (`a3m_platform::parker::Parker`); on bare metal
//!   [`SpinSleeper`] spins; loom models implement it with `loom::thread::park`.
//!
//! The core cannot read a clock, so deadlines are core [`Instant`]s and only the sleeper,
//! which belongs to the platform, compares them with the real (or simulated) time.

use crate::time::Instant;
use core::task::Waker;

/// Why [`Sleeper::sleep_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SleepOutcome {
    /// The sleeper's waker fired, or the sleeper returned early without a reason.
    ///
    /// Callers must treat this as a hint and re-check what they wait for: a waker may fire
    /// late (for a wait that already ended) and a spinner returns after every spin.
    Woken,
    /// The deadline passed before a wake-up arrived.
    TimedOut,
}

/// Something that blocks a waiter until its [`Waker`] fires or a deadline passes.
///
/// # Contract
///
/// * A wake through [`Sleeper::waker`] that happens *before* `sleep_until` is called must
///   not be lost: the next `sleep_until` returns [`SleepOutcome::Woken`] at once (a thread
///   parker's token). This is what makes "register, re-check, sleep" free of lost wake-ups.
/// * `sleep_until` may return [`SleepOutcome::Woken`] spuriously; it returns
///   [`SleepOutcome::TimedOut`] only when `deadline` is `Some` and has passed.
/// * `deadline: None` means no deadline.
/// * A sleeper is used by one waiter at a time; its waker may be cloned and fired from any
///   thread or interrupt context.
pub trait Sleeper {
    /// The waker to register in wait queues; firing it ends the current or next sleep.
    fn waker(&self) -> Waker;

    /// Blocks until the waker fires, `deadline` passes, or the sleeper returns spuriously.
    fn sleep_until(&self, deadline: Option<Instant>) -> SleepOutcome;
}

impl<S: Sleeper + ?Sized> Sleeper for &S {
    fn waker(&self) -> Waker {
        (**self).waker()
    }

    fn sleep_until(&self, deadline: Option<Instant>) -> SleepOutcome {
        (**self).sleep_until(deadline)
    }
}

/// A source of the current time supplied by the platform (a timer peripheral, an RTOS tick).
///
/// Any `Fn() -> Instant` is a clock.
pub trait Clock {
    /// The current time, on the same scale as the deadlines given to the sleeper.
    fn now(&self) -> Instant;
}

impl<F: Fn() -> Instant> Clock for F {
    fn now(&self) -> Instant {
        self()
    }
}

/// A sleeper for bare metal without an executor or an RTOS: it busy-waits.
///
/// Its waker is [`Waker::noop`]: nothing needs to be signalled, because every
/// [`sleep_until`](Sleeper::sleep_until) spins a little ([`core::hint::spin_loop`]) and
/// returns [`SleepOutcome::Woken`], so the waiting loop (see [`super::wait_until`]) looks at
/// its wait entry's state again. That is the entry-state spin: no wake-up can be lost since
/// the state is changed under the queue lock before the waker would fire.
///
/// Deadlines are read from the [`Clock`] given at construction.
#[derive(Debug, Clone, Copy)]
pub struct SpinSleeper<C> {
    clock: C,
    spins: u32,
}

impl<C: Clock> SpinSleeper<C> {
    /// Spins used by [`SpinSleeper::new`] between two looks at the waiter's state.
    pub const DEFAULT_SPINS: u32 = 64;

    /// A spinner that reads deadlines from `clock`.
    pub const fn new(clock: C) -> Self {
        Self { clock, spins: Self::DEFAULT_SPINS }
    }

    /// A spinner that calls [`core::hint::spin_loop`] `spins` times (at least once) between
    /// two looks at the waiter's state.
    pub const fn with_spins(clock: C, spins: u32) -> Self {
        Self { clock, spins: if spins == 0 { 1 } else { spins } }
    }

    /// The clock this spinner reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<C: Clock> Sleeper for SpinSleeper<C> {
    fn waker(&self) -> Waker {
        Waker::noop().clone()
    }

    fn sleep_until(&self, deadline: Option<Instant>) -> SleepOutcome {
        if deadline.is_some_and(|d| self.clock.now() >= d) {
            return SleepOutcome::TimedOut;
        }
        for _ in 0..self.spins {
            core::hint::spin_loop();
        }
        SleepOutcome::Woken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{AtomicU64, Ordering};

    #[test]
    fn spinner_times_out_only_after_its_deadline() {
        let now = AtomicU64::new(10);
        let spinner =
            SpinSleeper::with_spins(|| Instant::from_micros(now.load(Ordering::Relaxed)), 0);
        assert_eq!(spinner.sleep_until(None), SleepOutcome::Woken);
        assert_eq!(spinner.sleep_until(Some(Instant::from_micros(11))), SleepOutcome::Woken);
        now.store(11, Ordering::Relaxed);
        assert_eq!(spinner.sleep_until(Some(Instant::from_micros(11))), SleepOutcome::TimedOut);
        assert_eq!(spinner.clock().now(), Instant::from_micros(11));
    }

    #[test]
    fn spinner_waker_is_harmless_to_fire() {
        let spinner = SpinSleeper::new(|| Instant::ZERO);
        let waker = spinner.waker();
        waker.wake_by_ref();
        waker.wake();
        let by_ref: &dyn Sleeper = &&spinner;
        assert_eq!(by_ref.sleep_until(None), SleepOutcome::Woken);
    }
}
