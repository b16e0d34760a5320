//! Socket handles: the blocking, thread-safe face of the core's sockets (thesis §4.3.4).
//!
//! Every call runs the socket's work in the calling thread, under the node lock; the
//! reader thread is woken only when there is something new to send. A call that cannot
//! complete now (no credit, no message, no link yet) waits on the socket's wait queue
//! ([`a3m_core::wait::wait_until`] with the thread's [`Parker`]): the runtime raises the
//! socket's readiness (IN: a receive would succeed, OUT: a send would, HUP: closed) as
//! messages and credits arrive, waking one waiter per message or credit, and wakes every
//! waiter when the socket's links change. Before it parks, a receive or send polls that
//! readiness for a little while, yielding the processor in between
//! ([`crate::NodeBuilder::spin`]). The same readiness makes sockets pollable
//! ([`crate::Poller`], [`crate::poll()`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use a3m_core::id::{LinkIncarnation, NodeId, SocketId, TagId};
use a3m_core::link::LinkPhase;
use a3m_core::poll::{Events, PollId, Pollable};
use a3m_core::socket::{SocketError, SocketKey};
use a3m_core::time::Instant;
use a3m_core::wait::{WaitError, WaitMode, WaitOptions, Waiters, wait_until};
use a3m_platform::parker::Parker;
use parking_lot::MutexGuard;

use crate::error::{Error, Result};
use crate::options::SocketOptions;
use crate::reports::{LinkEvent, LinkFailure, LinkTimeout, SocketCloseReport, refusal_error};
use crate::runtime::{Ahead, EVENT_QUEUED, LINKS_CHANGED, RECV_AHEAD, Shared, SocketCell, State};
use crate::spin::spin;

/// Something that names a peer socket: `"node/tag"` text or a [`SocketId`].
pub trait IntoSocketId {
    /// The socket id, or [`Error::InvalidArgument`] if the text is not `node/tag`.
    fn into_socket_id(self) -> Result<SocketId>;
}

impl IntoSocketId for SocketId {
    fn into_socket_id(self) -> Result<SocketId> {
        Ok(self)
    }
}

impl IntoSocketId for &SocketId {
    fn into_socket_id(self) -> Result<SocketId> {
        Ok(self.clone())
    }
}

impl IntoSocketId for &str {
    fn into_socket_id(self) -> Result<SocketId> {
        self.parse().map_err(|e| Error::InvalidArgument(format!("socket id {self:?}: {e}")))
    }
}

impl IntoSocketId for &String {
    fn into_socket_id(self) -> Result<SocketId> {
        self.as_str().into_socket_id()
    }
}

impl IntoSocketId for String {
    fn into_socket_id(self) -> Result<SocketId> {
        self.as_str().into_socket_id()
    }
}

/// Whether a socket or a node is open ([`Socket::state`], [`crate::Node::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Working.
    Open,
    /// Closing: refuses new links and waits for its links (or sockets) to finish.
    Closing,
    /// Closed: every call fails with [`Error::Closed`].
    Closed,
}

/// A snapshot of one link of a socket ([`Socket::links`]). Its counts are of DATA
/// messages: a message larger than a datagram counts once per fragment (see [`Socket::send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The peer socket.
    pub peer: SocketId,
    /// The link's state.
    pub phase: LinkPhase,
    /// Messages this socket may still send on it.
    pub credits: i64,
    /// Messages the peer may have outstanding towards this socket.
    pub capacity: u32,
    /// Messages received on it and not yet taken by the application.
    pub queued: usize,
    /// Messages sent on it.
    pub sent: u64,
    /// Messages received on it and taken by the application.
    pub taken: u64,
    /// While the link is being made ([`LinkPhase::Linking`], [`LinkPhase::RetryWait`]):
    /// the attempts made so far, the current one included; 0 otherwise.
    pub attempts: u32,
    /// Why the latest attempt failed, while the link is being made.
    pub last_failure: Option<LinkFailure>,
}

/// A socket: links to peer sockets and sends or receives messages according to its
/// protocol, exactly once and in order per link.
///
/// Made by [`crate::Node::socket`] (or [`crate::Node::push`], [`crate::Node::pull`]).
/// `Socket` is `Send + Sync`: share it between threads with `&Socket` or `Arc<Socket>`;
/// any number of threads may send, receive and wait on it at once. Dropping it closes it
/// in the background: its links unlink once every message sent on them has been received
/// (bounded by [`SocketOptions::linger`]) while the node runs.
///
/// Blocking calls come in three forms: without timeout (`send`, `recv`), with one
/// (`send_timeout`, `recv_timeout`: [`Error::Timeout`]) and without waiting (`try_send`,
/// `try_recv`: [`Error::WouldBlock`]).
pub struct Socket {
    shared: Arc<Shared>,
    cell: Arc<SocketCell>,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket").field("id", &self.cell.id).finish_non_exhaustive()
    }
}

/// The interest of a blocked receive: readable, hung up, or links changed.
const RECV_INTEREST: u32 = Events::IN.bits() | Events::ALWAYS.bits() | LINKS_CHANGED;
/// The interest of a blocked send.
const SEND_INTEREST: u32 = Events::OUT.bits() | Events::ALWAYS.bits() | LINKS_CHANGED;
/// How often `close` looks whether other threads took the messages received ahead.
const AHEAD_DRAIN_POLL: Duration = Duration::from_millis(1);
/// How long `close` waits beyond its timeout for the reader to drop the links.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

impl Socket {
    pub(crate) fn new(shared: Arc<Shared>, cell: Arc<SocketCell>) -> Self {
        Self { shared, cell }
    }

    /// Whether the socket is open, closing (unlinking after [`Socket::close`] or a drop)
    /// or closed.
    pub fn state(&self) -> Lifecycle {
        let state = self.shared.state.lock();
        if state.closed
            || self.cell.source.is_closed()
            || state.layer.socket_id(self.key()).is_none()
        {
            Lifecycle::Closed
        } else if state.layer.is_closing(self.key()) {
            Lifecycle::Closing
        } else {
            Lifecycle::Open
        }
    }

    fn key(&self) -> SocketKey {
        self.cell.key
    }

    /// The socket's global name (`node/tag`).
    pub fn id(&self) -> &SocketId {
        &self.cell.id
    }

    /// The socket's id among pollables (what [`crate::Poller::wait`] reports).
    pub fn poll_id(&self) -> PollId {
        self.cell.source.id()
    }

    /// The socket's readiness now: [`Events::IN`] if a receive would not block,
    /// [`Events::OUT`] if a send would not, [`Events::HUP`] once closed.
    pub fn readiness(&self) -> Events {
        self.cell.source.events()
    }

    /// The socket as a pollable, for [`crate::Poller::add`] or the core's pollers.
    pub fn pollable(&self) -> Arc<dyn Pollable> {
        Arc::clone(&self.cell) as Arc<dyn Pollable>
    }

    /// Runs `f` under the node lock and settles the node after it.
    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut State, SocketKey, Instant) -> Result<T>,
    ) -> Result<T> {
        let mut state = self.shared.state.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        let now = self.shared.now();
        let result = f(&mut state, self.key(), now);
        self.finish(state, now);
        result
    }

    /// Settles and unlocks; wakes the reader if there is something to send.
    fn finish(&self, mut state: MutexGuard<'_, State>, now: Instant) {
        let flush = self.shared.settle(&mut state, now);
        drop(state);
        if flush {
            self.shared.request_flush();
        }
    }

    // ----- links -----

    /// Starts linking to `peer` (`"node/tag"` or a [`SocketId`]); returns at once. The link
    /// is established when both sockets agree ([`Socket::wait_for_link`],
    /// [`LinkEvent::Established`]); while the peer socket does not exist yet, the request is
    /// retried with back-off ([`SocketOptions::link_retry`]). Linking to a socket already
    /// linked (or linking) does nothing.
    ///
    /// Fails with [`Error::UnknownPeer`] if the peer's node has no known address
    /// ([`crate::NodeBuilder::peer`], [`crate::Node::add_peer`]).
    pub fn link(&self, peer: impl IntoSocketId) -> Result<()> {
        let peer = peer.into_socket_id()?;
        self.with_state(|state, key, _| {
            if peer.node != *state.core.id() && state.core.peer_addr(&peer.node).is_none() {
                return Err(Error::UnknownPeer(peer.node.as_str().to_string()));
            }
            state.forget_refusals(key, &peer);
            state.layer.link(key, peer.clone()).map(drop).map_err(|e| self.error(state, e))
        })
    }

    /// Unlinks from `peer`: cancels a link request, or starts the unlink exchange; the link
    /// closes once every message sent on it in either direction has been received
    /// ([`LinkEvent::Closed`]). Returns at once.
    pub fn unlink(&self, peer: impl IntoSocketId) -> Result<()> {
        let peer = peer.into_socket_id()?;
        self.with_state(|state, key, now| match state.layer.unlink(now, key, &peer) {
            Err(SocketError::UnknownLink) => {
                Err(Error::InvalidArgument(format!("{} has no link with {peer}", self.id())))
            }
            other => other.map_err(|e| self.error(state, e)),
        })
    }

    /// Like [`Socket::unlink`], also when the socket's type refuses it: a request socket
    /// awaiting its reply on the link cancels the request (a reply already on its way may
    /// still be received; otherwise the receive fails with [`Refusal::ReplierGone`] once the
    /// link closed), a reply socket owing a reply on it drops the request (thesis §5.3,
    /// `forceUnlink`).
    ///
    /// [`Refusal::ReplierGone`]: crate::Refusal::ReplierGone
    pub fn force_unlink(&self, peer: impl IntoSocketId) -> Result<()> {
        let peer = peer.into_socket_id()?;
        self.with_state(|state, key, now| match state.layer.force_unlink(now, key, &peer) {
            Err(SocketError::UnknownLink) => {
                Err(Error::InvalidArgument(format!("{} has no link with {peer}", self.id())))
            }
            other => other.map_err(|e| self.error(state, e)),
        })
    }

    /// Waits until the socket has an established link and returns its peer, waiting up to
    /// `timeout` (`None`: for ever).
    ///
    /// If a link this socket asked for was refused for good, reports that instead (once):
    /// [`Error::IncompatibleProtocol`] with the reason when the two socket types cannot talk,
    /// [`Error::LinkRefused`] otherwise. Incoming links count too, so a receiver can wait
    /// here for its first sender (without notify-if-none: with it, a link-free socket fails
    /// at once with [`Error::NoLinks`]; a link being made counts as a link and is waited
    /// for).
    ///
    /// On timeout, fails with [`Error::LinkTimeout`] if a link this socket is making last
    /// failed for a sealing mismatch ([`LinkFailure::SealingMismatch`]: one node has a key,
    /// the other none or another one), naming that peer and the reason, and with
    /// [`Error::Timeout`] otherwise ([`Error::is_timeout`] is true for both). The mismatch
    /// never ends the wait early: it is learnt from unauthenticated datagrams, so it only
    /// explains a wait that failed anyway, and the link keeps being retried. The peer tells
    /// why in a rate-limited plaintext notice (it has no key, requires one, or has another),
    /// and sends one only if it is up; a reason is forgotten once the peer's datagrams are
    /// accepted.
    pub fn wait_for_link(&self, timeout: Option<Duration>) -> Result<SocketId> {
        let interest = LINKS_CHANGED | Events::ALWAYS.bits();
        self.block(WaitMode::Shared, interest, timeout, || {
            let mut state = self.shared.state.lock();
            if state.closed || state.layer.socket_id(self.key()).is_none() {
                return Some(Err(Error::Closed));
            }
            if let Some(peer) = state.established_peer(self.key()) {
                return Some(Ok(peer));
            }
            if let Some((peer, refusal)) = state.take_refusal(self.key()) {
                return Some(Err(refusal_error(&peer, &refusal)));
            }
            no_links(&state, self.key()).then_some(Err(Error::NoLinks))
        })
        .map_err(|e| self.timed_out(e, None, timeout))
    }

    /// Waits until the link with `peer` is established, up to `timeout` (`None`: for ever);
    /// `Some(Duration::ZERO)` only looks.
    ///
    /// Fails at once with [`Error::NoSuchLink`] when the socket has no link with `peer` that
    /// is established or being made (never linked, unlinking, or closed), and as soon as
    /// that becomes so while waiting; if the link was refused for good, with the refusal
    /// ([`Error::IncompatibleProtocol`], [`Error::LinkRefused`]).
    ///
    /// On timeout, fails with [`Error::LinkTimeout`] if the latest attempt at the link with
    /// `peer` failed for a sealing mismatch ([`LinkFailure::SealingMismatch`]), with the
    /// reason, and with [`Error::Timeout`] otherwise; as for [`Socket::wait_for_link`], the
    /// mismatch never ends the wait early.
    pub fn wait_for_link_to(
        &self,
        peer: impl IntoSocketId,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let peer = peer.into_socket_id()?;
        let interest = LINKS_CHANGED | Events::ALWAYS.bits();
        self.block(WaitMode::Shared, interest, timeout, || {
            let mut state = self.shared.state.lock();
            let key = self.key();
            if state.closed || state.layer.socket_id(key).is_none() {
                return Some(Err(Error::Closed));
            }
            let phase = state
                .layer
                .link_of(key, &peer)
                .and_then(|link| state.layer.link_status(key, link))
                .map(|status| status.phase);
            match phase {
                Some(LinkPhase::Established) => Some(Ok(())),
                Some(LinkPhase::Linking | LinkPhase::Cancelling | LinkPhase::RetryWait) => None,
                _ => Some(Err(match state.take_refusal_from(key, &peer) {
                    Some(refusal) => refusal_error(&peer, &refusal),
                    None => Error::NoSuchLink(format!("{} has no link with {peer}", self.id())),
                })),
            }
        })
        .map_err(|e| self.timed_out(e, Some(&peer), timeout))
    }

    /// The error of a wait for a link (with `peer`, or any) that failed with `error`: for a
    /// timeout, [`Error::LinkTimeout`] if such a link being made last failed for a sealing
    /// mismatch; `error` itself otherwise.
    fn timed_out(&self, error: Error, peer: Option<&SocketId>, timeout: Option<Duration>) -> Error {
        let (Error::Timeout, Some(timeout)) = (&error, timeout) else {
            return error;
        };
        let state = self.shared.state.lock();
        let key = self.key();
        let found = state.layer.links(key).find_map(|link| {
            let phase = state.layer.link_status(key, link)?.phase;
            if !matches!(phase, LinkPhase::Linking | LinkPhase::RetryWait) {
                return None;
            }
            let link_peer = state.layer.link_peer(key, link)?;
            if peer.is_some_and(|p| p != link_peer) {
                return None;
            }
            match link_failure(&state, key, link, link_peer)? {
                last_failure @ LinkFailure::SealingMismatch(_) => {
                    Some(LinkTimeout { peer: link_peer.clone(), timeout, last_failure })
                }
                _ => None,
            }
        });
        found.map_or(error, |t| Error::LinkTimeout(Box::new(t)))
    }

    /// Waits until the socket has no link with `peer` any more (the link closed: the peer
    /// hung up, or an unlink finished), up to `timeout` (`None`: for ever;
    /// [`Error::Timeout`]); `Some(Duration::ZERO)` only looks. Returns at once if there is
    /// no such link. [`LinkEvent::Closed`] reports the same.
    pub fn wait_for_link_closed(
        &self,
        peer: impl IntoSocketId,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let peer = peer.into_socket_id()?;
        let interest = LINKS_CHANGED | Events::ALWAYS.bits();
        self.block(WaitMode::Shared, interest, timeout, || {
            let state = self.shared.state.lock();
            if state.closed || state.layer.socket_id(self.key()).is_none() {
                return Some(Ok(()));
            }
            state.layer.link_of(self.key(), &peer).is_none().then_some(Ok(()))
        })
    }

    /// Waits until the socket has one of the `interest` events ([`Events::IN`]: a receive
    /// would not block; [`Events::OUT`]: a send would not, a link has a credit), up to
    /// `timeout` (`None`: for ever; [`Error::Timeout`]), and returns the events it has
    /// ([`Events::HUP`] once closed). With notify-if-none set, fails with
    /// [`Error::NoLinks`] as soon as the socket has no link (links being made count).
    pub fn poll(&self, interest: Events, timeout: Option<Duration>) -> Result<Events> {
        let wanted = interest.intersection(Events::IN.union(Events::OUT));
        let bits = wanted.bits() | Events::ALWAYS.bits() | LINKS_CHANGED;
        self.block(WaitMode::Shared, bits, timeout, || {
            if self.cell.source.is_closed() {
                return Some(Ok(Events::HUP));
            }
            let state = self.shared.state.lock();
            if state.closed || state.layer.socket_id(self.key()).is_none() {
                return Some(Ok(Events::HUP));
            }
            let ready = self.cell.source.events().intersection(wanted);
            if !ready.is_empty() {
                return Some(Ok(ready));
            }
            no_links(&state, self.key()).then_some(Err(Error::NoLinks))
        })
    }

    /// A snapshot of the socket's links.
    pub fn links(&self) -> Vec<LinkInfo> {
        let state = self.shared.state.lock();
        let key = self.key();
        state
            .layer
            .links(key)
            .filter_map(|link| {
                let status = state.layer.link_status(key, link)?;
                let peer = state.layer.link_peer(key, link)?.clone();
                Some(LinkInfo {
                    last_failure: link_failure(&state, key, link, &peer),
                    peer,
                    phase: status.phase,
                    credits: status.credits,
                    capacity: status.capacity,
                    queued: status.queued,
                    sent: status.sent,
                    taken: status.taken,
                    attempts: status.attempts,
                })
            })
            .collect()
    }

    // ----- events -----

    /// The next link event, waiting up to `timeout` (`None`: for ever; [`Error::Timeout`]).
    /// Events are kept per socket (the 256 most recent) until taken.
    pub fn next_event(&self, timeout: Option<Duration>) -> Result<LinkEvent> {
        let interest = EVENT_QUEUED | Events::ALWAYS.bits();
        self.block(WaitMode::Exclusive, interest, timeout, || {
            let mut state = self.shared.state.lock();
            if state.closed {
                return Some(Err(Error::Closed));
            }
            if let Some(event) = state.take_event(self.key()) {
                return Some(Ok(event));
            }
            state.layer.socket_id(self.key()).is_none().then_some(Err(Error::Closed))
        })
    }

    /// Takes every link event that happened and was not taken yet, without waiting.
    pub fn events(&self) -> Vec<LinkEvent> {
        self.shared.state.lock().take_events(self.key())
    }

    // ----- sending -----

    /// Sends a message, waiting for a credit while every link is full (or, without
    /// [`SocketOptions::notify_if_none`], for a link). Fails with [`Error::NoLinks`] when
    /// notify-if-none is set and the socket has no link, [`Error::MessageTooLarge`] beyond
    /// [`Socket::max_message`] (nothing is sent), and [`Error::Unsupported`] if the socket
    /// does not send.
    ///
    /// # Messages larger than a datagram
    ///
    /// A message longer than one datagram carries travels as consecutive fragments on one
    /// link, a credit each, and the receiver gets it whole, exactly once, in order with the
    /// link's other messages, or not at all. `send` needs one credit on a link that is not
    /// busy with another large message: it sends the fragments those credits cover and
    /// returns; the link keeps a copy of the rest and sends it as the receiver gives
    /// credits back. The message is then accepted like any other (nothing accepted is
    /// dropped silently) and the link is reserved for it until its last fragment has left,
    /// so messages sent by several threads at once never mix: they take other links, or
    /// wait. Unlinking or closing waits for that last fragment before the link's UNLINK; a
    /// close whose timeout expires first drops the rest (its report counts the link as
    /// aborted) and the receiver, never getting the last fragment, delivers nothing of it.
    pub fn send(&self, payload: &[u8]) -> Result<()> {
        self.block(self.send_wait(), SEND_INTEREST, None, || self.attempt_send(payload))
    }

    /// Like [`Socket::send`], failing with [`Error::Timeout`] after `timeout`.
    pub fn send_timeout(&self, payload: &[u8], timeout: Duration) -> Result<()> {
        self.block(self.send_wait(), SEND_INTEREST, Some(timeout), || self.attempt_send(payload))
    }

    /// Like [`Socket::send`], failing with [`Error::WouldBlock`] instead of waiting.
    pub fn try_send(&self, payload: &[u8]) -> Result<()> {
        self.attempt_send(payload).unwrap_or(Err(Error::WouldBlock))
    }

    /// How a blocked send waits: in turn (one waiter woken per readiness change), or all
    /// together for a socket whose sends depend on the message (a router's route, a
    /// publisher's topic: the one woken might not be the one that can go).
    fn send_wait(&self) -> WaitMode {
        if self.cell.sends_by_message { WaitMode::Shared } else { WaitMode::Exclusive }
    }

    fn attempt_send(&self, payload: &[u8]) -> Option<Result<()>> {
        self.attempt(|state, key| state.layer.send(key, payload), payload.len())
    }

    // ----- receiving -----

    /// Receives the next message, waiting for one. Fails with [`Error::NoLinks`] when the
    /// socket has no link and notify-if-none is set (the end of the stream once its
    /// senders unlinked), and [`Error::Unsupported`] if the socket does not receive.
    pub fn recv(&self) -> Result<Vec<u8>> {
        self.recv_from(None).map(|(payload, _)| payload)
    }

    /// Like [`Socket::recv`], failing with [`Error::Timeout`] after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_from(Some(timeout)).map(|(payload, _)| payload)
    }

    /// Like [`Socket::recv`], failing with [`Error::WouldBlock`] instead of waiting.
    pub fn try_recv(&self) -> Result<Vec<u8>> {
        self.attempt_recv().unwrap_or(Err(Error::WouldBlock)).map(|(payload, _)| payload)
    }

    /// Receives the next message and the socket that sent it, waiting up to `timeout`
    /// (`None`: for ever; [`Error::Timeout`]).
    pub fn recv_from(&self, timeout: Option<Duration>) -> Result<(Vec<u8>, SocketId)> {
        if let Some(message) = self.pop_ahead(take_owned) {
            return message.map_err(|e| self.error_unlocked(e));
        }
        self.block(WaitMode::Exclusive, RECV_INTEREST, timeout, || self.attempt_recv())
    }

    fn attempt_recv(&self) -> Option<Result<(Vec<u8>, SocketId)>> {
        if let Some(message) = self.pop_ahead(take_owned) {
            return Some(message.map_err(|e| self.error_unlocked(e)));
        }
        self.attempt_recv_op(|state, key| {
            // Another thread may have filled the ahead queue since: older messages first.
            if let Some(message) = take_owned(&mut self.cell.ahead.lock()) {
                return message;
            }
            let received = state.layer.recv(key).map(|r| (r.payload, r.peer));
            if received.is_ok() {
                state.take_ahead(key);
            }
            received
        })
    }

    /// Receives the next message into `buf` without allocating, waiting up to `timeout`
    /// (`None`: for ever; [`Error::Timeout`]), and returns its length. If `buf` is shorter
    /// than the message, fails with [`Error::BufferTooSmall`] and leaves it queued.
    pub fn recv_into(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize> {
        if let Some(len) = self.pop_ahead(|ahead| copy_front(ahead, buf)) {
            return len.map_err(|e| self.error_unlocked(e));
        }
        self.block(WaitMode::Exclusive, RECV_INTEREST, timeout, || {
            if let Some(len) = self.pop_ahead(|ahead| copy_front(ahead, buf)) {
                return Some(len.map_err(|e| self.error_unlocked(e)));
            }
            self.attempt_recv_op(|state, key| {
                // Another thread may have filled the ahead queue since: older messages first.
                if let Some(len) = copy_front(&mut self.cell.ahead.lock(), buf) {
                    return len;
                }
                let len = state.layer.recv_into(key, buf).map(|(n, _)| n);
                if len.is_ok() {
                    state.take_ahead(key);
                }
                len
            })
        })
    }

    /// Takes a message received ahead with `take` (see [`crate::runtime::RECV_AHEAD`]),
    /// without the node lock; `None` if there is none. While messages are left, the next
    /// blocked receiver is woken for them (as a receive under the lock does); taking the last
    /// one publishes the socket's readiness again (it may no longer be readable).
    fn pop_ahead<T>(
        &self,
        take: impl FnOnce(&mut Ahead) -> Option<Result<T, SocketError>>,
    ) -> Option<Result<T, SocketError>> {
        let (taken, emptied) = {
            let mut ahead = self.cell.ahead.lock();
            if ahead.queue.is_empty() {
                return None;
            }
            let taken = take(&mut ahead);
            (taken, ahead.queue.is_empty())
        };
        if emptied {
            let state = self.shared.state.lock();
            state.refresh(self.key(), false);
        } else if taken.as_ref().is_some_and(Result::is_ok)
            && self.cell.source.queue().maybe_registered()
        {
            // A receiver that registered before we took the ahead lock is counted here (its
            // registration came before its own look at the queue, under the same lock); one
            // that registers later finds the messages itself.
            self.cell.source.queue().wake(Events::IN.bits(), 1);
        }
        taken
    }

    /// One non-blocking try of a send: `None` means "wait and try again".
    fn attempt<T>(
        &self,
        op: impl FnOnce(&mut State, SocketKey) -> Result<T, SocketError>,
        size: usize,
    ) -> Option<Result<T>> {
        self.attempt_then(op, size, TransmitFrom::IfFew)
    }

    /// One non-blocking try of a receive: like [`Socket::attempt`], but the credits it gives
    /// back leave from this thread at once ([`Shared::settle_and_transmit`]).
    fn attempt_recv_op<T>(
        &self,
        op: impl FnOnce(&mut State, SocketKey) -> Result<T, SocketError>,
    ) -> Option<Result<T>> {
        self.attempt_then(op, 0, TransmitFrom::Inline)
    }

    fn attempt_then<T>(
        &self,
        op: impl FnOnce(&mut State, SocketKey) -> Result<T, SocketError>,
        size: usize,
        transmit: TransmitFrom,
    ) -> Option<Result<T>> {
        let mut state = self.shared.state.lock();
        if state.closed {
            return Some(Err(Error::Closed));
        }
        let now = self.shared.now();
        let key = self.key();
        // Nagle's rule, loosened: with few payloads unacknowledged, a message goes out at
        // once, from this thread (a request or a reply: two thread hops less per round
        // trip, also with several requests in flight); behind a stream in flight it waits
        // for the reader, which sends it in batches.
        let inline = match transmit {
            TransmitFrom::Inline => true,
            TransmitFrom::IfFew => !state.unacknowledged_reach(INLINE_BELOW_UNACKNOWLEDGED),
        };
        let outcome = match op(&mut state, key) {
            Ok(value) => {
                // Still ready: pass the turn to the next waiter.
                state.refresh(key, true);
                Some(Ok(value))
            }
            Err(SocketError::WouldBlock) => None,
            Err(SocketError::NoLinks) => {
                let notify = state.layer.options(key).is_some_and(|o| o.notify_if_none);
                notify.then_some(Err(Error::NoLinks))
            }
            Err(SocketError::TooLarge) => {
                Some(Err(Error::MessageTooLarge { size, max: state.layer.config().max_payload }))
            }
            Err(e) => Some(Err(self.error(&state, e))),
        };
        if inline {
            self.shared.settle_and_transmit(state, now);
        } else {
            self.finish(state, now);
        }
        outcome
    }

    /// Runs `attempt` until it gives an answer, sleeping on the socket's wait queue.
    fn block<T>(
        &self,
        mode: WaitMode,
        interest: u32,
        timeout: Option<Duration>,
        mut attempt: impl FnMut() -> Option<Result<T>>,
    ) -> Result<T> {
        if let Some(result) = attempt() {
            // Most calls complete at once: no parker, no clock read.
            return result;
        }
        // Poll before parking ([`spin`]). Only a change of the socket's readiness (an atomic
        // load) makes it try again, so spinning takes no lock; waits for link changes or
        // events are wake-ups alone, never readiness, so they do not spin. The spin counts
        // against the timeout.
        let started = std::time::Instant::now();
        let spin_limit = timeout.map_or(self.shared.spin, |t| t.min(self.shared.spin));
        let readiness = interest & (Events::IN.bits() | Events::OUT.bits());
        if readiness != 0
            && let Some(result) = spin(spin_limit, || {
                let ready = self.cell.source.events().bits();
                if ready & (readiness | Events::HUP.bits()) != 0 { attempt() } else { None }
            })
        {
            return result;
        }
        let parker = Parker::current();
        let remaining = timeout.map(|t| t.saturating_sub(started.elapsed()));
        let deadline = remaining.map(|t| parker.clock().deadline_after(t));
        let options = WaitOptions { mode, interest, deadline };
        match wait_until(self.cell.source.queue(), &parker, options, attempt) {
            Ok(result) => result,
            Err(WaitError::TimedOut) => Err(Error::Timeout),
            Err(WaitError::Closed) => Err(Error::Closed),
            Err(WaitError::QueueFull) => Err(Error::TooManyWaiters),
        }
    }

    /// The largest message this socket sends or receives
    /// ([`crate::NodeBuilder::max_message`], 16 MiB by default). Messages larger than a
    /// datagram are fragmented (see [`Socket::send`]).
    pub fn max_message(&self) -> usize {
        self.shared.state.lock().layer.config().max_payload
    }

    // ----- options -----

    /// The socket's options.
    pub fn options(&self) -> Result<SocketOptions> {
        let state = self.shared.state.lock();
        let options = state.layer.options(self.key()).ok_or(Error::Closed)?;
        Ok(SocketOptions::from_core(options))
    }

    /// Replaces the socket's options. A new capacity applies to the established links at
    /// once (the peers learn it as a relative credit change) and to later ones; the other
    /// link options apply to links created from now on.
    ///
    /// Fails with [`Error::Unsupported`] if it changes an option the socket's type does
    /// not use (see the table in the crate docs).
    pub fn set_options(&self, options: SocketOptions) -> Result<()> {
        let core = options.to_core()?;
        self.with_state(|state, key, _| {
            let current = *state.layer.options(key).ok_or(Error::Closed)?;
            if let Some(protocol) = state.layer.protocol(key) {
                check_supported(protocol, &current, &core)?;
            }
            let old = current.capacity;
            state.layer.set_options(key, core).map_err(|e| self.error(state, e))?;
            // Notify-if-none shows in the readiness (ERR while link-free).
            state.refresh(key, false);
            if old != core.capacity && state.layer.protocol(key).is_some_and(|p| p.receives()) {
                let links: Vec<_> = state.layer.links(key).collect();
                for link in links {
                    // Links still in their handshake get it when established.
                    let _ = state.layer.set_link_capacity(key, link, core.capacity);
                }
            }
            Ok(())
        })
    }

    /// Changes the capacity: how many messages each link may have waiting here (see
    /// [`Socket::set_options`]). Lowering it takes credits back from the senders; messages
    /// already sent still arrive.
    ///
    /// **Capacity 0** pauses the stream without unlinking (thesis §4.7.3): every sender's
    /// credits are taken back (their balance goes negative by what is in flight and
    /// queued, and comes back to 0 as this socket receives those messages), so senders
    /// wait; nothing already sent is lost, and receiving still works. Raising it again
    /// gives the senders credits and they resume. Only for sockets that receive:
    /// [`Error::Unsupported`] on the others.
    pub fn set_capacity(&self, capacity: u32) -> Result<()> {
        self.set_options(self.options()?.capacity(capacity))
    }

    /// Turns notify-if-none on or off (see [`SocketOptions::notify_if_none`]); wakes blocked
    /// callers so they see it.
    pub fn set_notify_if_none(&self, on: bool) -> Result<()> {
        self.set_options(self.options()?.notify_if_none(on))?;
        self.cell.source.queue().wake(LINKS_CHANGED, usize::MAX);
        Ok(())
    }

    /// Sets how long a dropped socket keeps unlinking (see [`SocketOptions::linger`]).
    pub fn set_linger(&self, linger: Option<Duration>) -> Result<()> {
        self.set_options(self.options()?.linger(linger))
    }

    // ----- closing -----

    /// Closes the socket: refuses new links and unlinks from every peer, then waits, at most
    /// `timeout` (or the socket's shorter [`SocketOptions::linger`]), until every link has
    /// closed. A link closes once the peer socket has received everything sent on it (its
    /// application may not have taken it yet) and the application here has received
    /// everything that arrived on it; meanwhile other threads can still receive. When the
    /// time is up, the links left are dropped, with the messages waiting here, and the
    /// report counts them. Calls after it fail with [`Error::Closed`].
    pub fn close(&self, timeout: Duration) -> Result<SocketCloseReport> {
        self.with_state(|state, key, _| {
            // The linger is a timer: count it from the precise time, not the coarse one.
            let now = self.shared.precise_now();
            let Some(options) = state.layer.options(key).copied() else {
                return Ok(());
            };
            if !state.layer.is_closing(key) {
                let linger = options.linger.map_or(timeout, |l| l.min(timeout));
                let options = a3m_core::socket::SocketOptions { linger: Some(linger), ..options };
                state.layer.set_options(key, options).map_err(|e| self.error(state, e))?;
                state.set_linger_deadline(key, now + linger);
                if linger.is_zero() {
                    // The layer drops the links within `close`: note them first.
                    state.note_expiring_lingers(now);
                }
                state.layer.close(now, key).map_err(|e| self.error(state, e))?;
            }
            Ok(())
        })?;
        let deadline = std::time::Instant::now() + timeout;
        let closed = || Ok(self.cell.report.lock().unwrap_or_default());
        let waited =
            self.block(WaitMode::Shared, Events::HUP.bits(), Some(timeout + CLOSE_GRACE), || {
                self.cell.source.is_closed().then(closed)
            });
        let mut report = match waited {
            // The socket finished closing while this thread went to sleep: the wait queue
            // closed with it. That is the success waited for, not an error.
            Err(Error::Closed) if self.cell.source.is_closed() => closed(),
            other => other,
        }?;
        // Messages taken ahead count as received for the links: other threads may still
        // take them until the timeout; what is left then is dropped and reported.
        while !self.cell.ahead.lock().queue.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(AHEAD_DRAIN_POLL);
        }
        let mut ahead = self.cell.ahead.lock();
        report.dropped_messages += ahead.queue.len();
        ahead.queue.clear();
        Ok(report)
    }

    /// Maps a core error of a receive that did not take the node lock.
    fn error_unlocked(&self, e: SocketError) -> Error {
        match e {
            SocketError::BufferTooSmall { needed } => Error::BufferTooSmall { needed },
            other => self.error(&self.shared.state.lock(), other),
        }
    }

    /// Maps a core error of this socket.
    fn error(&self, state: &State, e: SocketError) -> Error {
        let name = state.layer.protocol(self.key()).map_or("closed", |p| p.name()).to_string();
        match e {
            SocketError::Closed => Error::Closed,
            SocketError::TagInUse => {
                Error::InvalidArgument(format!("a socket with tag {} exists", self.id().tag))
            }
            SocketError::TooManySockets => Error::LimitReached("sockets on this node".into()),
            SocketError::Unsupported => {
                Error::Unsupported(format!("{name} socket {} does not do this", self.id()))
            }
            SocketError::NoLinks => Error::NoLinks,
            SocketError::WouldBlock => Error::WouldBlock,
            SocketError::TooLarge => {
                Error::MessageTooLarge { size: 0, max: state.layer.config().max_payload }
            }
            SocketError::LinkLimit => Error::LimitReached(format!("links of {}", self.id())),
            SocketError::UnknownLink => {
                Error::InvalidArgument(format!("no such link of {}", self.id()))
            }
            SocketError::InvalidPeer => {
                Error::InvalidArgument("a socket cannot link to itself".into())
            }
            SocketError::ReservedKind => {
                Error::InvalidArgument("message kind reserved for the core".into())
            }
            SocketError::BufferTooSmall { needed } => Error::BufferTooSmall { needed },
            SocketError::Refused(why) => Error::Refused(why),
        }
    }
}

impl Pollable for Socket {
    fn id(&self) -> PollId {
        self.cell.source.id()
    }

    fn events(&self) -> Events {
        self.cell.source.events()
    }

    fn waiters(&self) -> &dyn Waiters {
        self.cell.source.queue()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        let key = self.key();
        // Other handles ([`crate::Node::socket_by_tag`]) keep it open; changed under the lock.
        if self.cell.handles.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) > 1 {
            return;
        }
        if state.closed || state.layer.is_closing(key) {
            return;
        }
        // The linger is a timer: count it from the precise time.
        let now = self.shared.precise_now();
        // Cannot fail: the socket is open.
        let _ = state.layer.close(now, key);
        self.finish(state, now);
    }
}

/// Who sends what a socket call gave the transport.
#[derive(Debug, Clone, Copy)]
enum TransmitFrom {
    /// The calling thread, one datagram (the rest by the reader).
    Inline,
    /// The calling thread if fewer than [`INLINE_BELOW_UNACKNOWLEDGED`] payloads are
    /// unacknowledged, else the reader.
    IfFew,
}

/// Payloads in flight below which a send transmits from the calling thread. 8: RPC with 4
/// clients in one process rose from 28–35 k to 40–42 k round trips/s (1 before: only an
/// idle node sent inline), while streams were unchanged (100 B: 2.57–2.87 M msgs/s vs
/// 2.51–3.00 M); at 32, streams lost 10–20 % to one-message datagrams. At or above it, the
/// node is streaming (the reader batches; see `Reader::run_timers_and_send`).
pub(crate) const INLINE_BELOW_UNACKNOWLEDGED: usize = 8;

/// Takes the oldest message received ahead, with its sender.
fn take_owned(ahead: &mut Ahead) -> Option<Result<(Vec<u8>, SocketId), SocketError>> {
    ahead.queue.pop_front().map(Ok)
}

/// Copies the oldest message received ahead into `buf` and keeps its buffer for reuse; if
/// `buf` is too short, fails and leaves the message queued.
fn copy_front(ahead: &mut Ahead, buf: &mut [u8]) -> Option<Result<usize, SocketError>> {
    let needed = ahead.queue.front()?.0.len();
    let Some(dst) = buf.get_mut(..needed) else {
        return Some(Err(SocketError::BufferTooSmall { needed }));
    };
    let (payload, _) = ahead.queue.pop_front()?;
    dst.copy_from_slice(&payload);
    if ahead.spent.len() < RECV_AHEAD {
        ahead.spent.push(payload);
    }
    Some(Ok(needed))
}

/// Whether the socket has no link at all (links being made count) and notify-if-none is
/// set: then every blocking call fails with [`Error::NoLinks`].
fn no_links(state: &State, key: SocketKey) -> bool {
    !state.layer.has_links(key) && state.layer.options(key).is_some_and(|o| o.notify_if_none)
}

/// Why the latest attempt at `link` (with `peer`) failed, while it is being made
/// ([`LinkInfo::last_failure`]).
fn link_failure(
    state: &State,
    key: SocketKey,
    link: LinkIncarnation,
    peer: &SocketId,
) -> Option<LinkFailure> {
    let failure = state.layer.link_failure(key, link)?.clone();
    Some(LinkFailure::from_core(failure, &peer.node, state.core.last_refusal()))
}

/// Refuses a change of an option that `protocol` does not use (see the crate docs' table).
pub(crate) fn check_supported(
    protocol: &dyn a3m_core::socket::Protocol,
    current: &a3m_core::socket::SocketOptions,
    new: &a3m_core::socket::SocketOptions,
) -> Result<()> {
    let unused = |option: &str| {
        Err(Error::Unsupported(format!(
            "option {option}: a {} socket does not receive, so it has no receive capacity",
            protocol.name()
        )))
    };
    if !protocol.receives() {
        if new.capacity != current.capacity {
            return unused("capacity");
        }
        if new.batch != current.batch {
            return unused("credit_batch_percent");
        }
    }
    Ok(())
}

/// Parses a socket tag.
pub(crate) fn parse_tag(tag: &str) -> Result<TagId> {
    TagId::new(tag).map_err(|e| Error::InvalidArgument(format!("socket tag {tag:?}: {e}")))
}

/// Parses a node id.
pub(crate) fn parse_node_id(id: &str) -> Result<NodeId> {
    NodeId::new(id).map_err(|e| Error::InvalidArgument(format!("node id {id:?}: {e}")))
}

impl Socket {
    /// Runs `op` under the node lock as one attempt of a receive (`interest` has
    /// [`Events::IN`]) or a send does, for the typed handles' calls that reach the protocol
    /// ([`a3m_core::socket::SocketLayer::command`], generated messages). `wait`: `None` tries
    /// once ([`Error::WouldBlock`]); `Some(timeout)` waits for the readiness while `op` would
    /// block (`timeout` `None`: for ever; [`Error::Timeout`]).
    pub(crate) fn protocol_call<T>(
        &self,
        interest: Events,
        wait: Option<Option<Duration>>,
        mut op: impl FnMut(&mut State, SocketKey) -> Result<T, SocketError>,
    ) -> Result<T> {
        let mut attempt = || self.attempt_recv_op(&mut op);
        match wait {
            None => attempt().unwrap_or(Err(Error::WouldBlock)),
            Some(timeout) => {
                let (mode, bits) = if interest.contains(Events::IN) {
                    (WaitMode::Exclusive, RECV_INTEREST)
                } else {
                    (self.send_wait(), SEND_INTEREST)
                };
                self.block(mode, bits, timeout, attempt)
            }
        }
    }
}
