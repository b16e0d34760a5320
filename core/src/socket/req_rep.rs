//! Request and reply: the synchronous request-reply pattern (thesis §5.3.1–§5.3.2).
//!
//! A [`Req`] socket sends a request to the next link with a credit (round robin) and then
//! has exactly one request in flight: further sends wait (they do not fail) until the
//! reply was taken, by any thread. Receiving with no request in flight fails with
//! [`Refusal::NoRequestPending`]; if the link the reply is awaited on closes, the next
//! receive fails with [`Refusal::ReplierGone`] and the socket may send again. That link
//! cannot be unlinked while the reply is awaited ([`Refusal::ReplyAwaited`]) unless forced.
//!
//! A [`Rep`] socket takes one request at a time (fair queuing over its links), and its next
//! send is the reply, which goes back on the link the request came from, behind the
//! request's envelope (so a reply crosses routers and dealers back to its requester).
//! Sending with no request taken fails with [`Refusal::NoRequestToReply`]; receiving again
//! before replying finds nothing. The link a reply is owed on cannot be unlinked
//! ([`Refusal::ReplyOwed`]) unless forced, which drops the request.
//!
//! Exactly-once links make the pair exactly-once end to end: a request is never lost or
//! resent, so a replier never sees it twice, and a reply is never lost, so a requester never
//! sticks. Both carry [`super::multipart`] messages; a `Req` talks to a `Rep` or a
//! [`super::Router`], a `Rep` to a `Req` or a [`super::Dealer`].

use alloc::vec::Vec;

use super::multipart::Multipart;
use super::protocol::{LinkSet, Protocol, ProtocolId, Refusal, Rewrite, RoundRobin, Route};
use super::{DEALER, ROUTER};
use crate::id::LinkIncarnation;

/// Protocol id of [`Req`].
pub const REQ: ProtocolId = 3;
/// Protocol id of [`Rep`].
pub const REP: ProtocolId = 4;

/// The requesting end of a synchronous request-reply (thesis §5.3.1).
///
/// Sends a request to the next link with a credit (round robin), then has exactly one
/// request in flight: further sends wait ([`Route::Blocked`], not an error) until the reply
/// was taken, by any thread. A receive with no request in flight fails with
/// [`Refusal::NoRequestPending`]; if the link the reply is awaited on closes, the next
/// receive fails once with [`Refusal::ReplierGone`] and the socket may send again. That
/// link cannot be unlinked while the reply is awaited ([`Refusal::ReplyAwaited`]) unless
/// forced. Links with [`Rep`] and [`super::Router`]. A replier must answer each request
/// once: a router that sends a message nobody asked for on a link has it taken as the reply
/// to the next request sent on that link.
#[derive(Debug, Clone, Default)]
pub struct Req {
    next: RoundRobin,
    /// The link the reply to the request in flight is awaited on.
    pending: Option<LinkIncarnation>,
    /// That link closed before the reply came; the next receive says so.
    replier_gone: bool,
}

impl Req {
    /// A request socket protocol.
    pub fn new() -> Self {
        Self::default()
    }

    /// The link the reply is awaited on, if a request is in flight.
    pub fn pending(&self) -> Option<LinkIncarnation> {
        self.pending
    }
}

impl Protocol for Req {
    fn id(&self) -> ProtocolId {
        REQ
    }

    fn name(&self) -> &str {
        "req"
    }

    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == REP || peer == ROUTER
    }

    fn sends(&self) -> bool {
        true
    }

    fn receives(&self) -> bool {
        true
    }

    fn route_send(&mut self, links: &LinkSet<'_>, _payload: &[u8]) -> Route {
        if self.pending.is_some() {
            return Route::Blocked;
        }
        self.next.pick(links, |l| l.can_send()).map_or(Route::Blocked, Route::One)
    }

    fn on_sent(&mut self, link: LinkIncarnation) {
        self.pending = Some(link);
        self.replier_gone = false;
    }

    fn check_recv(&mut self) -> Result<(), Refusal> {
        if self.replier_gone {
            self.replier_gone = false;
            return Err(Refusal::ReplierGone);
        }
        if self.pending.is_none() {
            return Err(Refusal::NoRequestPending);
        }
        Ok(())
    }

    fn route_recv(&mut self, links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        self.pending.filter(|&l| links.get(l).is_some_and(|v| v.has_message()))
    }

    fn on_taken(&mut self, link: LinkIncarnation, _payload: &mut Vec<u8>) {
        if self.pending == Some(link) {
            self.pending = None;
        }
    }

    fn readable(&self, links: &LinkSet<'_>) -> bool {
        self.replier_gone
            || self.pending.is_some_and(|l| links.get(l).is_some_and(|v| v.has_message()))
    }

    fn writable(&self, links: &LinkSet<'_>) -> bool {
        self.pending.is_none() && links.iter().any(|l| l.can_send())
    }

    fn on_link_closed(&mut self, link: LinkIncarnation) {
        if self.pending == Some(link) {
            self.pending = None;
            self.replier_gone = true;
        }
    }

    fn check_unlink(&self, link: LinkIncarnation) -> Result<(), Refusal> {
        if self.pending == Some(link) { Err(Refusal::ReplyAwaited) } else { Ok(()) }
    }
}

/// The replying end of a synchronous request-reply (thesis §5.3.2).
///
/// Takes one request at a time (fair queuing over its links); its next send is the reply,
/// which goes back on the link the request came from, behind the request's envelope (so a
/// reply crosses routers and dealers back to its requester). A send with no request taken
/// fails with [`Refusal::NoRequestToReply`]; a second receive before replying finds
/// nothing. The link a reply is owed on cannot be unlinked ([`Refusal::ReplyOwed`]) unless
/// forced, which drops the request. Links with [`Req`] and [`super::Dealer`].
#[derive(Debug, Clone, Default)]
pub struct Rep {
    next: RoundRobin,
    /// The link of the request being served.
    requester: Option<LinkIncarnation>,
    /// The request's envelope (routing ids as encoded), put back in front of the reply.
    envelope: Vec<u8>,
}

impl Rep {
    /// A reply socket protocol.
    pub fn new() -> Self {
        Self::default()
    }

    /// The link of the request being served (owed a reply), if any.
    pub fn requester(&self) -> Option<LinkIncarnation> {
        self.requester
    }

    fn served(&mut self) {
        self.requester = None;
        self.envelope.clear();
    }
}

impl Protocol for Rep {
    fn id(&self) -> ProtocolId {
        REP
    }

    fn name(&self) -> &str {
        "rep"
    }

    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == REQ || peer == DEALER
    }

    fn sends(&self) -> bool {
        true
    }

    fn receives(&self) -> bool {
        true
    }

    fn route_send(&mut self, links: &LinkSet<'_>, _payload: &[u8]) -> Route {
        match self.requester {
            None => Route::Refused(Refusal::NoRequestToReply),
            Some(l) if links.get(l).is_some_and(|v| v.can_send()) => Route::One(l),
            Some(_) => Route::Blocked,
        }
    }

    fn rewrite_outgoing(
        &mut self,
        _link: LinkIncarnation,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Rewrite {
        if self.envelope.is_empty() {
            return Rewrite::Unchanged;
        }
        out.clear();
        out.extend_from_slice(&self.envelope);
        out.extend_from_slice(payload);
        Rewrite::Replaced
    }

    fn on_sent(&mut self, _link: LinkIncarnation) {
        self.served();
    }

    fn route_recv(&mut self, links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        if self.requester.is_some() {
            return None;
        }
        self.next.pick(links, |l| l.has_message())
    }

    fn on_taken(&mut self, link: LinkIncarnation, payload: &mut Vec<u8>) {
        self.envelope.clear();
        // A malformed request (from a peer that does not follow the protocol) is handed over
        // as it is, for the application's decoding to report, and owes no reply: the next
        // receive serves the next request.
        if let Ok(m) = Multipart::parse(payload) {
            let n = m.envelope().len();
            self.envelope.extend_from_slice(m.envelope());
            payload.drain(..n);
            self.requester = Some(link);
        }
    }

    fn rewrites_incoming(&self) -> bool {
        true
    }

    fn readable(&self, links: &LinkSet<'_>) -> bool {
        self.requester.is_none() && links.iter().any(|l| l.has_message())
    }

    fn writable(&self, links: &LinkSet<'_>) -> bool {
        self.requester.is_some_and(|l| links.get(l).is_some_and(|v| v.can_send()))
    }

    fn on_link_closed(&mut self, link: LinkIncarnation) {
        if self.requester == Some(link) {
            self.served();
        }
    }

    fn check_unlink(&self, link: LinkIncarnation) -> Result<(), Refusal> {
        if self.requester == Some(link) { Err(Refusal::ReplyOwed) } else { Ok(()) }
    }
}
