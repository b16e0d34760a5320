//! Waiting for link availability: ticketed credit requests (design notes, "Wait for link
//! availability (to send)"; thesis §4.7).
//!
//! A sender needs one credit of a link to send one data message. Threads (or tasks) wait
//! either for a credit of one link or for a credit of any link. Two layers:
//!
//! * [`ledger`]: [`Ledger`], a plain state machine (no lock, no blocking, no clock) that
//!   holds the credit balance of every link and the waiting requests, and decides which
//!   request each credit goes to. It is what the property tests drive.
//! * [`coordinator`]: [`CreditCoordinator`], the ledger behind a [`crate::sync::Mutex`],
//!   with blocking waits through a [`crate::wait::Sleeper`] (with deadlines) and async waits.
//!
//! # How a credit reaches a waiter
//!
//! Every request carries a ticket (a number that only grows). Requests for one link form
//! that link's queue; requests for any link form the general queue (both are the requests'
//! ticket order, not separate containers). When a link has a credit that no request holds,
//! the ledger *earmarks* it for one waiting request and marks that request to be woken, so
//! exactly as many waiters are woken as there are credits for them: no thundering herd.
//!
//! A request is **new** (waiting), **unsettled** (a credit is earmarked for it and its
//! waiter was woken) or **settled**: the woken waiter came back, took the earmarked credit
//! (the credit leaves the balance) and the request turned into a *reservation* of that link.
//! Nobody else can take an earmarked credit in fair-ish mode, so no credit is stolen.
//!
//! [`Fairness::FairIsh`]: each free credit goes to the oldest ticket among the link's queue
//! and the general queue. A newcomer takes a credit at once only if the link's credits
//! cover every unsettled request plus itself. Free credits are earmarked for waiting
//! requests as soon as they appear, so such a newcomer passes no waiting request: it only
//! saves itself a sleep and a wake-up.
//!
//! [`Fairness::Unfair`]: signals alternate between the link's queue and the general queue,
//! and a newcomer takes any credit at once, even one earmarked for a woken waiter; that
//! waiter then finds its request new again and goes back to sleep.
//!
//! # Reservations
//!
//! A wait returns having consumed its credit in advance, so the waiter can send whenever it
//! chooses without losing the credit to another thread. The link keeps a count of these
//! settled requests. [`Ledger::acquire`] confirms one (the message was sent);
//! [`Ledger::release`] gives one back (no message after all), and the credit goes to the next
//! waiter. Both fail with [`CreditError::NoReservation`] when the link has no reservation, so
//! nobody can farm credits by releasing what they never got.
//!
//! # Links coming and going
//!
//! Links are added and removed at any time. A removed link fails its own waiters with
//! [`CreditError::LinkClosed`]; waiters for any link whose credit was earmarked on it wait
//! again for the other links. Waits made with *notify-if-none* fail with
//! [`CreditError::NoLinks`] when there is no link at all, at once or when the last one goes.

pub mod coordinator;
pub mod ledger;

pub use coordinator::{CreditCoordinator, CreditFuture, CreditWait};
pub use ledger::{Admission, Ledger, LinkInfo, RequestInfo, RequestKey, RequestState};

/// Which credit a request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target<K> {
    /// A credit of this link.
    Link(K),
    /// A credit of whichever link has one.
    Any,
}

/// How credits are shared among waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fairness {
    /// Oldest ticket first across link and general queues; woken waiters keep their credit.
    #[default]
    FairIsh,
    /// Link and general waiters alternate; newcomers may take credits from woken waiters.
    Unfair,
}

/// Why a credit operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreditError {
    /// No link has this key.
    UnknownLink,
    /// A link with this key already exists.
    DuplicateLink,
    /// Every link slot is in use.
    LinksFull,
    /// Every request slot is in use (too many waiters at once).
    WaitersFull,
    /// The link waited for was removed.
    LinkClosed,
    /// There is no link (only for waits made with notify-if-none).
    NoLinks,
    /// The coordinator was closed (its socket closed).
    Closed,
    /// The link holds no reservation to acquire or release.
    NoReservation,
    /// No credit is available right now (non-blocking attempt).
    WouldBlock,
    /// The deadline passed before a credit came.
    TimedOut,
    /// The request key names no live request (already completed or cancelled).
    StaleRequest,
}

impl core::fmt::Display for CreditError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CreditError::UnknownLink => "no such link",
            CreditError::DuplicateLink => "link already exists",
            CreditError::LinksFull => "no room for another link",
            CreditError::WaitersFull => "no room for another waiter",
            CreditError::LinkClosed => "the link was closed",
            CreditError::NoLinks => "there are no links",
            CreditError::Closed => "closed",
            CreditError::NoReservation => "the link holds no reserved credit",
            CreditError::WouldBlock => "no credit available now",
            CreditError::TimedOut => "timed out waiting for a credit",
            CreditError::StaleRequest => "no such credit request",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CreditError {}
