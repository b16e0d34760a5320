//! Sockets: the socket core, the [`Protocol`] trait for socket types, and the
//! [`SocketLayer`] that owns the sockets of a node (thesis §4.3.3–§4.3.9, §4.8–§4.10, §5).
//!
//! The layer is sans-I/O like the rest of the core. It sits on the exactly-once transport
//! (`crate::node`): every message it produces is one transport payload, delivered once
//! but in any order. Its inputs and outputs:
//!
//! ```text
//! layer.handle_message(now, from, &msg)   // a socket message arrived (or handle_payload)
//! layer.handle_timeout(now)               // a link retry or a close linger is due
//! layer.poll_timeout() -> Option<Instant>
//! layer.poll_outgoing() -> Option<Outgoing>            // encoded message + destination node
//! layer.poll_event() -> Option<SocketEvent>            // link established/refused/closed, ...
//! layer.poll_ready() -> Option<SocketKey>              // a socket's readiness may have changed
//! ```
//!
//! and the application's calls: [`SocketLayer::create_socket`], [`SocketLayer::link`],
//! [`SocketLayer::unlink`], [`SocketLayer::close`], [`SocketLayer::send`],
//! [`SocketLayer::recv`], [`SocketLayer::readiness`]. None of them blocks: a send without a
//! credit fails with [`SocketError::WouldBlock`], one on a socket without any link with
//! [`SocketError::NoLinks`]; a blocking layer waits on the readiness notifications
//! ([`crate::poll::Events`]: IN, OUT, HUP once closed) or, for credits, on a
//! [`crate::ticket::CreditCoordinator`] fed from [`SocketEvent::Credits`].
//!
//! # Messages
//!
//! Link management (LINK, LINKREPLY, UNLINK), FLOW and custom control messages travel
//! without credits; DATA needs one ([`crate::flow`]) and is delivered in order per link
//! ([`crate::link::InOrderQueue`]). A message longer than [`LayerConfig::max_fragment`]
//! travels as several DATA messages of one link, a credit each, and is delivered whole or
//! not at all, up to [`LayerConfig::max_payload`] (see "Messages larger than one DATA" in
//! [`crate::link`]). A LINK for a tag with no socket is answered by an ERROR
//! socket-not-found built as if the missing socket replied; other messages for unknown
//! sockets or old links are dropped and counted ([`LayerStats`]).
//!
//! # End of stream
//!
//! A socket is *link-free* when it has no link in any state ([`SocketLayer::has_links`];
//! [`SocketEvent::LinkFree`] when the last one goes). Since a link closes only after every
//! message sent on it was received, a pull socket whose upstream unlinked becomes link-free
//! exactly when it has received everything: [`SocketLayer::recv`] then fails with
//! [`SocketError::NoLinks`], the end-of-stream signal of thesis §7.3.
//!
//! # Example
//!
//! Two nodes' layers, with the transport replaced by handing messages over in order:
//!
//! ```
//! use a3m_core::id::{NodeId, TagId};
//! use a3m_core::socket::{LayerConfig, Pull, Push, SocketError, SocketLayer};
//! use a3m_core::time::Instant;
//!
//! let now = Instant::ZERO;
//! let mut a = SocketLayer::new(NodeId::new("A").unwrap(), LayerConfig::DEFAULT);
//! let mut b = SocketLayer::new(NodeId::new("B").unwrap(), LayerConfig::DEFAULT);
//! let src = a.create_socket(TagId::new("src").unwrap(), Box::new(Push::new())).unwrap();
//! let sink = b.create_socket(TagId::new("sink").unwrap(), Box::new(Pull::new())).unwrap();
//! a.link(src, "B/sink".parse().unwrap()).unwrap();
//!
//! // What the node does: submit outgoing messages, hand deliveries to the layer.
//! fn pump(from: &mut SocketLayer, to: &mut SocketLayer) -> usize {
//!     let mut n = 0;
//!     while let Some(out) = from.poll_outgoing() {
//!         to.handle_payload(Instant::ZERO, &from.node().clone(), &out.bytes).unwrap();
//!         from.recycle(out.bytes);
//!         n += 1;
//!     }
//!     n
//! }
//! while pump(&mut a, &mut b) + pump(&mut b, &mut a) > 0 {}
//!
//! a.send(src, b"hello").unwrap();
//! a.close(now, src).unwrap();
//! while pump(&mut a, &mut b) + pump(&mut b, &mut a) > 0 {}
//! assert_eq!(b.recv(sink).unwrap().payload, b"hello");
//! while pump(&mut a, &mut b) + pump(&mut b, &mut a) > 0 {}
//! // The source closed and its link is gone: end of stream.
//! assert_eq!(b.recv(sink), Err(SocketError::NoLinks));
//! ```

mod options;
mod outbox;
mod protocol;
mod push_pull;

pub use options::{LayerConfig, SocketOptions};
pub use outbox::Outgoing;
pub use protocol::{
    Control, ControlError, LinkSet, LinkView, Protocol, ProtocolId, RoundRobin, Route,
};
pub use push_pull::{PULL, PUSH, Pull, Push};

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::vec::Vec;
use core::fmt;

use crate::flow::FlowUpdate;
use crate::id::{LinkIncarnation, NodeId, SocketId, TagId};
use crate::link::{
    AttemptFailure, Link, LinkEvent, LinkPhase, LinkSink, LocalMeta, PeerInfo, Proposal, Refusal,
    RefusalCode, Reply,
};
use crate::poll::Events;
use crate::time::Instant;
use crate::wire::DecodeError;
use crate::wire::message::{self, Body, ErrorCode, Message};
use outbox::Outbox;

/// Names a socket of a [`SocketLayer`]. A key of a closed socket never names another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketKey {
    index: u32,
    generation: u32,
}

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
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SocketError {}

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
    Credits {
        /// The socket.
        socket: SocketKey,
        /// The link.
        link: LinkIncarnation,
        /// The change.
        delta: i64,
    },
}

/// A message handed to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The payload. Give the buffer back with [`SocketLayer::recycle`] to avoid allocating.
    pub payload: Vec<u8>,
    /// The link it came on.
    pub link: LinkIncarnation,
    /// The socket that sent it.
    pub peer: SocketId,
}

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

/// Counters of the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerStats {
    /// Messages handled.
    pub messages_in: u64,
    /// Messages queued for the transport.
    pub messages_out: u64,
    /// Messages for a tag with no socket.
    pub not_found: u64,
    /// Messages for no current link (an old incarnation, or an unknown peer).
    pub stale: u64,
    /// DATA that broke the FIFO or credit rules (duplicate, too far ahead, after UNLINK).
    pub violations: u64,
    /// Link requests refused without creating a link.
    pub refused_requests: u64,
    /// Messages with invalid tags, or payloads that did not decode.
    pub malformed: u64,
    /// Events dropped because [`LayerConfig::max_events`] were waiting.
    pub events_dropped: u64,
    /// Outgoing messages that could not be encoded.
    pub encode_failures: u64,
    /// Fragmented messages dropped as they were reassembled, being larger than
    /// [`LayerConfig::max_payload`] (the sender allows larger messages than we do).
    pub oversized: u64,
}

/// The timer entry of a socket's close linger (incarnations start at 1).
const LINGER: LinkIncarnation = LinkIncarnation(0);

/// What the links of every socket share: the outbox, events, timers and counters.
#[derive(Debug)]
struct Shared {
    config: LayerConfig,
    /// Where the last DATA message went: the next one from the same peer socket to the same
    /// socket skips parsing the tags and three map lookups. Cleared whenever a socket or a
    /// link to a peer socket comes or goes.
    route: Option<RouteCache>,
    next_incarnation: u32,
    out: Outbox,
    link_events: Vec<(LinkIncarnation, LinkEvent)>,
    events: VecDeque<SocketEvent>,
    ready: VecDeque<SocketKey>,
    timers: BTreeSet<(Instant, SocketKey, LinkIncarnation)>,
    control: Control,
    stats: LayerStats,
}

/// See [`Shared::route`].
#[derive(Debug)]
struct RouteCache {
    from: NodeId,
    src: TagId,
    dst: TagId,
    /// What every DATA message of the route starts with ([`message::data_prefix`]; a
    /// DATA_MORE differs only in its kind's low bit): a payload that starts so is routed
    /// without decoding its tags.
    prefix: [u8; message::DATA_PREFIX_MAX + 1],
    prefix_len: usize,
    /// The sender's incarnation of the link, named in its messages.
    their_link: LinkIncarnation,
    key: SocketKey,
    link: LinkIncarnation,
}

impl RouteCache {
    fn new(
        from: &NodeId,
        msg: &Message<'_>,
        key: SocketKey,
        link: LinkIncarnation,
    ) -> Option<Self> {
        let mut prefix = [0; message::DATA_PREFIX_MAX + 1];
        let prefix_len = message::data_prefix(msg.src_tag, msg.dst_tag, msg.link, &mut prefix)?;
        Some(Self {
            from: from.clone(),
            src: TagId::new(msg.src_tag).ok()?,
            dst: TagId::new(msg.dst_tag).ok()?,
            prefix,
            prefix_len,
            their_link: msg.link,
            key,
            link,
        })
    }

    fn matches(&self, from: &NodeId, msg: &Message<'_>) -> bool {
        self.src.as_str() == msg.src_tag && self.dst.as_str() == msg.dst_tag && self.from == *from
    }

    /// The rest of `bytes` after the route's DATA prefix, if `bytes` came from `from` and
    /// starts with it.
    #[inline]
    fn tail<'a>(&self, from: &NodeId, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let rest = bytes.strip_prefix(&self.prefix[..self.prefix_len])?;
        (self.from == *from).then_some(rest)
    }

    /// The body of `bytes` if it is a DATA_MORE of this route from `from` (or a DATA: the
    /// general case of [`RouteCache::tail`]).
    #[cold]
    fn fragment<'a>(&self, from: &NodeId, bytes: &'a [u8]) -> Option<Body<'a>> {
        let body = message::decode_routed_data(&self.prefix[..self.prefix_len], bytes)?;
        (self.from == *from).then_some(body)
    }
}

impl Shared {
    fn next_incarnation(&mut self) -> LinkIncarnation {
        let inc = LinkIncarnation(self.next_incarnation);
        self.next_incarnation = self.next_incarnation.checked_add(1).unwrap_or(1);
        inc
    }

    /// Nothing for [`SocketLayer::after`] to do: no link reported an event and no protocol
    /// control message waits. (Only a link event can remove a link, so a closing socket
    /// cannot have become link-free either.)
    fn is_quiet(&self) -> bool {
        self.link_events.is_empty() && self.control.is_empty()
    }

    fn emit(&mut self, event: SocketEvent) {
        if self.events.len() < self.config.max_events {
            self.events.push_back(event);
        } else {
            self.stats.events_dropped += 1;
        }
    }

    fn credit(&mut self, socket: SocketKey, link: LinkIncarnation, delta: i64) {
        if self.config.credit_events && delta != 0 {
            self.emit(SocketEvent::Credits { socket, link, delta });
        }
    }
}

/// A [`LinkSink`] writing into the layer's outbox for one socket.
struct Sink<'a> {
    tag: &'a TagId,
    shared: &'a mut Shared,
}

impl LinkSink for Sink<'_> {
    fn send(&mut self, peer: &SocketId, local: LinkIncarnation, body: Body<'_>) {
        let msg =
            Message { src_tag: self.tag.as_str(), dst_tag: peer.tag.as_str(), link: local, body };
        if self.shared.out.push(&peer.node, &msg) {
            self.shared.stats.messages_out += 1;
        } else {
            self.shared.stats.encode_failures += 1;
        }
    }

    fn event(&mut self, local: LinkIncarnation, event: LinkEvent) {
        self.shared.link_events.push((local, event));
    }

    #[inline]
    fn buffer(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.shared.out.pool.copy_of(bytes)
    }

    #[inline]
    fn recycle(&mut self, buf: Vec<u8>) {
        self.shared.out.pool.give(buf);
    }

    fn oversized(&mut self, _: LinkIncarnation) {
        self.shared.stats.oversized += 1;
    }
}

fn local_meta(protocol: &dyn Protocol) -> LocalMeta<'_> {
    LocalMeta { protocol: protocol.id(), metadata: protocol.metadata() }
}

/// One socket: its protocol, options and links.
struct Socket {
    id: SocketId,
    protocol: Box<dyn Protocol>,
    options: SocketOptions,
    closing: bool,
    links: BTreeMap<LinkIncarnation, Link>,
    by_peer: BTreeMap<SocketId, LinkIncarnation>,
    /// Queued in `Shared::ready`.
    ready_queued: bool,
}

impl Socket {
    fn link_capacity(&self) -> u32 {
        if self.protocol.receives() { self.options.capacity } else { 0 }
    }

    fn mark_ready(&mut self, key: SocketKey, shared: &mut Shared) {
        if !self.ready_queued {
            self.ready_queued = true;
            shared.ready.push_back(key);
        }
    }

    /// Our verdict on a peer that described itself.
    fn evaluate(
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

    fn start_link(&mut self, peer: SocketId, shared: &mut Shared) -> LinkIncarnation {
        let inc = shared.next_incarnation();
        let capacity = self.link_capacity();
        let mut link = {
            let me = local_meta(&*self.protocol);
            let mut sink = Sink { tag: &self.id.tag, shared };
            Link::initiate(inc, peer.clone(), capacity, self.options.batch, &me, &mut sink)
        };
        link.set_max_message(shared.config.max_payload);
        shared.route = None;
        self.by_peer.insert(peer, inc);
        self.links.insert(inc, link);
        inc
    }

    /// Handles one message from `peer`.
    fn handle(
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
                        sink.shared.route = None;
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

    /// DATA, FLOW, UNLINK and custom control (`body`, sent on the peer's incarnation
    /// `their_link` of it): only for the current link with the peer.
    fn handle_traffic(
        &mut self,
        key: SocketKey,
        existing: Option<LinkIncarnation>,
        their_link: LinkIncarnation,
        body: &Body<'_>,
        shared: &mut Shared,
    ) {
        let Some((inc, link)) = existing.and_then(|inc| Some((inc, self.links.get_mut(&inc)?)))
        else {
            shared.stats.stale += 1;
            return;
        };
        let mut sink = Sink { tag: &self.id.tag, shared };
        if !link.admits(their_link, &mut sink) {
            sink.shared.stats.stale += 1;
            return;
        }
        let mut ready = false;
        match *body {
            Body::Unlink { sent } => link.on_unlink(sent, &mut sink),
            Body::Flow { credits, capacity_delta } => {
                let update = FlowUpdate { credits, capacity_delta };
                let before = link.credits();
                // Fragments of a message in progress may take the credits at once.
                ready = link.on_flow(update, &mut sink);
                let delta = link.credits() - before;
                shared.credit(key, inc, delta);
            }
            Body::Data { seq, payload } | Body::DataMore { seq, payload } => {
                let more = matches!(body, Body::DataMore { .. });
                match link.on_data(seq, payload, more, &mut sink) {
                    Ok(edge) => ready = edge,
                    Err(_) => shared.stats.violations += 1,
                }
            }
            Body::Custom { kind, body } => {
                self.protocol.on_control(LinkView::new(link), kind, body, &mut shared.control);
            }
            _ => {}
        }
        if ready {
            self.mark_ready(key, shared);
        }
    }

    /// Reacts to what the links reported, sends protocol control messages; repeats until
    /// quiet (a relink reports events of its own).
    fn settle(&mut self, key: SocketKey, shared: &mut Shared) {
        let mut touched = false;
        while !shared.link_events.is_empty() || !shared.control.is_empty() {
            touched = true;
            let mut events = core::mem::take(&mut shared.link_events);
            for (inc, event) in events.drain(..) {
                self.on_link_event(key, inc, event, shared);
            }
            if shared.link_events.is_empty() {
                // Keep the allocation for next time.
                shared.link_events = events;
            }
            for (inc, kind, body) in shared.control.take() {
                if let Some(link) = self.links.get_mut(&inc) {
                    let mut sink = Sink { tag: &self.id.tag, shared };
                    link.send_control(kind, &body, &mut sink);
                }
            }
        }
        if touched {
            self.mark_ready(key, shared);
        }
    }

    fn on_link_event(
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
                shared.route = None;
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

struct Slot {
    generation: u32,
    socket: Option<Socket>,
}

/// The sockets of one node. See the [module docs](self).
pub struct SocketLayer {
    node: NodeId,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_tag: BTreeMap<TagId, SocketKey>,
    live: usize,
    shared: Shared,
}

impl fmt::Debug for SocketLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketLayer")
            .field("node", &self.node)
            .field("sockets", &self.live)
            .field("stats", &self.shared.stats)
            .finish_non_exhaustive()
    }
}

impl SocketLayer {
    /// An empty layer for node `node`.
    pub fn new(node: NodeId, config: LayerConfig) -> Self {
        Self {
            node,
            slots: Vec::new(),
            free: Vec::new(),
            by_tag: BTreeMap::new(),
            live: 0,
            shared: Shared {
                route: None,
                config,
                next_incarnation: 1,
                out: Outbox::new(config.pooled_buffers),
                link_events: Vec::new(),
                events: VecDeque::new(),
                ready: VecDeque::new(),
                timers: BTreeSet::new(),
                control: Control::new(),
                stats: LayerStats::default(),
            },
        }
    }

    /// The node this layer belongs to.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The layer's configuration.
    pub fn config(&self) -> &LayerConfig {
        &self.shared.config
    }

    /// The layer's counters.
    pub fn stats(&self) -> &LayerStats {
        &self.shared.stats
    }

    fn socket(&self, key: SocketKey) -> Option<&Socket> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.socket.as_ref()
    }

    fn parts(&mut self, key: SocketKey) -> Option<(&mut Socket, &mut Shared)> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        Some((slot.socket.as_mut()?, &mut self.shared))
    }

    // ----- sockets -----

    /// Creates a socket with default options.
    pub fn create_socket(
        &mut self,
        tag: TagId,
        protocol: Box<dyn Protocol>,
    ) -> Result<SocketKey, SocketError> {
        self.create_socket_with(tag, protocol, SocketOptions::DEFAULT)
    }

    /// Creates a socket: it takes link requests at once. [`SocketError::TooLarge`] if the
    /// protocol's metadata is longer than [`LayerConfig::max_fragment`] (LINK and
    /// LINKREPLY carry it in one message).
    pub fn create_socket_with(
        &mut self,
        tag: TagId,
        protocol: Box<dyn Protocol>,
        options: SocketOptions,
    ) -> Result<SocketKey, SocketError> {
        if self.by_tag.contains_key(&tag) {
            return Err(SocketError::TagInUse);
        }
        if protocol.metadata().len() > self.shared.config.max_fragment {
            return Err(SocketError::TooLarge);
        }
        if self.live >= self.shared.config.max_sockets {
            return Err(SocketError::TooManySockets);
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index =
                    u32::try_from(self.slots.len()).map_err(|_| SocketError::TooManySockets)?;
                self.slots.push(Slot { generation: 0, socket: None });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        let key = SocketKey { index, generation: slot.generation };
        slot.socket = Some(Socket {
            id: SocketId::new(self.node.clone(), tag.clone()),
            protocol,
            options,
            closing: false,
            links: BTreeMap::new(),
            by_peer: BTreeMap::new(),
            ready_queued: false,
        });
        self.by_tag.insert(tag, key);
        self.shared.route = None;
        self.live += 1;
        Ok(key)
    }

    /// The open (or closing) socket with this tag.
    pub fn socket_by_tag(&self, tag: &TagId) -> Option<SocketKey> {
        self.by_tag.get(tag).copied()
    }

    /// The global id of a socket.
    pub fn socket_id(&self, key: SocketKey) -> Option<&SocketId> {
        self.socket(key).map(|s| &s.id)
    }

    /// A socket's options.
    pub fn options(&self, key: SocketKey) -> Option<&SocketOptions> {
        self.socket(key).map(|s| &s.options)
    }

    /// Replaces a socket's options (link options apply to links created from now on).
    pub fn set_options(
        &mut self,
        key: SocketKey,
        options: SocketOptions,
    ) -> Result<(), SocketError> {
        let (s, _) = self.parts(key).ok_or(SocketError::Closed)?;
        s.options = options;
        Ok(())
    }

    /// A socket's protocol.
    pub fn protocol(&self, key: SocketKey) -> Option<&dyn Protocol> {
        self.socket(key).map(|s| &*s.protocol)
    }

    /// A socket's protocol, to call protocol-specific methods.
    pub fn protocol_mut(&mut self, key: SocketKey) -> Option<&mut (dyn Protocol + 'static)> {
        self.parts(key).map(|(s, _)| &mut *s.protocol)
    }

    /// Whether the socket is closing (it stays until its links have closed).
    pub fn is_closing(&self, key: SocketKey) -> bool {
        self.socket(key).is_none_or(|s| s.closing)
    }

    // ----- links -----

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
    /// exchange (the link closes once every message sent on it was received).
    pub fn unlink(
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

    /// Closes a socket: unlinks every link and refuses new ones. The socket leaves the layer
    /// ([`SocketEvent::Closed`]) once its links have closed, or when the linger option
    /// expires (dropping what was not taken). Receiving stays possible meanwhile.
    pub fn close(&mut self, now: Instant, key: SocketKey) -> Result<(), SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        if s.closing {
            return Ok(());
        }
        s.closing = true;
        let links: Vec<LinkIncarnation> = s.links.keys().copied().collect();
        for inc in links {
            if let Some(link) = s.links.get_mut(&inc) {
                let mut sink = Sink { tag: &s.id.tag, shared };
                link.unlink(now, &s.options.retry, &mut sink);
            }
        }
        s.mark_ready(key, shared);
        match s.options.linger {
            Some(linger) if linger.is_zero() => self.abort_links(key),
            Some(linger) => {
                shared.timers.insert((now + linger, key, LINGER));
            }
            None => {}
        }
        self.after(key);
        Ok(())
    }

    fn abort_links(&mut self, key: SocketKey) {
        let Some((s, shared)) = self.parts(key) else { return };
        for link in s.links.values_mut() {
            let mut sink = Sink { tag: &s.id.tag, shared };
            link.abort(&mut sink);
        }
        self.after(key);
    }

    /// Settles a socket after an operation; removes it once closed.
    fn after(&mut self, key: SocketKey) {
        let Some((s, shared)) = self.parts(key) else { return };
        s.settle(key, shared);
        if s.closing && s.links.is_empty() {
            self.finalize(key);
        }
    }

    fn finalize(&mut self, key: SocketKey) {
        let Some(slot) = self.slots.get_mut(key.index as usize) else { return };
        let Some(socket) = slot.socket.take() else { return };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.by_tag.remove(&socket.id.tag);
        self.shared.route = None;
        self.live -= 1;
        self.shared.emit(SocketEvent::Closed { socket: key });
        self.shared.ready.push_back(key);
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

    // ----- data -----

    /// Sends a data message where the socket's protocol routes it. Never blocks:
    /// [`SocketError::WouldBlock`] when no link can take it now, [`SocketError::NoLinks`]
    /// when the socket has no link at all, [`SocketError::TooLarge`] beyond
    /// [`LayerConfig::max_payload`]. A message longer than [`LayerConfig::max_fragment`]
    /// goes in fragments ([`Link::send_data`]): it is accepted whole (the link keeps what
    /// its credits do not cover yet) and its link takes no other message until the last
    /// fragment has left.
    pub fn send(&mut self, key: SocketKey, payload: &[u8]) -> Result<(), SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        if s.closing {
            return Err(SocketError::Closed);
        }
        if !s.protocol.sends() {
            return Err(SocketError::Unsupported);
        }
        if payload.len() > shared.config.max_payload {
            return Err(SocketError::TooLarge);
        }
        if s.links.is_empty() {
            return Err(SocketError::NoLinks);
        }
        match s.protocol.route_send(&LinkSet::new(&s.links), payload) {
            Route::One(inc) => {
                let link = s.links.get_mut(&inc).ok_or(SocketError::WouldBlock)?;
                let fragment = shared.config.max_fragment;
                let mut sink = Sink { tag: &s.id.tag, shared };
                let used = link.send_data(payload, fragment, &mut sink);
                if used == 0 {
                    return Err(SocketError::WouldBlock);
                }
                shared.credit(key, inc, -i64::from(used));
            }
            Route::Every => {
                let mut targets = s.links.values().filter(|l| l.phase() == LinkPhase::Established);
                let mut any = false;
                if !targets.all(|l| {
                    any = true;
                    l.can_send()
                }) || !any
                {
                    return Err(SocketError::WouldBlock);
                }
                let fragment = shared.config.max_fragment;
                for (inc, link) in s.links.iter_mut() {
                    let mut sink = Sink { tag: &s.id.tag, shared };
                    let used = link.send_data(payload, fragment, &mut sink);
                    shared.credit(key, *inc, -i64::from(used));
                }
            }
            Route::Blocked => return Err(SocketError::WouldBlock),
        }
        Ok(())
    }

    /// Sends a data message on one link (e.g. after a credit coordinator reserved one of its
    /// credits), whatever the protocol's routing.
    pub fn send_on(
        &mut self,
        key: SocketKey,
        link: LinkIncarnation,
        payload: &[u8],
    ) -> Result<(), SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        if s.closing {
            return Err(SocketError::Closed);
        }
        if !s.protocol.sends() {
            return Err(SocketError::Unsupported);
        }
        if payload.len() > shared.config.max_payload {
            return Err(SocketError::TooLarge);
        }
        let l = s.links.get_mut(&link).ok_or(SocketError::UnknownLink)?;
        if !l.carries_data() {
            return Err(SocketError::UnknownLink);
        }
        let fragment = shared.config.max_fragment;
        let mut sink = Sink { tag: &s.id.tag, shared };
        let used = l.send_data(payload, fragment, &mut sink);
        if used == 0 {
            return Err(SocketError::WouldBlock);
        }
        shared.credit(key, link, -i64::from(used));
        Ok(())
    }

    /// Sends a control message of the socket's protocol on a link (no credit needed).
    pub fn send_control(
        &mut self,
        key: SocketKey,
        link: LinkIncarnation,
        kind: u8,
        body: &[u8],
    ) -> Result<(), SocketError> {
        if kind < message::FIRST_CUSTOM_KIND {
            return Err(SocketError::ReservedKind);
        }
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        let l = s.links.get_mut(&link).ok_or(SocketError::UnknownLink)?;
        let mut sink = Sink { tag: &s.id.tag, shared };
        if l.send_control(kind, body, &mut sink) { Ok(()) } else { Err(SocketError::UnknownLink) }
    }

    /// The link the socket's protocol takes the next message from: [`SocketError::NoLinks`]
    /// when the socket has no link (end of stream once it had some), `WouldBlock` when none
    /// has a message.
    fn route_recv(&mut self, key: SocketKey) -> Result<LinkIncarnation, SocketError> {
        let (s, _) = self.parts(key).ok_or(SocketError::Closed)?;
        if !s.protocol.receives() {
            return Err(SocketError::Unsupported);
        }
        s.protocol.route_recv(&LinkSet::new(&s.links)).ok_or(if s.links.is_empty() {
            SocketError::NoLinks
        } else {
            SocketError::WouldBlock
        })
    }

    /// Takes the next message the socket's protocol picks. Never blocks:
    /// [`SocketError::WouldBlock`] when no message is ready, [`SocketError::NoLinks`] when
    /// the socket has no link (end of stream once it had some).
    pub fn recv(&mut self, key: SocketKey) -> Result<Received, SocketError> {
        let inc = self.route_recv(key)?;
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        let link = s.links.get_mut(&inc).ok_or(SocketError::WouldBlock)?;
        let peer = link.peer_id().clone();
        let mut sink = Sink { tag: &s.id.tag, shared };
        let payload = link.take(&mut sink).ok_or(SocketError::WouldBlock)?;
        if !shared.is_quiet() {
            self.after(key);
        }
        Ok(Received { payload, link: inc, peer })
    }

    /// Like [`SocketLayer::recv`], copying the payload into `buf` (the message stays queued
    /// if `buf` is too small). Returns its length and link.
    pub fn recv_into(
        &mut self,
        key: SocketKey,
        buf: &mut [u8],
    ) -> Result<(usize, LinkIncarnation), SocketError> {
        let inc = self.route_recv(key)?;
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        let link = s.links.get_mut(&inc).ok_or(SocketError::WouldBlock)?;
        let needed = link.peek_message().ok_or(SocketError::WouldBlock)?.len();
        let dst = buf.get_mut(..needed).ok_or(SocketError::BufferTooSmall { needed })?;
        let mut sink = Sink { tag: &s.id.tag, shared };
        let payload = link.take(&mut sink).ok_or(SocketError::WouldBlock)?;
        dst.copy_from_slice(&payload);
        shared.out.pool.give(payload);
        if !shared.is_quiet() {
            self.after(key);
        }
        Ok((needed, inc))
    }

    /// Gives a payload buffer back for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.shared.out.pool.give(buf);
    }

    // ----- readiness and events -----

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

    // ----- transport side -----

    /// Handles a socket message that arrived from node `from`.
    pub fn handle_message(&mut self, now: Instant, from: &NodeId, msg: &Message<'_>) {
        self.shared.stats.messages_in += 1;
        let data = matches!(msg.body, Body::Data { .. } | Body::DataMore { .. });
        if data && let Some(route) = self.shared.route.as_ref().filter(|r| r.matches(from, msg)) {
            let (key, link) = (route.key, route.link);
            if let Some((s, shared)) = self.parts(key) {
                s.handle_traffic(key, Some(link), msg.link, &msg.body, shared);
                if shared.is_quiet() {
                    return;
                }
            }
            self.after(key);
            return;
        }
        let (Ok(dst), Ok(src)) = (TagId::new(msg.dst_tag), TagId::new(msg.src_tag)) else {
            self.shared.stats.malformed += 1;
            return;
        };
        let Some(&key) = self.by_tag.get(&dst) else {
            self.reply_not_found(from, msg);
            return;
        };
        let peer = SocketId::new(from.clone(), src);
        if let Some((s, shared)) = self.parts(key) {
            if data && let Some(&link) = s.by_peer.get(&peer) {
                shared.route = RouteCache::new(from, msg, key, link);
            }
            s.handle(now, key, peer, msg, shared);
        }
        self.after(key);
    }

    /// Decodes a transport payload and handles it.
    pub fn handle_payload(
        &mut self,
        now: Instant,
        from: &NodeId,
        bytes: &[u8],
    ) -> Result<(), DecodeError> {
        // The DATA of the last stream seen: its header is the cached prefix, so neither tag
        // needs decoding (nor UTF-8 checking) again.
        if let Some(route) = &self.shared.route
            && let Some(rest) = route.tail(from, bytes)
            && let Some((seq, payload)) = message::decode_data_tail(rest)
        {
            self.handle_routed(&Body::Data { seq, payload });
            return Ok(());
        }
        // A fragment of that stream (its kind differs in one bit).
        if let Some(route) = &self.shared.route
            && let Some(body) = route.fragment(from, bytes)
        {
            self.handle_routed(&body);
            return Ok(());
        }
        match message::decode(bytes) {
            Ok(msg) => {
                self.handle_message(now, from, &msg);
                Ok(())
            }
            Err(e) => {
                self.shared.stats.malformed += 1;
                Err(e)
            }
        }
    }

    /// Handles DATA or DATA_MORE of the cached route ([`Shared::route`], which must be set).
    #[inline(always)]
    fn handle_routed(&mut self, body: &Body<'_>) {
        let Some(route) = &self.shared.route else { return };
        let (key, link, their_link) = (route.key, route.link, route.their_link);
        self.shared.stats.messages_in += 1;
        if let Some((s, shared)) = self.parts(key) {
            s.handle_traffic(key, Some(link), their_link, body, shared);
            if shared.is_quiet() {
                return;
            }
        }
        self.after(key);
    }

    /// Answers a LINK for a missing socket with ERROR socket-not-found, as if that socket
    /// replied (echoing the requester's incarnation); drops anything else.
    fn reply_not_found(&mut self, from: &NodeId, msg: &Message<'_>) {
        self.shared.stats.not_found += 1;
        if let Body::Link { .. } = msg.body {
            let reply = Message {
                src_tag: msg.dst_tag,
                dst_tag: msg.src_tag,
                link: msg.link,
                body: Body::Error { code: ErrorCode::SocketNotFound, detail: b"" },
            };
            if self.shared.out.push(from, &reply) {
                self.shared.stats.messages_out += 1;
            }
        }
    }

    /// Runs what is due at `now`: link retries and close lingers.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, key, inc)) = self.shared.timers.first() {
            if at > now {
                break;
            }
            self.shared.timers.pop_first();
            if inc == LINGER {
                if self.socket(key).is_some_and(|s| s.closing) {
                    self.abort_links(key);
                }
                continue;
            }
            let Some((s, shared)) = self.parts(key) else { continue };
            if let Some(link) = s.links.get_mut(&inc) {
                let me = local_meta(&*s.protocol);
                let mut sink = Sink { tag: &s.id.tag, shared };
                link.on_timer(now, &s.options.retry, &me, &mut sink);
            }
            self.after(key);
        }
    }

    /// When [`SocketLayer::handle_timeout`] should run next (it may find nothing due).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shared.timers.first().map(|&(at, _, _)| at)
    }

    /// The next encoded message for the transport. Give its buffer back with
    /// [`SocketLayer::recycle`] once submitted.
    pub fn poll_outgoing(&mut self) -> Option<Outgoing> {
        self.shared.out.queue.pop_front()
    }

    /// The next message for the transport, left queued (submit it, then
    /// [`SocketLayer::pop_outgoing`]; if the transport is full, try again later).
    pub fn peek_outgoing(&self) -> Option<(&NodeId, &[u8])> {
        self.shared.out.queue.front().map(|o| (&o.to, o.bytes.as_slice()))
    }

    /// Drops the message [`SocketLayer::peek_outgoing`] showed (reusing its buffer).
    pub fn pop_outgoing(&mut self) -> bool {
        match self.shared.out.queue.pop_front() {
            Some(o) => {
                self.shared.out.pool.give(o.bytes);
                true
            }
            None => false,
        }
    }

    /// Messages waiting for the transport.
    pub fn outgoing_len(&self) -> usize {
        self.shared.out.queue.len()
    }
}
