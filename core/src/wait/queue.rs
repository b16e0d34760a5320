//! The wait queue: a fixed-capacity list of waiters, each woken through its [`Waker`].
//!
//! Adapted from the thesis (§4.4.3) and Linux's `wait_queue_head`:
//!
//! * An entry carries a waker, an *interest* mask (the events it wants; a wake whose event
//!   mask does not intersect it passes the entry by, which plays the part of the thesis's
//!   wait-queue function returning 0) and a [`WaitMode`]: shared or exclusive.
//! * [`WaitQueue::wake`] wakes **every** waiting shared entry with a matching interest and
//!   **at most `max_exclusive`** waiting exclusive entries, oldest first.
//! * Each entry has a state changed only under the queue lock: `Waiting`, `Woken` (with the
//!   events of the wake) or gone (removed: cancelled or finished). A woken entry is skipped
//!   by later wakes until its owner re-arms it, so one exclusive wake is never spent twice on
//!   the same waiter and the next wake goes to the next waiter.
//! * Wakers are fired after the lock is released, so a waker may itself take locks (the
//!   poller's does) without deadlock. A late waker call can at worst be spurious.
//!
//! A wake finds an empty queue without taking its lock: the count of entries is published
//! with a sequentially consistent fence after every registration, and a wake reads it after
//! one, so a waiter that registers and then checks its condition either sees the change its
//! waker made before waking, or is counted by that wake (the store-buffering pattern).
//!
//! No heap: entries live inline (`N` of them). [`WaitKey`]s are never reused within a queue,
//! so a stale key can only miss, never hit another waiter.

use super::WaitMode;
use crate::sync::{AtomicUsize, Mutex, Ordering, fence};
use core::task::Waker;
use heapless::Vec;

/// An interest mask that every event matches.
pub const ALL_EVENTS: u32 = u32::MAX;

/// Names one entry of one [`WaitQueue`]; meaningful only for the queue that issued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaitKey(u64);

/// The state of a registered entry, read and changed under the queue lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryState {
    /// Armed: the next matching wake will wake it.
    Waiting,
    /// A wake reached the entry; later wakes skip it until it is re-armed.
    Woken {
        /// The events of the wake that reached it (for a close, the close events).
        events: u32,
    },
}

impl EntryState {
    /// Whether a wake reached the entry.
    pub fn is_woken(self) -> bool {
        matches!(self, EntryState::Woken { .. })
    }
}

/// Why an entry could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterError {
    /// The queue already holds its `N` entries.
    Full,
    /// The queue was closed: no further events will come.
    Closed,
}

impl core::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RegisterError::Full => f.write_str("wait queue is full"),
            RegisterError::Closed => f.write_str("wait queue is closed"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RegisterError {}

/// How many entries a wake reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Woke {
    /// Shared entries woken.
    pub shared: usize,
    /// Exclusive entries woken.
    pub exclusive: usize,
}

impl Woke {
    /// All entries woken.
    pub fn total(self) -> usize {
        self.shared + self.exclusive
    }
}

#[derive(Debug)]
struct Entry {
    key: WaitKey,
    waker: Waker,
    mode: WaitMode,
    interest: u32,
    state: EntryState,
}

#[derive(Debug)]
struct Entries<const N: usize> {
    /// In registration order, so the first waiting exclusive entry is the oldest.
    list: Vec<Entry, N>,
    next_key: u64,
    /// The events given to [`WaitQueue::close`], once closed.
    closed: Option<u32>,
}

impl<const N: usize> Entries<N> {
    fn position(&self, key: WaitKey) -> Option<usize> {
        self.list.iter().position(|e| e.key == key)
    }

    fn get_mut(&mut self, key: WaitKey) -> Option<&mut Entry> {
        self.list.iter_mut().find(|e| e.key == key)
    }

    /// Marks the matching entries woken and collects their wakers to fire after unlocking.
    fn wake(
        &mut self,
        events: u32,
        max_exclusive: usize,
        include_shared: bool,
        wakers: &mut Vec<Waker, N>,
    ) -> Woke {
        let mut woke = Woke::default();
        for entry in self.list.iter_mut() {
            if entry.state != EntryState::Waiting || entry.interest & events == 0 {
                continue;
            }
            match entry.mode {
                WaitMode::Shared if include_shared => woke.shared += 1,
                WaitMode::Exclusive if woke.exclusive < max_exclusive => woke.exclusive += 1,
                _ => continue,
            }
            entry.state = EntryState::Woken { events };
            // Cannot fail: there are at most N entries.
            let _ = wakers.push(entry.waker.clone());
        }
        woke
    }
}

/// Fires collected wakers (by reference: moving the inline vector would copy all of it).
fn fire<const N: usize>(wakers: &Vec<Waker, N>) {
    wakers.iter().for_each(Waker::wake_by_ref);
}

/// A queue of waiters with room for `N` entries; see the module docs.
#[derive(Debug)]
pub struct WaitQueue<const N: usize> {
    entries: Mutex<Entries<N>>,
    /// `entries.list.len()`, written under the lock, read by wakes without it.
    registered: AtomicUsize,
}

impl<const N: usize> WaitQueue<N> {
    /// An empty, open queue.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            entries: Mutex::new(Entries { list: Vec::new(), next_key: 0, closed: None }),
            registered: AtomicUsize::new(0),
        }
    }

    /// An empty, open queue.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(Entries { list: Vec::new(), next_key: 0, closed: None }),
            registered: AtomicUsize::new(0),
        }
    }

    /// The number of entries the queue can hold.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Adds a waiting entry that `waker` wakes when a wake's events intersect `interest`
    /// (use [`ALL_EVENTS`] to match every wake).
    pub fn register(
        &self,
        waker: &Waker,
        mode: WaitMode,
        interest: u32,
    ) -> Result<WaitKey, RegisterError> {
        let mut entries = self.entries.lock();
        if entries.closed.is_some() {
            return Err(RegisterError::Closed);
        }
        let key = WaitKey(entries.next_key);
        let entry = Entry { key, waker: waker.clone(), mode, interest, state: EntryState::Waiting };
        entries.list.push(entry).map_err(|_| RegisterError::Full)?;
        entries.next_key += 1;
        self.registered.store(entries.list.len(), Ordering::Relaxed);
        drop(entries);
        // Pairs with the fence in `wake_with`: the caller's next check of its condition
        // comes after this entry is counted.
        fence(Ordering::SeqCst);
        Ok(key)
    }

    /// Like [`WaitQueue::register`], but returns a guard that removes the entry when dropped
    /// (handing on an exclusive wake it did not use; see [`WaitEntry`]).
    pub fn register_entry(
        &self,
        waker: &Waker,
        mode: WaitMode,
        interest: u32,
    ) -> Result<WaitEntry<'_>, RegisterError> {
        WaitEntry::register(self, waker, mode, interest)
    }

    /// The entry's state, or `None` if it is not (or no longer) registered.
    pub fn state(&self, key: WaitKey) -> Option<EntryState> {
        self.entries.lock().get_mut(key).map(|e| e.state)
    }

    /// Re-arms a woken entry in place (it keeps its turn among exclusive waiters) and returns
    /// the state it had; `None` if the key is unknown.
    ///
    /// Once the queue is closed the entry stays woken, so its owner cannot sleep forever.
    pub fn rearm(&self, key: WaitKey) -> Option<EntryState> {
        let mut entries = self.entries.lock();
        let closed = entries.closed.is_some();
        let entry = entries.get_mut(key)?;
        let previous = entry.state;
        if !closed {
            entry.state = EntryState::Waiting;
        }
        Some(previous)
    }

    /// Re-arms an entry and moves it behind every other entry (the thesis's fair wake-up:
    /// a long-lived exclusive waiter, such as a poller, does not monopolise the events).
    /// Returns the state it had; `None` if the key is unknown.
    pub fn requeue(&self, key: WaitKey) -> Option<EntryState> {
        let mut entries = self.entries.lock();
        let index = entries.position(key)?;
        let mut entry = entries.list.remove(index);
        let previous = entry.state;
        if entries.closed.is_none() {
            entry.state = EntryState::Waiting;
        }
        // Cannot fail: the entry was just taken out.
        let _ = entries.list.push(entry);
        Some(previous)
    }

    /// Replaces the entry's waker (an async task re-polled with another waker); returns
    /// whether the key is registered.
    pub fn set_waker(&self, key: WaitKey, waker: &Waker) -> bool {
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(key) else { return false };
        if !entry.waker.will_wake(waker) {
            entry.waker = waker.clone();
        }
        true
    }

    /// Replaces the entry's interest mask; returns whether the key is registered.
    pub fn set_interest(&self, key: WaitKey, interest: u32) -> bool {
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(key) else { return false };
        entry.interest = interest;
        true
    }

    /// Removes the entry and returns the state it had (`Woken` means a wake reached it and
    /// the caller now owns that wake); `None` if the key is unknown.
    pub fn remove(&self, key: WaitKey) -> Option<EntryState> {
        let mut entries = self.entries.lock();
        let index = entries.position(key)?;
        let state = entries.list.remove(index).state;
        self.registered.store(entries.list.len(), Ordering::Relaxed);
        Some(state)
    }

    /// Removes the entry; if it was an exclusive entry holding a wake, hands that wake to the
    /// next waiting exclusive entry (as Linux's `abort_exclusive_wait`). Returns the state
    /// it had; `None` if the key is unknown.
    pub fn remove_and_pass_on(&self, key: WaitKey) -> Option<EntryState> {
        let mut wakers = Vec::new();
        let previous = {
            let mut entries = self.entries.lock();
            let index = entries.position(key)?;
            let entry = entries.list.remove(index);
            self.registered.store(entries.list.len(), Ordering::Relaxed);
            if let (WaitMode::Exclusive, EntryState::Woken { events }) = (entry.mode, entry.state) {
                entries.wake(events, 1, false, &mut wakers);
            }
            entry.state
        };
        fire(&wakers);
        Some(previous)
    }

    /// Whether any entry may be registered, read without the lock or a fence: exact only
    /// when the caller is ordered after the registration by other means (a lock both sides
    /// take), as when a waiter registers and then checks a queue that the caller changed
    /// under that lock. Otherwise use [`WaitQueue::wake`], which fences.
    pub fn maybe_registered(&self) -> bool {
        self.registered.load(Ordering::Relaxed) > 0
    }

    /// Wakes one waiting exclusive entry whose interest matches `events` and no shared
    /// entry: hands on a wake a waiter received but could not use. Returns whether an entry
    /// was woken (`false` when no exclusive entry was waiting: the wake is dropped).
    pub fn pass_on(&self, events: u32) -> bool {
        self.wake_with(events, 1, false).exclusive == 1
    }

    /// Wakes every waiting shared entry whose interest matches `events` and at most
    /// `max_exclusive` waiting exclusive ones (oldest first; `usize::MAX` for all).
    pub fn wake(&self, events: u32, max_exclusive: usize) -> Woke {
        self.wake_with(events, max_exclusive, true)
    }

    /// Wakes every shared entry and the oldest waiting exclusive entry.
    pub fn wake_one(&self) -> Woke {
        self.wake(ALL_EVENTS, 1)
    }

    /// Wakes every shared entry and at most `n` waiting exclusive entries.
    pub fn wake_n(&self, n: usize) -> Woke {
        self.wake(ALL_EVENTS, n)
    }

    /// Wakes every waiting entry.
    pub fn wake_all(&self) -> Woke {
        self.wake(ALL_EVENTS, usize::MAX)
    }

    fn wake_with(&self, events: u32, max_exclusive: usize, include_shared: bool) -> Woke {
        // Pairs with the fence in `register`: the caller changed the condition before this.
        fence(Ordering::SeqCst);
        if self.registered.load(Ordering::Relaxed) == 0 {
            return Woke::default();
        }
        let mut wakers = Vec::new();
        let woke = self.entries.lock().wake(events, max_exclusive, include_shared, &mut wakers);
        fire(&wakers);
        woke
    }

    /// Closes the queue: every waiting entry, whatever its interest, is woken with `events`
    /// (typically hang-up), entries can no longer be re-armed and registrations fail with
    /// [`RegisterError::Closed`]. Closing twice changes nothing.
    pub fn close(&self, events: u32) -> Woke {
        let mut wakers = Vec::new();
        let woke = {
            let mut entries = self.entries.lock();
            if entries.closed.is_some() {
                return Woke::default();
            }
            entries.closed = Some(events);
            for entry in entries.list.iter_mut() {
                entry.interest = ALL_EVENTS;
            }
            entries.wake(events, usize::MAX, true, &mut wakers)
        };
        fire(&wakers);
        woke
    }

    /// Whether [`WaitQueue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.entries.lock().closed.is_some()
    }

    /// The events the queue was closed with, if it was.
    pub fn closed_events(&self) -> Option<u32> {
        self.entries.lock().closed
    }

    /// The number of registered entries, woken or not.
    pub fn len(&self) -> usize {
        self.entries.lock().list.len()
    }

    /// Whether no entry is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of entries in `mode` still waiting for a wake (a fair-ish coordinator asks
    /// this to let a newcomer queue behind existing waiters).
    pub fn waiting(&self, mode: WaitMode) -> usize {
        let entries = self.entries.lock();
        entries.list.iter().filter(|e| e.mode == mode && e.state == EntryState::Waiting).count()
    }
}

/// The waiter's side of a wait queue, whatever its capacity: what a waiter may do with its
/// own entry. Waking others and closing are left to the queue's owner (thesis §4.4.3: the
/// owner hands out entries, a waiter manages only its own). A [`Pollable`] exposes its queue
/// as `&dyn Waiters`.
///
/// Every method does what the [`WaitQueue`] method of the same name does.
///
/// [`Pollable`]: crate::poll::Pollable
pub trait Waiters: Sync {
    /// See [`WaitQueue::register`].
    fn register(
        &self,
        waker: &Waker,
        mode: WaitMode,
        interest: u32,
    ) -> Result<WaitKey, RegisterError>;
    /// See [`WaitQueue::state`].
    fn state(&self, key: WaitKey) -> Option<EntryState>;
    /// See [`WaitQueue::rearm`].
    fn rearm(&self, key: WaitKey) -> Option<EntryState>;
    /// See [`WaitQueue::requeue`].
    fn requeue(&self, key: WaitKey) -> Option<EntryState>;
    /// See [`WaitQueue::set_waker`].
    fn set_waker(&self, key: WaitKey, waker: &Waker) -> bool;
    /// See [`WaitQueue::set_interest`].
    fn set_interest(&self, key: WaitKey, interest: u32) -> bool;
    /// See [`WaitQueue::remove`].
    fn remove(&self, key: WaitKey) -> Option<EntryState>;
    /// See [`WaitQueue::remove_and_pass_on`].
    fn remove_and_pass_on(&self, key: WaitKey) -> Option<EntryState>;
    /// See [`WaitQueue::pass_on`].
    fn pass_on(&self, events: u32) -> bool;
    /// See [`WaitQueue::is_closed`].
    fn is_closed(&self) -> bool;
}

impl<const N: usize> Waiters for WaitQueue<N> {
    fn register(
        &self,
        waker: &Waker,
        mode: WaitMode,
        interest: u32,
    ) -> Result<WaitKey, RegisterError> {
        WaitQueue::register(self, waker, mode, interest)
    }
    fn state(&self, key: WaitKey) -> Option<EntryState> {
        WaitQueue::state(self, key)
    }
    fn rearm(&self, key: WaitKey) -> Option<EntryState> {
        WaitQueue::rearm(self, key)
    }
    fn requeue(&self, key: WaitKey) -> Option<EntryState> {
        WaitQueue::requeue(self, key)
    }
    fn set_waker(&self, key: WaitKey, waker: &Waker) -> bool {
        WaitQueue::set_waker(self, key, waker)
    }
    fn set_interest(&self, key: WaitKey, interest: u32) -> bool {
        WaitQueue::set_interest(self, key, interest)
    }
    fn remove(&self, key: WaitKey) -> Option<EntryState> {
        WaitQueue::remove(self, key)
    }
    fn remove_and_pass_on(&self, key: WaitKey) -> Option<EntryState> {
        WaitQueue::remove_and_pass_on(self, key)
    }
    fn pass_on(&self, events: u32) -> bool {
        WaitQueue::pass_on(self, events)
    }
    fn is_closed(&self) -> bool {
        WaitQueue::is_closed(self)
    }
}

impl<const N: usize> Default for WaitQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A registered entry that removes itself from its queue when dropped.
///
/// Dropping it (or [`WaitEntry::finish`]) hands an exclusive wake the owner did not use to
/// the next exclusive waiter, so cancelling a wait (a dropped future, an early return)
/// never loses a wake-up. "Did not use" means: the wake reached the entry after the owner
/// last re-armed it ([`WaitEntry::rearm`]). An owner that re-arms and then re-checks its
/// condition therefore consumes exactly the wakes it acted on.
pub struct WaitEntry<'q> {
    queue: &'q dyn Waiters,
    key: WaitKey,
    mode: WaitMode,
    removed: bool,
}

impl<'q> WaitEntry<'q> {
    /// Registers a waiting entry in `queue` (see [`WaitQueue::register`]).
    pub fn register(
        queue: &'q dyn Waiters,
        waker: &Waker,
        mode: WaitMode,
        interest: u32,
    ) -> Result<Self, RegisterError> {
        let key = queue.register(waker, mode, interest)?;
        Ok(Self { queue, key, mode, removed: false })
    }

    /// The entry's key in its queue.
    pub fn key(&self) -> WaitKey {
        self.key
    }

    /// The queue the entry is registered in.
    pub fn queue(&self) -> &'q dyn Waiters {
        self.queue
    }

    /// The entry's mode.
    pub fn mode(&self) -> WaitMode {
        self.mode
    }

    /// The entry's state (`None` only if it was removed through the queue by key).
    pub fn state(&self) -> Option<EntryState> {
        self.queue.state(self.key)
    }

    /// Re-arms the entry in place; returns the state it had. See [`WaitQueue::rearm`].
    pub fn rearm(&self) -> Option<EntryState> {
        self.queue.rearm(self.key)
    }

    /// Replaces the entry's waker. See [`WaitQueue::set_waker`].
    pub fn set_waker(&self, waker: &Waker) -> bool {
        self.queue.set_waker(self.key, waker)
    }

    /// Removes the entry, handing on an unused exclusive wake; returns the state it had.
    pub fn finish(mut self) -> Option<EntryState> {
        self.removed = true;
        self.queue.remove_and_pass_on(self.key)
    }

    /// Removes the entry *without* handing on its wake; returns the state it had. A
    /// `Woken` result makes the caller responsible for the wake: act on it, or hand it on
    /// with [`WaitQueue::pass_on`].
    pub fn take(mut self) -> Option<EntryState> {
        self.removed = true;
        self.queue.remove(self.key)
    }
}

impl core::fmt::Debug for WaitEntry<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WaitEntry").field("key", &self.key).field("mode", &self.mode).finish()
    }
}

impl Drop for WaitEntry<'_> {
    fn drop(&mut self) {
        if !self.removed {
            self.queue.remove_and_pass_on(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN: u32 = 1;
    const OUT: u32 = 2;

    fn noop() -> &'static Waker {
        Waker::noop()
    }

    #[test]
    fn wake_one_reaches_oldest_exclusive_and_every_shared() {
        let q = WaitQueue::<4>::new();
        let a = q.register(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
        let b = q.register(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
        let s = q.register(noop(), WaitMode::Shared, ALL_EVENTS).unwrap();
        assert_eq!(q.wake_one(), Woke { shared: 1, exclusive: 1 });
        assert!(q.state(a).unwrap().is_woken());
        assert_eq!(q.state(b), Some(EntryState::Waiting));
        assert!(q.state(s).unwrap().is_woken());
        // a is already woken: the next wake goes to b.
        assert_eq!(q.wake_one(), Woke { shared: 0, exclusive: 1 });
        assert!(q.state(b).unwrap().is_woken());
        assert_eq!(q.wake_one(), Woke::default());
    }

    #[test]
    fn interest_filters_wakes() {
        let q = WaitQueue::<2>::new();
        let reader = q.register(noop(), WaitMode::Shared, IN).unwrap();
        assert_eq!(q.wake(OUT, usize::MAX).total(), 0);
        assert_eq!(q.state(reader), Some(EntryState::Waiting));
        assert_eq!(q.wake(IN | OUT, usize::MAX).shared, 1);
        assert_eq!(q.state(reader), Some(EntryState::Woken { events: IN | OUT }));
        assert!(q.set_interest(reader, OUT));
        assert_eq!(q.rearm(reader), Some(EntryState::Woken { events: IN | OUT }));
        assert_eq!(q.wake(IN, 1).total(), 0);
    }

    #[test]
    fn full_queue_refuses_registration() {
        let q = WaitQueue::<1>::new();
        let key = q.register(noop(), WaitMode::Shared, ALL_EVENTS).unwrap();
        assert_eq!(q.register(noop(), WaitMode::Shared, ALL_EVENTS), Err(RegisterError::Full));
        assert_eq!(q.remove(key), Some(EntryState::Waiting));
        assert_eq!(q.remove(key), None);
        assert!(q.register(noop(), WaitMode::Shared, ALL_EVENTS).is_ok());
    }

    #[test]
    fn keys_are_not_reused() {
        let q = WaitQueue::<1>::new();
        let first = q.register(noop(), WaitMode::Shared, ALL_EVENTS).unwrap();
        q.remove(first);
        let second = q.register(noop(), WaitMode::Shared, ALL_EVENTS).unwrap();
        assert_ne!(first, second);
        assert_eq!(q.state(first), None);
    }

    #[test]
    fn wake_n_limits_exclusive_entries_only() {
        let q = WaitQueue::<5>::new();
        let keys: [WaitKey; 4] =
            core::array::from_fn(|_| q.register(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap());
        q.register(noop(), WaitMode::Shared, ALL_EVENTS).unwrap();
        assert_eq!(q.wake_n(2), Woke { shared: 1, exclusive: 2 });
        let woken: [bool; 4] = keys.map(|k| q.state(k).unwrap().is_woken());
        assert_eq!(woken, [true, true, false, false]);
        assert_eq!(q.waiting(WaitMode::Exclusive), 2);
        assert_eq!(q.wake_all(), Woke { shared: 0, exclusive: 2 });
    }

    #[test]
    fn removing_an_unused_exclusive_wake_hands_it_on() {
        let q = WaitQueue::<3>::new();
        let a = q.register(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
        let b = q.register(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
        let s = q.register(noop(), WaitMode::Shared, ALL_EVENTS).unwrap();
        q.wake(IN, 1);
        q.rearm(s);
        assert_eq!(q.remove_and_pass_on(a), Some(EntryState::Woken { events: IN }));
        assert_eq!(q.state(b), Some(EntryState::Woken { events: IN }));
        // The hand-on is not a new event: shared entries are not woken again.
        assert_eq!(q.state(s), Some(EntryState::Waiting));
    }

    #[test]
    fn removing_a_waiting_entry_wakes_nobody() {
        let q = WaitQueue::<2>::new();
        let a = q.register(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
        let b = q.register(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
        assert_eq!(q.remove_and_pass_on(a), Some(EntryState::Waiting));
        assert_eq!(q.state(b), Some(EntryState::Waiting));
    }

    #[test]
    fn requeue_moves_entry_behind_the_others() {
        let q = WaitQueue::<2>::new();
        let a = q.register(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
        let b = q.register(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
        q.wake_one();
        assert!(q.requeue(a).unwrap().is_woken());
        q.wake_one();
        assert!(q.state(b).unwrap().is_woken());
        assert_eq!(q.state(a), Some(EntryState::Waiting));
        // rearm keeps the place: b is now first again.
        q.rearm(b);
        q.wake_one();
        assert!(q.state(b).unwrap().is_woken());
        assert_eq!(q.state(a), Some(EntryState::Waiting));
    }

    #[test]
    fn close_wakes_everyone_and_refuses_newcomers() {
        let q = WaitQueue::<3>::new();
        let a = q.register(noop(), WaitMode::Exclusive, IN).unwrap();
        let b = q.register(noop(), WaitMode::Exclusive, IN).unwrap();
        let s = q.register(noop(), WaitMode::Shared, OUT).unwrap();
        assert_eq!(q.close(8), Woke { shared: 1, exclusive: 2 });
        for key in [a, b, s] {
            assert_eq!(q.state(key), Some(EntryState::Woken { events: 8 }));
            // A closed queue keeps entries woken.
            q.rearm(key);
            q.requeue(key);
            assert!(q.state(key).unwrap().is_woken());
        }
        assert_eq!(q.register(noop(), WaitMode::Shared, IN), Err(RegisterError::Closed));
        assert_eq!(q.closed_events(), Some(8));
        assert_eq!(q.close(16), Woke::default());
        assert!(q.is_closed());
    }

    #[test]
    fn entry_guard_removes_itself_and_hands_on_unused_wake() {
        let q = WaitQueue::<2>::new();
        let b;
        {
            let a = q.register_entry(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
            b = q.register(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
            q.wake_one();
            assert!(a.state().unwrap().is_woken());
        }
        assert_eq!(q.len(), 1);
        assert!(q.state(b).unwrap().is_woken());

        let c = q.register_entry(noop(), WaitMode::Exclusive, ALL_EVENTS).unwrap();
        q.wake_one();
        assert!(c.take().unwrap().is_woken());
        // Only b is left and it is already woken: a hand-on finds nobody.
        assert!(!q.pass_on(ALL_EVENTS));
        assert_eq!(q.len(), 1);
    }

    #[cfg(not(loom))]
    #[test]
    fn queue_can_be_a_static_shared_by_threads() {
        static QUEUE: WaitQueue<2> = WaitQueue::new();
        fn shareable<T: Send + Sync>(_: &T) {}
        shareable(&QUEUE);
        let key = QUEUE.register(noop(), WaitMode::Shared, ALL_EVENTS).unwrap();
        assert_eq!(QUEUE.wake_all().shared, 1);
        assert!(QUEUE.remove(key).unwrap().is_woken());
    }

    #[test]
    fn set_waker_on_unknown_key_reports_false() {
        let q = WaitQueue::<1>::new();
        let key = q.register(noop(), WaitMode::Shared, ALL_EVENTS).unwrap();
        assert!(q.set_waker(key, noop()));
        q.remove(key);
        assert!(!q.set_waker(key, noop()));
        assert!(!q.set_interest(key, 0));
        assert_eq!(q.rearm(key), None);
        assert_eq!(q.requeue(key), None);
        assert!(q.is_empty());
        assert_eq!(q.capacity(), 1);
    }
}
