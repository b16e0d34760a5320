//! The thread-safe credit coordinator: a [`Ledger`] behind a lock, with blocking and async
//! waits.
//!
//! Each waiting request is its own wait entry: it stores the waiter's [`Waker`], and the
//! ledger signals exactly the requests it earmarked a credit for (or failed). Wakers are
//! fired after the lock is released, so a woken thread does not run into the lock the
//! waker's caller still holds.
//!
//! A blocking wait sleeps through a [`Sleeper`] (std: the thread parker of `a3m-platform`)
//! until its request is settled, fails, or the deadline passes. A waiter woken just as its
//! deadline passes takes the credit earmarked for it; otherwise its request is cancelled
//! and an earmarked credit goes to the next waiter, so a timed-out wait never consumes one.

use super::ledger::{Admission, Ledger, LinkInfo, RequestKey};
use super::{CreditError, Fairness, Target};
use crate::sync::Mutex;
use crate::time::Instant;
use crate::wait::{SleepOutcome, Sleeper};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

/// How long a wait may last and whether it gives up when there is no link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CreditWait {
    /// When to give up with [`CreditError::TimedOut`]; `None` waits for ever.
    pub deadline: Option<Instant>,
    /// Fail with [`CreditError::NoLinks`] when there is no link, now or after the last one
    /// is removed (the thesis's notify-if-none).
    pub notify_if_none: bool,
}

impl CreditWait {
    /// Waits for ever and keeps waiting while there is no link.
    pub const fn forever() -> Self {
        Self { deadline: None, notify_if_none: false }
    }

    /// Gives up at `deadline`.
    pub const fn until(deadline: Instant) -> Self {
        Self { deadline: Some(deadline), notify_if_none: false }
    }

    /// The same wait with another deadline (`None`: never).
    pub const fn deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// The same wait, failing with [`CreditError::NoLinks`] when there is no link.
    pub const fn notify_if_none(mut self, notify_if_none: bool) -> Self {
        self.notify_if_none = notify_if_none;
        self
    }
}

/// Coordinates the threads and tasks that wait for link credits.
///
/// `K` names links (a small `Copy` key the socket maps its links to). Up to `LINKS` links
/// and `WAITERS` waiters at once; a wait beyond that fails with
/// [`CreditError::WaitersFull`]. See the [module docs](super) for the fairness modes and
/// reservations.
pub struct CreditCoordinator<K, const LINKS: usize, const WAITERS: usize> {
    ledger: Mutex<Ledger<K, Waker, LINKS, WAITERS>>,
}

impl<K, const LINKS: usize, const WAITERS: usize> core::fmt::Debug
    for CreditCoordinator<K, LINKS, WAITERS>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CreditCoordinator").finish_non_exhaustive()
    }
}

impl<K: Copy + Eq, const LINKS: usize, const WAITERS: usize> CreditCoordinator<K, LINKS, WAITERS> {
    /// A coordinator without links or waiters.
    #[cfg(not(loom))]
    pub const fn new(fairness: Fairness) -> Self {
        Self { ledger: Mutex::new(Ledger::new(fairness)) }
    }

    /// A coordinator without links or waiters.
    #[cfg(loom)]
    pub fn new(fairness: Fairness) -> Self {
        Self { ledger: Mutex::new(Ledger::new(fairness)) }
    }

    /// Adds a link with `credits` credits (see [`Ledger::add_link`]).
    pub fn add_link(&self, key: K, credits: i64) -> Result<(), CreditError> {
        self.update(|ledger| ledger.add_link(key, credits))
    }

    /// Removes a link, failing its own waiters (see [`Ledger::remove_link`]).
    pub fn remove_link(&self, key: K) -> Result<LinkInfo<K>, CreditError> {
        self.update(|ledger| ledger.remove_link(key))
    }

    /// Changes a link's balance by `delta` and wakes as many waiters as the new credits
    /// satisfy (see [`Ledger::add_credits`]).
    pub fn add_credits(&self, key: K, delta: i64) -> Result<i64, CreditError> {
        self.update(|ledger| ledger.add_credits(key, delta))
    }

    /// Confirms a reservation of `key`: the message was sent (see [`Ledger::acquire`]).
    pub fn acquire(&self, key: K) -> Result<(), CreditError> {
        self.update(|ledger| ledger.acquire(key))
    }

    /// Gives a reservation of `key` back to the next waiter (see [`Ledger::release`]).
    pub fn release(&self, key: K) -> Result<(), CreditError> {
        self.update(|ledger| ledger.release(key))
    }

    /// Fails every waiter, now and later, with [`CreditError::Closed`].
    pub fn close(&self) {
        self.update(Ledger::close);
    }

    /// Reserves a credit now if one may be taken, or fails with [`CreditError::WouldBlock`].
    pub fn try_reserve(&self, target: Target<K>, notify_if_none: bool) -> Result<K, CreditError> {
        self.update(|ledger| ledger.try_reserve(target, notify_if_none))
    }

    /// Runs `f` on the ledger under the lock (to read balances, waiting requests).
    pub fn inspect<R>(&self, f: impl FnOnce(&Ledger<K, Waker, LINKS, WAITERS>) -> R) -> R {
        f(&self.ledger.lock())
    }

    /// Blocks until a credit of `link` is reserved for the caller.
    pub fn wait_for_link<S: Sleeper + ?Sized>(
        &self,
        link: K,
        wait: CreditWait,
        sleeper: &S,
    ) -> Result<(), CreditError> {
        self.wait(Target::Link(link), wait, sleeper).map(|_| ())
    }

    /// Blocks until a credit of some link is reserved for the caller; returns that link.
    pub fn wait_for_any<S: Sleeper + ?Sized>(
        &self,
        wait: CreditWait,
        sleeper: &S,
    ) -> Result<K, CreditError> {
        self.wait(Target::Any, wait, sleeper)
    }

    /// Blocks on `sleeper` until a credit for `target` is reserved for the caller, the wait
    /// fails or `wait.deadline` (on the sleeper's clock) passes. Returns the link whose credit is reserved; pass it to
    /// [`CreditCoordinator::acquire`] when sending, or [`CreditCoordinator::release`].
    pub fn wait<S: Sleeper + ?Sized>(
        &self,
        target: Target<K>,
        wait: CreditWait,
        sleeper: &S,
    ) -> Result<K, CreditError> {
        let admission = self.update(|ledger| {
            match ledger.try_reserve(target, wait.notify_if_none) {
                Err(CreditError::WouldBlock) => {}
                granted => return granted.map(Admission::Granted),
            }
            ledger.request(target, wait.notify_if_none, sleeper.waker())
        })?;
        let key = match admission {
            Admission::Granted(link) => return Ok(link),
            Admission::Queued(key) => key,
        };
        // Withdraws the request if the sleeper unwinds, so its slot and credit are not lost.
        let mut pending = Withdraw { coordinator: self, key: Some(key) };
        loop {
            let outcome = sleeper.sleep_until(wait.deadline);
            let finished = self.update(|ledger| match ledger.poll(key) {
                Poll::Ready(result) => Some(result),
                Poll::Pending if outcome == SleepOutcome::TimedOut => {
                    ledger.cancel(key);
                    Some(Err(CreditError::TimedOut))
                }
                Poll::Pending => None,
            });
            if let Some(result) = finished {
                pending.key = None;
                return result;
            }
        }
    }

    /// Waits asynchronously for a credit of `target`. The future resolves to the link whose
    /// credit is reserved; dropping it withdraws the request (an earmarked credit goes to the
    /// next waiter). There is no deadline: race it against the executor's timer.
    pub fn wait_async(
        &self,
        target: Target<K>,
        notify_if_none: bool,
    ) -> CreditFuture<'_, K, LINKS, WAITERS> {
        CreditFuture { coordinator: self, target, notify_if_none, key: None, finished: false }
    }

    /// Runs `op` under the lock, then fires the wakers of the requests it signalled.
    fn update<R>(&self, op: impl FnOnce(&mut Ledger<K, Waker, LINKS, WAITERS>) -> R) -> R {
        // At most one signal per request, so WAITERS wakers always fit.
        let mut wakers: heapless::Vec<Waker, WAITERS> = heapless::Vec::new();
        let result = {
            let mut ledger = self.ledger.lock();
            let result = op(&mut ledger);
            ledger.drain_signals(|waker| {
                let pushed = wakers.push(waker.clone());
                debug_assert!(pushed.is_ok(), "more signals than requests");
            });
            result
        };
        for waker in wakers {
            waker.wake();
        }
        result
    }
}

/// Cancels a blocking wait's request when dropped before the wait finished.
struct Withdraw<'a, K: Copy + Eq, const LINKS: usize, const WAITERS: usize> {
    coordinator: &'a CreditCoordinator<K, LINKS, WAITERS>,
    key: Option<RequestKey>,
}

impl<K: Copy + Eq, const LINKS: usize, const WAITERS: usize> Drop
    for Withdraw<'_, K, LINKS, WAITERS>
{
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.coordinator.update(|ledger| ledger.cancel(key));
        }
    }
}

/// The future of [`CreditCoordinator::wait_async`].
#[must_use = "a credit wait does nothing unless polled"]
pub struct CreditFuture<'a, K: Copy + Eq, const LINKS: usize, const WAITERS: usize> {
    coordinator: &'a CreditCoordinator<K, LINKS, WAITERS>,
    target: Target<K>,
    notify_if_none: bool,
    key: Option<RequestKey>,
    finished: bool,
}

impl<K: Copy + Eq, const LINKS: usize, const WAITERS: usize> core::fmt::Debug
    for CreditFuture<'_, K, LINKS, WAITERS>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CreditFuture").field("key", &self.key).finish_non_exhaustive()
    }
}

// Nothing in the future is pinned structurally.
impl<K: Copy + Eq, const LINKS: usize, const WAITERS: usize> Unpin
    for CreditFuture<'_, K, LINKS, WAITERS>
{
}

impl<K: Copy + Eq, const LINKS: usize, const WAITERS: usize> Future
    for CreditFuture<'_, K, LINKS, WAITERS>
{
    type Output = Result<K, CreditError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(Err(CreditError::StaleRequest));
        }
        let (target, notify_if_none) = (this.target, this.notify_if_none);
        let key = &mut this.key;
        let poll = this.coordinator.update(|ledger| match *key {
            None => match ledger.request(target, notify_if_none, cx.waker().clone()) {
                Ok(Admission::Granted(link)) => Poll::Ready(Ok(link)),
                Ok(Admission::Queued(queued)) => {
                    *key = Some(queued);
                    Poll::Pending
                }
                Err(error) => Poll::Ready(Err(error)),
            },
            Some(queued) => {
                let poll = ledger.poll(queued);
                if poll.is_ready() {
                    *key = None;
                } else if let Some(waker) = ledger.waker_mut(queued)
                    && !waker.will_wake(cx.waker())
                {
                    waker.clone_from(cx.waker());
                }
                poll
            }
        });
        this.finished = poll.is_ready();
        poll
    }
}

impl<K: Copy + Eq, const LINKS: usize, const WAITERS: usize> Drop
    for CreditFuture<'_, K, LINKS, WAITERS>
{
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.coordinator.update(|ledger| ledger.cancel(key));
        }
    }
}
