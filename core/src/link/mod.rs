//! Links: the link state machine and the link management protocol (thesis §4.3.6, §4.6).
//!
//! A link is a conversation between two sockets. Both must agree to it (an asymmetric
//! handshake: exchange metadata, then proposals), data flows under credit flow control
//! ([`crate::flow`]) in FIFO order ([`InOrderQueue`]), and it ends with an UNLINK exchange
//! that completes only once every DATA message sent on it has been handed to the
//! application. This module holds one [`Link`]: a pure state machine that the socket layer
//! ([`crate::socket`]) feeds with the link's messages and whose output goes to a
//! [`LinkSink`].
//!
//! # Transport assumptions
//!
//! Messages travel over the exactly-once transport: each is delivered once, but in any order
//! and possibly much later. Every message carries the *sender's* link incarnation (a number
//! from a node-wide counter that only grows), so a message from an earlier conversation
//! between the same two sockets is recognised and ignored.
//!
//! # Handshake
//!
//! * `LINK` carries the requester's protocol id, capacity and metadata.
//! * Every LINK gets **exactly one response**: a `LINKREPLY`, or an `ERROR` socket-not-found
//!   from the node when the socket does not exist (the error echoes the requester's
//!   incarnation). A socket also answers a LINK it cannot take (busy with an older
//!   conversation, closing, incompatible) with a refusal, never with silence.
//! * A `LINKREPLY` carries a proposal: accept, or refuse with a [`RefusalCode`] (the code
//!   travels in the capacity field of a refusing reply, which has no capacity to give) and a
//!   reason text. It carries the replier's metadata only if the replier has not sent a LINK
//!   of its own: *no metadata* means "my LINK is on its way to you".
//! * Single requester (A links to B): `A: LINK` → `B: LINKREPLY(proposal, metadata)` → if B
//!   accepted, `A: LINKREPLY(proposal)`. Each side decides once it has both proposals.
//! * Both link at once (the thesis's concurrent case): both LINKs cross; each side answers
//!   the other's LINK with a metadata-less reply, and each decides from the peer's LINK (its
//!   metadata) plus the peer's reply. Both sides see the same two proposals, so they reach
//!   the same decision and end with **one** link. A reply that overtakes its LINK is held
//!   until the LINK arrives.
//! * The link is established only if both proposals accept. DATA, FLOW, custom control or
//!   UNLINK from the peer while our accepting proposal is out can only mean the peer
//!   established, so the link establishes at once (the late reply is absorbed).
//!
//! A side never forgets a conversation while something is still owed to it: its LINK's
//! response, the requester's second reply, or the peer's LINK announced by a metadata-less
//! reply. So a late reply can never be taken for the reply to a newer request. One race
//! remains: our LINK is answered by a peer state older than the peer's LINK we already hold
//! (the reply comes *with* metadata although the peer has since sent a LINK). The peer's
//! current request is then waiting for our metadata, so we simply send our LINK again.
//!
//! # Refusals and retries
//!
//! [`RefusalCode::NotFound`] (the peer socket does not exist) and [`RefusalCode::TryLater`]
//! (the peer is at its link limit or still ending an older conversation with us) are not
//! fatal: a link that was asked for locally waits in [`LinkPhase::RetryWait`] with
//! exponential [`Backoff`] and sends its LINK again. Other codes close the link and report
//! [`LinkEvent::Refused`] with the reason.
//!
//! # Unlinking
//!
//! `unlink` on an established link sends `UNLINK(number of DATA sent)` and stops sending
//! data; the peer answers with its own UNLINK. A side closes once it has exchanged UNLINKs
//! and handed the application every DATA the peer sent. `unlink` during the handshake
//! cancels it ([`LinkPhase::Cancelling`]): the next proposal we send is a refusal, and if the
//! link was already accepted on both sides it establishes and unlinks at once.
//!
//! # Messages larger than one DATA
//!
//! A message longer than the fragment size ([`Link::send_data`]) travels as consecutive DATA
//! messages of the link: every fragment but the last is a DATA_MORE
//! ([`crate::wire::message`]). Each fragment is an ordinary DATA for flow control and
//! ordering: one credit, one sequence number, FIFO by [`InOrderQueue`], counted in UNLINK.
//!
//! * **Atomic sending.** A message is accepted whole or not at all: it needs one credit to
//!   start, the fragments its credits cover leave at once, and the link keeps a copy of the
//!   rest and sends it as FLOWs bring credits back. Meanwhile the link takes no other
//!   message ([`Link::can_send`] is false), so the fragments of two messages never mix,
//!   whoever sends them, and its UNLINK waits until the last fragment has left (the UNLINK
//!   counts every DATA). Only a forced close ([`Link::abort`]) drops the rest.
//! * **Atomic receiving.** Fragments join the message being reassembled only once they
//!   reach the head of the FIFO (everything before them was taken), straight from the
//!   transport's buffer when they arrive in order. A joined fragment's credit is owed back
//!   at once, so a link of any capacity, even 1, carries a message of any size; the
//!   completed message then holds one credit until the application takes it, like any
//!   message. Fragments behind a message not taken yet wait in the FIFO holding their
//!   credits. The application sees only whole messages; a link that closes with a message
//!   partly received drops it ([`Link::drain_queued`]).
//! * **Bounded memory.** A receiving link holds at most one message being reassembled or
//!   waiting at the head (at most its largest message, [`Link::set_max_message`]; a larger
//!   one is dropped fragment by fragment and reported, [`LinkSink::oversized`]) plus its
//!   window of credits' worth of DATA messages. Heap beyond the FIFO: the reassembly
//!   buffer, the set of fragments stored out of order (empty, without allocation, while
//!   they arrive in order), and on the sending side the copy of a message's rest.

mod backoff;
mod fifo;

pub use backoff::Backoff;
pub use fifo::{FifoError, InOrderQueue};

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::flow::{BatchPercent, FlowUpdate, RecvCredits, SendCredits};
use crate::id::{LinkIncarnation, SocketId};
use crate::time::Instant;
use crate::wire::message::Body;

/// Why a link was refused; carried in refusing LINKREPLY messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// No socket with the peer's tag exists (an ERROR from the peer's node). Not fatal.
    NotFound,
    /// The peer cannot link now (link limit reached, or an older link with us still
    /// closing). Not fatal.
    TryLater,
    /// The two protocols cannot talk to each other.
    Incompatible,
    /// The peer does not accept incoming link requests.
    NotAllowed,
    /// The peer cancelled the link (it called unlink during the handshake).
    Cancelled,
    /// The peer socket is closing.
    Closing,
    /// The peer's protocol refused the link (see the reason).
    Rejected,
}

impl RefusalCode {
    /// Whether the link is given up rather than retried.
    pub const fn is_fatal(self) -> bool {
        !matches!(self, RefusalCode::NotFound | RefusalCode::TryLater)
    }

    /// The number carried in the capacity field of a refusing LINKREPLY.
    pub const fn to_wire(self) -> u32 {
        match self {
            RefusalCode::TryLater => 1,
            RefusalCode::Incompatible => 2,
            RefusalCode::NotAllowed => 3,
            RefusalCode::Cancelled => 4,
            RefusalCode::Closing => 5,
            RefusalCode::Rejected => 6,
            RefusalCode::NotFound => 7,
        }
    }

    /// The code for a wire number; unknown numbers are [`RefusalCode::Rejected`] (fatal).
    pub const fn from_wire(code: u32) -> Self {
        match code {
            1 => RefusalCode::TryLater,
            2 => RefusalCode::Incompatible,
            3 => RefusalCode::NotAllowed,
            4 => RefusalCode::Cancelled,
            5 => RefusalCode::Closing,
            7 => RefusalCode::NotFound,
            _ => RefusalCode::Rejected,
        }
    }
}

/// A refusal: its code and a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Refusal {
    /// What kind of refusal.
    pub code: RefusalCode,
    /// Why, in words (may be empty).
    pub reason: String,
}

impl Refusal {
    /// A refusal with `code` and `reason`.
    pub fn new(code: RefusalCode, reason: &str) -> Self {
        Self { code, reason: String::from(reason) }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{:?}", self.code)
        } else {
            write!(f, "{:?}: {}", self.code, self.reason)
        }
    }
}

/// One side's proposal for a link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Proposal {
    /// Willing to link.
    Accept,
    /// Not willing, and why.
    Refuse(Refusal),
}

impl Proposal {
    /// A refusal proposal.
    pub fn refuse(code: RefusalCode, reason: &str) -> Self {
        Proposal::Refuse(Refusal::new(code, reason))
    }
}

/// Why one attempt at a link failed ([`LinkEvent::AttemptFailed`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttemptFailure {
    /// Nothing answered our LINK within the retry interval: the peer node may be down, or
    /// nothing listens at its address. The LINK stays with the exactly-once transport
    /// (which keeps sending it), so the attempt may still succeed later.
    NoAnswer,
    /// The peer (or its node, for [`RefusalCode::NotFound`]) refused the attempt.
    Refused(Refusal),
}

impl fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptFailure::NoAnswer => f.write_str("no answer"),
            AttemptFailure::Refused(refusal) => write!(f, "refused ({refusal})"),
        }
    }
}

/// What the local socket puts in the LINK and LINKREPLY messages of its links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMeta<'a> {
    /// The socket's protocol id.
    pub protocol: u16,
    /// The socket protocol's metadata.
    pub metadata: &'a [u8],
}

/// What a peer socket told about itself when linking.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerInfo {
    /// The peer's incarnation of this link (every message it sends on the link carries it).
    pub incarnation: LinkIncarnation,
    /// The peer's protocol id.
    pub protocol: u16,
    /// How many DATA messages the peer can take: our initial credits.
    pub capacity: u32,
    /// The peer protocol's metadata.
    pub metadata: Vec<u8>,
}

/// A LINKREPLY as the link sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The replier's incarnation (the message's link field).
    pub incarnation: LinkIncarnation,
    /// Accept flag.
    pub accept: bool,
    /// The replier's protocol id.
    pub protocol: u16,
    /// The replier's capacity when accepting; the [`RefusalCode`] number when refusing.
    pub capacity: u32,
    /// The replier's metadata, present only if it sent no LINK of its own.
    pub metadata: Option<&'a [u8]>,
    /// Refusal reason (UTF-8 text).
    pub reason: &'a [u8],
}

impl Reply<'_> {
    /// The replier's proposal.
    pub fn proposal(&self) -> Proposal {
        if self.accept {
            Proposal::Accept
        } else {
            Proposal::Refuse(Refusal {
                code: RefusalCode::from_wire(self.capacity),
                reason: String::from_utf8_lossy(self.reason).into_owned(),
            })
        }
    }

    /// The replier's description, if the reply carries its metadata.
    pub fn peer_info(&self) -> Option<PeerInfo> {
        self.metadata.map(|m| PeerInfo {
            incarnation: self.incarnation,
            protocol: self.protocol,
            capacity: if self.accept { self.capacity } else { 0 },
            metadata: Vec::from(m),
        })
    }
}

/// What a link reports to its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Both sides accepted: data may flow.
    Established,
    /// A link asked for locally was refused for good (or ran out of retries).
    Refused(Refusal),
    /// The link will send its LINK again at this time ([`Link::on_timer`]).
    RetryAt(Instant),
    /// The link wants [`Link::on_timer`] called at this time (to see whether its LINK was
    /// answered; [`Instant::ZERO`]: as soon as possible, to start that watch).
    TimerAt(Instant),
    /// An attempt of a link asked for locally failed (`attempt` counts from 1); the link
    /// retries, waits on, or gives up ([`LinkEvent::Refused`]) according to its back-off.
    AttemptFailed {
        /// Which attempt.
        attempt: u32,
        /// Why.
        failure: AttemptFailure,
    },
    /// The link is closed; the socket drops it.
    Closed {
        /// Whether it had been established.
        established: bool,
    },
}

/// Where a link puts its output (and finds buffers for what it keeps).
pub trait LinkSink {
    /// Sends `body` to the peer socket `peer`, stamped with our incarnation `local` (the
    /// sink adds the source and destination tags).
    fn send(&mut self, peer: &SocketId, local: LinkIncarnation, body: Body<'_>);
    /// Reports an event of link `local`.
    fn event(&mut self, local: LinkIncarnation, event: LinkEvent);
    /// A buffer holding a copy of `bytes`: a received message the link keeps. A pool may
    /// hand out a used buffer (the default allocates).
    fn buffer(&mut self, bytes: &[u8]) -> Vec<u8> {
        Vec::from(bytes)
    }
    /// A buffer the link no longer needs, for reuse (the default frees it).
    fn recycle(&mut self, buf: Vec<u8>) {
        drop(buf);
    }
    /// A message being reassembled grew larger than the link's largest message
    /// ([`Link::set_max_message`]): it is dropped (the default does nothing more).
    fn oversized(&mut self, local: LinkIncarnation) {
        let _ = local;
    }
}

/// The state of a link as its socket sees it (thesis §4.6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkPhase {
    /// Handshake under way.
    Linking,
    /// Handshake under way, but unlink was called: it ends in a refusal or in unlinking.
    Cancelling,
    /// Refused for now (peer not found, or try later); the LINK goes again later.
    RetryWait,
    /// Data may flow both ways.
    Established,
    /// UNLINK sent; waiting for the peer's UNLINK and for the last messages to be taken.
    Unlinking,
    /// Over.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Linking,
    RetryWait,
    Established,
    Unlinking,
    Closed,
}

/// The handshake of one attempt; reset when the link retries.
#[derive(Debug, Clone, Default)]
struct Handshake {
    /// We sent a LINK in this attempt (so our replies carry no metadata).
    sent_link: bool,
    /// Our LINK awaits its response.
    link_outstanding: bool,
    /// We received the peer's LINK in this attempt.
    peer_linked: bool,
    /// The peer's metadata-less reply announced its LINK, which has not arrived yet.
    expecting_peer_link: bool,
    /// We answered the peer's LINK with metadata and an acceptance: its reply is owed.
    awaiting_second: bool,
    /// The incarnation a metadata-less reply gave us before the peer's LINK came.
    peer_hint: Option<LinkIncarnation>,
    /// The proposal we sent (or would send: our verdict on the peer).
    mine: Option<Proposal>,
    /// The proposal the peer sent (or that its traffic implied).
    theirs: Option<Proposal>,
    /// `theirs` was inferred from the peer's traffic; its reply is still to come.
    inferred: bool,
}

impl Handshake {
    fn owes(&self) -> bool {
        self.link_outstanding || self.awaiting_second || self.expecting_peer_link
    }
}

/// Why a DATA message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataError {
    /// The link is not in a state that takes data.
    NotEstablished,
    /// The message breaks the FIFO or credit rules.
    Fifo(FifoError),
    /// The sequence number is beyond the count the peer's UNLINK announced.
    AfterUnlink,
}

/// The part of a fragmented message not sent yet: it leaves fragment by fragment as
/// credits come back.
#[derive(Debug)]
struct Rest {
    bytes: Vec<u8>,
    offset: usize,
    fragment: usize,
}

/// One link of a socket: handshake, flow control, FIFO queue, fragments and unlinking.
///
/// Named by its local incarnation, unique on the node. Every method that may send takes a
/// [`LinkSink`]. A link in [`LinkPhase::Closed`] has reported [`LinkEvent::Closed`] and is
/// dropped by its socket.
#[derive(Debug)]
pub struct Link {
    local: LinkIncarnation,
    peer_id: SocketId,
    phase: Phase,
    was_established: bool,
    wanted: bool,
    cancel: bool,
    relink: bool,
    hs: Handshake,
    peer: Option<PeerInfo>,
    failures: u32,
    retry_at: Option<Instant>,
    /// When our outstanding LINK counts as unanswered ([`AttemptFailure::NoAnswer`]).
    answer_due: Option<Instant>,
    /// How many times the outstanding LINK was reported unanswered.
    silent: u32,
    /// Why the latest attempt failed (cleared once established).
    last_failure: Option<AttemptFailure>,
    capacity: u32,
    tx: SendCredits,
    sent: u64,
    rx: RecvCredits,
    /// DATA messages received: whole messages, and fragments that could not join the
    /// message being reassembled yet.
    fifo: InOrderQueue<Vec<u8>>,
    /// The sequence numbers of the fragments in `fifo` that are not the last of their
    /// message (DATA_MORE). Empty unless fragments arrive out of order or behind a message
    /// not taken yet, so that whole messages need no flag.
    rx_more: BTreeSet<u64>,
    peer_total: Option<u64>,
    unlink_sent: bool,
    /// The unsent part of a message whose first fragments left; while it is here the link
    /// takes no other message (and holds back its UNLINK).
    tx_rest: Option<Rest>,
    /// The fragments received so far of the message the application gets next.
    rx_partial: Vec<u8>,
    /// The message the application gets next is larger than `max_message`: its fragments
    /// are dropped until its last one.
    rx_discarding: bool,
    /// Largest message reassembled.
    max_message: usize,
}

impl Link {
    fn blank(
        local: LinkIncarnation,
        peer_id: SocketId,
        capacity: u32,
        batch: BatchPercent,
    ) -> Self {
        Self {
            local,
            peer_id,
            phase: Phase::Linking,
            was_established: false,
            wanted: false,
            cancel: false,
            relink: false,
            hs: Handshake::default(),
            peer: None,
            failures: 0,
            retry_at: None,
            answer_due: None,
            silent: 0,
            last_failure: None,
            capacity,
            tx: SendCredits::new(0),
            sent: 0,
            rx: RecvCredits::new(capacity, batch),
            fifo: InOrderQueue::new(),
            rx_more: BTreeSet::new(),
            peer_total: None,
            unlink_sent: false,
            tx_rest: None,
            rx_partial: Vec::new(),
            rx_discarding: false,
            max_message: usize::MAX,
        }
    }

    /// A link asked for locally: sends LINK offering `capacity` credits.
    pub fn initiate(
        local: LinkIncarnation,
        peer_id: SocketId,
        capacity: u32,
        batch: BatchPercent,
        me: &LocalMeta<'_>,
        sink: &mut impl LinkSink,
    ) -> Self {
        let mut link = Self::blank(local, peer_id, capacity, batch);
        link.wanted = true;
        link.hs.sent_link = true;
        link.send_link(me, sink);
        // No time here: the watch for an answer starts at the first timer.
        sink.event(local, LinkEvent::TimerAt(Instant::ZERO));
        link
    }

    /// A link created by the peer's LINK, which the socket accepts: answers with our
    /// metadata and acceptance, then waits for the requester's own proposal.
    pub fn accept_request(
        local: LinkIncarnation,
        peer_id: SocketId,
        peer: PeerInfo,
        capacity: u32,
        batch: BatchPercent,
        me: &LocalMeta<'_>,
        sink: &mut impl LinkSink,
    ) -> Self {
        let mut link = Self::blank(local, peer_id, capacity, batch);
        link.peer = Some(peer);
        link.hs.peer_linked = true;
        link.hs.awaiting_second = true;
        link.send_reply(&Proposal::Accept, true, me, sink);
        link.hs.mine = Some(Proposal::Accept);
        link
    }

    /// The body of a refusal sent by a socket that keeps no link for the request (it has
    /// no LINK of its own on the way, so the reply carries its metadata).
    pub fn refusal_body<'a>(refusal: &'a Refusal, me: &LocalMeta<'a>) -> Body<'a> {
        Body::LinkReply {
            accept: false,
            protocol: me.protocol,
            capacity: refusal.code.to_wire(),
            metadata: Some(me.metadata),
            reason: refusal.reason.as_bytes(),
        }
    }

    // ----- observers -----

    /// Our incarnation: the link's name on this node.
    pub fn local(&self) -> LinkIncarnation {
        self.local
    }

    /// The peer socket.
    pub fn peer_id(&self) -> &SocketId {
        &self.peer_id
    }

    /// What the peer told about itself, once known.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// The link's state.
    pub fn phase(&self) -> LinkPhase {
        match self.phase {
            Phase::Linking if self.cancel => LinkPhase::Cancelling,
            Phase::Linking => LinkPhase::Linking,
            Phase::RetryWait => LinkPhase::RetryWait,
            Phase::Established => LinkPhase::Established,
            Phase::Unlinking => LinkPhase::Unlinking,
            Phase::Closed => LinkPhase::Closed,
        }
    }

    /// Whether the link was asked for locally (and not unlinked since): it retries and
    /// reports refusals.
    pub fn is_wanted(&self) -> bool {
        self.wanted
    }

    /// Whether a new link to the same peer is due once this one closes.
    pub fn relink_requested(&self) -> bool {
        self.relink
    }

    /// When the link retries, in [`LinkPhase::RetryWait`].
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Consecutive failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Attempts made so far of a link asked for locally: the current one included while
    /// the handshake is under way or waiting to retry; 0 once established (and for a link
    /// the peer asked for).
    pub fn attempts(&self) -> u32 {
        match self.phase {
            Phase::Linking if self.wanted => self.failures.saturating_add(1),
            Phase::RetryWait => self.failures,
            _ => 0,
        }
    }

    /// Why the latest attempt failed, until the link is established.
    pub fn last_failure(&self) -> Option<&AttemptFailure> {
        self.last_failure.as_ref()
    }

    /// Our send credits (0 before the link is established).
    pub fn credits(&self) -> i64 {
        self.tx.balance()
    }

    /// Whether a message may be sent now: established, a credit, and no message still
    /// being sent (see [`Link::send_data`]).
    #[inline]
    pub fn can_send(&self) -> bool {
        self.phase == Phase::Established && self.tx.can_send() && self.tx_rest.is_none()
    }

    /// Whether fragments of a message sent earlier still wait for credits.
    pub fn is_sending(&self) -> bool {
        self.tx_rest.is_some()
    }

    /// Our receive capacity (what the peer may have outstanding).
    pub fn capacity(&self) -> u32 {
        self.rx.capacity()
    }

    /// The receive side's credit state.
    pub fn recv_credits(&self) -> &RecvCredits {
        &self.rx
    }

    /// Whether the next message in sequence is here (whole).
    pub fn has_message(&self) -> bool {
        self.fifo.is_ready()
    }

    /// The next message in sequence, without taking it.
    pub fn peek_message(&self) -> Option<&[u8]> {
        self.fifo.peek().map(Vec::as_slice)
    }

    /// DATA messages received and not yet taken (in order or waiting for an earlier one;
    /// a fragment counts as one, a message being reassembled not at all).
    pub fn queued(&self) -> usize {
        self.fifo.len()
    }

    /// DATA messages sent on this link (every fragment counts).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// DATA messages handed to the application (every fragment counts, as soon as it joins
    /// the message being reassembled).
    pub fn taken(&self) -> u64 {
        self.fifo.next_seq()
    }

    /// Sets the largest message this link reassembles (default: no limit). The fragments
    /// of a larger one are dropped as they come ([`LinkSink::oversized`]).
    pub fn set_max_message(&mut self, bytes: usize) {
        self.max_message = bytes;
    }

    /// Whether data may still arrive or wait here to be taken (established or unlinking).
    pub fn carries_data(&self) -> bool {
        matches!(self.phase, Phase::Established | Phase::Unlinking)
    }

    // ----- commands -----

    /// Asks for the link again while it ends (it reopens once closed); also marks a link
    /// still in its handshake as wanted, so it retries and reports refusals.
    pub fn request(&mut self) {
        match self.phase {
            Phase::Linking if !self.cancel => self.wanted = true,
            Phase::Linking | Phase::Unlinking => self.relink = true,
            Phase::Established | Phase::RetryWait | Phase::Closed => {}
        }
    }

    /// Ends the link: cancels the handshake, stops retrying, or starts unlinking.
    pub fn unlink(&mut self, now: Instant, backoff: &Backoff, sink: &mut impl LinkSink) {
        self.wanted = false;
        self.relink = false;
        match self.phase {
            Phase::RetryWait => self.close(sink),
            Phase::Linking => {
                self.cancel = true;
                self.advance(now, backoff, sink);
            }
            Phase::Established => self.start_unlink(sink),
            Phase::Unlinking | Phase::Closed => {}
        }
    }

    /// Closes the link at once, whatever its state (the socket's linger expired). Messages
    /// not yet taken stay queued until [`Link::drain_queued`].
    pub fn abort(&mut self, sink: &mut impl LinkSink) {
        if self.phase != Phase::Closed {
            self.close(sink);
        }
    }

    /// Removes the messages not yet taken (to reuse their buffers once the link closed).
    /// A message partly received is dropped, never handed out.
    pub fn drain_queued(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.rx_partial = Vec::new();
        self.rx_discarding = false;
        self.rx_more.clear();
        self.fifo.drain()
    }

    /// A timer of the link passed: sends the LINK again if a retry is due, and reports an
    /// outstanding LINK that got no answer within the retry interval
    /// ([`AttemptFailure::NoAnswer`]; it stays outstanding and is reported again after each
    /// further interval of `backoff`).
    pub fn on_timer(
        &mut self,
        now: Instant,
        backoff: &Backoff,
        me: &LocalMeta<'_>,
        sink: &mut impl LinkSink,
    ) {
        if self.phase == Phase::RetryWait && self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            self.phase = Phase::Linking;
            self.hs = Handshake { sent_link: true, ..Handshake::default() };
            self.send_link(me, sink);
            self.watch_answer(now, backoff, sink);
            return;
        }
        if self.phase != Phase::Linking || !self.hs.link_outstanding || !self.wanted {
            return;
        }
        match self.answer_due {
            None => self.watch_answer(now, backoff, sink),
            Some(at) if at <= now => {
                self.silent = self.silent.saturating_add(1);
                let attempt = self.failures.saturating_add(1);
                self.last_failure = Some(AttemptFailure::NoAnswer);
                let failure = AttemptFailure::NoAnswer;
                sink.event(self.local, LinkEvent::AttemptFailed { attempt, failure });
                let at = now + backoff.delay(self.failures.saturating_add(self.silent + 1));
                self.answer_due = Some(at);
                sink.event(self.local, LinkEvent::TimerAt(at));
            }
            Some(_) => {}
        }
    }

    /// Starts the watch for an answer to the LINK just sent: it is due within the next
    /// retry interval.
    fn watch_answer(&mut self, now: Instant, backoff: &Backoff, sink: &mut impl LinkSink) {
        self.silent = 0;
        let at = now + backoff.delay(self.failures.saturating_add(1));
        self.answer_due = Some(at);
        sink.event(self.local, LinkEvent::TimerAt(at));
    }

    // ----- link management messages -----

    /// The peer's LINK arrived. `proposal` is the socket's verdict on the peer (protocol
    /// compatibility, link limit, its protocol's own check).
    #[allow(clippy::too_many_arguments)]
    pub fn on_link(
        &mut self,
        now: Instant,
        peer: PeerInfo,
        proposal: Proposal,
        backoff: &Backoff,
        me: &LocalMeta<'_>,
        sink: &mut impl LinkSink,
    ) {
        match self.phase {
            Phase::Established | Phase::Unlinking | Phase::Closed => self.send_busy(me, sink),
            Phase::RetryWait => {
                // The peer asks before our retry: answer as a fresh responder.
                self.retry_at = None;
                self.phase = Phase::Linking;
                self.hs = Handshake { peer_linked: true, ..Handshake::default() };
                self.peer = Some(peer);
                self.send_reply(&proposal, true, me, sink);
                self.hs.awaiting_second = proposal == Proposal::Accept;
                // A refusing answer settles the attempt: theirs does not matter.
                self.hs.mine = Some(proposal);
                self.advance(now, backoff, sink);
            }
            Phase::Linking => {
                let expected = !self.hs.peer_linked
                    && self.peer.is_none()
                    && self.hs.peer_hint.is_none_or(|hint| hint == peer.incarnation);
                if !expected {
                    // A newer request of the peer while we still settle this one.
                    self.send_busy(me, sink);
                    return;
                }
                self.hs.peer_linked = true;
                self.hs.expecting_peer_link = false;
                self.peer = Some(peer);
                let proposal = if self.cancel { cancelled() } else { proposal };
                self.send_reply(&proposal, !self.hs.sent_link, me, sink);
                self.hs.mine = Some(proposal);
                self.advance(now, backoff, sink);
            }
        }
    }

    /// A LINKREPLY from the peer arrived. `proposal` is the socket's verdict on the peer
    /// when the reply carries its metadata (ignored otherwise).
    #[allow(clippy::too_many_arguments)]
    pub fn on_reply(
        &mut self,
        now: Instant,
        reply: &Reply<'_>,
        proposal: Option<Proposal>,
        backoff: &Backoff,
        me: &LocalMeta<'_>,
        sink: &mut impl LinkSink,
    ) {
        if self.hs.link_outstanding {
            self.hs.link_outstanding = false;
            if self.hs.inferred {
                return self.after_owed(now, backoff, sink);
            }
            if reply.metadata.is_some() && self.hs.peer_linked {
                // Answered by an older state of the peer; its current request waits for
                // our metadata.
                if self.phase == Phase::Linking {
                    self.send_link(me, sink);
                }
                return;
            }
            let theirs = reply.proposal();
            if let Some(info) = reply.peer_info() {
                let mine = match proposal {
                    _ if self.cancel => cancelled(),
                    Some(p) => p,
                    None => Proposal::Accept,
                };
                if theirs == Proposal::Accept {
                    self.peer = Some(info);
                    self.send_reply(&mine, false, me, sink);
                }
                self.hs.mine = Some(mine);
            } else {
                self.hs.peer_hint = Some(reply.incarnation);
                self.hs.expecting_peer_link = !self.hs.peer_linked;
            }
            self.hs.theirs = Some(theirs);
            self.advance(now, backoff, sink);
        } else if self.hs.awaiting_second {
            self.hs.awaiting_second = false;
            if self.hs.inferred {
                return self.after_owed(now, backoff, sink);
            }
            self.hs.theirs = Some(reply.proposal());
            self.advance(now, backoff, sink);
        }
        // Otherwise nothing is owed to this link: not a reply to it.
    }

    /// An ERROR socket-not-found echoing `echo` arrived: the answer to our LINK if one is
    /// outstanding.
    pub fn on_not_found(
        &mut self,
        now: Instant,
        echo: LinkIncarnation,
        backoff: &Backoff,
        me: &LocalMeta<'_>,
        sink: &mut impl LinkSink,
    ) {
        if !self.hs.link_outstanding || echo != self.local {
            return;
        }
        self.hs.link_outstanding = false;
        if self.hs.inferred {
            return self.after_owed(now, backoff, sink);
        }
        if self.hs.peer_linked {
            // The socket appeared after our LINK reached its node and has asked us since.
            if self.phase == Phase::Linking {
                self.send_link(me, sink);
            }
            return;
        }
        self.hs.theirs = Some(Proposal::refuse(RefusalCode::NotFound, "no such socket"));
        self.advance(now, backoff, sink);
    }

    /// Whether traffic (DATA, FLOW, UNLINK, custom control) stamped with the peer's
    /// incarnation `incarnation` belongs to this link. Traffic while our acceptance is out
    /// means the peer established: the link establishes now.
    #[inline]
    pub fn admits(&mut self, incarnation: LinkIncarnation, sink: &mut impl LinkSink) -> bool {
        let matches = self.peer.as_ref().is_some_and(|p| p.incarnation == incarnation);
        match self.phase {
            Phase::Established | Phase::Unlinking => matches,
            Phase::Linking => {
                let accepted = self.hs.mine == Some(Proposal::Accept)
                    && matches!(self.hs.theirs, None | Some(Proposal::Accept));
                if !matches || !accepted {
                    return false;
                }
                if self.hs.theirs.is_none() {
                    self.hs.theirs = Some(Proposal::Accept);
                    self.hs.inferred = true;
                }
                self.establish(sink);
                true
            }
            Phase::RetryWait | Phase::Closed => false,
        }
    }

    /// The peer's UNLINK: it sent `sent` DATA messages in all. Call after [`Link::admits`].
    pub fn on_unlink(&mut self, sent: u64, sink: &mut impl LinkSink) {
        if !self.carries_data() {
            return;
        }
        self.peer_total = Some(sent);
        if self.phase == Phase::Established {
            self.start_unlink(sink);
        } else {
            self.maybe_finish(sink);
        }
    }

    // ----- data -----

    /// Sends a message if the link can take one ([`Link::can_send`]); returns the credits
    /// it used now, 0 if it cannot take it. A message of at most `fragment` bytes is one
    /// DATA and takes one credit. A longer one is split into fragments of `fragment` bytes
    /// (the last one shorter), one DATA each, each with its own credit and sequence number:
    /// as many leave now as there are credits, and the link keeps a copy of the rest and
    /// sends it as credits come back ([`Link::on_flow`]). The message is accepted all the
    /// same; until its last fragment has left, the link takes no other message (so the
    /// fragments of two messages never mix) and holds back its UNLINK.
    #[inline]
    pub fn send_data(&mut self, payload: &[u8], fragment: usize, sink: &mut impl LinkSink) -> u32 {
        if payload.len() > fragment {
            return self.send_fragments(payload, fragment, sink);
        }
        if self.phase != Phase::Established || self.tx_rest.is_some() || !self.tx.try_consume() {
            return 0;
        }
        let seq = self.sent;
        self.sent += 1;
        sink.send(&self.peer_id, self.local, Body::Data { seq, payload });
        1
    }

    /// Takes a credit and the next sequence number for a one-fragment DATA that the caller
    /// sends itself, as one destination of a fan-out (see "Fan-out" in
    /// [`crate::wire::message`]): [`Link::send_data`] without the sending. `None` when the
    /// link cannot send a message now.
    #[inline]
    pub fn claim_data(&mut self) -> Option<u64> {
        if self.phase != Phase::Established || self.tx_rest.is_some() || !self.tx.try_consume() {
            return None;
        }
        let seq = self.sent;
        self.sent += 1;
        Some(seq)
    }

    /// [`Link::send_data`] of a message longer than one fragment.
    #[inline(never)]
    fn send_fragments(&mut self, payload: &[u8], fragment: usize, sink: &mut impl LinkSink) -> u32 {
        if !self.can_send() {
            return 0;
        }
        let fragment = fragment.max(1);
        let mut offset = 0;
        let mut used = 0;
        while offset < payload.len() && self.tx.try_consume() {
            let end = payload.len().min(offset + fragment);
            self.send_fragment(&payload[offset..end], end < payload.len(), sink);
            offset = end;
            used += 1;
        }
        if offset < payload.len() {
            let bytes = Vec::from(&payload[offset..]);
            self.tx_rest = Some(Rest { bytes, offset: 0, fragment });
        }
        used
    }

    fn send_fragment(&mut self, bytes: &[u8], more: bool, sink: &mut impl LinkSink) {
        let seq = self.sent;
        self.sent += 1;
        let body = if more {
            Body::DataMore { seq, payload: bytes }
        } else {
            Body::Data { seq, payload: bytes }
        };
        sink.send(&self.peer_id, self.local, body);
    }

    /// Sends fragments of the message in progress while credits last; once its last one
    /// left, the UNLINK held back goes.
    fn send_rest(&mut self, sink: &mut impl LinkSink) {
        let Some(mut rest) = self.tx_rest.take() else { return };
        if !self.carries_data() {
            return;
        }
        while rest.offset < rest.bytes.len() && self.tx.try_consume() {
            let end = rest.bytes.len().min(rest.offset + rest.fragment);
            let more = end < rest.bytes.len();
            self.send_fragment(&rest.bytes[rest.offset..end], more, sink);
            rest.offset = end;
        }
        if rest.offset < rest.bytes.len() {
            self.tx_rest = Some(rest);
        } else if self.phase == Phase::Unlinking {
            self.start_unlink(sink);
        }
    }

    /// Sends a custom control message (no credit needed) while the link carries data.
    pub fn send_control(&mut self, kind: u8, body: &[u8], sink: &mut impl LinkSink) -> bool {
        if !self.carries_data() {
            return false;
        }
        sink.send(&self.peer_id, self.local, Body::Custom { kind, body });
        true
    }

    /// Receives DATA (`more`: DATA_MORE) message `seq`. Call after [`Link::admits`].
    /// Returns whether the next message just became available.
    ///
    /// Fragments are joined only at the head of the FIFO: once every message before them
    /// was taken, a fragment joins the message being reassembled and its credit is owed
    /// back at once (so a link of capacity 1 still carries a message of any size); the
    /// last fragment completes the message, which then holds one credit until taken, like
    /// any message. Fragments behind an untaken message wait in the FIFO, each holding its
    /// credit. So a link holds at most one message being reassembled or waiting (at most
    /// the largest message) plus a capacity's worth of DATA messages.
    #[inline]
    pub fn on_data(
        &mut self,
        seq: u64,
        payload: &[u8],
        more: bool,
        sink: &mut impl LinkSink,
    ) -> Result<bool, DataError> {
        if !self.carries_data() {
            return Err(DataError::NotEstablished);
        }
        if self.peer_total.is_some_and(|total| seq >= total) {
            return Err(DataError::AfterUnlink);
        }
        if more || !self.rx_partial.is_empty() || self.rx_discarding {
            return self.on_fragment(seq, payload, more, sink);
        }
        // A whole message (the usual case): stored at its place.
        let bytes = sink.buffer(payload);
        self.fifo.insert(seq, bytes, self.rx.window_bound()).map_err(|(e, bytes)| {
            sink.recycle(bytes);
            DataError::Fifo(e)
        })
    }

    /// [`Link::on_data`] of a fragment, or of anything while a message is reassembled.
    #[inline(never)]
    fn on_fragment(
        &mut self,
        seq: u64,
        payload: &[u8],
        more: bool,
        sink: &mut impl LinkSink,
    ) -> Result<bool, DataError> {
        let bound = self.rx.window_bound();
        if bound > 0 && self.fifo.expects(seq) {
            // A fragment at the head of the FIFO: joined straight from the transport's
            // buffer, not stored.
            let fits = self.rx_partial.len().saturating_add(payload.len()) <= self.max_message;
            if more || self.rx_discarding || !fits {
                self.fifo.skip();
                self.join(payload, !more, sink);
                self.owe_one(sink);
                return Ok(self.assemble(sink));
            }
            // The last fragment: the whole message takes its place at the head.
            let mut whole = core::mem::take(&mut self.rx_partial);
            whole.extend_from_slice(payload);
            return self.fifo.insert(seq, whole, bound).map_err(|(e, bytes)| {
                sink.recycle(bytes);
                DataError::Fifo(e)
            });
        }
        // Out of order, or behind a message not taken yet: stored until it is at the head.
        let bytes = sink.buffer(payload);
        match self.fifo.insert(seq, bytes, bound) {
            Ok(edge) => {
                if more {
                    self.rx_more.insert(seq);
                }
                Ok(if edge { self.assemble(sink) } else { false })
            }
            Err((e, bytes)) => {
                sink.recycle(bytes);
                Err(DataError::Fifo(e))
            }
        }
    }

    /// Whether the message at the head of the FIFO is a fragment other than the last.
    fn head_is_more(&mut self) -> bool {
        let head = self.fifo.next_seq();
        // (Only fragments still stored are listed; never one below the head.)
        while self.rx_more.first().is_some_and(|&seq| seq < head) {
            self.rx_more.pop_first();
        }
        self.rx_more.first() == Some(&head)
    }

    /// Adds a fragment to the message being reassembled (`last`: it ends the message,
    /// which is too large, since a whole message is never joined here).
    fn join(&mut self, bytes: &[u8], last: bool, sink: &mut impl LinkSink) {
        if self.rx_discarding {
            if last {
                self.rx_discarding = false;
            }
            return;
        }
        if self.rx_partial.len().saturating_add(bytes.len()) > self.max_message {
            self.drop_partial(sink);
            self.rx_discarding = !last;
            return;
        }
        self.rx_partial.extend_from_slice(bytes);
    }

    fn drop_partial(&mut self, sink: &mut impl LinkSink) {
        self.rx_partial = Vec::new();
        sink.oversized(self.local);
    }

    /// A DATA message left the FIFO without reaching the application (it joined a message
    /// being reassembled): its credit is owed back.
    fn owe_one(&mut self, sink: &mut impl LinkSink) {
        let update = self.rx.on_taken();
        self.send_flow(update, sink);
    }

    /// Joins the fragments at the head of the FIFO into the message being reassembled;
    /// returns whether a whole message is at the head.
    #[inline(never)]
    fn assemble(&mut self, sink: &mut impl LinkSink) -> bool {
        loop {
            let more = self.head_is_more();
            let partial = self.rx_partial.len();
            let discarding = self.rx_discarding;
            let max = self.max_message;
            let Some(head) = self.fifo.peek_mut() else { return false };
            if !more && !discarding && partial == 0 {
                return true;
            }
            if !more && !discarding && partial.saturating_add(head.len()) <= max {
                // The last fragment: the message takes its place at the head.
                self.rx_partial.extend_from_slice(head);
                core::mem::swap(head, &mut self.rx_partial);
                let spent = core::mem::take(&mut self.rx_partial);
                sink.recycle(spent);
                return true;
            }
            let Some(bytes) = self.fifo.pop() else { return false };
            if more {
                self.rx_more.pop_first();
            }
            if more || discarding {
                self.join(&bytes, !more, sink);
            } else {
                // The last fragment of a message that grew too large.
                self.drop_partial(sink);
            }
            sink.recycle(bytes);
            self.owe_one(sink);
        }
    }

    /// The peer's FLOW. Call after [`Link::admits`]. Sends what the credits allow of a
    /// message in progress; returns whether the link just became able to send.
    pub fn on_flow(&mut self, update: FlowUpdate, sink: &mut impl LinkSink) -> bool {
        let could = self.can_send();
        self.tx.apply(update);
        if self.tx_rest.is_some() {
            self.send_rest(sink);
        }
        !could && self.can_send()
    }

    /// Hands the next message in sequence to the application, returning credits when a
    /// batch is full and closing the link if it was the last one owed.
    #[inline]
    pub fn take(&mut self, sink: &mut impl LinkSink) -> Option<Vec<u8>> {
        let payload = self.fifo.pop()?;
        let update = self.rx.on_taken();
        self.send_flow(update, sink);
        if !self.rx_more.is_empty() {
            // Fragments behind the message taken may join now.
            self.assemble(sink);
        }
        self.maybe_finish(sink);
        Some(payload)
    }

    /// Sets our receive capacity; the change goes to the peer as a relative FLOW. Returns
    /// `false` if the link is not established.
    pub fn set_capacity(&mut self, capacity: u32, sink: &mut impl LinkSink) -> bool {
        if self.phase != Phase::Established {
            return false;
        }
        let update = self.rx.set_capacity(capacity);
        self.send_flow(update, sink);
        true
    }

    /// Changes our receive capacity by `delta` (see [`Link::set_capacity`]).
    pub fn adjust_capacity(&mut self, delta: i32, sink: &mut impl LinkSink) -> bool {
        if self.phase != Phase::Established {
            return false;
        }
        let update = self.rx.adjust_capacity(delta);
        self.send_flow(update, sink);
        true
    }

    /// Changes the credit batch percentage (returns owed credits if the new batch is full).
    pub fn set_batch(&mut self, batch: BatchPercent, sink: &mut impl LinkSink) {
        let update = self.rx.set_batch(batch);
        self.send_flow(update, sink);
    }

    // ----- internals -----

    fn send_flow(&mut self, update: Option<FlowUpdate>, sink: &mut impl LinkSink) {
        // Credits matter only while the peer may still send.
        let useful = self.phase == Phase::Established
            || (self.phase == Phase::Unlinking && self.peer_total.is_none());
        if let (Some(u), true) = (update, useful) {
            let body = Body::Flow { credits: u.credits, capacity_delta: u.capacity_delta };
            sink.send(&self.peer_id, self.local, body);
        }
    }

    fn send_link(&mut self, me: &LocalMeta<'_>, sink: &mut impl LinkSink) {
        self.hs.link_outstanding = true;
        let body =
            Body::Link { protocol: me.protocol, capacity: self.capacity, metadata: me.metadata };
        sink.send(&self.peer_id, self.local, body);
    }

    fn send_reply(
        &self,
        proposal: &Proposal,
        with_metadata: bool,
        me: &LocalMeta<'_>,
        sink: &mut impl LinkSink,
    ) {
        let metadata = with_metadata.then_some(me.metadata);
        let body = match proposal {
            Proposal::Accept => Body::LinkReply {
                accept: true,
                protocol: me.protocol,
                capacity: self.capacity,
                metadata,
                reason: b"",
            },
            Proposal::Refuse(r) => Body::LinkReply {
                accept: false,
                protocol: me.protocol,
                capacity: r.code.to_wire(),
                metadata,
                reason: r.reason.as_bytes(),
            },
        };
        sink.send(&self.peer_id, self.local, body);
    }

    /// Refuses a newer request of the peer while this conversation is not over.
    fn send_busy(&self, me: &LocalMeta<'_>, sink: &mut impl LinkSink) {
        let refusal = Refusal::new(RefusalCode::TryLater, "a previous link is still closing");
        sink.send(&self.peer_id, self.local, Link::refusal_body(&refusal, me));
    }

    /// Something owed arrived after the link moved on: it may now finish.
    fn after_owed(&mut self, now: Instant, backoff: &Backoff, sink: &mut impl LinkSink) {
        match self.phase {
            Phase::Linking => self.advance(now, backoff, sink),
            Phase::Unlinking => self.maybe_finish(sink),
            _ => {}
        }
    }

    /// Decides the handshake once both proposals are in.
    fn advance(&mut self, now: Instant, backoff: &Backoff, sink: &mut impl LinkSink) {
        if self.phase != Phase::Linking {
            return;
        }
        let refusal = match (&self.hs.mine, &self.hs.theirs) {
            (Some(Proposal::Accept), Some(Proposal::Accept)) if self.peer.is_some() => {
                return self.establish(sink);
            }
            (Some(Proposal::Refuse(m)), Some(Proposal::Refuse(t))) => {
                if !t.code.is_fatal() && m.code.is_fatal() { m.clone() } else { t.clone() }
            }
            (_, Some(Proposal::Refuse(t))) => t.clone(),
            (Some(Proposal::Refuse(m)), _) => m.clone(),
            _ => return,
        };
        // Refused; finish once nothing more is owed to this attempt.
        if self.hs.owes() {
            return;
        }
        let retry = self.wanted && !refusal.code.is_fatal();
        if self.wanted {
            let attempt = self.failures.saturating_add(1);
            let failure = AttemptFailure::Refused(refusal.clone());
            self.last_failure = Some(failure.clone());
            sink.event(self.local, LinkEvent::AttemptFailed { attempt, failure });
        }
        self.answer_due = None;
        if retry {
            self.failures = self.failures.saturating_add(1);
            if !backoff.exhausted(self.failures) {
                let at = now + backoff.delay(self.failures);
                self.phase = Phase::RetryWait;
                self.retry_at = Some(at);
                self.hs = Handshake::default();
                self.peer = None;
                sink.event(self.local, LinkEvent::RetryAt(at));
                return;
            }
        }
        if self.wanted {
            sink.event(self.local, LinkEvent::Refused(refusal));
        }
        self.close(sink);
    }

    fn establish(&mut self, sink: &mut impl LinkSink) {
        let Some(peer) = &self.peer else { return };
        self.phase = Phase::Established;
        self.was_established = true;
        self.failures = 0;
        self.answer_due = None;
        self.last_failure = None;
        self.tx = SendCredits::new(peer.capacity);
        sink.event(self.local, LinkEvent::Established);
        if self.cancel {
            self.start_unlink(sink);
        }
    }

    fn start_unlink(&mut self, sink: &mut impl LinkSink) {
        self.phase = Phase::Unlinking;
        // The UNLINK counts every DATA sent: it waits for the last fragment in progress.
        if !self.unlink_sent && self.tx_rest.is_none() {
            self.unlink_sent = true;
            sink.send(&self.peer_id, self.local, Body::Unlink { sent: self.sent });
        }
        self.maybe_finish(sink);
    }

    fn maybe_finish(&mut self, sink: &mut impl LinkSink) {
        let drained = self.peer_total.is_some_and(|total| self.fifo.next_seq() >= total);
        if self.phase == Phase::Unlinking && self.unlink_sent && drained && !self.hs.owes() {
            self.close(sink);
        }
    }

    fn close(&mut self, sink: &mut impl LinkSink) {
        self.phase = Phase::Closed;
        self.retry_at = None;
        // A message still being sent is dropped (the socket's linger expired): its
        // fragments that left are never delivered, since the peer cannot complete it.
        self.tx_rest = None;
        sink.event(self.local, LinkEvent::Closed { established: self.was_established });
    }
}

fn cancelled() -> Proposal {
    Proposal::refuse(RefusalCode::Cancelled, "the link was cancelled")
}
