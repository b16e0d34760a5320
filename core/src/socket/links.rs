//! The links of a socket: making them (the verdict on a peer, LINK, LINKREPLY and
//! ERROR), unlinking, what their state machines report, and snapshots of them.

use alloc::format;
use alloc::vec::Vec;

use crate::id::{LinkIncarnation, SocketId};
use crate::link::{
    AttemptFailure, Link, LinkEvent, LinkPhase, LinkSink, PeerInfo, Proposal, Refusal, RefusalCode,
    Reply,
};
use crate::time::Instant;
use crate::wire::message::{Body, ErrorCode, Message};

use super::shared::{Shared, Sink, local_meta};
use super::sockets::Socket;
use super::timers::LINGER;
use super::{LinkView, ProtocolId, SocketError, SocketEvent, SocketKey, SocketLayer};

/// A snapshot of one link of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Its state.
    pub phase: LinkPhase,
    /// Send credits.
    pub credits: i64,
    /// Receive capacity.
    pub capacity: u32,
    /// Credits the application freed (messages taken) not yet returned to the peer.
    pub owed: u32,
    /// Messages received, not yet taken.
    pub queued: usize,
    /// DATA messages sent.
    pub sent: u64,
    /// DATA messages taken by the application.
    pub taken: u64,
    /// The peer's protocol, once known.
    pub peer_protocol: Option<ProtocolId>,
    /// The peer's incarnation of the link, once known.
    pub peer_incarnation: Option<LinkIncarnation>,
    /// When it retries (in [`LinkPhase::RetryWait`]).
    pub retry_at: Option<Instant>,
    /// Attempts made so far while it is being made ([`Link::attempts`]; why the last one
    /// failed: [`SocketLayer::link_failure`]).
    pub attempts: u32,
}

impl Socket {
    /// Our verdict on a peer that described itself.
    pub(super) fn evaluate(
        &mut self,
        peer: &SocketId,
        protocol: ProtocolId,
        metadata: &[u8],
        existing: bool,
    ) -> Proposal {
        if self.closing {
            return Proposal::refuse(RefusalCode::Closing, "the socket is closing");
        }
        if *peer == self.id {
            return Proposal::refuse(RefusalCode::Rejected, "a socket cannot link to itself");
        }
        if !existing && !self.options.accept_incoming {
            return Proposal::refuse(RefusalCode::NotAllowed, "the socket takes no link requests");
        }
        if !self.protocol.is_compatible(protocol) {
            let reason = format!(
                "{} socket (protocol {}) does not link with protocol {}",
                self.protocol.name(),
                self.protocol.id(),
                protocol
            );
            return Proposal::Refuse(Refusal { code: RefusalCode::Incompatible, reason });
        }
        let others = self.links.len() - usize::from(existing);
        if others >= self.options.max_links {
            return Proposal::refuse(RefusalCode::TryLater, "the socket has its maximum of links");
        }
        match self.protocol.accept_link(peer, protocol, metadata) {
            Ok(()) => Proposal::Accept,
            Err(reason) => Proposal::Refuse(Refusal { code: RefusalCode::Rejected, reason }),
        }
    }

    pub(super) fn start_link(&mut self, peer: SocketId, shared: &mut Shared) -> LinkIncarnation {
        let inc = shared.next_incarnation();
        let capacity = self.link_capacity();
        let mut link = {
            let me = local_meta(&*self.protocol);
            let mut sink = Sink { tag: &self.id.tag, shared };
            Link::initiate(inc, peer.clone(), capacity, self.options.batch, &me, &mut sink)
        };
        link.set_max_message(shared.config.max_payload);
        shared.routes.clear();
        self.by_peer.insert(peer, inc);
        self.links.insert(inc, link);
        inc
    }

    /// Handles one message from `peer`.
    pub(super) fn handle(
        &mut self,
        now: Instant,
        key: SocketKey,
        peer: SocketId,
        msg: &Message<'_>,
        shared: &mut Shared,
    ) {
        let existing = self.by_peer.get(&peer).copied();
        match msg.body {
            Body::Link { protocol, capacity, metadata } => {
                let info = PeerInfo {
                    incarnation: msg.link,
                    protocol,
                    capacity,
                    metadata: Vec::from(metadata),
                };
                let proposal = self.evaluate(&peer, protocol, metadata, existing.is_some());
                let capacity = self.link_capacity();
                let me = local_meta(&*self.protocol);
                let mut sink = Sink { tag: &self.id.tag, shared };
                match (existing, proposal) {
                    (Some(inc), proposal) => {
                        if let Some(link) = self.links.get_mut(&inc) {
                            let retry = &self.options.retry;
                            link.on_link(now, info, proposal, retry, &me, &mut sink);
                        }
                    }
                    (None, Proposal::Accept) => {
                        let inc = sink.shared.next_incarnation();
                        let batch = self.options.batch;
                        let mut link = Link::accept_request(
                            inc,
                            peer.clone(),
                            info,
                            capacity,
                            batch,
                            &me,
                            &mut sink,
                        );
                        link.set_max_message(sink.shared.config.max_payload);
                        sink.shared.routes.clear();
                        self.by_peer.insert(peer, inc);
                        self.links.insert(inc, link);
                    }
                    (None, Proposal::Refuse(refusal)) => {
                        sink.send(&peer, LINGER, Link::refusal_body(&refusal, &me));
                        sink.shared.stats.refused_requests += 1;
                    }
                }
            }
            Body::LinkReply { accept, protocol, capacity, metadata, reason } => {
                let Some(inc) = existing else {
                    shared.stats.stale += 1;
                    return;
                };
                let reply =
                    Reply { incarnation: msg.link, accept, protocol, capacity, metadata, reason };
                let proposal = metadata.map(|m| self.evaluate(&peer, protocol, m, true));
                let me = local_meta(&*self.protocol);
                let mut sink = Sink { tag: &self.id.tag, shared };
                if let Some(link) = self.links.get_mut(&inc) {
                    link.on_reply(now, &reply, proposal, &self.options.retry, &me, &mut sink);
                }
            }
            Body::Error { code, .. } => {
                let link = existing.and_then(|inc| self.links.get_mut(&inc));
                match (link, code) {
                    (Some(link), ErrorCode::SocketNotFound) => {
                        let me = local_meta(&*self.protocol);
                        let mut sink = Sink { tag: &self.id.tag, shared };
                        link.on_not_found(now, msg.link, &self.options.retry, &me, &mut sink);
                    }
                    // We never send the other codes (refusals are LINKREPLYs).
                    _ => shared.stats.stale += 1,
                }
            }
            Body::Unlink { .. }
            | Body::Flow { .. }
            | Body::Data { .. }
            | Body::DataMore { .. }
            | Body::Custom { .. } => {
                self.handle_traffic(key, existing, msg.link, &msg.body, shared);
            }
        }
    }

    pub(super) fn on_link_event(
        &mut self,
        key: SocketKey,
        inc: LinkIncarnation,
        event: LinkEvent,
        shared: &mut Shared,
    ) {
        match event {
            LinkEvent::Established => {
                let Some(link) = self.links.get(&inc) else { return };
                shared.credit(key, inc, link.credits());
                self.protocol.on_link_established(LinkView::new(link), &mut shared.control);
                let peer = link.peer_id().clone();
                shared.emit(SocketEvent::LinkEstablished { socket: key, link: inc, peer });
            }
            LinkEvent::Refused(refusal) => {
                let Some(link) = self.links.get(&inc) else { return };
                let peer = link.peer_id().clone();
                shared.emit(SocketEvent::LinkRefused { socket: key, link: inc, peer, refusal });
            }
            LinkEvent::RetryAt(at) | LinkEvent::TimerAt(at) => {
                shared.timers.insert((at, key, inc));
            }
            LinkEvent::AttemptFailed { attempt, failure } => {
                let Some(link) = self.links.get(&inc) else { return };
                let peer = link.peer_id().clone();
                shared.emit(SocketEvent::LinkAttemptFailed {
                    socket: key,
                    link: inc,
                    peer,
                    attempt,
                    failure,
                });
            }
            LinkEvent::Closed { established } => {
                let Some(mut link) = self.links.remove(&inc) else { return };
                shared.routes.clear();
                if self.by_peer.get(link.peer_id()) == Some(&inc) {
                    self.by_peer.remove(link.peer_id());
                }
                for buf in link.drain_queued() {
                    shared.out.pool.give(buf);
                }
                self.protocol.on_link_closed(inc);
                let peer = link.peer_id().clone();
                let relink = link.relink_requested() && !self.closing;
                shared.emit(SocketEvent::LinkClosed {
                    socket: key,
                    link: inc,
                    peer: peer.clone(),
                    established,
                });
                if relink {
                    self.start_link(peer, shared);
                } else if self.links.is_empty() {
                    shared.emit(SocketEvent::LinkFree { socket: key });
                }
            }
        }
    }
}

impl SocketLayer {
    /// Starts linking a socket to `peer` and returns the link's key. If a link to `peer`
    /// exists, returns it (and if it is closing, it reopens once closed).
    pub fn link(&mut self, key: SocketKey, peer: SocketId) -> Result<LinkIncarnation, SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        if s.closing {
            return Err(SocketError::Closed);
        }
        if peer == s.id {
            return Err(SocketError::InvalidPeer);
        }
        if let Some(&inc) = s.by_peer.get(&peer) {
            if let Some(link) = s.links.get_mut(&inc) {
                link.request();
            }
            return Ok(inc);
        }
        if s.links.len() >= s.options.max_links {
            return Err(SocketError::LinkLimit);
        }
        let inc = s.start_link(peer, shared);
        self.after(key);
        Ok(inc)
    }

    /// Unlinks a socket from `peer`: cancels a handshake, stops retries, or starts the UNLINK
    /// exchange (the link closes once every message sent on it was received). The socket's
    /// protocol may refuse ([`SocketError::Refused`]: a reply is awaited or owed on the
    /// link); [`SocketLayer::force_unlink`] does not ask it.
    pub fn unlink(
        &mut self,
        now: Instant,
        key: SocketKey,
        peer: &SocketId,
    ) -> Result<(), SocketError> {
        let (s, _) = self.parts(key).ok_or(SocketError::Closed)?;
        let inc = *s.by_peer.get(peer).ok_or(SocketError::UnknownLink)?;
        s.protocol.check_unlink(inc).map_err(SocketError::Refused)?;
        self.force_unlink(now, key, peer)
    }

    /// Like [`SocketLayer::unlink`], whatever the protocol says: a request awaiting its reply
    /// on the link is cancelled (the requester's receive fails), a request owed a reply on it
    /// is dropped (thesis §5.3.1–§5.3.2, `forceUnlink`).
    pub fn force_unlink(
        &mut self,
        now: Instant,
        key: SocketKey,
        peer: &SocketId,
    ) -> Result<(), SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        let inc = *s.by_peer.get(peer).ok_or(SocketError::UnknownLink)?;
        if let Some(link) = s.links.get_mut(&inc) {
            let mut sink = Sink { tag: &s.id.tag, shared };
            link.unlink(now, &s.options.retry, &mut sink);
        }
        self.after(key);
        Ok(())
    }

    /// Whether a socket has any link, in any state (`false`: link-free, or closed).
    pub fn has_links(&self, key: SocketKey) -> bool {
        self.socket(key).is_some_and(|s| !s.links.is_empty())
    }

    /// How many links a socket has, in any state.
    pub fn link_count(&self, key: SocketKey) -> usize {
        self.socket(key).map_or(0, |s| s.links.len())
    }

    /// The keys of a socket's links.
    pub fn links(&self, key: SocketKey) -> impl Iterator<Item = LinkIncarnation> + '_ {
        self.socket(key).into_iter().flat_map(|s| s.links.keys().copied())
    }

    /// The link of a socket with `peer`, if any.
    pub fn link_of(&self, key: SocketKey, peer: &SocketId) -> Option<LinkIncarnation> {
        self.socket(key)?.by_peer.get(peer).copied()
    }

    /// The peer of a link.
    pub fn link_peer(&self, key: SocketKey, link: LinkIncarnation) -> Option<&SocketId> {
        self.socket(key)?.links.get(&link).map(Link::peer_id)
    }

    /// A snapshot of a link.
    pub fn link_status(&self, key: SocketKey, link: LinkIncarnation) -> Option<LinkStatus> {
        let link = self.socket(key)?.links.get(&link)?;
        Some(LinkStatus {
            phase: link.phase(),
            credits: link.credits(),
            capacity: link.capacity(),
            owed: link.recv_credits().owed(),
            queued: link.queued(),
            sent: link.sent(),
            taken: link.taken(),
            peer_protocol: link.peer().map(|p| p.protocol),
            peer_incarnation: link.peer().map(|p| p.incarnation),
            retry_at: link.retry_at(),
            attempts: link.attempts(),
        })
    }

    /// Why the latest attempt of a link being made failed ([`Link::last_failure`]).
    pub fn link_failure(&self, key: SocketKey, link: LinkIncarnation) -> Option<&AttemptFailure> {
        self.socket(key)?.links.get(&link)?.last_failure()
    }

    /// Sets the receive capacity of an established link; the peer learns the change as a
    /// relative FLOW.
    pub fn set_link_capacity(
        &mut self,
        key: SocketKey,
        link: LinkIncarnation,
        capacity: u32,
    ) -> Result<(), SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        let l = s.links.get_mut(&link).ok_or(SocketError::UnknownLink)?;
        let mut sink = Sink { tag: &s.id.tag, shared };
        if l.set_capacity(capacity, &mut sink) { Ok(()) } else { Err(SocketError::UnknownLink) }
    }

    /// Changes the receive capacity of an established link by `delta`.
    pub fn adjust_link_capacity(
        &mut self,
        key: SocketKey,
        link: LinkIncarnation,
        delta: i32,
    ) -> Result<(), SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        let l = s.links.get_mut(&link).ok_or(SocketError::UnknownLink)?;
        let mut sink = Sink { tag: &s.id.tag, shared };
        if l.adjust_capacity(delta, &mut sink) { Ok(()) } else { Err(SocketError::UnknownLink) }
    }
}
