//! The one error type of the a3m API.

use std::fmt;
use std::io;

use crate::reports::LinkTimeout;

/// Everything that can go wrong in a call of the a3m API.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The operation did not complete before its timeout. (A wait for a link that times out
    /// after the link failed for a sealing mismatch is [`Error::LinkTimeout`] instead;
    /// [`Error::is_timeout`] is true for both.)
    Timeout,
    /// [`crate::Socket::wait_for_link`] or [`crate::Socket::wait_for_link_to`] timed out
    /// while the link being made had failed for a sealing mismatch
    /// ([`crate::LinkFailure::SealingMismatch`]: one node has a pre-shared key, the other
    /// none or another one); the [`LinkTimeout`] names the peer socket and the reason, e.g.
    /// `no link with B/sink within 1.5s: no answer: sealing mismatch: peer B at
    /// 127.0.0.1:4000 has no key and refuses this node's sealed datagrams (give it the same
    /// key file)`.
    ///
    /// Only a timeout reports it: the mismatch notices come in unauthenticated datagrams,
    /// so they never end a wait (or a link) early. Other timed-out waits, including those
    /// where the peer gave no answer at all, fail with [`Error::Timeout`].
    LinkTimeout(Box<LinkTimeout>),
    /// A `try_` call could not complete without blocking.
    WouldBlock,
    /// The node or socket is closed.
    Closed,
    /// The socket has no link at all: a receiver's end of stream once its senders
    /// unlinked, or any blocking call (send, receive, [`crate::Socket::wait_for_link`],
    /// [`crate::Socket::poll`]) on a link-free socket with notify-if-none set. A link still
    /// being made counts as a link.
    NoLinks,
    /// The peer socket's protocol cannot talk to this one; the text says why.
    IncompatibleProtocol(String),
    /// A link this socket asked for was refused for another reason (the peer does not take
    /// link requests, is closing, or its protocol rejected us); the text says why.
    LinkRefused(String),
    /// The socket's type does not do this (e.g. receiving on a push socket), or does not
    /// use this option (e.g. a capacity on a push socket); the text names it.
    Unsupported(String),
    /// The socket has no link with that peer, established or being made; the text says
    /// which.
    NoSuchLink(String),
    /// A configured limit was reached (sockets per node, links per socket); the text says
    /// which.
    LimitReached(String),
    /// More threads wait on one socket or poller at once than it has room for.
    TooManyWaiters,
    /// An argument is invalid; the text says which and why.
    InvalidArgument(String),
    /// The destination node is not known (give its address first).
    UnknownPeer(String),
    /// A message is larger than the configured maximum.
    MessageTooLarge {
        /// Size of the message.
        size: usize,
        /// Largest size allowed.
        max: usize,
    },
    /// The buffer given to a receive call is shorter than the message, which stays queued.
    BufferTooSmall {
        /// Length of the message.
        needed: usize,
    },
    /// The socket's type refused the operation in its current state; the reason says
    /// which rule (e.g. [`crate::Refusal::NoRequestPending`]: a request socket received
    /// before sending a request).
    Refused(crate::Refusal),
    /// A received message is not what the socket's type sends (a malformed multipart
    /// message from a peer that does not follow the protocol); it was taken and is
    /// dropped here.
    Malformed(String),
    /// An operating-system call failed.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("operation timed out"),
            Error::LinkTimeout(t) => write!(f, "{t}"),
            Error::WouldBlock => f.write_str("operation would block"),
            Error::Closed => f.write_str("closed"),
            Error::NoLinks => f.write_str("no links"),
            Error::IncompatibleProtocol(why) => write!(f, "incompatible protocol: {why}"),
            Error::LinkRefused(why) => write!(f, "link refused: {why}"),
            Error::Unsupported(why) => write!(f, "unsupported: {why}"),
            Error::NoSuchLink(why) => write!(f, "no such link: {why}"),
            Error::LimitReached(why) => write!(f, "limit reached: {why}"),
            Error::TooManyWaiters => f.write_str("too many threads waiting at once"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::UnknownPeer(node) => write!(f, "unknown peer node {node:?}"),
            Error::MessageTooLarge { size, max } => {
                write!(f, "message of {size} bytes exceeds the maximum of {max}")
            }
            Error::BufferTooSmall { needed } => {
                write!(f, "receive buffer too small: the message has {needed} bytes")
            }
            Error::Refused(why) => write!(f, "refused: {why}"),
            Error::Malformed(why) => write!(f, "malformed message: {why}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl Error {
    /// Whether the call timed out: [`Error::Timeout`], or [`Error::LinkTimeout`] (a timeout
    /// that also says why the link did not come up).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout | Error::LinkTimeout(_))
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// `Result` with the a3m [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
