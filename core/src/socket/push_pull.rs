//! Push and pull: the one-way pipeline (thesis §5.2).
//!
//! A [`Push`] socket only sends; each message goes to the next link, round robin, that has
//! a credit. A [`Pull`] socket only receives, taking the next message from its links in
//! turn (fair queuing), each link in FIFO order. They link only with each other.

use super::protocol::{LinkSet, Protocol, ProtocolId, RoundRobin, Route};
use crate::id::LinkIncarnation;

/// Protocol id of [`Push`].
pub const PUSH: ProtocolId = 1;
/// Protocol id of [`Pull`].
pub const PULL: ProtocolId = 2;

/// The sending end of a pipeline.
#[derive(Debug, Clone, Default)]
pub struct Push {
    next: RoundRobin,
}

impl Push {
    /// A push socket protocol.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Protocol for Push {
    fn id(&self) -> ProtocolId {
        PUSH
    }

    fn name(&self) -> &str {
        "push"
    }

    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == PULL
    }

    fn sends(&self) -> bool {
        true
    }

    fn receives(&self) -> bool {
        false
    }

    fn route_send(&mut self, links: &LinkSet<'_>, _payload: &[u8]) -> Route {
        self.next.pick(links, |l| l.can_send()).map_or(Route::Blocked, Route::One)
    }

    fn route_recv(&mut self, _links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        None
    }
}

/// The receiving end of a pipeline.
#[derive(Debug, Clone, Default)]
pub struct Pull {
    next: RoundRobin,
}

impl Pull {
    /// A pull socket protocol.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Protocol for Pull {
    fn id(&self) -> ProtocolId {
        PULL
    }

    fn name(&self) -> &str {
        "pull"
    }

    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == PUSH
    }

    fn sends(&self) -> bool {
        false
    }

    fn receives(&self) -> bool {
        true
    }

    fn route_send(&mut self, _links: &LinkSet<'_>, _payload: &[u8]) -> Route {
        Route::Blocked
    }

    /// Fair queuing keeps no state about the message taken.
    fn receives_ahead(&self) -> bool {
        true
    }

    fn route_recv(&mut self, links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        self.next.pick(links, |l| l.has_message())
    }
}
