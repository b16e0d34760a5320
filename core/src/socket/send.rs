//! The send path: data messages routed by the socket's protocol or sent on one link, and
//! protocol control messages.

use crate::id::LinkIncarnation;
use crate::link::{Link, LinkPhase};
use crate::wire::message;

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
