//! The [`Protocol`] trait: what makes a socket type (thesis §4.3.4, §5.1).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Bound;

use crate::id::{LinkIncarnation, SocketId};
use crate::link::{Link, LinkPhase};
use crate::wire::message::FIRST_CUSTOM_KIND;

/// Identifies a socket type on the wire; exchanged when linking to check compatibility.
///
/// The built-in types use small numbers ([`super::PUSH`], [`super::PULL`]); user-defined
/// types should pick ids from `0x8000` up.
pub type ProtocolId = u16;

/// Where an outgoing data message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Through this link (it must be able to send now).
    One(LinkIncarnation),
    /// Through every established link, only if all of them can send now.
    Every,
    /// Through every link of [`Protocol::selected`], only if all of them can send now (all or
    /// none: the synchronized publish of thesis §5.4.1). An empty selection sends to nobody
    /// and succeeds.
    Selected,
    /// Nowhere now: the send would block.
    Blocked,
    /// Nowhere, ever: the send fails with [`SocketError::Refused`] and this reason.
    ///
    /// [`SocketError::Refused`]: super::SocketError::Refused
    Refused(Refusal),
}

/// Why a protocol refused an operation; carried by [`SocketError::Refused`].
///
/// [`SocketError::Refused`]: super::SocketError::Refused
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// A receive on a request socket that has no request in flight (thesis §5.3.1).
    NoRequestPending,
    /// The link a request socket awaited its reply on closed: the request is cancelled.
    ReplierGone,
    /// A send on a reply socket that has no request to answer (thesis §5.3.2).
    NoRequestToReply,
    /// An unlink of the link a reply is awaited on; force it to cancel the request.
    ReplyAwaited,
    /// An unlink of the link a reply is owed on; force it to drop the request.
    ReplyOwed,
    /// A routed message without a routing id at the head of its envelope.
    MissingRoute,
    /// A routing id that names no link of the socket (it closed, or never existed).
    UnknownRoute,
    /// A payload that is not a well-formed multipart message
    /// ([`super::multipart`]).
    Malformed,
    /// A protocol-specific reason.
    Other(&'static str),
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Refusal::NoRequestPending => "no request is pending: send a request first",
            Refusal::ReplierGone => "the link to the replier closed before the reply came",
            Refusal::NoRequestToReply => "no request to reply to: receive a request first",
            Refusal::ReplyAwaited => {
                "a reply is awaited on this link (force the unlink to cancel the request)"
            }
            Refusal::ReplyOwed => {
                "a reply is owed on this link (force the unlink to drop the request)"
            }
            Refusal::MissingRoute => "the message has no routing id at the head of its envelope",
            Refusal::UnknownRoute => "the routing id names no link of this socket",
            Refusal::Malformed => "the payload is not a well-formed multipart message",
            Refusal::Other(why) => why,
        })
    }
}

/// How a protocol changes an outgoing payload on its way to the link
/// ([`Protocol::rewrite_outgoing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rewrite {
    /// Sent as given.
    Unchanged,
    /// The first `n` bytes dropped (e.g. a router's routing id), the rest sent as given.
    Skip(usize),
    /// The bytes the protocol wrote into its `out` buffer sent instead.
    Replaced,
}

/// A socket type.
///
/// The socket layer does everything every socket does (links, handshake, credits, FIFO,
/// unlinking, events). A protocol only says who it talks to and routes messages:
///
/// * its id and name, and which peer protocols it links with;
/// * whether it sends and/or receives data (a socket that does not receive announces a
///   capacity of 0, so its peers can never send it data);
/// * which link an outgoing message takes ([`Route`]) and which link the next incoming
///   message comes from, looking at the links through a [`LinkSet`];
/// * optionally: metadata for the handshake, a check of the peer's metadata, hooks when a
///   link is established or closed, and its own control messages (kinds from
///   [`FIRST_CUSTOM_KIND`]), sent through [`Control`] and free of credits.
///
/// Protocols can be written outside this crate:
///
/// ```
/// use a3m_core::id::LinkIncarnation;
/// use a3m_core::socket::{LinkSet, Protocol, ProtocolId, RoundRobin, Route};
///
/// /// Sends to whichever linked peer has room, never receives.
/// struct Spray(RoundRobin);
///
/// impl Protocol for Spray {
///     fn id(&self) -> ProtocolId { 0x8010 }
///     fn name(&self) -> &str { "spray" }
///     fn is_compatible(&self, peer: ProtocolId) -> bool { peer == a3m_core::socket::PULL }
///     fn sends(&self) -> bool { true }
///     fn receives(&self) -> bool { false }
///     fn route_send(&mut self, links: &LinkSet<'_>, _payload: &[u8]) -> Route {
///         self.0.pick(links, |l| l.can_send()).map_or(Route::Blocked, Route::One)
///     }
///     fn route_recv(&mut self, _links: &LinkSet<'_>) -> Option<LinkIncarnation> { None }
/// }
/// ```
pub trait Protocol: Send {
    /// The protocol id sent in LINK and LINKREPLY.
    fn id(&self) -> ProtocolId;

    /// A short name for messages and logs.
    fn name(&self) -> &str;

    /// Whether this socket links with a peer of protocol `peer`. Both sides check, so a
    /// link exists only if each accepts the other.
    fn is_compatible(&self, peer: ProtocolId) -> bool;

    /// Whether the application may send data on this socket.
    fn sends(&self) -> bool;

    /// Whether the application may receive data on this socket.
    fn receives(&self) -> bool;

    /// Metadata sent with our LINK or LINKREPLY (empty by default).
    fn metadata(&self) -> &[u8] {
        &[]
    }

    /// A last check of a compatible peer before accepting a link; `Err` refuses it with
    /// that reason (fatal, the peer is told). Accepts by default.
    fn accept_link(
        &mut self,
        peer: &SocketId,
        peer_protocol: ProtocolId,
        metadata: &[u8],
    ) -> Result<(), String> {
        let _ = (peer, peer_protocol, metadata);
        Ok(())
    }

    /// Chooses where an outgoing data message goes.
    fn route_send(&mut self, links: &LinkSet<'_>, payload: &[u8]) -> Route;

    /// Chooses the link whose next message the application receives, if any can deliver.
    fn route_recv(&mut self, links: &LinkSet<'_>) -> Option<LinkIncarnation>;

    /// Whether a runtime may take messages off the links before the application asks for
    /// them, routing them with [`Protocol::route_recv`] ahead of time (default false: a
    /// protocol whose routing keeps state about the message the application takes, such as
    /// whom to reply to, must not allow it).
    fn receives_ahead(&self) -> bool {
        false
    }

    /// Whether a receive would succeed now (by default: the socket receives and some link
    /// has its next message).
    fn readable(&self, links: &LinkSet<'_>) -> bool {
        self.receives() && links.iter().any(|l| l.has_message())
    }

    /// Whether a send would succeed now (by default: the socket sends and some link has a
    /// credit).
    fn writable(&self, links: &LinkSet<'_>) -> bool {
        self.sends() && links.iter().any(|l| l.can_send())
    }

    /// A link was established.
    fn on_link_established(&mut self, link: LinkView<'_>, control: &mut Control) {
        let _ = (link, control);
    }

    /// A link closed (its queued messages were all taken, or the socket gave up on it).
    fn on_link_closed(&mut self, link: LinkIncarnation) {
        let _ = link;
    }

    /// A control message of this protocol arrived on an established link (in any order
    /// relative to the link's data). Ignored by default.
    fn on_control(&mut self, link: LinkView<'_>, kind: u8, body: &[u8], control: &mut Control) {
        let _ = (link, kind, body, control);
    }

    /// The links of [`Route::Selected`], chosen by the last [`Protocol::route_send`]
    /// (empty by default).
    fn selected(&self) -> &[LinkIncarnation] {
        &[]
    }

    /// Changes a payload routed to `link` before it is sent: unchanged by default. A router
    /// skips the routing id it was addressed by; a reply socket writes the request's
    /// envelope in front of the reply into `out` (a buffer the layer keeps for reuse).
    fn rewrite_outgoing(
        &mut self,
        link: LinkIncarnation,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Rewrite {
        let _ = (link, payload, out);
        Rewrite::Unchanged
    }

    /// A data message was accepted for sending on `link` (after [`Route::One`]).
    fn on_sent(&mut self, link: LinkIncarnation) {
        let _ = link;
    }

    /// Whether a receive may be attempted at all, before any link is looked at: `Err` fails
    /// it with that reason (a request socket with no request pending). Allowed by default.
    fn check_recv(&mut self) -> Result<(), Refusal> {
        Ok(())
    }

    /// The application took `payload` from `link`; the protocol may change it in place
    /// before the application sees it (a router prepends the routing id of `link`; a reply
    /// socket keeps the request's envelope). Unchanged by default.
    fn on_taken(&mut self, link: LinkIncarnation, payload: &mut Vec<u8>) {
        let _ = (link, payload);
    }

    /// Whether [`Protocol::on_taken`] changes payloads (then a receive into a caller's
    /// buffer is not offered: its length check would precede the change). False by default.
    fn rewrites_incoming(&self) -> bool {
        false
    }

    /// Whether a send may go through depends on the message (a router's routing id, a
    /// publisher's topic), not only on the socket's readiness: [`Protocol::writable`] then
    /// means "some send may go through", and a runtime wakes every blocked sender whenever
    /// the readiness may have changed, not just one (a woken sender whose message still
    /// cannot go would otherwise keep the wake-up from the one whose message can). False by
    /// default.
    fn send_depends_on_message(&self) -> bool {
        false
    }

    /// Whether the application may unlink `link` now (a request socket refuses the link its
    /// reply is awaited on; a forced unlink skips this check). Allowed by default.
    fn check_unlink(&self, link: LinkIncarnation) -> Result<(), Refusal> {
        let _ = link;
        Ok(())
    }

    /// A command from the application to the protocol ([`SocketLayer::command`]): a
    /// subscriber's subscribe or unsubscribe, a publisher's count of subscribers. The
    /// protocol may answer in `reply` (cleared before the call) and queue control messages.
    /// Refused by default.
    ///
    /// [`SocketLayer::command`]: super::SocketLayer::command
    fn on_command(
        &mut self,
        links: &LinkSet<'_>,
        command: &[u8],
        reply: &mut Vec<u8>,
        control: &mut Control,
    ) -> Result<(), Refusal> {
        let _ = (links, command, reply, control);
        Err(Refusal::Other("this socket type takes no commands"))
    }

    /// Takes the next message the protocol generated for the application (an xpub's
    /// subscription messages) into `out`; false if there is none. Such a protocol says so
    /// in [`Protocol::readable`]. None by default.
    fn take_generated(&mut self, out: &mut Vec<u8>, control: &mut Control) -> bool {
        let _ = (out, control);
        false
    }
}

/// The links of a socket that carry data (established, or unlinking with messages still
/// to take), as a protocol sees them.
#[derive(Debug, Clone, Copy)]
pub struct LinkSet<'a> {
    links: &'a BTreeMap<LinkIncarnation, Link>,
}

impl<'a> LinkSet<'a> {
    pub(crate) fn new(links: &'a BTreeMap<LinkIncarnation, Link>) -> Self {
        Self { links }
    }

    /// The links, in a fixed order (by incarnation).
    pub fn iter(&self) -> impl Iterator<Item = LinkView<'a>> + 'a {
        self.links.values().filter(|l| l.carries_data()).map(|link| LinkView { link })
    }

    /// One link, if it carries data.
    pub fn get(&self, link: LinkIncarnation) -> Option<LinkView<'a>> {
        self.links.get(&link).filter(|l| l.carries_data()).map(|link| LinkView { link })
    }

    /// How many links carry data.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether no link carries data.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The first link after `after` (wrapping around; from the start when `None`) for which
    /// `pred` holds: the step of a round robin.
    #[inline]
    pub fn next_after(
        &self,
        after: Option<LinkIncarnation>,
        mut pred: impl FnMut(&LinkView<'a>) -> bool,
    ) -> Option<LinkIncarnation> {
        // Most sockets have one link: skip the two range searches of the general case.
        if self.links.len() == 1 {
            let link = self.links.values().next()?;
            let view = LinkView { link };
            return (link.carries_data() && pred(&view)).then(|| view.key());
        }
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let end = after.map_or(Bound::Unbounded, Bound::Included);
        let tail = self.links.range((start, Bound::Unbounded));
        let head = self.links.range((Bound::Unbounded, end));
        tail.chain(head)
            .filter(|(_, l)| l.carries_data())
            .map(|(_, link)| LinkView { link })
            .find(|v| pred(v))
            .map(|v| v.key())
    }
}

/// One link as a protocol sees it.
#[derive(Debug, Clone, Copy)]
pub struct LinkView<'a> {
    link: &'a Link,
}

impl<'a> LinkView<'a> {
    pub(crate) fn new(link: &'a Link) -> Self {
        Self { link }
    }

    /// The link's key (our incarnation of it).
    pub fn key(&self) -> LinkIncarnation {
        self.link.local()
    }

    /// The peer socket.
    pub fn peer(&self) -> &'a SocketId {
        self.link.peer_id()
    }

    /// The peer's protocol id.
    pub fn peer_protocol(&self) -> ProtocolId {
        self.link.peer().map_or(0, |p| p.protocol)
    }

    /// The peer's metadata.
    pub fn peer_metadata(&self) -> &'a [u8] {
        self.link.peer().map_or(&[], |p| p.metadata.as_slice())
    }

    /// The link's phase (established or unlinking).
    pub fn phase(&self) -> LinkPhase {
        self.link.phase()
    }

    /// Whether the link is established (not unlinking).
    pub fn is_established(&self) -> bool {
        self.link.phase() == LinkPhase::Established
    }

    /// Whether a data message may be sent on it now.
    pub fn can_send(&self) -> bool {
        self.link.can_send()
    }

    /// Its send credits.
    pub fn credits(&self) -> i64 {
        self.link.credits()
    }

    /// Whether its next message in sequence is here.
    pub fn has_message(&self) -> bool {
        self.link.has_message()
    }

    /// Messages received on it and not yet taken.
    pub fn queued(&self) -> usize {
        self.link.queued()
    }
}

/// A round-robin cursor over links, for protocols that spread sends or receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundRobin {
    last: Option<LinkIncarnation>,
}

impl RoundRobin {
    /// A cursor that starts with the first link.
    pub const fn new() -> Self {
        Self { last: None }
    }

    /// The next link after the last one picked for which `pred` holds; remembers it.
    #[inline]
    pub fn pick(
        &mut self,
        links: &LinkSet<'_>,
        pred: impl FnMut(&LinkView<'_>) -> bool,
    ) -> Option<LinkIncarnation> {
        let next = links.next_after(self.last, pred)?;
        self.last = Some(next);
        Some(next)
    }
}

/// Why a control message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlError {
    /// The kind is below [`FIRST_CUSTOM_KIND`] (reserved for the core).
    ReservedKind(u8),
}

impl core::fmt::Display for ControlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ControlError::ReservedKind(k) => {
                write!(f, "message kind {k:#04x} is reserved for the core")
            }
        }
    }
}

/// Control messages a protocol wants sent; the socket layer sends them after the hook
/// returns, on links that still carry data.
#[derive(Debug, Default)]
pub struct Control {
    pending: Vec<(LinkIncarnation, u8, Vec<u8>)>,
}

impl Control {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Queues a control message of `kind` (at least [`FIRST_CUSTOM_KIND`]) on `link`.
    pub fn send(
        &mut self,
        link: LinkIncarnation,
        kind: u8,
        body: &[u8],
    ) -> Result<(), ControlError> {
        if kind < FIRST_CUSTOM_KIND {
            return Err(ControlError::ReservedKind(kind));
        }
        self.pending.push((link, kind, Vec::from(body)));
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub(crate) fn take(&mut self) -> Vec<(LinkIncarnation, u8, Vec<u8>)> {
        core::mem::take(&mut self.pending)
    }
}
