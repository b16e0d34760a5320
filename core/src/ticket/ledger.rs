//! The credit ledger: per-link credit balances, ticketed requests and reservations, as a
//! plain state machine.
//!
//! It never blocks and wakes no one itself: an operation that hands a credit to a request
//! (or fails it) marks the request as *signalled*; the caller then drains the signals with
//! [`Ledger::drain_signals`] and fires the wakers, after releasing its lock. Each request
//! stores its own waker `W` (a [`core::task::Waker`] in the coordinator, anything in tests).
//!
//! Invariants after every operation (checked by `core/tests/ticket_props.rs`):
//!
//! * a link never has more unsettled requests than credits (`unsettled <= max(balance, 0)`),
//!   so every woken waiter finds its credit;
//! * a link with a free credit (one not earmarked) has no new request that could use it, so
//!   no credit sits idle while a waiter sleeps;
//! * per link, `balance + reserved + acquired` equals the sum of all credit changes: credits
//!   move, they are never made or lost by waiting, cancelling or timing out.
//!
//! No heap: `LINKS` link slots and `REQUESTS` request slots live inline. The link and
//! general queues are the requests' ticket order, found by a scan of the request slots
//! (a handful of waiters; cheaper than keeping linked queues in fixed memory).

use super::{CreditError, Fairness, Target};
use core::task::Poll;

/// Names one request of the ledger that issued it. Keys are never reused (they carry the
/// ticket), so a stale key can only miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey {
    index: usize,
    ticket: u64,
}

impl RequestKey {
    /// The request's ticket: its place in the order requests were made.
    pub fn ticket(self) -> u64 {
        self.ticket
    }
}

/// What [`Ledger::request`] did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Admission<K> {
    /// A credit of this link was free: it is reserved for the caller, who need not wait.
    Granted(K),
    /// The request waits; [`Ledger::poll`] it when its waker fires.
    Queued(RequestKey),
}

/// Where a waiting request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState<K> {
    /// Waiting for a credit.
    New,
    /// A credit of this link is earmarked for it; its waiter was woken to take it.
    Unsettled(K),
    /// The wait failed; its waiter was woken to collect the error.
    Failed(CreditError),
}

/// A snapshot of one waiting request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestInfo<K> {
    /// The request's key.
    pub key: RequestKey,
    /// What it waits for.
    pub target: Target<K>,
    /// Where it stands.
    pub state: RequestState<K>,
    /// Whether it fails with [`CreditError::NoLinks`] when there is no link.
    pub notify_if_none: bool,
}

/// A snapshot of one link's credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkInfo<K> {
    /// The link's key.
    pub key: K,
    /// Credits not yet taken (earmarked ones included); negative after a capacity cut.
    pub balance: i64,
    /// Requests whose credit is earmarked here and not yet taken.
    pub unsettled: u32,
    /// Credits taken by waits and not yet acquired or released.
    pub reserved: u64,
}

impl<K> LinkInfo<K> {
    /// Credits that nobody holds: neither earmarked nor reserved.
    pub fn free(&self) -> i64 {
        self.balance.max(0) - i64::from(self.unsettled)
    }
}

#[derive(Debug)]
enum Stage {
    New,
    /// The credit is earmarked on this link slot.
    Unsettled(usize),
    Failed(CreditError),
}

#[derive(Debug)]
struct Request<K, W> {
    ticket: u64,
    target: Target<K>,
    /// The link slot of a link-specific request; `None` for the general queue.
    link: Option<usize>,
    notify_if_none: bool,
    stage: Stage,
    /// Woken since the last drain (the waker is still to be fired).
    signal: bool,
    waker: W,
}

/// The credit balances of the links and the requests waiting for them. See the module docs.
#[derive(Debug)]
pub struct Ledger<K, W, const LINKS: usize, const REQUESTS: usize> {
    fairness: Fairness,
    links: [Option<LinkInfo<K>>; LINKS],
    /// Unfair mode: whether the next signal of each link goes to the general queue.
    general_next: [bool; LINKS],
    requests: [Option<Request<K, W>>; REQUESTS],
    next_ticket: u64,
    /// Where the search for "any link with a credit" starts, so links take turns.
    cursor: usize,
    /// How many requests are signalled and not drained.
    signals: usize,
    closed: bool,
}

impl<K: Copy + Eq, W, const LINKS: usize, const REQUESTS: usize> Ledger<K, W, LINKS, REQUESTS> {
    /// An empty ledger: no links, no requests.
    pub const fn new(fairness: Fairness) -> Self {
        Self {
            fairness,
            links: [const { None }; LINKS],
            general_next: [false; LINKS],
            requests: [const { None }; REQUESTS],
            next_ticket: 0,
            cursor: 0,
            signals: 0,
            closed: false,
        }
    }

    /// How credits are shared.
    pub fn fairness(&self) -> Fairness {
        self.fairness
    }

    /// Whether [`Ledger::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Adds a link with `credits` credits; waiting requests get them at once.
    pub fn add_link(&mut self, key: K, credits: i64) -> Result<(), CreditError> {
        if self.slot_of(key).is_some() {
            return Err(CreditError::DuplicateLink);
        }
        let l = self.links.iter().position(Option::is_none).ok_or(CreditError::LinksFull)?;
        self.links[l] = Some(LinkInfo { key, balance: credits, unsettled: 0, reserved: 0 });
        self.general_next[l] = false;
        self.dispatch(l);
        Ok(())
    }

    /// Removes a link and returns its last state (its reservations are dropped with it).
    ///
    /// Its own waiters fail with [`CreditError::LinkClosed`]; waiters for any link whose
    /// credit was earmarked here wait again for the other links. If no link is left, waiters
    /// for any link made with notify-if-none fail with [`CreditError::NoLinks`].
    pub fn remove_link(&mut self, key: K) -> Result<LinkInfo<K>, CreditError> {
        let l = self.slot_of(key).ok_or(CreditError::UnknownLink)?;
        for i in 0..REQUESTS {
            let Some(request) = &self.requests[i] else { continue };
            if request.link == Some(l) {
                if !matches!(request.stage, Stage::Failed(_)) {
                    self.fail(i, CreditError::LinkClosed);
                }
            } else if matches!(request.stage, Stage::Unsettled(x) if x == l) {
                self.unearmark(i);
            }
        }
        let removed = self.links[l].take().ok_or(CreditError::UnknownLink)?;
        if self.links.iter().all(Option::is_none) {
            for i in 0..REQUESTS {
                let fails = self.requests[i].as_ref().is_some_and(|r| {
                    r.link.is_none() && r.notify_if_none && matches!(r.stage, Stage::New)
                });
                if fails {
                    self.fail(i, CreditError::NoLinks);
                }
            }
        } else {
            self.dispatch_all();
        }
        Ok(removed)
    }

    /// Changes a link's balance by `delta` (negative: a capacity cut) and returns the new
    /// balance. New credits go to waiting requests; a cut below the unsettled requests
    /// returns the youngest of them to waiting.
    pub fn add_credits(&mut self, key: K, delta: i64) -> Result<i64, CreditError> {
        let l = self.slot_of(key).ok_or(CreditError::UnknownLink)?;
        let balance = self.link_mut(l).map_or(0, |link| {
            link.balance = link.balance.saturating_add(delta);
            link.balance
        });
        if delta > 0 {
            self.dispatch(l);
        } else if delta < 0 && self.shed(l) {
            self.dispatch_all();
        }
        Ok(balance)
    }

    /// Takes a credit now if the fairness rules allow it, and reserves it.
    ///
    /// Fails with [`CreditError::WouldBlock`] if the caller would have to wait.
    pub fn try_reserve(
        &mut self,
        target: Target<K>,
        notify_if_none: bool,
    ) -> Result<K, CreditError> {
        self.try_grant(target, notify_if_none)?.ok_or(CreditError::WouldBlock)
    }

    /// Takes a credit now if allowed (like [`Ledger::try_reserve`]), or queues a request that
    /// `waker` will be signalled for.
    pub fn request(
        &mut self,
        target: Target<K>,
        notify_if_none: bool,
        waker: W,
    ) -> Result<Admission<K>, CreditError> {
        if let Some(key) = self.try_grant(target, notify_if_none)? {
            return Ok(Admission::Granted(key));
        }
        let index =
            self.requests.iter().position(Option::is_none).ok_or(CreditError::WaitersFull)?;
        let link = match target {
            Target::Link(key) => Some(self.slot_of(key).ok_or(CreditError::UnknownLink)?),
            Target::Any => None,
        };
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.requests[index] = Some(Request {
            ticket,
            target,
            link,
            notify_if_none,
            stage: Stage::New,
            signal: false,
            waker,
        });
        Ok(Admission::Queued(RequestKey { index, ticket }))
    }

    /// Looks at a request: if a credit is earmarked for it, the credit is taken and reserved
    /// and the request is settled (`Ready(Ok(link))`); if it failed, it is removed
    /// (`Ready(Err(..))`); otherwise it keeps waiting (`Pending`).
    pub fn poll(&mut self, key: RequestKey) -> Poll<Result<K, CreditError>> {
        let Some(index) = self.live(key) else {
            return Poll::Ready(Err(CreditError::StaleRequest));
        };
        let stage = match &self.requests[index] {
            Some(request) => match request.stage {
                Stage::New => return Poll::Pending,
                Stage::Unsettled(l) => Ok(l),
                Stage::Failed(error) => Err(error),
            },
            None => return Poll::Ready(Err(CreditError::StaleRequest)),
        };
        self.remove(index);
        Poll::Ready(match stage {
            Ok(l) => match self.link_mut(l) {
                Some(link) => {
                    link.unsettled -= 1;
                    link.balance -= 1;
                    link.reserved += 1;
                    Ok(link.key)
                }
                None => Err(CreditError::LinkClosed),
            },
            Err(error) => Err(error),
        })
    }

    /// Withdraws a request (timeout, cancellation). It never consumes a credit: a credit
    /// earmarked for it goes to the next waiter. Returns whether the request existed.
    pub fn cancel(&mut self, key: RequestKey) -> bool {
        let Some(index) = self.live(key) else { return false };
        let Some(request) = self.remove(index) else { return false };
        if let Stage::Unsettled(l) = request.stage {
            if let Some(link) = self.link_mut(l) {
                link.unsettled -= 1;
            }
            self.dispatch(l);
        }
        true
    }

    /// Confirms one reservation of `key`: its message was sent, the credit is spent.
    pub fn acquire(&mut self, key: K) -> Result<(), CreditError> {
        let link = self.reservation(key)?;
        link.reserved -= 1;
        Ok(())
    }

    /// Gives back one reservation of `key`: no message after all; the credit returns to the
    /// link and goes to the next waiter.
    pub fn release(&mut self, key: K) -> Result<(), CreditError> {
        let link = self.reservation(key)?;
        link.reserved -= 1;
        link.balance = link.balance.saturating_add(1);
        if let Some(l) = self.slot_of(key) {
            self.dispatch(l);
        }
        Ok(())
    }

    /// Closes the ledger: every waiting request fails with [`CreditError::Closed`] and so do
    /// later requests. Credits and reservations can still be changed.
    pub fn close(&mut self) {
        self.closed = true;
        for i in 0..REQUESTS {
            if self.requests[i].as_ref().is_some_and(|r| !matches!(r.stage, Stage::Failed(_))) {
                self.fail(i, CreditError::Closed);
            }
        }
    }

    /// Whether some request was signalled since the last [`Ledger::drain_signals`].
    pub fn has_signals(&self) -> bool {
        self.signals > 0
    }

    /// Calls `wake` with the waker of every request signalled since the last drain.
    pub fn drain_signals(&mut self, mut wake: impl FnMut(&W)) {
        if self.signals == 0 {
            return;
        }
        for request in self.requests.iter_mut().flatten() {
            if request.signal {
                request.signal = false;
                wake(&request.waker);
            }
        }
        self.signals = 0;
    }

    /// The waker of a waiting request, to replace it (an async task polled with a new one).
    pub fn waker_mut(&mut self, key: RequestKey) -> Option<&mut W> {
        let index = self.live(key)?;
        self.requests[index].as_mut().map(|r| &mut r.waker)
    }

    /// The credits of one link.
    pub fn link(&self, key: K) -> Option<LinkInfo<K>> {
        self.links.iter().flatten().find(|link| link.key == key).copied()
    }

    /// The credits of every link.
    pub fn links(&self) -> impl Iterator<Item = LinkInfo<K>> + '_ {
        self.links.iter().flatten().copied()
    }

    /// One waiting request.
    pub fn request_info(&self, key: RequestKey) -> Option<RequestInfo<K>> {
        self.live(key).and_then(|index| self.info(index))
    }

    /// Every waiting request (including failed ones whose waiter has not collected the
    /// error yet), in slot order.
    pub fn requests(&self) -> impl Iterator<Item = RequestInfo<K>> + '_ {
        (0..REQUESTS).filter_map(|index| self.info(index))
    }

    fn info(&self, index: usize) -> Option<RequestInfo<K>> {
        let request = self.requests[index].as_ref()?;
        let state = match request.stage {
            Stage::New => RequestState::New,
            Stage::Unsettled(l) => RequestState::Unsettled(self.links[l].as_ref()?.key),
            Stage::Failed(error) => RequestState::Failed(error),
        };
        Some(RequestInfo {
            key: RequestKey { index, ticket: request.ticket },
            target: request.target,
            state,
            notify_if_none: request.notify_if_none,
        })
    }

    fn slot_of(&self, key: K) -> Option<usize> {
        self.links.iter().position(|link| link.as_ref().is_some_and(|link| link.key == key))
    }

    fn link_mut(&mut self, l: usize) -> Option<&mut LinkInfo<K>> {
        self.links[l].as_mut()
    }

    fn live(&self, key: RequestKey) -> Option<usize> {
        let request = self.requests.get(key.index)?.as_ref()?;
        (request.ticket == key.ticket).then_some(key.index)
    }

    /// The link of `key`, if it holds a reservation.
    fn reservation(&mut self, key: K) -> Result<&mut LinkInfo<K>, CreditError> {
        let l = self.slot_of(key).ok_or(CreditError::UnknownLink)?;
        match self.link_mut(l) {
            Some(link) if link.reserved > 0 => Ok(link),
            Some(_) => Err(CreditError::NoReservation),
            None => Err(CreditError::UnknownLink),
        }
    }

    /// The newcomer's rule: `Some(link)` with a reserved credit if it may take one now.
    fn try_grant(
        &mut self,
        target: Target<K>,
        notify_if_none: bool,
    ) -> Result<Option<K>, CreditError> {
        if self.closed {
            return Err(CreditError::Closed);
        }
        let l = match target {
            Target::Link(key) => {
                let l = self.slot_of(key).ok_or(CreditError::UnknownLink)?;
                self.links[l].as_ref().is_some_and(|link| self.may_take(link)).then_some(l)
            }
            Target::Any => {
                if self.links.iter().all(Option::is_none) {
                    return if notify_if_none { Err(CreditError::NoLinks) } else { Ok(None) };
                }
                // Prefer a free credit; unfair mode may then take an earmarked one.
                let l = self.next_link_where(|link| link.free() > 0).or_else(|| {
                    let steal = self.fairness == Fairness::Unfair;
                    self.next_link_where(|link| steal && link.balance > 0)
                });
                if let Some(l) = l {
                    self.cursor = (l + 1) % LINKS;
                }
                l
            }
        };
        Ok(l.and_then(|l| self.take(l)))
    }

    fn may_take(&self, link: &LinkInfo<K>) -> bool {
        match self.fairness {
            // Enough credits for every unsettled request plus this one.
            Fairness::FairIsh => link.free() > 0,
            Fairness::Unfair => link.balance > 0,
        }
    }

    /// The first link from the cursor on that satisfies `pred`.
    fn next_link_where(&self, pred: impl Fn(&LinkInfo<K>) -> bool) -> Option<usize> {
        (0..LINKS)
            .map(|offset| (self.cursor + offset) % LINKS)
            .find(|&l| self.links[l].as_ref().is_some_and(&pred))
    }

    /// Takes and reserves one credit of link slot `l` for a newcomer.
    fn take(&mut self, l: usize) -> Option<K> {
        let link = self.link_mut(l)?;
        link.balance -= 1;
        link.reserved += 1;
        let key = link.key;
        // Unfair mode may have taken an earmarked credit: its request waits again.
        if self.shed(l) {
            self.dispatch_all();
        }
        Some(key)
    }

    /// Earmarks the free credits of link slot `l` for waiting requests.
    fn dispatch(&mut self, l: usize) {
        while self.links[l].as_ref().is_some_and(|link| link.free() > 0) {
            let Some(index) = self.pick(l) else { break };
            if let Some(request) = &mut self.requests[index] {
                request.stage = Stage::Unsettled(l);
            }
            if let Some(link) = self.link_mut(l) {
                link.unsettled += 1;
            }
            self.signal(index);
        }
    }

    fn dispatch_all(&mut self) {
        for l in 0..LINKS {
            self.dispatch(l);
        }
    }

    /// The new request that the next credit of link slot `l` goes to.
    fn pick(&mut self, l: usize) -> Option<usize> {
        let mut oldest_specific: Option<(u64, usize)> = None;
        let mut oldest_general: Option<(u64, usize)> = None;
        for (index, request) in self.requests.iter().enumerate() {
            let Some(request) = request else { continue };
            if !matches!(request.stage, Stage::New) {
                continue;
            }
            let oldest = match request.link {
                None => &mut oldest_general,
                Some(target) if target == l => &mut oldest_specific,
                Some(_) => continue,
            };
            if oldest.is_none_or(|(ticket, _)| request.ticket < ticket) {
                *oldest = Some((request.ticket, index));
            }
        }
        let (first, second) = match self.fairness {
            Fairness::FairIsh => match (oldest_specific, oldest_general) {
                (Some(s), Some(g)) if g.0 < s.0 => (Some(g), None),
                (s, g) => (s, g),
            },
            // Alternate between the queues when both have requests.
            Fairness::Unfair if self.general_next[l] => (oldest_general, oldest_specific),
            Fairness::Unfair => (oldest_specific, oldest_general),
        };
        let (_, index) = first.or(second)?;
        self.general_next[l] = oldest_general.is_none_or(|(_, g)| g != index);
        Some(index)
    }

    /// Returns the youngest unsettled requests of link slot `l` to waiting until the link's
    /// credits cover the rest. Returns whether any was returned.
    fn shed(&mut self, l: usize) -> bool {
        let mut shed = false;
        while self.links[l]
            .as_ref()
            .is_some_and(|link| i64::from(link.unsettled) > link.balance.max(0))
        {
            let youngest = self
                .requests
                .iter()
                .enumerate()
                .filter_map(|(index, r)| r.as_ref().map(|r| (index, r)))
                .filter(|(_, r)| matches!(r.stage, Stage::Unsettled(x) if x == l))
                .max_by_key(|(_, r)| r.ticket)
                .map(|(index, _)| index);
            let Some(index) = youngest else { break };
            self.unearmark(index);
            shed = true;
        }
        shed
    }

    /// Returns an unsettled request to waiting; its earmarked credit is freed.
    fn unearmark(&mut self, index: usize) {
        let Some(request) = &mut self.requests[index] else { return };
        let Stage::Unsettled(l) = request.stage else { return };
        request.stage = Stage::New;
        if let Some(link) = self.link_mut(l) {
            link.unsettled -= 1;
        }
        // A wake not yet delivered would only make the waiter find nothing.
        self.unsignal(index);
    }

    fn fail(&mut self, index: usize, error: CreditError) {
        let Some(request) = &mut self.requests[index] else { return };
        let earmarked = match request.stage {
            Stage::Unsettled(l) => Some(l),
            _ => None,
        };
        request.stage = Stage::Failed(error);
        if let Some(link) = earmarked.and_then(|l| self.links[l].as_mut()) {
            link.unsettled -= 1;
        }
        self.signal(index);
    }

    fn signal(&mut self, index: usize) {
        if let Some(request) = &mut self.requests[index]
            && !request.signal
        {
            request.signal = true;
            self.signals += 1;
        }
    }

    fn unsignal(&mut self, index: usize) {
        if let Some(request) = &mut self.requests[index]
            && request.signal
        {
            request.signal = false;
            self.signals -= 1;
        }
    }

    fn remove(&mut self, index: usize) -> Option<Request<K, W>> {
        let request = self.requests[index].take()?;
        if request.signal {
            self.signals -= 1;
        }
        Some(request)
    }
}
