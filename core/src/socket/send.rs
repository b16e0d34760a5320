//! The send path: data messages routed by the socket's protocol or sent on one link, and
//! protocol control messages.

use alloc::collections::BTreeMap;
use core::ops::Bound;

use crate::id::{LinkIncarnation, TagId};
use crate::link::{Link, LinkPhase, LinkSink};
use crate::wire::{self, message, message::FanoutDestination};

use super::shared::Sink;
use super::{LinkSet, Rewrite, Route, SocketError, SocketKey, SocketLayer};

impl SocketLayer {
    /// The socket of `key` and the shared state, if the socket may send a data message of
    /// `len` bytes: open, of a protocol that sends, and `len` within the largest message.
    #[inline]
    fn sender(
        &mut self,
        key: SocketKey,
        len: usize,
    ) -> Result<(&mut super::Socket, &mut super::shared::Shared), SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        if s.closing {
            return Err(SocketError::Closed);
        }
        if !s.protocol.sends() {
            return Err(SocketError::Unsupported);
        }
        if len > shared.config.max_payload {
            return Err(SocketError::TooLarge);
        }
        Ok((s, shared))
    }

    /// Sends a data message where the socket's protocol routes it. Never blocks:
    /// [`SocketError::WouldBlock`] when no link can take it now, [`SocketError::NoLinks`]
    /// when the socket has no link at all, [`SocketError::TooLarge`] beyond
    /// [`LayerConfig::max_payload`]. A message longer than [`LayerConfig::max_fragment`]
    /// goes in fragments ([`Link::send_data`]): it is accepted whole (the link keeps what
    /// its credits do not cover yet) and its link takes no other message until the last
    /// fragment has left.
    ///
    /// [`Link::send_data`]: crate::link::Link::send_data
    /// [`LayerConfig::max_payload`]: super::LayerConfig::max_payload
    /// [`LayerConfig::max_fragment`]: super::LayerConfig::max_fragment
    pub fn send(&mut self, key: SocketKey, payload: &[u8]) -> Result<(), SocketError> {
        let (s, shared) = self.sender(key, payload.len())?;
        let route = s.protocol.route_send(&LinkSet::new(&s.links), payload);
        match route {
            Route::One(inc) => {
                let Some(link) = s.links.get_mut(&inc) else {
                    return Err(SocketError::WouldBlock);
                };
                let bytes = match s.protocol.rewrite_outgoing(inc, payload, &mut s.scratch) {
                    Rewrite::Unchanged => payload,
                    Rewrite::Skip(n) => payload.get(n..).ok_or(SocketError::TooLarge)?,
                    Rewrite::Replaced => &s.scratch,
                };
                if bytes.len() > shared.config.max_payload {
                    return Err(SocketError::TooLarge);
                }
                let fragment = shared.config.max_fragment;
                let mut sink = Sink { tag: &s.id.tag, shared };
                let used = link.send_data(bytes, fragment, &mut sink);
                if used == 0 {
                    return Err(SocketError::WouldBlock);
                }
                shared.credit(key, inc, -i64::from(used));
                s.protocol.on_sent(inc);
            }
            Route::Every | Route::Selected => {
                let every = route == Route::Every;
                let selected = s.protocol.selected();
                let chosen = |inc: &LinkIncarnation, l: &Link| {
                    l.phase() == LinkPhase::Established && (every || selected.contains(inc))
                };
                let mut any = false;
                for (inc, l) in &s.links {
                    if chosen(inc, l) {
                        any = true;
                        if !l.can_send() {
                            return Err(SocketError::WouldBlock);
                        }
                    }
                }
                if every && !any {
                    return Err(if s.links.is_empty() {
                        SocketError::NoLinks
                    } else {
                        SocketError::WouldBlock
                    });
                }
                let fragment = shared.config.max_fragment;
                if payload.len() <= fragment {
                    send_fanned_out(&mut s.links, &s.id.tag, shared, key, &chosen, payload);
                    return Ok(());
                }
                for (inc, link) in s.links.iter_mut() {
                    if !chosen(inc, link) {
                        continue;
                    }
                    let mut sink = Sink { tag: &s.id.tag, shared };
                    let used = link.send_data(payload, fragment, &mut sink);
                    shared.credit(key, *inc, -i64::from(used));
                }
            }
            Route::Blocked if s.links.is_empty() => return Err(SocketError::NoLinks),
            Route::Blocked => return Err(SocketError::WouldBlock),
            Route::Refused(why) => return Err(SocketError::Refused(why)),
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
        let (s, shared) = self.sender(key, payload.len())?;
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
}

/// How many links one round of [`send_fanned_out`] claims.
const FANOUT_BATCH: usize = 32;
// A `u32` marks which links of a batch were sent.
const _: () = assert!(FANOUT_BATCH <= 32);

/// Sends a one-fragment `payload` on every link `chosen` accepts (all of which can send):
/// links whose peers are on one node get one DATA_FANOUT between them (per batch of
/// [`FANOUT_BATCH`] links) instead of a DATA each (see "Fan-out" in [`message`]), each still with its
/// own credit and sequence number.
fn send_fanned_out(
    links: &mut BTreeMap<LinkIncarnation, Link>,
    tag: &TagId,
    shared: &mut super::shared::Shared,
    key: SocketKey,
    chosen: &impl Fn(&LinkIncarnation, &Link) -> bool,
    payload: &[u8],
) {
    // A fan-out must fit where one DATA of a full fragment fits.
    let limit = shared.config.max_fragment + message::DATA_PREFIX_MAX;
    let mut after: Option<LinkIncarnation> = None;
    loop {
        let mut claimed: heapless::Vec<(LinkIncarnation, u64), FANOUT_BATCH> = heapless::Vec::new();
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        for (inc, link) in links.range_mut((start, Bound::Unbounded)) {
            if claimed.is_full() {
                break;
            }
            if !chosen(inc, link) {
                continue;
            }
            if let Some(seq) = link.claim_data() {
                // Cannot fail: the batch was checked not full.
                let _ = claimed.push((*inc, seq));
                shared.credit(key, *inc, -1);
            }
        }
        let Some(&(last, _)) = claimed.last() else { return };
        after = Some(last);
        let tag_id = tag;
        let tag = tag.as_str();
        // Bit k set: claimed[k] is in a message already.
        let mut done: u32 = 0;
        for i in 0..claimed.len() {
            if done & (1 << i) != 0 {
                continue;
            }
            let Some(first) = links.get(&claimed[i].0) else { continue };
            let node = &first.peer_id().node;
            let mut destinations: heapless::Vec<FanoutDestination<'_>, FANOUT_BATCH> =
                heapless::Vec::new();
            let mut len = 2 + tag.len() + 2 + payload.len();
            for (k, &(inc, seq)) in claimed.iter().enumerate().skip(i) {
                let Some(link) = links.get(&inc) else { continue };
                let peer = link.peer_id();
                if done & (1 << k) != 0 || peer.node != *node {
                    continue;
                }
                let d = FanoutDestination { dst_tag: peer.tag.as_str(), link: inc, seq };
                let more = 1 + d.dst_tag.len() + 5 + wire::varint_len(seq);
                if !destinations.is_empty() && len + more > limit {
                    // The rest for this node go in the next message.
                    break;
                }
                len += more;
                let _ = destinations.push(d);
                done |= 1 << k;
            }
            let many = match destinations.as_slice() {
                [] => continue,
                [one] => {
                    // A plain DATA, the way every other one goes.
                    let peer = first.peer_id();
                    let body = message::Body::Data { seq: one.seq, payload };
                    Sink { tag: tag_id, shared }.send(peer, one.link, body);
                    continue;
                }
                many => many,
            };
            if shared.out.push_fanout(node, tag, many, payload) {
                shared.stats.messages_out += 1;
            } else {
                shared.stats.encode_failures += 1;
            }
        }
    }
}
