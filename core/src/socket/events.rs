//! What the layer tells the layer above: events about sockets and their links, and which
//! sockets' readiness may have changed.

use crate::id::{LinkIncarnation, SocketId};
use crate::link::{AttemptFailure, Refusal};
use crate::poll::Events;

use super::{LinkSet, SocketKey, SocketLayer};

/// Something that happened to a socket or its links, for the layer above (wake waiters,
/// tell the application, mirror credits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEvent {
    /// A link was established.
    LinkEstablished {
        /// The socket.
        socket: SocketKey,
        /// The link.
        link: LinkIncarnation,
        /// The peer socket.
        peer: SocketId,
    },
    /// A link asked for with [`SocketLayer::link`] was refused for good (or ran out of
    /// retries); [`SocketEvent::LinkClosed`] follows.
    LinkRefused {
        /// The socket.
        socket: SocketKey,
        /// The link.
        link: LinkIncarnation,
        /// The peer socket.
        peer: SocketId,
        /// Why.
        refusal: Refusal,
    },
    /// An attempt of a link asked for with [`SocketLayer::link`] failed: refused (the link
    /// retries if the refusal is not fatal) or not answered within the retry interval.
    LinkAttemptFailed {
        /// The socket.
        socket: SocketKey,
        /// The link.
        link: LinkIncarnation,
        /// The peer socket.
        peer: SocketId,
        /// Which attempt (from 1).
        attempt: u32,
        /// Why it failed.
        failure: AttemptFailure,
    },
    /// A link closed (after unlinking, a refusal, a cancel, or a forced close).
    LinkClosed {
        /// The socket.
        socket: SocketKey,
        /// The link.
        link: LinkIncarnation,
        /// The peer socket.
        peer: SocketId,
        /// Whether it had been established.
        established: bool,
    },
    /// The socket's last link closed: it is link-free.
    LinkFree {
        /// The socket.
        socket: SocketKey,
    },
    /// The socket finished closing and left the layer; its key is dead.
    Closed {
        /// The socket.
        socket: SocketKey,
    },
    /// A link's send credits changed by `delta` (only with [`LayerConfig::credit_events`]):
    /// the initial credits when established, each FLOW, and -1 per DATA sent.
    ///
    /// [`LayerConfig::credit_events`]: super::LayerConfig::credit_events
    Credits {
        /// The socket.
        socket: SocketKey,
        /// The link.
        link: LinkIncarnation,
        /// The change.
        delta: i64,
    },
}

impl SocketLayer {
    /// A socket's readiness now: [`Events::IN`] if a receive would succeed,
    /// [`Events::OUT`] if a send would, [`Events::HUP`] once the socket is closed.
    pub fn readiness(&self, key: SocketKey) -> Events {
        let Some(s) = self.socket(key) else { return Events::HUP };
        let links = LinkSet::new(&s.links);
        let mut events = Events::empty();
        if s.protocol.readable(&links) {
            events |= Events::IN;
        }
        if !s.closing && s.protocol.writable(&links) {
            events |= Events::OUT;
        }
        events
    }

    /// The next socket whose readiness may have improved (each socket is listed once until
    /// taken from here). Check it with [`SocketLayer::readiness`].
    pub fn poll_ready(&mut self) -> Option<SocketKey> {
        let key = self.shared.ready.pop_front()?;
        if let Some((s, _)) = self.parts(key) {
            s.ready_queued = false;
        }
        Some(key)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SocketEvent> {
        self.shared.events.pop_front()
    }
}
