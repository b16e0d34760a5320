//! The [`Poller`]: the adaptation of epoll (thesis §4.4.6). Needs the `alloc` feature.
//!
//! A poller keeps an *interest list* (pollable id -> item), a *ready list* (ids that may have
//! events) and a wait queue of its own for the threads or tasks in [`Poller::wait`].
//!
//! * `add` registers the poller in the pollable's wait queue (shared, or exclusive with
//!   [`Interest::exclusive`]) with a *hook* waker. When the pollable wakes the entry, the hook
//!   puts the id on the ready list and wakes one waiter of the poller (they are exclusive
//!   waiters, so one event wakes one thread).
//! * `wait` takes ids off the ready list, re-arms their entry, asks the pollable for its
//!   events *now*, and reports those of interest ([`Events::HUP`] and [`Events::ERR`]
//!   always). Level-triggered items with events go back on the ready list; edge-triggered
//!   ones come back only with the pollable's next wake; one-shot ones are disarmed until
//!   [`Poller::modify`]. Exclusive entries are moved behind the pollable's other exclusive
//!   waiters when re-armed, so pollers sharing a pollable take turns.
//! * A pollable that closes wakes every entry; the next `wait` reports its [`Events::HUP`]
//!   and drops it from the interest list. A disarmed one-shot item stays until `modify`
//!   re-arms it (then its hang-up, and any data left, is reported) or `delete`.
//!
//! Locks: the poller never holds its lock while calling [`Pollable::events`] or firing a
//! waker, so a pollable may wake its queue under its own lock, and pollers never wait for
//! each other. Races between an event and a report may report an edge-triggered item once
//! more than strictly needed (as epoll); they never lose an event.

use super::PollError;
use super::events::{Events, Interest};
use super::pollable::{PollId, Pollable};
use crate::sync::Mutex;
use crate::time::Instant;
use crate::wait::{
    Sleeper, WaitError, WaitKey, WaitMode, WaitOptions, WaitQueue, wait_async, wait_until,
};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::task::Wake;
use core::task::Waker;

/// One report of [`Poller::wait`]: a pollable and its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PollEvent {
    /// The pollable.
    pub id: PollId,
    /// Its events of interest, plus [`Events::ALWAYS`] when set.
    pub events: Events,
}

impl PollEvent {
    /// A placeholder to fill event buffers with.
    pub const EMPTY: PollEvent = PollEvent { id: PollId(0), events: Events::empty() };
}

impl Default for PollEvent {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// A pollable in the interest list.
struct Item {
    pollable: Arc<dyn Pollable>,
    interest: Interest,
    /// The poller's entry in the pollable's wait queue.
    key: WaitKey,
    /// Unique per `add`: tells this item's hook from one of an earlier item with the same id.
    serial: u64,
    /// Changes with every `add` and `modify`: a report prepared before it is dropped.
    generation: u64,
    /// On the ready list.
    ready: bool,
    /// Not disarmed by one-shot.
    armed: bool,
}

struct State {
    items: BTreeMap<PollId, Item>,
    ready: VecDeque<PollId>,
    next_generation: u64,
    closed: bool,
}

/// What the poller shares with the hooks in pollables' wait queues.
struct Shared<const W: usize> {
    state: Mutex<State>,
    waiters: WaitQueue<W>,
}

/// The waker a poller registers in a pollable's wait queue.
struct Hook<const W: usize> {
    poller: Weak<Shared<W>>,
    id: PollId,
    serial: u64,
}

impl<const W: usize> Wake for Hook<W> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.poller.upgrade() {
            shared.on_pollable_wake(self.id, self.serial);
        }
    }
}

/// An item taken off the ready list, to be checked without the poller lock.
struct Candidate {
    id: PollId,
    pollable: Arc<dyn Pollable>,
    interest: Interest,
    generation: u64,
}

impl<const W: usize> Shared<W> {
    /// The hook of item (`id`, `serial`) fired: the pollable had an event of interest (or
    /// closed). A disarmed one-shot item ignores it: `modify` looks at the events again.
    fn on_pollable_wake(&self, id: PollId, serial: u64) {
        {
            let mut guard = self.state.lock();
            let state = &mut *guard;
            let Some(item) = state.items.get_mut(&id) else { return };
            if item.serial != serial || !item.armed || item.ready {
                return;
            }
            item.ready = true;
            state.ready.push_back(id);
        }
        self.waiters.wake_one();
    }

    /// Puts the item on the ready list if `generation` is still current and it has events.
    fn check_ready(&self, pollable: &dyn Pollable, interest: Interest, generation: u64) {
        if pollable.events().reported_for(interest.events()).is_empty() {
            return;
        }
        let id = pollable.id();
        {
            let mut guard = self.state.lock();
            let state = &mut *guard;
            let Some(item) = state.items.get_mut(&id) else { return };
            if item.generation != generation || !item.armed || item.ready {
                return;
            }
            item.ready = true;
            state.ready.push_back(id);
        }
        self.waiters.wake_one();
    }

    /// Takes the next item off the ready list and re-arms its entry; `None` when the list
    /// is empty or has come round to an item already in `reported`.
    fn next_candidate(&self, reported: &[PollEvent]) -> Option<Candidate> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        loop {
            let id = *state.ready.front()?;
            if reported.iter().any(|e| e.id == id) {
                return None;
            }
            state.ready.pop_front();
            let Some(item) = state.items.get_mut(&id) else { continue };
            if !item.ready {
                continue;
            }
            item.ready = false;
            if !item.armed {
                continue;
            }
            // Re-arm before looking at the events: an event after the look wakes us again.
            let waiters = item.pollable.waiters();
            if item.interest.is_exclusive() {
                waiters.requeue(item.key);
            } else {
                waiters.rearm(item.key);
            }
            return Some(Candidate {
                id,
                pollable: Arc::clone(&item.pollable),
                interest: item.interest,
                generation: item.generation,
            });
        }
    }

    /// Records the report of `candidate`, whose pollable had `events`; returns what to
    /// report, if anything. A closed pollable is reported with [`Events::HUP`] (even if its
    /// events were read just before it closed) and leaves the interest list.
    fn settle(&self, candidate: &Candidate, mut events: Events) -> Option<Events> {
        let dropped = {
            let mut guard = self.state.lock();
            let state = &mut *guard;
            let item = state.items.get_mut(&candidate.id)?;
            if item.generation != candidate.generation || !item.armed {
                return None;
            }
            let waiters = item.pollable.waiters();
            if waiters.is_closed() {
                events |= Events::HUP;
                if item.ready {
                    state.ready.retain(|id| *id != candidate.id);
                }
                state.items.remove(&candidate.id)
            } else if events.is_empty() {
                return None;
            } else {
                if item.interest.is_oneshot() {
                    item.armed = false;
                    waiters.set_interest(item.key, 0);
                } else if !item.interest.is_edge_triggered() && !item.ready {
                    item.ready = true;
                    state.ready.push_back(candidate.id);
                }
                None
            }
        };
        if let Some(item) = dropped {
            item.pollable.waiters().remove(item.key);
        }
        Some(events)
    }

    /// Fills `out` with reports from the ready list; returns how many.
    fn harvest(&self, out: &mut [PollEvent]) -> usize {
        let mut reported = 0;
        while reported < out.len() {
            let Some(candidate) = self.next_candidate(&out[..reported]) else { break };
            let events = candidate.pollable.events().reported_for(candidate.interest.events());
            if let Some(events) = self.settle(&candidate, events) {
                out[reported] = PollEvent { id: candidate.id, events };
                reported += 1;
            }
        }
        // Like epoll: what is left (or back, level-triggered) is for another waiter.
        if reported > 0 && !self.state.lock().ready.is_empty() {
            self.waiters.wake_one();
        }
        reported
    }
}

/// An epoll-like poller, usable from many threads at once; see the module docs.
///
/// `W` is the number of threads or tasks that may be in [`Poller::wait`] at the same time;
/// one more gets [`PollError::QueueFull`]. Dropping the poller closes it.
pub struct Poller<const W: usize = DEFAULT_WAITERS> {
    shared: Arc<Shared<W>>,
}

/// How many threads or tasks may wait in a [`Poller::new`] poller at once.
pub const DEFAULT_WAITERS: usize = 16;

impl Poller {
    /// An empty poller with room for [`DEFAULT_WAITERS`] waiters.
    pub fn new() -> Self {
        Self::with_waiter_capacity()
    }
}

impl<const W: usize> Poller<W> {
    /// An empty poller with room for `W` waiters.
    pub fn with_waiter_capacity() -> Self {
        let state = State {
            items: BTreeMap::new(),
            ready: VecDeque::new(),
            next_generation: 0,
            closed: false,
        };
        Self { shared: Arc::new(Shared { state: Mutex::new(state), waiters: WaitQueue::new() }) }
    }

    /// Adds `pollable` to the interest list, keyed by its id; reports it by the next `wait`
    /// if it already has events of interest.
    pub fn add(&self, pollable: Arc<dyn Pollable>, interest: Interest) -> Result<(), PollError> {
        if !interest.is_valid() {
            return Err(PollError::InvalidInterest);
        }
        let id = pollable.id();
        let generation = {
            let mut state = self.shared.state.lock();
            if state.closed {
                return Err(PollError::Closed);
            }
            if state.items.contains_key(&id) {
                return Err(PollError::AlreadyAdded);
            }
            state.next_generation += 1;
            let serial = state.next_generation;
            let hook = Hook { poller: Arc::downgrade(&self.shared), id, serial };
            let mode = if interest.is_exclusive() { WaitMode::Exclusive } else { WaitMode::Shared };
            let key = pollable
                .waiters()
                .register(&Waker::from(Arc::new(hook)), mode, interest.mask().bits())
                .map_err(|e| match e {
                    crate::wait::RegisterError::Full => PollError::QueueFull,
                    crate::wait::RegisterError::Closed => PollError::PollableClosed,
                })?;
            let item = Item {
                pollable: Arc::clone(&pollable),
                interest,
                key,
                serial,
                generation: serial,
                ready: false,
                armed: true,
            };
            state.items.insert(id, item);
            serial
        };
        self.shared.check_ready(&*pollable, interest, generation);
        Ok(())
    }

    /// Changes the interest in pollable `id`, and re-arms it if it was one-shot. Exclusive
    /// interest can be neither set nor changed here ([`PollError::InvalidInterest`]).
    pub fn modify(&self, id: PollId, interest: Interest) -> Result<(), PollError> {
        if !interest.is_valid() || interest.is_exclusive() {
            return Err(PollError::InvalidInterest);
        }
        let (pollable, generation) = {
            let mut guard = self.shared.state.lock();
            let state = &mut *guard;
            if state.closed {
                return Err(PollError::Closed);
            }
            let Some(item) = state.items.get_mut(&id) else { return Err(PollError::NotFound) };
            if item.interest.is_exclusive() {
                return Err(PollError::InvalidInterest);
            }
            state.next_generation += 1;
            item.generation = state.next_generation;
            item.interest = interest;
            item.armed = true;
            let waiters = item.pollable.waiters();
            waiters.set_interest(item.key, interest.mask().bits());
            waiters.rearm(item.key);
            (Arc::clone(&item.pollable), item.generation)
        };
        self.shared.check_ready(&*pollable, interest, generation);
        Ok(())
    }

    /// Removes pollable `id` from the interest list. An exclusive wake it had received but
    /// not reported is handed to the pollable's next exclusive waiter.
    pub fn delete(&self, id: PollId) -> Result<(), PollError> {
        let item = {
            let mut guard = self.shared.state.lock();
            let state = &mut *guard;
            if state.closed {
                return Err(PollError::Closed);
            }
            let item = state.items.remove(&id).ok_or(PollError::NotFound)?;
            if item.ready {
                state.ready.retain(|ready| *ready != id);
            }
            item
        };
        item.pollable.waiters().remove_and_pass_on(item.key);
        Ok(())
    }

    /// Waits until events are reported, `deadline` passes (then returns 0) or the poller is
    /// closed; fills `out` with at most `out.len()` reports and returns how many. The caller
    /// sleeps on `sleeper` as an exclusive waiter of the poller.
    pub fn wait<S: Sleeper + ?Sized>(
        &self,
        out: &mut [PollEvent],
        sleeper: &S,
        deadline: Option<Instant>,
    ) -> Result<usize, PollError> {
        if out.is_empty() {
            return Err(PollError::EmptyBuffer);
        }
        let options = WaitOptions::exclusive().deadline(deadline);
        let reported = wait_until(&self.shared.waiters, sleeper, options, || {
            let n = self.shared.harvest(out);
            (n > 0).then_some(n)
        });
        match reported {
            Ok(n) => Ok(n),
            Err(WaitError::TimedOut) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Like [`Poller::wait`] for an async task (no deadline: race it against a timer).
    pub async fn wait_async(&self, out: &mut [PollEvent]) -> Result<usize, PollError> {
        if out.is_empty() {
            return Err(PollError::EmptyBuffer);
        }
        wait_async(&self.shared.waiters, WaitOptions::exclusive(), || {
            let n = self.shared.harvest(out);
            (n > 0).then_some(n)
        })
        .await
        .map_err(PollError::from)
    }

    /// Reports the events available now without waiting (a `wait` with a zero timeout).
    pub fn try_wait(&self, out: &mut [PollEvent]) -> Result<usize, PollError> {
        if out.is_empty() {
            return Err(PollError::EmptyBuffer);
        }
        let n = self.shared.harvest(out);
        if n == 0 && self.is_closed() { Err(PollError::Closed) } else { Ok(n) }
    }

    /// Closes the poller: every pollable is deleted and every waiter returns
    /// [`PollError::Closed`]. Closing twice changes nothing.
    pub fn close(&self) {
        let items = {
            let mut state = self.shared.state.lock();
            if state.closed {
                return;
            }
            state.closed = true;
            state.ready.clear();
            core::mem::take(&mut state.items)
        };
        for item in items.into_values() {
            item.pollable.waiters().remove_and_pass_on(item.key);
        }
        self.shared.waiters.close(Events::HUP.bits());
    }

    /// Whether the poller was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.state.lock().closed
    }

    /// Whether pollable `id` is in the interest list.
    pub fn contains(&self, id: PollId) -> bool {
        self.shared.state.lock().items.contains_key(&id)
    }

    /// The number of pollables in the interest list.
    pub fn len(&self) -> usize {
        self.shared.state.lock().items.len()
    }

    /// Whether the interest list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Poller {
    fn default() -> Self {
        Self::new()
    }
}

impl<const W: usize> Drop for Poller<W> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<const W: usize> core::fmt::Debug for Poller<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("Poller")
            .field("interest", &state.items.len())
            .field("ready", &state.ready.len())
            .field("closed", &state.closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::PollSource;
    use crate::wait::SpinSleeper;

    fn source(id: u64) -> Arc<PollSource<4>> {
        Arc::new(PollSource::new(PollId(id)))
    }

    fn reports(poller: &Poller) -> alloc::vec::Vec<PollEvent> {
        let mut out = [PollEvent::EMPTY; 8];
        let n = poller.try_wait(&mut out).unwrap();
        out[..n].to_vec()
    }

    fn event(id: u64, events: Events) -> PollEvent {
        PollEvent { id: PollId(id), events }
    }

    #[test]
    fn poller_is_shareable_between_threads() {
        fn shareable<T: Send + Sync>(_: &T) {}
        shareable(&Poller::new());
        shareable(&PollSource::<1>::new(PollId(0)));
    }

    #[test]
    fn level_triggered_reports_while_ready() {
        let poller = Poller::new();
        let a = source(1);
        poller.add(a.clone(), Interest::new(Events::IN)).unwrap();
        assert!(reports(&poller).is_empty());
        a.raise(Events::IN | Events::OUT);
        assert_eq!(reports(&poller), [event(1, Events::IN)]);
        assert_eq!(reports(&poller), [event(1, Events::IN)]);
        a.clear(Events::IN);
        assert!(reports(&poller).is_empty());
        assert!(reports(&poller).is_empty());
    }

    #[test]
    fn already_ready_pollable_is_reported_after_add() {
        let poller = Poller::new();
        let a = source(1);
        a.raise(Events::OUT);
        poller.add(a.clone(), Interest::new(Events::OUT).edge_triggered()).unwrap();
        assert_eq!(reports(&poller), [event(1, Events::OUT)]);
        assert!(reports(&poller).is_empty());
    }

    #[test]
    fn edge_triggered_reports_once_per_wake() {
        let poller = Poller::new();
        let a = source(1);
        poller.add(a.clone(), Interest::new(Events::IN).edge_triggered()).unwrap();
        a.raise(Events::IN);
        assert_eq!(reports(&poller), [event(1, Events::IN)]);
        assert!(reports(&poller).is_empty());
        // New data while still readable is a new edge.
        a.raise(Events::IN);
        assert_eq!(reports(&poller), [event(1, Events::IN)]);
    }

    #[test]
    fn oneshot_is_disarmed_until_modified() {
        let poller = Poller::new();
        let a = source(1);
        poller.add(a.clone(), Interest::new(Events::IN).oneshot()).unwrap();
        a.raise(Events::IN);
        assert_eq!(reports(&poller), [event(1, Events::IN)]);
        a.raise(Events::IN);
        assert!(reports(&poller).is_empty());
        poller.modify(PollId(1), Interest::new(Events::IN).oneshot()).unwrap();
        assert_eq!(reports(&poller), [event(1, Events::IN)]);
        assert!(reports(&poller).is_empty());
    }

    #[test]
    fn hang_up_is_reported_unasked_and_removes_the_pollable() {
        let poller = Poller::new();
        let a = source(1);
        let b = source(2);
        poller.add(a.clone(), Interest::new(Events::OUT)).unwrap();
        poller.add(b.clone(), Interest::new(Events::IN).oneshot()).unwrap();
        b.raise(Events::IN);
        assert_eq!(reports(&poller), [event(2, Events::IN)]);
        a.close(true);
        b.close(false);
        assert_eq!(reports(&poller), [event(1, Events::ERR | Events::HUP)]);
        // The disarmed one-shot item waits for its re-arm to report the hang-up.
        assert!(!poller.contains(PollId(1)) && poller.contains(PollId(2)));
        poller.modify(PollId(2), Interest::new(Events::IN).oneshot()).unwrap();
        assert_eq!(reports(&poller), [event(2, Events::IN | Events::HUP)]);
        assert!(poller.is_empty());
        assert!(a.queue().is_empty() && b.queue().is_empty());
        assert_eq!(
            poller.add(a.clone(), Interest::new(Events::IN)),
            Err(PollError::PollableClosed)
        );
    }

    #[test]
    fn exclusive_wakes_one_poller_per_event() {
        let pollers: [Poller; 3] = core::array::from_fn(|_| Poller::new());
        let a = source(1);
        for poller in &pollers {
            poller.add(a.clone(), Interest::new(Events::IN).edge_triggered().exclusive()).unwrap();
        }
        let count =
            |pollers: &[Poller; 3]| pollers.iter().filter(|p| !reports(p).is_empty()).count();
        for _ in 0..4 {
            a.raise(Events::IN);
            assert_eq!(count(&pollers), 1);
        }
    }

    #[test]
    fn control_errors() {
        let poller = Poller::<2>::with_waiter_capacity();
        let a = source(1);
        let bad = Interest::new(Events::IN).exclusive().oneshot();
        assert_eq!(poller.add(a.clone(), bad), Err(PollError::InvalidInterest));
        poller.add(a.clone(), Interest::new(Events::IN).exclusive()).unwrap();
        assert_eq!(poller.add(a.clone(), Interest::new(Events::IN)), Err(PollError::AlreadyAdded));
        assert_eq!(
            poller.modify(PollId(1), Interest::new(Events::IN)),
            Err(PollError::InvalidInterest)
        );
        assert_eq!(poller.modify(PollId(9), Interest::new(Events::IN)), Err(PollError::NotFound));
        assert_eq!(poller.delete(PollId(9)), Err(PollError::NotFound));
        assert!(poller.contains(PollId(1)));
        poller.delete(PollId(1)).unwrap();
        assert!(a.queue().is_empty() && poller.is_empty());
        assert_eq!(poller.try_wait(&mut []), Err(PollError::EmptyBuffer));
        poller.close();
        assert_eq!(poller.add(a, Interest::new(Events::IN)), Err(PollError::Closed));
        assert_eq!(poller.try_wait(&mut [PollEvent::EMPTY]), Err(PollError::Closed));
    }

    #[test]
    fn delete_hands_an_unreported_exclusive_wake_on() {
        let first = Poller::new();
        let second = Poller::new();
        let a = source(1);
        first.add(a.clone(), Interest::new(Events::IN).exclusive()).unwrap();
        second.add(a.clone(), Interest::new(Events::IN).exclusive()).unwrap();
        a.raise(Events::IN);
        first.delete(PollId(1)).unwrap();
        assert_eq!(reports(&second), [event(1, Events::IN)]);
    }

    #[test]
    fn dropping_the_poller_leaves_every_queue() {
        let a = source(1);
        {
            let poller = Poller::new();
            poller.add(a.clone(), Interest::new(Events::IN)).unwrap();
            assert_eq!(a.queue().len(), 1);
        }
        assert!(a.queue().is_empty());
        assert_eq!(a.raise(Events::IN).total(), 0);
    }

    #[test]
    fn wait_times_out_with_zero_and_reports_ready_items() {
        let poller = Poller::new();
        let a = source(1);
        poller.add(a.clone(), Interest::new(Events::IN)).unwrap();
        let tick = crate::sync::AtomicU64::new(0);
        let clock = || Instant::from_micros(tick.fetch_add(1, crate::sync::Ordering::Relaxed));
        let sleeper = SpinSleeper::new(clock);
        let mut out = [PollEvent::EMPTY; 4];
        assert_eq!(poller.wait(&mut out, &sleeper, Some(Instant::from_micros(10))), Ok(0));
        a.raise(Events::IN);
        assert_eq!(poller.wait(&mut out, &sleeper, None), Ok(1));
        assert_eq!(out[0], event(1, Events::IN));
        assert_eq!(poller.wait(&mut [], &sleeper, None), Err(PollError::EmptyBuffer));
        poller.close();
        assert_eq!(poller.wait(&mut out, &sleeper, None), Err(PollError::Closed));
    }

    #[test]
    fn one_wait_reports_each_level_triggered_item_once() {
        let poller = Poller::new();
        let sources: [Arc<PollSource<4>>; 3] = core::array::from_fn(|i| source(i as u64));
        for s in &sources {
            poller.add(s.clone(), Interest::new(Events::OUT)).unwrap();
            s.raise(Events::OUT);
        }
        assert_eq!(reports(&poller).len(), 3);
        let mut two = [PollEvent::EMPTY; 2];
        assert_eq!(poller.try_wait(&mut two), Ok(2));
        assert_eq!(poller.try_wait(&mut two), Ok(2));
        assert_ne!(two[0].id, two[1].id);
    }
}
