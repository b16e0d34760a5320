//! Dealer and router: the asynchronous request-reply sockets (thesis §5.3.3–§5.3.4).
//!
//! A [`Dealer`] sends and receives in any order, with no coupling between the two: sends go
//! round robin to links with a credit, receives are fair-queued over the links. It talks to
//! a [`super::Rep`], a [`Router`] or another dealer, and passes envelopes through unchanged,
//! so it can stand between routers (a broker's back end).
//!
//! A [`Router`] receives like a dealer but puts the routing id of the link each message
//! came on ([`multipart::link_route`]) at the head of the message's envelope, and sends
//! each message by the routing id at the head of its envelope, which it removes: a reply
//! goes back through the exact link its request came on, never to another conversation. A
//! routing id may also be a peer socket's id written `node/tag` (UTF-8). A message without a
//! routing id fails with [`Refusal::MissingRoute`], one whose routing id names no link
//! (the link closed) with [`Refusal::UnknownRoute`]: the caller learns it, nothing that
//! `send` accepted is dropped. A router talks to a [`super::Req`], a [`Dealer`] or another
//! router.

use alloc::vec::Vec;

use super::multipart::{self, Multipart};
use super::protocol::{LinkSet, Protocol, ProtocolId, Refusal, Rewrite, RoundRobin, Route};
use super::{REP, REQ};
use crate::id::{LinkIncarnation, SocketId};

/// Protocol id of [`Dealer`].
pub const DEALER: ProtocolId = 5;
/// Protocol id of [`Router`].
pub const ROUTER: ProtocolId = 6;

/// The asynchronous requester (thesis §5.3.3): sends and receives in any order, sends round
/// robin to links with a credit, receives fair-queued; envelopes pass through unchanged.
/// Links with [`super::Rep`], [`Router`] and other dealers.
#[derive(Debug, Clone, Default)]
pub struct Dealer {
    send: RoundRobin,
    recv: RoundRobin,
}

impl Dealer {
    /// A dealer socket protocol.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Protocol for Dealer {
    fn id(&self) -> ProtocolId {
        DEALER
    }

    fn name(&self) -> &str {
        "dealer"
    }

    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == REP || peer == ROUTER || peer == DEALER
    }

    fn sends(&self) -> bool {
        true
    }

    fn receives(&self) -> bool {
        true
    }

    fn route_send(&mut self, links: &LinkSet<'_>, _payload: &[u8]) -> Route {
        self.send.pick(links, |l| l.can_send()).map_or(Route::Blocked, Route::One)
    }

    /// Fair queuing keeps no state about the message taken.
    fn receives_ahead(&self) -> bool {
        true
    }

    fn route_recv(&mut self, links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        self.recv.pick(links, |l| l.has_message())
    }
}

/// The asynchronous replier and message router (thesis §5.3.4).
///
/// Puts the routing id of the link each message came on ([`multipart::link_route`]) at the
/// head of its envelope when the application takes it, and sends each message by the
/// routing id at the head of its envelope (or a peer socket id written `node/tag`), which
/// it removes: a reply goes back through the exact link its request came on. A message
/// without a routing id is refused with [`Refusal::MissingRoute`], one naming no link with
/// [`Refusal::UnknownRoute`]. Links with [`super::Req`], [`Dealer`] and other routers.
#[derive(Debug, Clone, Default)]
pub struct Router {
    recv: RoundRobin,
    /// Bytes of the routing id at the head of the message being sent.
    skip: usize,
}

impl Router {
    /// A router socket protocol.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Whether `route` is `peer` written `node/tag`.
fn names_peer(route: &[u8], peer: &SocketId) -> bool {
    let (node, tag) = (peer.node.as_str().as_bytes(), peer.tag.as_str().as_bytes());
    route.len() == node.len() + 1 + tag.len()
        && route.starts_with(node)
        && route[node.len()] == b'/'
        && route.ends_with(tag)
}

impl Protocol for Router {
    fn id(&self) -> ProtocolId {
        ROUTER
    }

    fn name(&self) -> &str {
        "router"
    }

    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == REQ || peer == DEALER || peer == ROUTER
    }

    fn sends(&self) -> bool {
        true
    }

    fn receives(&self) -> bool {
        true
    }

    fn route_send(&mut self, links: &LinkSet<'_>, payload: &[u8]) -> Route {
        let Ok(message) = Multipart::parse(payload) else {
            return Route::Refused(Refusal::Malformed);
        };
        let Some((route, skip)) = message.first_route() else {
            return Route::Refused(Refusal::MissingRoute);
        };
        let link = match multipart::parse_link_route(route) {
            Some(inc) => links.get(inc),
            None => links.iter().find(|l| names_peer(route, l.peer())),
        };
        match link {
            None => Route::Refused(Refusal::UnknownRoute),
            Some(l) if l.can_send() => {
                self.skip = skip;
                Route::One(l.key())
            }
            Some(_) => Route::Blocked,
        }
    }

    fn rewrite_outgoing(&mut self, _: LinkIncarnation, _: &[u8], _: &mut Vec<u8>) -> Rewrite {
        Rewrite::Skip(self.skip)
    }

    /// Fair queuing keeps no state about the message taken; the routing id is added when
    /// the message is taken, ahead or not.
    fn receives_ahead(&self) -> bool {
        true
    }

    fn route_recv(&mut self, links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        self.recv.pick(links, |l| l.has_message())
    }

    fn on_taken(&mut self, link: LinkIncarnation, payload: &mut Vec<u8>) {
        multipart::push_route(&multipart::link_route(link), payload);
    }

    fn rewrites_incoming(&self) -> bool {
        true
    }

    /// A router can send whenever some link has a credit (which one a message needs depends
    /// on its routing id).
    fn writable(&self, links: &LinkSet<'_>) -> bool {
        links.iter().any(|l| l.can_send())
    }

    fn send_depends_on_message(&self) -> bool {
        true
    }
}
