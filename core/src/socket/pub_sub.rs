//! Synchronized publish-subscribe (thesis §5.4): [`Pub`], [`Sub`], and their extended forms
//! for brokers, XPub and XSub ([`Pub::xpub`], [`Sub::xsub`]).
//!
//! # Messages and topics
//!
//! Every message is a [multipart](super::multipart) message whose first frame is its *topic*. A
//! subscription to a prefix `P` matches every topic that starts with `P` (the empty prefix
//! matches everything). Filtering happens at the publisher: it keeps its subscribers'
//! prefixes in a trie ([`Topics`]) and sends each message only to the links subscribed to
//! a prefix of its topic. A message published when no link matches goes to nobody.
//!
//! # Synchronized publishing
//!
//! Exactly-once delivery forbids dropping a message for a slow subscriber, and queueing
//! without bound for it would exhaust the publisher's memory. So a publish reserves a
//! credit on *every* matching subscriber and is sent to all of them at once, or, while any
//! of them lacks a credit, to none ([`Route::Selected`]; the socket runs under one lock,
//! so "every matching link can send now" is the reservation). The slowest subscriber sets
//! the pace and nothing is dropped. A publish that times out was sent to nobody.
//!
//! Ordering, as in thesis §5.4.1: a message reaches each subscriber at most once and in
//! the order it was published on the link it takes, so with **one publishing thread**
//! every subscriber sees the messages in the global publishing order; with **one thread
//! per topic**, each topic's messages stay in order; with **several threads publishing one
//! topic** there is no order among them.
//!
//! The publisher is writable ([`crate::poll::Events::OUT`]) when some publish may go
//! through: no established link holds a subscription, or one that does has a credit
//! (which links a publish needs depends on its topic). A runtime wakes every blocked
//! publisher whenever a link gains credits ([`Protocol::send_depends_on_message`]), so a
//! publish blocked on a subscriber without credit goes as soon as that subscriber's
//! credits come back (or its link closes, which removes its subscriptions and its part in
//! the pending publish), whatever the other subscribers do; it sleeps meanwhile.
//!
//! # Subscriptions, in order over an unordered transport
//!
//! A subscriber sends SUBSCRIBE and UNSUBSCRIBE as control messages (credit-free), which
//! the transport delivers exactly once but in any order, while subscribe and unsubscribe
//! of one topic do not commute. Each link therefore carries them as a tiny ordered channel:
//!
//! * the subscriber numbers them per link (from 0 for each link incarnation) and has at
//!   most [`SUBSCRIPTION_WINDOW`] of them unacknowledged per link, queueing the rest;
//! * the publisher applies them strictly in sequence, holding the early ones (at most the
//!   window: one past it is a protocol violation and is ignored), and acknowledges with
//!   the next sequence it expects, which opens the window again.
//!
//! A subscriber counts its subscriptions per topic and tells its publishers only the
//! changes (subscribe on 0 → 1, unsubscribe on 1 → 0). When a link is established (again),
//! the subscriber replays its topics on it; when a link closes, the publisher drops the
//! link's subscriptions.
//!
//! # Bounds
//!
//! A publisher accepts at most [`MAX_SUBSCRIPTIONS`] subscriptions per link
//! ([`Pub::with_max_subscriptions`]); the excess ones are refused: not applied, and
//! reported to the subscriber (a control message), whose next receive fails with
//! [`Refusal::Other`]([`SUBSCRIPTION_REFUSED`]); its other publishers keep the subscription.
//! A subscriber refuses locally, at once, more than the same number of topics, and topics
//! longer than [`MAX_TOPIC`].
//!
//! An XPub queues the subscription changes it applied for the application (at most
//! [`XPUB_QUEUE`]); when the queue is full it stops applying subscription messages (and so
//! acknowledging them: its subscribers' windows close) until the application takes some.
//! Nothing is dropped. The unsubscriptions of a link that closes are always queued, so the
//! queue may exceed its bound by one link's subscriptions.
//!
//! # Commands
//!
//! The application reaches these protocols through [`super::SocketLayer::command`]:
//! [`subscription_command`] (sub, xsub) and [`CMD_SUBSCRIBERS`] (pub, xpub: the number of
//! established links holding a subscription and of their subscriptions, two big-endian
//! `u32`s). An XPub's
//! subscription messages come out of [`super::SocketLayer::take_generated`] in ZeroMQ's
//! form: `01` then the topic to subscribe, `00` then the topic to unsubscribe.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use super::multipart::Multipart;
use super::protocol::{
    Control, LinkSet, LinkView, Protocol, ProtocolId, Refusal, RoundRobin, Route,
};
use super::topics::Topics;
use crate::id::LinkIncarnation;

/// Protocol id of [`Pub`].
pub const PUB: ProtocolId = 7;
/// Protocol id of [`Sub`].
pub const SUB: ProtocolId = 8;
/// Protocol id of an XPub ([`Pub::xpub`]).
pub const XPUB: ProtocolId = 9;
/// Protocol id of an XSub ([`Sub::xsub`]).
pub const XSUB: ProtocolId = 10;

/// Subscriptions a publisher accepts per link by default.
pub const MAX_SUBSCRIPTIONS: usize = 1024;
/// The longest topic a subscription may name.
pub const MAX_TOPIC: usize = 255;
/// Subscription messages a subscriber may have unacknowledged per link.
pub const SUBSCRIPTION_WINDOW: u32 = 32;
/// Subscription changes an XPub queues for its application before it stops applying more.
pub const XPUB_QUEUE: usize = 1024;
/// The reason of the refusal a subscriber reports when a publisher refused a subscription.
pub const SUBSCRIPTION_REFUSED: &str =
    "a publisher refused a subscription: the link holds its limit of subscriptions";

/// Command byte: unsubscribe from the topic that follows (also an XPub's message).
pub const CMD_UNSUBSCRIBE: u8 = 0;
/// Command byte: subscribe to the topic that follows (also an XPub's message).
pub const CMD_SUBSCRIBE: u8 = 1;
/// Command byte: how many established links hold a subscription, and how many
/// subscriptions they hold in all (pub, xpub; two big-endian `u32`s).
pub const CMD_SUBSCRIBERS: u8 = 2;

/// Control kind: SUBSCRIBE, body = sequence (u32, big endian) + topic.
const KIND_SUBSCRIBE: u8 = 0x40;
/// Control kind: UNSUBSCRIBE, body = sequence (u32, big endian) + topic.
const KIND_UNSUBSCRIBE: u8 = 0x41;
/// Control kind: the next sequence the publisher expects (u32, big endian).
const KIND_ACK: u8 = 0x42;
/// Control kind: the subscription to the topic (the body) was refused.
const KIND_REFUSED: u8 = 0x43;

const TOO_MANY: Refusal = Refusal::Other("too many subscriptions on this socket");
const TOPIC_TOO_LONG: Refusal = Refusal::Other("a topic has at most 255 bytes");
const BAD_COMMAND: Refusal = Refusal::Other("unknown command for this socket type");

/// Appends the command to subscribe to (or unsubscribe from) `topic` to `out`.
pub fn subscription_command(subscribe: bool, topic: &[u8], out: &mut Vec<u8>) {
    out.push(if subscribe { CMD_SUBSCRIBE } else { CMD_UNSUBSCRIBE });
    out.extend_from_slice(topic);
}

fn read_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}

/// What a publisher knows of one subscriber link.
#[derive(Debug, Default)]
struct Peer {
    /// Its subscriptions.
    topics: BTreeSet<Vec<u8>>,
    /// The next subscription message to apply.
    expected: u32,
    /// Subscription messages received ahead of `expected` (or held back by a full XPub
    /// queue): at most [`SUBSCRIPTION_WINDOW`].
    early: BTreeMap<u32, (bool, Vec<u8>)>,
}

/// The publishing end. See the [module docs](self).
#[derive(Debug)]
pub struct Pub {
    x: bool,
    max_subscriptions: usize,
    trie: Topics<LinkIncarnation>,
    peers: BTreeMap<LinkIncarnation, Peer>,
    /// The links of the last publish (sorted, deduplicated).
    selected: Vec<LinkIncarnation>,
    /// The topic `selected` was computed for, while `cached` (no subscription changed).
    cached_topic: Vec<u8>,
    cached: bool,
    /// XPub: subscription changes for the application.
    generated: VecDeque<Vec<u8>>,
}

impl Default for Pub {
    fn default() -> Self {
        Self::new()
    }
}

impl Pub {
    /// A publisher.
    pub fn new() -> Self {
        Self {
            x: false,
            max_subscriptions: MAX_SUBSCRIPTIONS,
            trie: Topics::new(),
            peers: BTreeMap::new(),
            selected: Vec::new(),
            cached_topic: Vec::new(),
            cached: false,
            generated: VecDeque::new(),
        }
    }

    /// An XPub: a publisher that also hands the subscription changes it applies to the
    /// application ([`super::SocketLayer::take_generated`]).
    pub fn xpub() -> Self {
        Self { x: true, ..Self::new() }
    }

    /// Accepts at most `max` subscriptions per link (default [`MAX_SUBSCRIPTIONS`]).
    pub fn with_max_subscriptions(mut self, max: usize) -> Self {
        self.max_subscriptions = max;
        self
    }

    /// How many links hold at least one subscription (established or not).
    pub fn subscribed_links(&self) -> usize {
        self.peers.values().filter(|p| !p.topics.is_empty()).count()
    }

    /// The subscriptions of `link`, sorted.
    pub fn subscriptions(&self, link: LinkIncarnation) -> impl Iterator<Item = &[u8]> {
        self.peers.get(&link).into_iter().flat_map(|p| p.topics.iter().map(Vec::as_slice))
    }

    fn queue_full(&self) -> bool {
        self.x && self.generated.len() >= XPUB_QUEUE
    }

    fn generate(&mut self, subscribe: bool, topic: &[u8]) {
        if self.x {
            let mut m = Vec::with_capacity(topic.len() + 1);
            subscription_command(subscribe, topic, &mut m);
            self.generated.push_back(m);
        }
    }

    /// Applies `link`'s subscription messages that are next in sequence; acknowledges.
    fn apply_ready(&mut self, link: LinkIncarnation, control: &mut Control) {
        let mut applied = false;
        loop {
            if self.queue_full() {
                break;
            }
            let Some(peer) = self.peers.get_mut(&link) else { return };
            let Some(entry) = peer.early.first_entry() else { break };
            if *entry.key() != peer.expected {
                break;
            }
            let (subscribe, topic) = entry.remove();
            peer.expected = peer.expected.wrapping_add(1);
            applied = true;
            if subscribe {
                if peer.topics.contains(&topic) {
                    continue;
                }
                if peer.topics.len() >= self.max_subscriptions {
                    let _ = control.send(link, KIND_REFUSED, &topic);
                    continue;
                }
                self.trie.insert(&topic, link);
                self.cached = false;
                self.generate(true, &topic);
                if let Some(peer) = self.peers.get_mut(&link) {
                    peer.topics.insert(topic);
                }
            } else if peer.topics.remove(&topic) {
                self.trie.remove(&topic, &link);
                self.cached = false;
                self.generate(false, &topic);
            }
        }
        if applied && let Some(peer) = self.peers.get(&link) {
            let _ = control.send(link, KIND_ACK, &peer.expected.to_be_bytes());
        }
    }
}

impl Protocol for Pub {
    fn id(&self) -> ProtocolId {
        if self.x { XPUB } else { PUB }
    }

    fn name(&self) -> &str {
        if self.x { "xpub" } else { "pub" }
    }

    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == SUB || peer == XSUB
    }

    fn sends(&self) -> bool {
        true
    }

    fn receives(&self) -> bool {
        false
    }

    fn route_send(&mut self, _links: &LinkSet<'_>, payload: &[u8]) -> Route {
        let Ok(m) = Multipart::parse(payload) else { return Route::Refused(Refusal::Malformed) };
        let topic = m.first_frame();
        if !(self.cached && self.cached_topic == topic) {
            self.selected.clear();
            let selected = &mut self.selected;
            self.trie.matches(topic, |l| selected.push(*l));
            if self.selected.len() > 1 {
                self.selected.sort_unstable();
                self.selected.dedup();
            }
            self.cached_topic.clear();
            self.cached_topic.extend_from_slice(topic);
            self.cached = true;
        }
        Route::Selected
    }

    fn selected(&self) -> &[LinkIncarnation] {
        &self.selected
    }

    fn route_recv(&mut self, _links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        None
    }

    fn readable(&self, _links: &LinkSet<'_>) -> bool {
        !self.generated.is_empty()
    }

    /// Some publish may go through: no established link holds a subscription (a publish
    /// then reaches nobody), or one of those that do has a credit. Which links a publish
    /// needs depends on its topic ([`Protocol::send_depends_on_message`]).
    fn writable(&self, links: &LinkSet<'_>) -> bool {
        let mut subscribed = self
            .peers
            .iter()
            .filter(|(_, p)| !p.topics.is_empty())
            .filter_map(|(&l, _)| links.get(l).filter(|v| v.is_established()))
            .peekable();
        subscribed.peek().is_none() || subscribed.any(|v| v.can_send())
    }

    fn send_depends_on_message(&self) -> bool {
        true
    }

    fn on_link_established(&mut self, link: LinkView<'_>, _control: &mut Control) {
        self.peers.entry(link.key()).or_default();
    }

    fn on_link_closed(&mut self, link: LinkIncarnation) {
        let Some(peer) = self.peers.remove(&link) else { return };
        for topic in &peer.topics {
            self.trie.remove(topic, &link);
            // An XPub's broker must learn it too (beyond the queue's bound: not deferrable).
            self.generate(false, topic);
        }
        if !peer.topics.is_empty() {
            self.cached = false;
        }
    }

    fn on_control(&mut self, link: LinkView<'_>, kind: u8, body: &[u8], control: &mut Control) {
        let subscribe = match kind {
            KIND_SUBSCRIBE => true,
            KIND_UNSUBSCRIBE => false,
            _ => return,
        };
        let Some((seq, topic)) = read_u32(body) else { return };
        let key = link.key();
        let peer = self.peers.entry(key).or_default();
        let ahead = seq.wrapping_sub(peer.expected);
        // Past the window (or a replay of an applied one): a peer breaking the protocol.
        if ahead >= SUBSCRIPTION_WINDOW || topic.len() > MAX_TOPIC {
            return;
        }
        peer.early.insert(seq, (subscribe, Vec::from(topic)));
        self.apply_ready(key, control);
    }

    fn on_command(
        &mut self,
        links: &LinkSet<'_>,
        command: &[u8],
        reply: &mut Vec<u8>,
        _control: &mut Control,
    ) -> Result<(), Refusal> {
        match command {
            [CMD_SUBSCRIBERS] => {
                let (mut n, mut topics) = (0u32, 0u32);
                for (l, p) in &self.peers {
                    if !p.topics.is_empty() && links.get(*l).is_some_and(|v| v.is_established()) {
                        n += 1;
                        topics += p.topics.len() as u32;
                    }
                }
                reply.extend_from_slice(&n.to_be_bytes());
                reply.extend_from_slice(&topics.to_be_bytes());
                Ok(())
            }
            _ => Err(BAD_COMMAND),
        }
    }

    fn take_generated(&mut self, out: &mut Vec<u8>, control: &mut Control) -> bool {
        let Some(mut m) = self.generated.pop_front() else { return false };
        core::mem::swap(out, &mut m);
        if self.generated.len() + 1 == XPUB_QUEUE {
            // Room again: apply what the full queue held back.
            let held: Vec<LinkIncarnation> =
                self.peers.iter().filter(|(_, p)| !p.early.is_empty()).map(|(l, _)| *l).collect();
            for link in held {
                self.apply_ready(link, control);
            }
        }
        true
    }
}

/// What a subscriber knows of one publisher link.
#[derive(Debug, Default)]
struct Upstream {
    /// The sequence of the next subscription message sent.
    next_seq: u32,
    /// The next one the publisher expects (all before it applied).
    acked: u32,
    /// Subscription messages waiting for the window.
    queue: VecDeque<(bool, Vec<u8>)>,
}

/// The subscribing end. See the [module docs](self).
#[derive(Debug, Default)]
pub struct Sub {
    x: bool,
    /// Topics and how many times each is subscribed.
    topics: BTreeMap<Vec<u8>, u32>,
    upstream: BTreeMap<LinkIncarnation, Upstream>,
    next: RoundRobin,
    /// Refusals from publishers not yet reported.
    refused: u32,
    /// Reused for control message bodies.
    body: Vec<u8>,
}

impl Sub {
    /// A subscriber, subscribed to nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// An XSub: a subscriber whose application sends subscription messages
    /// (the same commands; a broker forwards an XPub's messages to it).
    pub fn xsub() -> Self {
        Self { x: true, ..Self::default() }
    }

    /// The subscribed topics, sorted.
    pub fn topics(&self) -> impl Iterator<Item = &[u8]> {
        self.topics.keys().map(Vec::as_slice)
    }

    /// Subscription messages sent on `link` and not yet applied by its publisher, plus
    /// those waiting for the window.
    pub fn unapplied(&self, link: LinkIncarnation) -> usize {
        self.upstream
            .get(&link)
            .map_or(0, |u| u.next_seq.wrapping_sub(u.acked) as usize + u.queue.len())
    }

    /// Sends what the window allows on `link`.
    fn flush(&mut self, link: LinkIncarnation, control: &mut Control) {
        let Some(up) = self.upstream.get_mut(&link) else { return };
        while up.next_seq.wrapping_sub(up.acked) < SUBSCRIPTION_WINDOW {
            let Some((subscribe, topic)) = up.queue.pop_front() else { break };
            self.body.clear();
            self.body.extend_from_slice(&up.next_seq.to_be_bytes());
            self.body.extend_from_slice(&topic);
            let kind = if subscribe { KIND_SUBSCRIBE } else { KIND_UNSUBSCRIBE };
            let _ = control.send(link, kind, &self.body);
            up.next_seq = up.next_seq.wrapping_add(1);
        }
    }

    fn tell_all(&mut self, subscribe: bool, topic: &[u8], control: &mut Control) {
        let links: Vec<LinkIncarnation> = self.upstream.keys().copied().collect();
        for link in links {
            if let Some(up) = self.upstream.get_mut(&link) {
                up.queue.push_back((subscribe, Vec::from(topic)));
            }
            self.flush(link, control);
        }
    }
}

impl Protocol for Sub {
    fn id(&self) -> ProtocolId {
        if self.x { XSUB } else { SUB }
    }

    fn name(&self) -> &str {
        if self.x { "xsub" } else { "sub" }
    }

    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == PUB || peer == XPUB
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

    fn check_recv(&mut self) -> Result<(), Refusal> {
        if self.refused > 0 {
            self.refused -= 1;
            return Err(Refusal::Other(SUBSCRIPTION_REFUSED));
        }
        Ok(())
    }

    fn readable(&self, links: &LinkSet<'_>) -> bool {
        self.refused > 0 || links.iter().any(|l| l.has_message())
    }

    fn on_link_established(&mut self, link: LinkView<'_>, control: &mut Control) {
        let key = link.key();
        let queue = self.topics.keys().map(|t| (true, t.clone())).collect();
        self.upstream.insert(key, Upstream { next_seq: 0, acked: 0, queue });
        self.flush(key, control);
    }

    fn on_link_closed(&mut self, link: LinkIncarnation) {
        self.upstream.remove(&link);
    }

    fn on_control(&mut self, link: LinkView<'_>, kind: u8, body: &[u8], control: &mut Control) {
        let key = link.key();
        match kind {
            KIND_ACK => {
                let Some((next, _)) = read_u32(body) else { return };
                let Some(up) = self.upstream.get_mut(&key) else { return };
                // Acknowledgements may arrive out of order: keep the furthest (never past
                // what was sent).
                let sent = up.next_seq.wrapping_sub(up.acked);
                let acked = next.wrapping_sub(up.acked);
                if acked <= sent {
                    up.acked = next;
                }
                self.flush(key, control);
            }
            KIND_REFUSED => self.refused = self.refused.saturating_add(1),
            _ => {}
        }
    }

    fn on_command(
        &mut self,
        _links: &LinkSet<'_>,
        command: &[u8],
        _reply: &mut Vec<u8>,
        control: &mut Control,
    ) -> Result<(), Refusal> {
        let Some((&op, topic)) = command.split_first() else { return Err(BAD_COMMAND) };
        match op {
            CMD_SUBSCRIBE => {
                if topic.len() > MAX_TOPIC {
                    return Err(TOPIC_TOO_LONG);
                }
                if let Some(n) = self.topics.get_mut(topic) {
                    *n += 1;
                    return Ok(());
                }
                if self.topics.len() >= MAX_SUBSCRIPTIONS {
                    return Err(TOO_MANY);
                }
                self.topics.insert(Vec::from(topic), 1);
                self.tell_all(true, topic, control);
                Ok(())
            }
            CMD_UNSUBSCRIBE => {
                let Some(n) = self.topics.get_mut(topic) else { return Ok(()) };
                *n -= 1;
                if *n == 0 {
                    self.topics.remove(topic);
                    self.tell_all(false, topic, control);
                }
                Ok(())
            }
            _ => Err(BAD_COMMAND),
        }
    }
}
