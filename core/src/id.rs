//! Identifiers: nodes, socket tags, socket ids and link incarnations.
//!
//! A socket is named by the node it lives on plus a tag unique on that node (thesis §4.2).
//! Both parts are short UTF-8 strings with fixed maximum lengths, so they fit in fixed
//! memory on a microcontroller and in every message header without surprises.

use core::fmt;
use heapless::String;

/// Maximum length of a [`NodeId`], in bytes of UTF-8.
pub const NODE_ID_MAX_LEN: usize = 32;
/// Maximum length of a [`TagId`], in bytes of UTF-8.
pub const TAG_ID_MAX_LEN: usize = 32;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    /// The identifier is empty.
    Empty,
    /// The identifier is longer than its maximum (`len` bytes given, `max` allowed).
    TooLong {
        /// Length given, in bytes.
        len: usize,
        /// Maximum allowed, in bytes.
        max: usize,
    },
    /// The bytes are not valid UTF-8 (only seen when decoding from the wire).
    NotUtf8,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => f.write_str("identifier is empty"),
            IdError::TooLong { len, max } => {
                write!(f, "identifier is {len} bytes long, the maximum is {max}")
            }
            IdError::NotUtf8 => f.write_str("identifier is not valid UTF-8"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for IdError {}

/// Checks that `s` is a valid identifier of at most `max` bytes.
pub(crate) fn check_id(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        Err(IdError::Empty)
    } else if s.len() > max {
        Err(IdError::TooLong { len: s.len(), max })
    } else {
        Ok(())
    }
}

macro_rules! bounded_id {
    ($(#[$doc:meta])* $name:ident, $max:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String<$max>);

        impl $name {
            /// Validates `s` (non-empty, at most the maximum length) and copies it.
            pub fn new(s: &str) -> Result<Self, IdError> {
                check_id(s, $max)?;
                let mut inner = String::new();
                // Cannot fail: the length was checked against the capacity above.
                inner.push_str(s).map_err(|_| IdError::TooLong { len: s.len(), max: $max })?;
                Ok(Self(inner))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl core::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

bounded_id!(
    /// The name of a node (one a3m instance), unique in the system: 1 to
    /// [`NODE_ID_MAX_LEN`] bytes of UTF-8.
    NodeId,
    NODE_ID_MAX_LEN
);
bounded_id!(
    /// The name of a socket on its node: 1 to [`TAG_ID_MAX_LEN`] bytes of UTF-8.
    TagId,
    TAG_ID_MAX_LEN
);

/// The global name of a socket: the node it lives on and its tag there.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketId {
    /// The node the socket lives on.
    pub node: NodeId,
    /// The socket's tag on that node.
    pub tag: TagId,
}

impl SocketId {
    /// Builds a socket id from its two parts.
    pub fn new(node: NodeId, tag: TagId) -> Self {
        Self { node, tag }
    }
}

/// Error from parsing a `"node/tag"` string into a [`SocketId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketIdError {
    /// There is no `/` between the node and the tag.
    MissingSlash,
    /// The node part is invalid.
    Node(IdError),
    /// The tag part is invalid.
    Tag(IdError),
}

impl fmt::Display for SocketIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketIdError::MissingSlash => f.write_str("socket id must be written node/tag"),
            SocketIdError::Node(e) => write!(f, "invalid node id: {e}"),
            SocketIdError::Tag(e) => write!(f, "invalid tag id: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SocketIdError {}

impl core::str::FromStr for SocketId {
    type Err = SocketIdError;
    /// Parses `node/tag`; the node part may not contain `/`, the tag part may.
    fn from_str(s: &str) -> Result<Self, SocketIdError> {
        let (node, tag) = s.split_once('/').ok_or(SocketIdError::MissingSlash)?;
        Ok(Self {
            node: NodeId::new(node).map_err(SocketIdError::Node)?,
            tag: TagId::new(tag).map_err(SocketIdError::Tag)?,
        })
    }
}

impl fmt::Debug for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SocketId({}/{})", self.node, self.tag)
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.tag)
    }
}

/// Identifies one incarnation of a link between two sockets (thesis §4.5.1 "clockId").
///
/// Two sockets may link and unlink many times; every message carries the incarnation it
/// belongs to, so a message from an old link is never taken for one of a new link.
/// Incarnations come from a per-node counter that only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LinkIncarnation(pub u32);

impl fmt::Display for LinkIncarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_and_too_long() {
        assert_eq!(NodeId::new(""), Err(IdError::Empty));
        let long = "x".repeat(NODE_ID_MAX_LEN + 1);
        assert_eq!(
            NodeId::new(&long),
            Err(IdError::TooLong { len: NODE_ID_MAX_LEN + 1, max: NODE_ID_MAX_LEN })
        );
        let max = "é".repeat(TAG_ID_MAX_LEN / 2);
        assert_eq!(TagId::new(&max).unwrap().as_str(), max);
    }

    #[test]
    fn socket_id_parses_node_slash_tag() {
        let id: SocketId = "B/sink".parse().unwrap();
        assert_eq!(id.node.as_str(), "B");
        assert_eq!(id.tag.as_str(), "sink");
        assert_eq!("nosep".parse::<SocketId>(), Err(SocketIdError::MissingSlash));
        assert_eq!("/x".parse::<SocketId>(), Err(SocketIdError::Node(IdError::Empty)));
    }
}
