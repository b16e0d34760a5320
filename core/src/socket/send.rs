//! The send path: data messages routed by the socket's protocol or sent on one link, and
//! protocol control messages.

use crate::id::LinkIncarnation;
use crate::link::LinkPhase;
use crate::wire::message;

use super::shared::Sink;
use super::{LinkSet, Route, SocketError, SocketKey, SocketLayer};

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
