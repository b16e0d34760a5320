//! What can be polled: the [`Pollable`] trait, and [`PollSource`], a ready-made pollable half.

use super::events::Events;
use crate::sync::{AtomicU32, Ordering};
use crate::wait::{WaitQueue, Waiters, Woke};

/// The identifier of a pollable, unique among the pollables a poller watches (the interest
/// list is keyed by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PollId(pub u64);

/// An object whose readiness can be watched (thesis §4.4.4, "Pollable").
///
/// # Contract for implementors
///
/// * [`Pollable::events`] returns the readiness now: [`Events::IN`] / [`Events::OUT`] while
///   the operation would not block, [`Events::ERR`] on error, and [`Events::HUP`] once closed
///   (for ever after).
/// * When readiness may have changed for the better (a message arrived, a credit came back),
///   the pollable wakes its queue with the events: `queue.wake(events.bits(), 1)` (every
///   shared waiter, one exclusive waiter) or `usize::MAX` for all, e.g. on a serious error.
///   Each such wake is one "edge" for edge-triggered pollers.
/// * On close it calls `queue.close((Events::HUP | maybe Events::ERR).bits())`: every waiter
///   is woken whatever its interest and pollers drop the pollable from their interest lists.
/// * `events` must not wait for a poller (pollers call it without their own lock held, so
///   it may take the pollable's lock), and the pollable may wake its queue while holding its
///   own lock (wakers run after the queue lock is released and only take poller locks).
pub trait Pollable: Send + Sync {
    /// The pollable's identifier.
    fn id(&self) -> PollId;

    /// The events available now.
    fn events(&self) -> Events;

    /// The waiter side of the pollable's wait queue.
    fn waiters(&self) -> &dyn Waiters;
}

/// The pollable half of a simple object: an identifier, a readiness word and a wait queue
/// with room for `N` waiters (pollers count one each).
///
/// Objects whose readiness is computed from their own state implement [`Pollable`] directly
/// and keep just a [`WaitQueue`]; this type suits event flags and tests.
#[derive(Debug)]
pub struct PollSource<const N: usize> {
    id: PollId,
    ready: AtomicU32,
    waiters: WaitQueue<N>,
}

impl<const N: usize> PollSource<N> {
    /// An open source with no event.
    pub fn new(id: PollId) -> Self {
        Self { id, ready: AtomicU32::new(0), waiters: WaitQueue::new() }
    }

    /// Adds `events` and wakes every shared waiter and one exclusive waiter interested in
    /// them: one edge. Raising an event that is already set is a new edge too (new data).
    pub fn raise(&self, events: Events) -> Woke {
        self.raise_waking(events, 1)
    }

    /// Like [`PollSource::raise`], but wakes every waiter, exclusive or not (a serious error).
    pub fn raise_all(&self, events: Events) -> Woke {
        self.raise_waking(events, usize::MAX)
    }

    fn raise_waking(&self, events: Events, max_exclusive: usize) -> Woke {
        self.ready.fetch_or(events.bits(), Ordering::AcqRel);
        self.waiters.wake(events.bits(), max_exclusive)
    }

    /// Removes `events` (the operation would block again); wakes nobody. [`Events::HUP`]
    /// cannot be removed: a hang-up is for ever.
    pub fn clear(&self, events: Events) {
        let kept = events.difference(Events::HUP);
        self.ready.fetch_and(!kept.bits(), Ordering::AcqRel);
    }

    /// Closes: [`Events::HUP`] (plus [`Events::ERR`] if `with_error`) is set for ever and
    /// every waiter is woken with it; pollers drop the source from their interest lists.
    pub fn close(&self, with_error: bool) -> Woke {
        let events = if with_error { Events::HUP | Events::ERR } else { Events::HUP };
        self.ready.fetch_or(events.bits(), Ordering::AcqRel);
        self.waiters.close(events.bits())
    }

    /// Whether [`PollSource::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.waiters.is_closed()
    }

    /// The wait queue, for waking it directly or for blocking waits on the source.
    pub fn queue(&self) -> &WaitQueue<N> {
        &self.waiters
    }
}

impl<const N: usize> Pollable for PollSource<N> {
    fn id(&self) -> PollId {
        self.id
    }

    fn events(&self) -> Events {
        Events::from_bits_truncate(self.ready.load(Ordering::Acquire))
    }

    fn waiters(&self) -> &dyn Waiters {
        &self.waiters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::{EntryState, WaitMode};
    use core::task::Waker;

    #[test]
    fn raise_wakes_matching_waiters_and_sets_readiness() {
        let source = PollSource::<4>::new(PollId(3));
        let reader = source.waiters().register(Waker::noop(), WaitMode::Shared, Events::IN.bits());
        let writer = source.waiters().register(Waker::noop(), WaitMode::Shared, Events::OUT.bits());
        let (reader, writer) = (reader.unwrap(), writer.unwrap());
        assert_eq!(source.raise(Events::IN).shared, 1);
        assert_eq!(source.events(), Events::IN);
        assert!(source.waiters().state(reader).unwrap().is_woken());
        assert_eq!(source.waiters().state(writer), Some(EntryState::Waiting));
        source.clear(Events::IN);
        assert!(source.events().is_empty());
        assert_eq!(source.id(), PollId(3));
    }

    #[test]
    fn raise_wakes_one_exclusive_raise_all_wakes_every_one() {
        let source = PollSource::<4>::new(PollId(1));
        for _ in 0..3 {
            source.queue().register(Waker::noop(), WaitMode::Exclusive, Events::IN.bits()).unwrap();
        }
        assert_eq!(source.raise(Events::IN).exclusive, 1);
        assert_eq!(source.raise_all(Events::IN).exclusive, 2);
    }

    #[test]
    fn close_reports_hang_up_for_ever_and_wakes_everyone() {
        let source = PollSource::<2>::new(PollId(1));
        let key = source.queue().register(Waker::noop(), WaitMode::Exclusive, Events::IN.bits());
        assert_eq!(source.close(true).exclusive, 1);
        assert_eq!(source.events(), Events::HUP | Events::ERR);
        source.clear(Events::ALL);
        assert_eq!(source.events(), Events::HUP);
        assert!(source.close(false).total() == 0 && source.is_closed());
        assert!(source.queue().state(key.unwrap()).unwrap().is_woken());
    }
}
