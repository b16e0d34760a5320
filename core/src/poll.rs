//! Polling: pollables, the epoll-like `Poller` and the one-shot [`poll`] (thesis §4.4).
//!
//! * [`events`]: [`Events`] (IN, OUT, ERR, HUP; ERR and HUP always reported) and
//!   [`Interest`] (level- or edge-triggered, one-shot, exclusive).
//! * [`pollable`]: the [`Pollable`] trait (an id, the events now, its wait queue) and
//!   [`PollSource`], a ready-made pollable half for simple objects.
//! * [`list`]: [`poll`], the adaptation of poll(2) over a list, without heap.
//! * `poller` (feature `alloc`): `Poller`, the adaptation of epoll: add / modify / delete /
//!   wait, usable from many threads at once.
//!
//! Pollables never point at pollers: a poller registers an entry in each pollable's wait
//! queue whose waker (a small `Arc` hook) finds the poller again through a weak reference.
//! A pollable therefore needs only its fixed-capacity wait queue, one slot per poller or
//! blocked waiter.

pub mod events;
pub mod list;
pub mod pollable;
#[cfg(feature = "alloc")]
pub mod poller;

pub use events::{Events, Interest};
pub use list::{PollRequest, poll};
pub use pollable::{PollId, PollSource, Pollable};
#[cfg(feature = "alloc")]
pub use poller::{DEFAULT_WAITERS, PollEvent, Poller};

use crate::wait::WaitError;

/// Why a poll operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PollError {
    /// The pollable is already in the interest list.
    AlreadyAdded,
    /// The pollable is not in the interest list.
    NotFound,
    /// The interest flags do not go together, or `modify` tried to change exclusivity.
    InvalidInterest,
    /// The poller was closed.
    Closed,
    /// The pollable is closed and takes no more waiters.
    PollableClosed,
    /// A wait queue (the pollable's, or the poller's own) is full.
    QueueFull,
    /// The buffer for reports has no room.
    EmptyBuffer,
}

impl From<WaitError> for PollError {
    fn from(e: WaitError) -> Self {
        match e {
            // Callers map time-outs to "0 events" before getting here.
            WaitError::TimedOut | WaitError::Closed => PollError::Closed,
            WaitError::QueueFull => PollError::QueueFull,
        }
    }
}

impl core::fmt::Display for PollError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PollError::AlreadyAdded => "pollable already added to the poller",
            PollError::NotFound => "pollable not in the poller",
            PollError::InvalidInterest => "invalid interest flags",
            PollError::Closed => "poller is closed",
            PollError::PollableClosed => "pollable is closed",
            PollError::QueueFull => "wait queue is full",
            PollError::EmptyBuffer => "event buffer is empty",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PollError {}
