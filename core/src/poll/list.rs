//! The one-shot [`poll`] over a list of pollables: the adaptation of poll(2) (thesis §4.4.5).
//!
//! For occasional polling or lists that change every time; a `Poller` (feature `alloc`) is
//! cheaper for a stable set. Needs no heap: each request keeps its own wait-queue key.

use super::PollError;
use super::events::Events;
use super::pollable::Pollable;
use crate::time::Instant;
use crate::wait::{EntryState, RegisterError, SleepOutcome, Sleeper, WaitKey, WaitMode};

/// One pollable of a [`poll`] call and the events found on it.
pub struct PollRequest<'a> {
    pollable: &'a dyn Pollable,
    interest: Events,
    found: Events,
    key: Option<WaitKey>,
}

impl<'a> PollRequest<'a> {
    /// Asks for `interest` on `pollable` ([`Events::ALWAYS`] is added).
    pub fn new(pollable: &'a dyn Pollable, interest: Events) -> Self {
        Self { pollable, interest, found: Events::empty(), key: None }
    }

    /// The pollable.
    pub fn pollable(&self) -> &'a dyn Pollable {
        self.pollable
    }

    /// The events found by the last [`poll`] (empty if none, or on time-out).
    pub fn found(&self) -> Events {
        self.found
    }
}

impl core::fmt::Debug for PollRequest<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PollRequest")
            .field("id", &self.pollable.id())
            .field("interest", &self.interest)
            .field("found", &self.found)
            .finish()
    }
}

/// Removes every entry a [`poll`] registered, however it returns.
struct Registrations<'r, 'a>(&'r mut [PollRequest<'a>]);

impl Drop for Registrations<'_, '_> {
    fn drop(&mut self) {
        for request in self.0.iter_mut() {
            if let Some(key) = request.key.take() {
                request.pollable.waiters().remove(key);
            }
        }
    }
}

/// Waits until at least one request has an event, or `deadline` passes; returns how many
/// requests have events ([`PollRequest::found`]), 0 on time-out.
///
/// The first pass registers a shared entry with `sleeper`'s waker in each pollable's queue
/// while looking at its events, and stops registering at the first event found. If none is
/// found, it sleeps; each time an entry is woken it re-arms the entries and looks at every
/// pollable again. All entries are removed before returning. A pollable that refuses the
/// entry because it is closed is reported with [`Events::HUP`]. With an empty list it just
/// sleeps until the deadline.
pub fn poll<S: Sleeper + ?Sized>(
    requests: &mut [PollRequest<'_>],
    sleeper: &S,
    deadline: Option<Instant>,
) -> Result<usize, PollError> {
    let registrations = Registrations(requests);
    let waker = sleeper.waker();
    let mut registering = true;
    loop {
        let mut found = 0;
        for request in registrations.0.iter_mut() {
            let mut events = Events::empty();
            if registering && request.key.is_none() {
                let interest = request.interest.union(Events::ALWAYS).bits();
                match request.pollable.waiters().register(&waker, WaitMode::Shared, interest) {
                    Ok(key) => request.key = Some(key),
                    Err(RegisterError::Closed) => events = Events::HUP,
                    Err(RegisterError::Full) => return Err(PollError::QueueFull),
                }
            }
            events |= request.pollable.events().reported_for(request.interest);
            request.found = events;
            if !events.is_empty() {
                found += 1;
                registering = false;
            }
        }
        if found > 0 {
            return Ok(found);
        }
        loop {
            let outcome = sleeper.sleep_until(deadline);
            let mut woken = false;
            for request in registrations.0.iter() {
                if let Some(key) = request.key {
                    let state = request.pollable.waiters().rearm(key);
                    woken |= state.is_some_and(EntryState::is_woken);
                }
            }
            if woken {
                break;
            }
            if outcome == SleepOutcome::TimedOut {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::{PollId, PollSource};
    use crate::sync::{AtomicU64, Ordering};
    use crate::wait::SpinSleeper;

    #[test]
    fn reports_ready_pollables_without_sleeping() {
        let a = PollSource::<2>::new(PollId(1));
        let b = PollSource::<2>::new(PollId(2));
        b.raise(Events::OUT | Events::IN);
        let sleeper = SpinSleeper::new(|| Instant::MAX);
        let mut list = [PollRequest::new(&a, Events::IN), PollRequest::new(&b, Events::OUT)];
        assert_eq!(poll(&mut list, &sleeper, Some(Instant::ZERO)), Ok(1));
        assert_eq!(list[0].found(), Events::empty());
        assert_eq!(list[1].found(), Events::OUT);
        assert!(a.queue().is_empty() && b.queue().is_empty());
    }

    #[test]
    fn hang_up_is_reported_without_interest() {
        let a = PollSource::<1>::new(PollId(1));
        a.close(false);
        let sleeper = SpinSleeper::new(|| Instant::MAX);
        let mut list = [PollRequest::new(&a, Events::OUT)];
        assert_eq!(poll(&mut list, &sleeper, None), Ok(1));
        assert_eq!(list[0].found(), Events::HUP);
        assert_eq!(list[0].pollable().id(), PollId(1));
    }

    #[test]
    fn times_out_and_cleans_up() {
        let a = PollSource::<1>::new(PollId(1));
        let now = AtomicU64::new(0);
        let sleeper =
            SpinSleeper::new(|| Instant::from_micros(now.fetch_add(1, Ordering::Relaxed)));
        let mut list = [PollRequest::new(&a, Events::IN)];
        assert_eq!(poll(&mut list, &sleeper, Some(Instant::from_micros(20))), Ok(0));
        assert!(a.queue().is_empty());
    }

    #[test]
    fn full_queue_is_an_error_and_cleans_up() {
        let a = PollSource::<1>::new(PollId(1));
        let b = PollSource::<0>::new(PollId(2));
        let sleeper = SpinSleeper::new(|| Instant::MAX);
        let mut list = [PollRequest::new(&a, Events::IN), PollRequest::new(&b, Events::IN)];
        assert_eq!(poll(&mut list, &sleeper, None), Err(PollError::QueueFull));
        assert!(a.queue().is_empty());
    }
}
