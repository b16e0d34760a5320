//! What a socket reports about its links: each event as it happens ([`LinkEvent`]), why an
//! attempt failed ([`LinkFailure`]), why a wait for a link timed out ([`LinkTimeout`]), and
//! what a close left behind ([`SocketCloseReport`]).
//!
//! Both the runtime, which turns the core's events into these, and the socket handles,
//! which hand them to the application, use this module; it uses neither.

use std::fmt;
use std::time::Duration;

use a3m_core::id::{NodeId, SocketId};
use a3m_core::link::{AttemptFailure, Refusal, RefusalCode};
use a3m_core::node::Refusal as SealRefusal;

use crate::error::Error;

/// Something that happened to one of a socket's links ([`Socket::next_event`]).
///
/// [`Socket::next_event`]: crate::Socket::next_event
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link was established: messages may flow.
    Established {
        /// The peer socket.
        peer: SocketId,
    },
    /// A link this socket asked for was refused for good (or ran out of retries).
    Refused {
        /// The peer socket.
        peer: SocketId,
        /// The kind of refusal.
        code: RefusalCode,
        /// Why, in words.
        reason: String,
    },
    /// An attempt at a link this socket asked for failed. The link then retries with
    /// back-off ([`SocketOptions::link_retry`]) or, for a refusal that retrying cannot
    /// change (and once the retry limit is reached), gives up ([`LinkEvent::Refused`]).
    /// An attempt that got no answer is reported after the retry interval and each later
    /// one while it stays unanswered (its LINK stays with the transport, which keeps
    /// trying to deliver it); [`Socket::links`] shows the same count and reason.
    ///
    /// [`SocketOptions::link_retry`]: crate::SocketOptions::link_retry
    /// [`Socket::links`]: crate::Socket::links
    AttemptFailed {
        /// The peer socket.
        peer: SocketId,
        /// Which attempt (from 1).
        attempt: u32,
        /// Why it failed.
        failure: LinkFailure,
    },
    /// A link closed (unlinked, refused, cancelled, or dropped by a close that timed out).
    Closed {
        /// The peer socket.
        peer: SocketId,
        /// Whether it had been established.
        was_established: bool,
    },
    /// The socket's last link closed: it has no link at all. For a receiver whose peers
    /// unlinked after sending, this is the end of the stream (thesis §7.3).
    LinkFree,
}

impl LinkEvent {
    /// For [`LinkEvent::Refused`], the error a call reports for it.
    pub fn refusal_error(&self) -> Option<Error> {
        match self {
            LinkEvent::Refused { peer, code, reason } => {
                Some(refusal_error(peer, &Refusal { code: *code, reason: reason.clone() }))
            }
            _ => None,
        }
    }
}

/// Why an attempt at a link failed ([`LinkEvent::AttemptFailed`], [`LinkInfo::last_failure`]).
///
/// [`LinkInfo::last_failure`]: crate::LinkInfo::last_failure
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFailure {
    /// Nothing answered within the retry interval: the peer node is down, unreachable, or
    /// nothing listens at its address.
    NoAnswer,
    /// The peer's node has no socket with that tag (yet): retried.
    UnknownSocket,
    /// The two socket types cannot talk to each other; the text says why. Not retried.
    IncompatibleProtocol(String),
    /// The peer socket refused for another reason (busy: retried; not accepting links,
    /// closing, cancelled, or rejected by its protocol: not retried).
    Refused {
        /// The kind of refusal.
        code: RefusalCode,
        /// The peer's reason, in words.
        reason: String,
    },
    /// No answer, and the peer's node and this one disagree on sealing (one has a key, the
    /// other none or another one): the text says which. Retried, since a key may be fixed
    /// meanwhile; the reason comes from datagrams that are not authenticated, so it is
    /// advice for whoever reads it, and never ends the link by itself.
    SealingMismatch(String),
}

impl LinkFailure {
    /// The failure of an attempt at a link with a socket of `peer`, given the last datagram
    /// the node refused for a sealing mismatch (if any).
    pub(crate) fn from_core(
        failure: AttemptFailure,
        peer: &NodeId,
        sealing: Option<&SealRefusal>,
    ) -> Self {
        match failure {
            AttemptFailure::NoAnswer => match sealing.filter(|r| r.peer == *peer) {
                Some(r) => LinkFailure::SealingMismatch(r.to_string()),
                None => LinkFailure::NoAnswer,
            },
            AttemptFailure::Refused(r) => match r.code {
                RefusalCode::NotFound => LinkFailure::UnknownSocket,
                RefusalCode::Incompatible => LinkFailure::IncompatibleProtocol(r.reason),
                code => LinkFailure::Refused { code, reason: r.reason },
            },
        }
    }
}

impl fmt::Display for LinkFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkFailure::NoAnswer => f.write_str("no answer from the peer's address"),
            LinkFailure::UnknownSocket => f.write_str("no such socket at the peer"),
            LinkFailure::IncompatibleProtocol(why) => write!(f, "incompatible protocol: {why}"),
            LinkFailure::Refused { code, reason } => write!(f, "refused ({code:?}): {reason}"),
            LinkFailure::SealingMismatch(why) => write!(f, "no answer: sealing mismatch: {why}"),
        }
    }
}

/// A wait for a link ([`Socket::wait_for_link`], [`Socket::wait_for_link_to`]) that timed
/// out while the link being made had failed for a reason the application should see
/// ([`Error::LinkTimeout`]): today a sealing mismatch ([`LinkFailure::SealingMismatch`]).
///
/// The link is still being made when this is returned (it keeps being retried), and the
/// reason is advice: it comes from datagrams that are not authenticated.
///
/// [`Socket::wait_for_link`]: crate::Socket::wait_for_link
/// [`Socket::wait_for_link_to`]: crate::Socket::wait_for_link_to
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkTimeout {
    /// The peer socket of the link that did not come up.
    pub peer: SocketId,
    /// How long the call waited (its timeout).
    pub timeout: Duration,
    /// Why the latest attempt failed ([`LinkInfo::last_failure`]).
    ///
    /// [`LinkInfo::last_failure`]: crate::LinkInfo::last_failure
    pub last_failure: LinkFailure,
}

impl fmt::Display for LinkTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { peer, timeout, last_failure } = self;
        write!(f, "no link with {peer} within {timeout:?}: {last_failure}")
    }
}

/// What [`Socket::close`] left behind.
///
/// [`Socket::close`]: crate::Socket::close
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketCloseReport {
    /// Links that had not finished unlinking when the timeout expired and were dropped:
    /// messages sent on them may not all have reached the peer's application.
    pub aborted_links: usize,
    /// Messages that had arrived on those links and were never received here.
    pub dropped_messages: usize,
}

/// The error for a refused link.
pub(crate) fn refusal_error(peer: &SocketId, refusal: &Refusal) -> Error {
    match refusal.code {
        RefusalCode::Incompatible => {
            Error::IncompatibleProtocol(format!("{peer} refused: {}", refusal.reason))
        }
        _ => Error::LinkRefused(format!("{peer}: {refusal}")),
    }
}
