//! Why a socket operation failed.

use core::fmt;

use super::Refusal;

/// Why a socket operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketError {
    /// The socket is closed or closing (or the key names no socket).
    Closed,
    /// Another socket of the node has this tag.
    TagInUse,
    /// The layer holds its maximum number of sockets.
    TooManySockets,
    /// The socket's protocol does not do this (e.g. receive on a push socket).
    Unsupported,
    /// The socket has no link at all.
    NoLinks,
    /// Nothing can be done now (no credit, no message); try again when ready.
    WouldBlock,
    /// The message is larger than [`LayerConfig::max_payload`] (or a protocol's metadata
    /// larger than [`LayerConfig::max_fragment`]).
    ///
    /// [`LayerConfig::max_payload`]: super::LayerConfig::max_payload
    /// [`LayerConfig::max_fragment`]: super::LayerConfig::max_fragment
    TooLarge,
    /// The socket has its maximum number of links.
    LinkLimit,
    /// No such link on this socket (or it does not carry data).
    UnknownLink,
    /// A socket cannot link to itself.
    InvalidPeer,
    /// A control message kind reserved for the core.
    ReservedKind,
    /// The buffer is too small for the next message (it stays queued).
    BufferTooSmall {
        /// Bytes the message needs.
        needed: usize,
    },
    /// The socket's protocol refused the operation; the reason says why (a receive on a
    /// request socket with nothing pending, a reply with no request, an unknown route...).
    Refused(Refusal),
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketError::Closed => f.write_str("socket is closed"),
            SocketError::TagInUse => f.write_str("a socket with this tag exists"),
            SocketError::TooManySockets => f.write_str("too many sockets"),
            SocketError::Unsupported => f.write_str("operation not supported by this socket type"),
            SocketError::NoLinks => f.write_str("socket has no links"),
            SocketError::WouldBlock => f.write_str("operation would block"),
            SocketError::TooLarge => f.write_str("message too large"),
            SocketError::LinkLimit => f.write_str("socket has its maximum number of links"),
            SocketError::UnknownLink => f.write_str("no such link"),
            SocketError::InvalidPeer => f.write_str("a socket cannot link to itself"),
            SocketError::ReservedKind => f.write_str("message kind reserved for the core"),
            SocketError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the message has {needed} bytes")
            }
            SocketError::Refused(why) => write!(f, "refused by the socket's protocol: {why}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SocketError {}
