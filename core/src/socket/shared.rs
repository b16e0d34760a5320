//! What the links of every socket share: the outbox, events, readiness queue, timers and
//! counters; and the [`LinkSink`] through which a link writes into them.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;

use crate::id::{LinkIncarnation, SocketId, TagId};
use crate::link::{LinkEvent, LinkSink, LocalMeta};
use crate::time::Instant;
use crate::wire::message::{Body, Message};

use super::outbox::Outbox;
use super::route::RouteCaches;
use super::{Control, LayerConfig, Protocol, SocketEvent, SocketKey};

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

/// What the links of every socket share: the outbox, events, timers and counters.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: LayerConfig,
    /// Where the last DATA messages of a few streams went: the next one from the same peer
    /// socket to the same socket skips parsing the tags and three map lookups. Cleared
    /// whenever a socket or a link to a peer socket comes or goes.
    pub(super) routes: RouteCaches,
    pub(super) next_incarnation: u32,
    pub(super) out: Outbox,
    pub(super) link_events: Vec<(LinkIncarnation, LinkEvent)>,
    pub(super) events: VecDeque<SocketEvent>,
    pub(super) ready: VecDeque<SocketKey>,
    pub(super) timers: BTreeSet<(Instant, SocketKey, LinkIncarnation)>,
    pub(super) control: Control,
    pub(super) stats: LayerStats,
}

impl Shared {
    pub(super) fn next_incarnation(&mut self) -> LinkIncarnation {
        let inc = LinkIncarnation(self.next_incarnation);
        self.next_incarnation = self.next_incarnation.checked_add(1).unwrap_or(1);
        inc
    }

    /// Nothing for [`SocketLayer::after`] to do: no link reported an event and no protocol
    /// control message waits. (Only a link event can remove a link, so a closing socket
    /// cannot have become link-free either.)
    #[inline]
    pub(super) fn is_quiet(&self) -> bool {
        self.link_events.is_empty() && self.control.is_empty()
    }

    pub(super) fn emit(&mut self, event: SocketEvent) {
        if self.events.len() < self.config.max_events {
            self.events.push_back(event);
        } else {
            self.stats.events_dropped += 1;
        }
    }

    #[inline]
    pub(super) fn credit(&mut self, socket: SocketKey, link: LinkIncarnation, delta: i64) {
        if self.config.credit_events && delta != 0 {
            self.emit(SocketEvent::Credits { socket, link, delta });
        }
    }
}

/// A [`LinkSink`] writing into the layer's outbox for one socket.
pub(super) struct Sink<'a> {
    pub(super) tag: &'a TagId,
    pub(super) shared: &'a mut Shared,
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

pub(super) fn local_meta(protocol: &dyn Protocol) -> LocalMeta<'_> {
    LocalMeta { protocol: protocol.id(), metadata: protocol.metadata() }
}
