//! Waiting: wait queues, and the pluggable ways a waiter sleeps and is woken.
//!
//! Thesis §4.4.3 (wait queues) for a `no_std` core:
//!
//! * [`sleep`]: every waiter is woken through a [`core::task::Waker`]. An async task
//!   registers its own `cx.waker()`; a blocking waiter uses a [`Sleeper`] (std: the thread
//!   parker in `a3m-platform`; bare metal: [`SpinSleeper`]; loom: a `loom::thread::park`
//!   sleeper in the models).
//! * [`queue`]: [`WaitQueue`], a fixed-capacity queue of shared and exclusive entries with
//!   interest masks, per-entry state (waiting / woken / removed) changed under the queue
//!   lock, `wake` / `wake_one` / `wake_n` / `wake_all` / `close`, and hand-on of unused
//!   exclusive wakes. [`Waiters`] is its waiter-side view whatever the capacity (what a
//!   pollable exposes), and [`WaitEntry`] a registration that removes itself when dropped.
//! * [`protocol`]: the register / re-check / sleep / re-arm loop without lost wake-ups, as
//!   [`wait_until`] (blocking, with a deadline) and [`wait_async`].
//!
//! Wake semantics (thesis and Linux): a wake reaches *every* waiting shared entry whose
//! interest matches and *at most n* waiting exclusive entries, oldest first. Exclusive is for
//! waiters that consume what they are woken for (send, receive); shared is for observers
//! (poll), which must not consume. A woken entry is skipped by later wakes until its owner
//! re-arms it, so `wake_n(n)` reaches `n` different waiters.
//!
//! Lock order: a queue's lock is a leaf. Wakers fire after it is released, so a waker may
//! take other locks (a poller's hook does), and an object may wake its queue while holding
//! its own lock.

pub mod protocol;
pub mod queue;
pub mod sleep;

pub use protocol::{WaitError, WaitOptions, wait_async, wait_until};
pub use queue::{
    ALL_EVENTS, EntryState, RegisterError, WaitEntry, WaitKey, WaitQueue, Waiters, Woke,
};
pub use sleep::{Clock, SleepOutcome, Sleeper, SpinSleeper};

/// How an entry shares the wakes of its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitMode {
    /// Woken by every matching wake; does not count against a wake's exclusive budget.
    Shared,
    /// Woken only while a wake's exclusive budget lasts, oldest entry first.
    Exclusive,
}
