//! Waiting on several sockets at once: the epoll-like [`Poller`] and the one-shot
//! [`poll()`] (thesis §4.4), the core's pollers with the thread parker as the way to sleep.
//!
//! ```no_run
//! use std::time::Duration;
//! use a3m::{Events, Interest, PollEvent, Poller};
//! let node = a3m::NodeBuilder::new("N").start()?;
//! let (a, b) = (node.pull("a")?, node.pull("b")?);
//! let poller = Poller::new();
//! poller.add(&a, Interest::new(Events::IN))?;
//! poller.add(&b, Interest::new(Events::IN))?;
//! let mut ready = [PollEvent::EMPTY; 8];
//! let n = poller.wait(&mut ready, Some(Duration::from_secs(1)))?;
//! for event in &ready[..n] {
//!     let socket = if event.id == a.poll_id() { &a } else { &b };
//!     let message = socket.try_recv()?;
//!     println!("{} got {} bytes", socket.id(), message.len());
//! }
//! # Ok::<(), a3m::Error>(())
//! ```

use std::time::Duration;

use a3m_core::poll::{self as core_poll, Interest, PollError, PollEvent, PollId, PollRequest};
use a3m_platform::parker::Parker;

use crate::error::{Error, Result};
use crate::socket::Socket;

/// An epoll-like set of sockets to wait on, usable from many threads at once.
///
/// Level-triggered by default: a socket is reported by every wait while it has an event of
/// interest; [`Interest::edge_triggered`], [`Interest::oneshot`] and
/// [`Interest::exclusive`] work as in epoll. Up to 16 threads may wait at once. A socket
/// that closes is reported once with [`crate::Events::HUP`] and dropped from the set.
#[derive(Debug, Default)]
pub struct Poller {
    inner: core_poll::Poller,
}

impl Poller {
    /// An empty poller.
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches `socket` for `interest` ([`crate::Events::HUP`] and
    /// [`crate::Events::ERR`] are always reported).
    pub fn add(&self, socket: &Socket, interest: Interest) -> Result<()> {
        self.inner.add(socket.pollable(), interest).map_err(map_poll_error)
    }

    /// Changes the interest in `socket` (and re-arms a one-shot one).
    pub fn modify(&self, socket: &Socket, interest: Interest) -> Result<()> {
        self.inner.modify(socket.poll_id(), interest).map_err(map_poll_error)
    }

    /// Stops watching `socket`.
    pub fn delete(&self, socket: &Socket) -> Result<()> {
        self.inner.delete(socket.poll_id()).map_err(map_poll_error)
    }

    /// Waits until sockets have events of interest, at most `timeout` (`None`: for ever),
    /// and fills `out` with them; returns how many (0 when the timeout passed). Tell the
    /// sockets apart by [`Socket::poll_id`].
    pub fn wait(&self, out: &mut [PollEvent], timeout: Option<Duration>) -> Result<usize> {
        let parker = Parker::current();
        let deadline = timeout.map(|t| parker.clock().deadline_after(t));
        self.inner.wait(out, &parker, deadline).map_err(map_poll_error)
    }

    /// Whether `id` (a [`Socket::poll_id`]) is watched.
    pub fn contains(&self, id: PollId) -> bool {
        self.inner.contains(id)
    }

    /// Closes the poller: waiting threads return [`Error::Closed`].
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether the poller was closed ([`Poller::close`]).
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// How many sockets it watches.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether it watches no socket.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// Waits until at least one of `requests` has an event, at most `timeout` (`None`: for
/// ever); returns how many have ([`PollRequest::found`]), 0 when the timeout passed.
///
/// A one-shot poll(2): for a set that changes every time. Build the requests with
/// `PollRequest::new(&socket, Events::IN)`.
pub fn poll(requests: &mut [PollRequest<'_>], timeout: Option<Duration>) -> Result<usize> {
    let parker = Parker::current();
    let deadline = timeout.map(|t| parker.clock().deadline_after(t));
    core_poll::poll(requests, &parker, deadline).map_err(map_poll_error)
}

fn map_poll_error(e: PollError) -> Error {
    match e {
        PollError::Closed | PollError::PollableClosed => Error::Closed,
        PollError::QueueFull => Error::TooManyWaiters,
        PollError::AlreadyAdded => Error::InvalidArgument("the socket is already polled".into()),
        PollError::NotFound => Error::InvalidArgument("the socket is not polled".into()),
        PollError::InvalidInterest => Error::InvalidArgument(
            "invalid interest (exclusive cannot be one-shot or changed by modify)".into(),
        ),
        PollError::EmptyBuffer => Error::InvalidArgument("no room for events".into()),
    }
}
