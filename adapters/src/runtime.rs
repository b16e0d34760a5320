//! What every thread of a node shares, and how it stays consistent.
//!
//! One lock guards the sans-I/O exactly-once node, the socket layer on top of it, and the
//! little the std runtime adds: the socket handles' wake-up sources, their event queues,
//! and the raw datagrams waiting for [`crate::Node::recv`] (socket messages the transport
//! could not take yet wait in the layer: [`SocketLayer::hold_outgoing`]). Whoever changes something under the lock (an application thread
//! in a socket call, or the reader thread after a batch of datagrams) calls
//! [`Shared::settle`] before unlocking: deliveries go to the socket layer, the layer's
//! messages go to the transport, link events reach the sockets' event queues, and every
//! socket whose readiness changed wakes its waiters. The caller then wakes the reader only
//! if something new must be sent or a timer moved earlier.
//!
//! # Payload kinds
//!
//! Every transport payload is either a socket message ([`a3m_core::wire::message`], whose
//! first byte is a message kind, never 0) or a raw datagram of the node-to-node service,
//! sent with a leading [`RAW_DATAGRAM`] byte.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use a3m_core::id::{LinkIncarnation, NodeId, SocketId};
use a3m_core::link::{LinkPhase, Refusal};
use a3m_core::node::{Node as CoreNode, NodeError, Transmit};
use a3m_core::poll::{Events, PollId, PollSource, Pollable};
use a3m_core::socket::{Offer, SocketEvent, SocketKey, SocketLayer};
use a3m_core::time::Instant;
use a3m_core::wait::Waiters;
use a3m_platform::reactor::{Clock, ReactorWaker};
use a3m_platform::udp::{UdpConfig, UdpSocket};
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::key_hash::KeyMap;

use crate::reports::{LinkEvent, LinkFailure, SocketCloseReport};

use a3m_core::wire::message;
/// First byte of a raw datagram of the node-to-node service (defined by the wire format).
pub(crate) use a3m_core::wire::message::RAW_PAYLOAD as RAW_DATAGRAM;

/// The most a socket message header adds to a DATA payload: kind, two tags of up to 32
/// bytes with their lengths, the link incarnation and the sequence number as varints.
pub(crate) const MESSAGE_OVERHEAD: usize = 1 + 2 * (1 + 32) + 5 + 10;

/// Threads (and pollers) that may wait on one socket at the same time.
pub(crate) const SOCKET_WAITERS: usize = 64;

/// Link events kept per socket until the application takes them; older ones are dropped.
const MAX_SOCKET_EVENTS: usize = 256;

/// Refusals kept per socket until `wait_for_link` reports them.
const MAX_REFUSALS: usize = 16;

/// Wait-queue bit: the socket's links changed (one established, refused or closed, or the
/// socket became link-free). Only blocking calls wait for it; pollers never see it.
pub(crate) const LINKS_CHANGED: u32 = 1 << 8;

/// Wait-queue bit: a link event was queued for [`crate::Socket::next_event`].
pub(crate) const EVENT_QUEUED: u32 = 1 << 9;

/// Most messages a receive takes ahead from a socket's links ([`State::take_ahead`]).
pub(crate) const RECV_AHEAD: usize = 32;

/// Rounds of [`State::settle`] for messages a node sends itself.
const SETTLE_ROUNDS: usize = 8;

/// The readiness a socket publishes to pollers and waiters: ERR while it is link-free with
/// notify-if-none set (every blocking call fails with `NoLinks` then).
const READINESS: Events = Events::IN.union(Events::OUT).union(Events::ERR);

thread_local! {
    /// The buffer an application thread writes a datagram into ([`Shared::settle_and_transmit`]).
    static INLINE_DATAGRAM: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Gives every socket of the process its own poll id.
static NEXT_POLL_ID: AtomicU64 = AtomicU64::new(1);

/// Messages a receive took from the socket's links beyond the one it returned, for the
/// next receives to take without the node lock (see [`State::take_ahead`]).
#[derive(Debug, Default)]
pub(crate) struct Ahead {
    /// The messages, oldest first, with the socket that sent each.
    pub(crate) queue: VecDeque<(Vec<u8>, SocketId)>,
    /// Buffers of messages taken from `queue`, to give back to the layer's pool.
    pub(crate) spent: Vec<Vec<u8>>,
}

/// The part of a socket that its handle, pollers and the runtime share.
#[derive(Debug)]
pub(crate) struct SocketCell {
    /// The socket in the layer.
    pub(crate) key: SocketKey,
    /// Its global name.
    pub(crate) id: SocketId,
    /// Readiness and the wait queue of everyone blocked on the socket.
    pub(crate) source: PollSource<SOCKET_WAITERS>,
    /// Filled when the socket has left the layer.
    pub(crate) report: Mutex<Option<SocketCloseReport>>,
    /// Messages received ahead. Lock order: the node lock, then this one.
    pub(crate) ahead: Mutex<Ahead>,
    /// Handles of the socket alive ([`crate::Node::socket_by_tag`] makes more); the last one
    /// dropped closes it. Changed under the node lock only.
    pub(crate) handles: AtomicUsize,
    /// Whether a send may go through depends on the message
    /// ([`a3m_core::socket::Protocol::send_depends_on_message`]): then blocked senders are
    /// all woken when the socket may have become writable, not one at a time.
    pub(crate) sends_by_message: bool,
}

impl SocketCell {
    fn new(key: SocketKey, id: SocketId, sends_by_message: bool) -> Self {
        let poll_id = PollId(NEXT_POLL_ID.fetch_add(1, Ordering::Relaxed));
        Self {
            key,
            id,
            source: PollSource::new(poll_id),
            report: Mutex::new(None),
            ahead: Mutex::new(Ahead::default()),
            handles: AtomicUsize::new(1),
            sends_by_message,
        }
    }
}

impl Pollable for SocketCell {
    fn id(&self) -> PollId {
        self.source.id()
    }

    fn events(&self) -> Events {
        self.source.events()
    }

    fn waiters(&self) -> &dyn Waiters {
        self.source.queue()
    }
}

/// The runtime's bookkeeping for one open socket.
#[derive(Debug)]
struct SocketEntry {
    cell: Arc<SocketCell>,
    events: VecDeque<LinkEvent>,
    refusals: VecDeque<(SocketId, Refusal)>,
    /// Set by `close(timeout)`: when the layer drops the links still open.
    linger_deadline: Option<Instant>,
    report: SocketCloseReport,
}

/// Everything behind the node lock.
#[derive(Debug)]
pub(crate) struct State {
    /// The exactly-once transport.
    pub(crate) core: CoreNode,
    /// The sockets.
    pub(crate) layer: SocketLayer,
    sockets: KeyMap<SocketKey, SocketEntry>,
    /// Socket messages dropped because the transport could never take them.
    pub(crate) dropped_outgoing: u64,
    /// Raw datagrams delivered and not yet received, with their sender.
    raw_inbox: VecDeque<(NodeId, Vec<u8>)>,
    raw_limit: usize,
    raw_pool: Vec<Vec<u8>>,
    /// Builds raw datagrams (marker byte + payload).
    pub(crate) raw_out: Vec<u8>,
    /// The UDP address the node is bound to.
    pub(crate) local_addr: SocketAddr,
    /// A socket `rebind` created, for the reader to switch to.
    pub(crate) pending_socket: Option<UdpSocket>,
    /// The socket the reader uses, for application threads that transmit themselves
    /// ([`Shared::settle_and_transmit`]).
    pub(crate) tx_socket: Arc<UdpSocket>,
    /// The node is closed: every call fails with `Closed`.
    pub(crate) closed: bool,
    /// Threads waiting for raw datagrams.
    pub(crate) delivered_waiters: usize,
    /// Threads waiting for acknowledgements or for sockets to close.
    pub(crate) progress_waiters: usize,
    /// The deadline the reader's timer is set to.
    pub(crate) armed_deadline: Option<Instant>,
    /// The precise clock, read for the messages that may start a timer of the socket layer
    /// ([`State::take_deliveries`]).
    clock: Clock,
    /// The node is closing ([`crate::Node::close`] runs).
    pub(crate) closing: bool,
}

/// What [`State::settle`] did that others must hear about.
#[derive(Debug, Default, Clone, Copy)]
struct Settled {
    /// Something new for the transport, or an earlier layer timer: the reader must run.
    flush: bool,
    /// Raw datagrams arrived.
    raw: bool,
    /// A socket left the layer.
    closed_socket: bool,
}

impl State {
    pub(crate) fn new(
        core: CoreNode,
        layer: SocketLayer,
        local_addr: SocketAddr,
        tx_socket: Arc<UdpSocket>,
        clock: Clock,
    ) -> Self {
        let max_payload = core.max_payload();
        let raw_limit = core.config().max_inbox.max(1);
        Self {
            core,
            layer,
            sockets: KeyMap::default(),
            dropped_outgoing: 0,
            raw_inbox: VecDeque::new(),
            raw_limit,
            raw_pool: Vec::new(),
            raw_out: Vec::with_capacity(max_payload),
            local_addr,
            pending_socket: None,
            tx_socket,
            closed: false,
            delivered_waiters: 0,
            progress_waiters: 0,
            armed_deadline: None,
            clock,
            closing: false,
        }
    }

    /// The oldest refusal from `peer` not reported yet.
    pub(crate) fn take_refusal_from(&mut self, key: SocketKey, peer: &SocketId) -> Option<Refusal> {
        let refusals = &mut self.sockets.get_mut(&key)?.refusals;
        let at = refusals.iter().position(|(p, _)| p == peer)?;
        refusals.remove(at).map(|(_, refusal)| refusal)
    }

    /// Another handle of the open socket with this key (see [`SocketCell::handles`]).
    pub(crate) fn socket_cell(&self, key: SocketKey) -> Option<Arc<SocketCell>> {
        if self.layer.is_closing(key) {
            return None;
        }
        let cell = &self.sockets.get(&key)?.cell;
        cell.handles.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(cell))
    }

    // ----- sockets -----

    /// Starts tracking a socket the layer just created.
    pub(crate) fn add_socket(&mut self, key: SocketKey, id: SocketId) -> Arc<SocketCell> {
        let by_message = self.layer.protocol(key).is_some_and(|p| p.send_depends_on_message());
        let cell = Arc::new(SocketCell::new(key, id, by_message));
        let entry = SocketEntry {
            cell: Arc::clone(&cell),
            events: VecDeque::new(),
            refusals: VecDeque::new(),
            linger_deadline: None,
            report: SocketCloseReport::default(),
        };
        self.sockets.insert(key, entry);
        self.refresh(key, false);
        cell
    }

    /// The sockets still in the layer.
    pub(crate) fn socket_keys(&self) -> Vec<SocketKey> {
        self.sockets.keys().copied().collect()
    }

    /// How many sockets are still in the layer (open or closing).
    pub(crate) fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// Notes that `close(timeout)` lets the layer drop what is left at `deadline`.
    pub(crate) fn set_linger_deadline(&mut self, key: SocketKey, deadline: Instant) {
        if let Some(entry) = self.sockets.get_mut(&key) {
            entry.linger_deadline = Some(deadline);
        }
    }

    /// Takes the next queued link event of a socket.
    pub(crate) fn take_event(&mut self, key: SocketKey) -> Option<LinkEvent> {
        self.sockets.get_mut(&key)?.events.pop_front()
    }

    /// Takes every queued link event of a socket.
    pub(crate) fn take_events(&mut self, key: SocketKey) -> Vec<LinkEvent> {
        self.sockets.get_mut(&key).map(|e| e.events.drain(..).collect()).unwrap_or_default()
    }

    /// Takes the oldest refusal not reported yet.
    pub(crate) fn take_refusal(&mut self, key: SocketKey) -> Option<(SocketId, Refusal)> {
        self.sockets.get_mut(&key)?.refusals.pop_front()
    }

    /// Forgets refusals from `peer` (the application links to it again).
    pub(crate) fn forget_refusals(&mut self, key: SocketKey, peer: &SocketId) {
        if let Some(entry) = self.sockets.get_mut(&key) {
            entry.refusals.retain(|(p, _)| p != peer);
        }
    }

    /// The peer of an established link of the socket, if it has one.
    pub(crate) fn established_peer(&self, key: SocketKey) -> Option<SocketId> {
        self.layer.links(key).find_map(|link| {
            let status = self.layer.link_status(key, link)?;
            (status.phase == LinkPhase::Established)
                .then(|| self.layer.link_peer(key, link).cloned())
                .flatten()
        })
    }

    /// Publishes a socket's readiness. With `edge`, events that are still set are raised
    /// again, waking one more exclusive waiter (a message is left after a receive, a credit
    /// after a send, or new data came): waiters are woken one after the other while the
    /// socket stays ready, so no wake-up is lost and none is wasted.
    pub(crate) fn refresh(&self, key: SocketKey, edge: bool) {
        let Some(entry) = self.sockets.get(&key) else { return };
        let mut now = self.layer.readiness(key).intersection(READINESS);
        if !entry.cell.ahead.lock().queue.is_empty() {
            now |= Events::IN;
        } else if !self.layer.has_links(key)
            && self.layer.options(key).is_some_and(|o| o.notify_if_none)
        {
            now |= Events::ERR;
        }
        let source = &entry.cell.source;
        let was = source.events().intersection(READINESS);
        let gone = was.difference(now);
        if !gone.is_empty() {
            source.clear(gone);
        }
        let raise = if edge { now } else { now.difference(was) };
        if !raise.is_empty() {
            source.raise(raise);
        }
    }

    /// For protocols that allow it ([`a3m_core::socket::Protocol::receives_ahead`]), moves up
    /// to [`RECV_AHEAD`] more messages (an eighth of the socket's capacity, none below a
    /// capacity of 64) from the socket's links to its ahead queue, so that the next
    /// receives need not take the node lock; gives the buffers spent meanwhile back to the
    /// layer. The messages moved count as taken: their credits go back to the senders.
    pub(crate) fn take_ahead(&mut self, key: SocketKey) {
        let Some(entry) = self.sockets.get(&key) else { return };
        let cell = Arc::clone(&entry.cell);
        let mut ahead = cell.ahead.lock();
        for buf in ahead.spent.drain(..) {
            self.layer.recycle(buf);
        }
        if self.layer.protocol(key).is_none_or(|p| !p.receives_ahead()) {
            return;
        }
        let capacity = self.layer.options(key).map_or(0, |o| o.capacity as usize);
        let limit = if capacity < 64 { 0 } else { RECV_AHEAD.min(capacity / 8) };
        if self.layer.is_closing(key) {
            return;
        }
        while ahead.queue.len() < limit {
            match self.layer.recv(key) {
                Ok(received) => ahead.queue.push_back((received.payload, received.peer)),
                Err(_) => break,
            }
        }
    }

    /// Records what the layer will drop from a closing socket whose linger ends at `now`:
    /// call before `layer.handle_timeout(now)`.
    pub(crate) fn note_expiring_lingers(&mut self, now: Instant) {
        for (&key, entry) in self.sockets.iter_mut() {
            let Some(deadline) = entry.linger_deadline else { continue };
            if deadline > now {
                continue;
            }
            entry.linger_deadline = None;
            for link in self.layer.links(key) {
                if let Some(status) = self.layer.link_status(key, link)
                    && status.phase != LinkPhase::Closed
                {
                    entry.report.aborted_links += 1;
                    entry.report.dropped_messages += status.queued;
                }
            }
        }
    }

    /// Everything accepted and not yet acknowledged by its receiver, including socket
    /// messages still waiting for the transport.
    pub(crate) fn unacknowledged(&self) -> usize {
        self.core.unacknowledged() + self.layer.outgoing_len()
    }

    /// Whether [`State::unacknowledged`] is at least `limit` (stops counting there).
    pub(crate) fn unacknowledged_reach(&self, limit: usize) -> bool {
        let here = self.layer.outgoing_len();
        here >= limit || self.core.unacknowledged_reach(limit - here)
    }

    // ----- raw datagrams -----

    /// Takes the next raw datagram, copying it into `buf`.
    pub(crate) fn take_raw_into(
        &mut self,
        buf: &mut [u8],
    ) -> Result<Option<(NodeId, usize)>, usize> {
        let Some((_, payload)) = self.raw_inbox.front() else { return Ok(None) };
        let len = payload.len();
        let Some(dst) = buf.get_mut(..len) else { return Err(len) };
        let Some((from, payload)) = self.raw_inbox.pop_front() else { return Ok(None) };
        dst.copy_from_slice(&payload);
        self.recycle_raw(payload);
        Ok(Some((from, len)))
    }

    fn recycle_raw(&mut self, mut buf: Vec<u8>) {
        if self.raw_pool.len() < 1024 {
            buf.clear();
            self.raw_pool.push(buf);
        }
    }

    /// Whether the transport holds deliveries the runtime has not taken (the raw inbox was
    /// full).
    pub(crate) fn deliveries_waiting(&self) -> bool {
        self.core.has_delivery()
    }

    /// Whether the transport holds deliveries that settling would take now.
    pub(crate) fn deliveries_pending(&self) -> bool {
        self.core.has_delivery() && self.raw_inbox.len() < self.raw_limit
    }

    // ----- settling -----

    /// Moves everything between the transport, the socket layer and the socket handles.
    fn settle(&mut self, now: Instant) -> Settled {
        let mut settled = Settled::default();
        // Messages between sockets of this node come straight back as deliveries: go round
        // until none is left (a bounded number of times; the reader does the rest).
        for _ in 0..SETTLE_ROUNDS {
            settled.raw |= self.take_deliveries(now);
            settled.closed_socket |= self.dispatch_events();
            while let Some(key) = self.layer.poll_ready() {
                self.refresh(key, true);
            }
            // Only wake the reader if the transport can send something now: payloads
            // waiting for slots go out when the receiver's grant arrives (the reader is
            // awake for that anyway).
            let submitted = self.retry_held(now) | self.pump(now);
            settled.flush |= submitted && self.core.wants_transmit();
            if !self.deliveries_pending() {
                break;
            }
        }
        settled.flush |= self.deliveries_pending();
        if let Some(at) = self.layer.poll_timeout()
            && self.armed_deadline.is_none_or(|armed| at < armed)
        {
            settled.flush = true;
        }
        settled
    }

    /// Hands the transport's deliveries to the socket layer (socket messages) or the raw
    /// inbox. Returns whether raw datagrams arrived.
    fn take_deliveries(&mut self, now: Instant) -> bool {
        let mut raw = false;
        while self.raw_inbox.len() < self.raw_limit {
            let Some((from, bytes)) = self.core.take_delivery() else { break };
            if let Some((&RAW_DATAGRAM, payload)) = bytes.split_first() {
                let mut buf = self.raw_pool.pop().unwrap_or_default();
                buf.extend_from_slice(payload);
                self.raw_inbox.push_back((from, buf));
                raw = true;
            } else {
                // Link management may start a timer (a link retry, the watch for an answer),
                // due an interval after now: give the layer the precise time for it. The
                // coarse time of application threads lags by a kernel tick or more, and
                // even the reader's reading precedes its batch, so a deadline computed
                // from either could fall early. DATA and FLOW, the bulk, start no timer.
                let at =
                    if message::starts_timers(&bytes) { self.clock.now().max(now) } else { now };
                // A payload that is not a message is counted by the layer.
                let _ = self.layer.handle_payload(at, &from, &bytes);
            }
            self.core.recycle(bytes);
        }
        raw
    }

    /// Gives the layer's messages to the transport. Returns whether any was submitted.
    fn pump(&mut self, now: Instant) -> bool {
        let mut submitted = false;
        while let Some((to, bytes)) = self.layer.peek_outgoing() {
            match self.core.submit(now, to, bytes) {
                Ok(()) => {
                    self.layer.pop_outgoing();
                    submitted = true;
                }
                // The layer keeps it, and later messages for this peer, in order.
                Err(NodeError::QueueFull) => {
                    self.layer.hold_outgoing();
                }
                // Unknown peer or too large: the transport can never take it.
                Err(_) => {
                    self.layer.pop_outgoing();
                    self.dropped_outgoing += 1;
                }
            }
        }
        submitted
    }

    /// Retries messages the transport refused earlier. Returns whether any was submitted.
    fn retry_held(&mut self, now: Instant) -> bool {
        let (core, dropped) = (&mut self.core, &mut self.dropped_outgoing);
        self.layer.retry_held(|to, bytes| match core.submit(now, to, bytes) {
            Ok(()) => Offer::Taken,
            Err(NodeError::QueueFull) => Offer::Full,
            Err(_) => {
                *dropped += 1;
                Offer::Refused
            }
        })
    }

    /// Turns the layer's events into socket events and wake-ups. Returns whether a socket
    /// left the layer.
    fn dispatch_events(&mut self) -> bool {
        let mut closed_socket = false;
        while let Some(event) = self.layer.poll_event() {
            match event {
                SocketEvent::LinkEstablished { socket, link, peer } => {
                    self.apply_capacity(socket, link);
                    self.push_event(socket, LinkEvent::Established { peer });
                }
                SocketEvent::LinkRefused { socket, peer, refusal, .. } => {
                    if let Some(entry) = self.sockets.get_mut(&socket) {
                        if entry.refusals.len() >= MAX_REFUSALS {
                            entry.refusals.pop_front();
                        }
                        entry.refusals.push_back((peer.clone(), refusal.clone()));
                    }
                    let event =
                        LinkEvent::Refused { peer, code: refusal.code, reason: refusal.reason };
                    self.push_event(socket, event);
                }
                SocketEvent::LinkAttemptFailed { socket, peer, attempt, failure, .. } => {
                    let failure =
                        LinkFailure::from_core(failure, &peer.node, self.core.last_refusal());
                    self.push_event(socket, LinkEvent::AttemptFailed { peer, attempt, failure });
                }
                SocketEvent::LinkClosed { socket, peer, established, .. } => {
                    self.push_event(
                        socket,
                        LinkEvent::Closed { peer, was_established: established },
                    );
                }
                SocketEvent::LinkFree { socket } => self.push_event(socket, LinkEvent::LinkFree),
                SocketEvent::Closed { socket } => {
                    if let Some(entry) = self.sockets.remove(&socket) {
                        *entry.cell.report.lock() = Some(entry.report);
                        entry.cell.source.close(false);
                        closed_socket = true;
                    }
                }
                SocketEvent::Credits { .. } => {}
            }
        }
        closed_socket
    }

    /// A link established with the capacity of its creation; the socket's capacity may have
    /// changed since.
    fn apply_capacity(&mut self, socket: SocketKey, link: LinkIncarnation) {
        let Some(wanted) = self.layer.options(socket).map(|o| o.capacity) else { return };
        let receives = self.layer.protocol(socket).is_some_and(|p| p.receives());
        let current = self.layer.link_status(socket, link).map(|s| s.capacity);
        if receives && current.is_some_and(|c| c != wanted) {
            // Cannot fail: the link was just established.
            let _ = self.layer.set_link_capacity(socket, link, wanted);
        }
    }

    fn push_event(&mut self, socket: SocketKey, event: LinkEvent) {
        let Some(entry) = self.sockets.get_mut(&socket) else { return };
        if entry.events.len() >= MAX_SOCKET_EVENTS {
            entry.events.pop_front();
        }
        entry.events.push_back(event);
        let queue = entry.cell.source.queue();
        queue.wake(EVENT_QUEUED, 1);
        queue.wake(LINKS_CHANGED, usize::MAX);
    }

    /// Closes the node: every socket hangs up and every waiter is woken.
    pub(crate) fn close_all(&mut self) {
        self.closed = true;
        for (_, entry) in self.sockets.drain() {
            entry.cell.ahead.lock().queue.clear();
            *entry.cell.report.lock() = Some(entry.report);
            entry.cell.source.close(false);
        }
    }
}

/// What every thread of a node shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The node's name.
    pub(crate) id: NodeId,
    /// The node lock.
    pub(crate) state: Mutex<State>,
    /// Signalled when raw datagrams can be received.
    pub(crate) delivered: Condvar,
    /// Signalled when acknowledgements free queue space, sockets close, or the node closes.
    pub(crate) progress: Condvar,
    /// Set by application threads that queued something; cleared by the reader as it
    /// flushes.
    pub(crate) flush_requested: AtomicBool,
    /// Tells the reader to stop.
    pub(crate) stop: AtomicBool,
    /// Wakes the reader.
    pub(crate) waker: ReactorWaker,
    /// Converts between the OS clock and the core's instants (the process clock's epoch,
    /// so deadlines of blocking calls and of the core agree).
    pub(crate) clock: Clock,
    /// The newest precise reading of `clock` (core microseconds), taken by the reader; keeps
    /// the coarse time of application threads from running behind what the core has seen.
    pub(crate) latest_micros: AtomicU64,
    /// Largest datagram sent.
    pub(crate) max_datagram: usize,
    /// How long the reader and blocking calls spin before blocking ([`crate::NodeBuilder::spin`]).
    pub(crate) spin: std::time::Duration,
    /// Largest raw datagram payload.
    pub(crate) max_raw: usize,
    /// How UDP sockets are configured (for `rebind`).
    pub(crate) udp_config: UdpConfig,
}

impl Shared {
    /// The current time on the core's scale, for application threads: the coarse clock (no
    /// clock-source read, which showed up at 5-9 % of a send/receive profile) but never behind
    /// the reader's latest precise reading. Application threads only queue messages and run
    /// protocol timers, where a few milliseconds do not matter.
    pub(crate) fn now(&self) -> Instant {
        let coarse = self.clock.now_coarse().as_micros();
        Instant::from_micros(coarse.max(self.latest_micros.load(Ordering::Relaxed)))
    }

    /// The precise current time, for the reader thread (RTT samples are taken there).
    pub(crate) fn precise_now(&self) -> Instant {
        let now = self.clock.now();
        self.latest_micros.fetch_max(now.as_micros(), Ordering::Relaxed);
        now
    }

    /// Settles the state (see the module docs) and signals blocked raw receivers and
    /// closers. Returns whether the reader must be woken (see [`Shared::request_flush`])
    /// once the lock is released.
    pub(crate) fn settle(&self, state: &mut MutexGuard<'_, State>, now: Instant) -> bool {
        let settled = state.settle(now);
        if settled.raw && state.delivered_waiters > 0 {
            self.delivered.notify_all();
        }
        if settled.closed_socket && state.progress_waiters > 0 {
            self.progress.notify_all();
        }
        settled.flush
    }

    /// Settles the state and unlocks it; if the transport has something to send, the
    /// calling thread writes and sends one datagram itself instead of waking the reader
    /// (a hop less for the credits a receive gives back), and wakes the reader only for
    /// what is left or if a timer moved earlier.
    pub(crate) fn settle_and_transmit(&self, mut state: MutexGuard<'_, State>, now: Instant) {
        let flush = self.settle(&mut state, now);
        if !flush || !state.core.wants_transmit() {
            drop(state);
            if flush {
                self.request_flush();
            }
            return;
        }
        // A precise time: the transport takes RTT samples from it.
        let now = self.precise_now();
        INLINE_DATAGRAM.with_borrow_mut(|buf| {
            buf.resize(self.max_datagram, 0);
            let Some(Transmit { to, len, seal }) = state.core.poll_transmit_deferred(now, buf)
            else {
                drop(state);
                return self.request_flush();
            };
            let timer_moved = match (state.core.poll_timeout(), state.armed_deadline) {
                (Some(at), Some(armed)) => at < armed,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let layer_moved = state
                .layer
                .poll_timeout()
                .is_some_and(|at| state.armed_deadline.is_none_or(|armed| at < armed));
            let more = state.core.wants_transmit()
                || timer_moved
                || layer_moved
                || state.deliveries_pending();
            let socket = Arc::clone(&state.tx_socket);
            drop(state);
            // Sealed outside the lock (see `Node::poll_transmit_deferred`). It cannot fail:
            // the core left room for the tag; if it did, nothing would leave in the clear.
            if let Some(seal) = seal
                && seal.apply(buf).is_err()
            {
                debug_assert!(false, "sealing an inline datagram failed");
                return self.request_flush();
            }
            // A datagram lost here (the kernel buffer is full) is retransmitted like one
            // lost on the way; the reader is woken to watch the socket.
            let sent = socket.send_to(&buf[..len], to).is_ok();
            if more || !sent {
                self.request_flush();
            }
        })
    }

    /// Asks the reader to run a turn (send what was queued, re-arm its timer); wakes it only
    /// once per burst.
    pub(crate) fn request_flush(&self) {
        if !self.flush_requested.load(Ordering::Acquire)
            && !self.flush_requested.swap(true, Ordering::AcqRel)
        {
            // An I/O error of the eventfd can only mean the reader is gone; the next call sees
            // `closed`. Nothing accepted is lost: it stays queued in the core.
            let _ = self.waker.wake();
        }
    }
}
