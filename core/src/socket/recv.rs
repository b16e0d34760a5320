//! The receive path: the message the socket's protocol picks, handed to the application.

use alloc::vec::Vec;

use crate::id::{LinkIncarnation, SocketId};

use super::shared::Sink;
use super::{LinkSet, SocketError, SocketKey, SocketLayer};

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

impl SocketLayer {
    /// The link the socket's protocol takes the next message from: [`SocketError::NoLinks`]
    /// when the socket has no link (end of stream once it had some), `WouldBlock` when none
    /// has a message.
    fn route_recv(&mut self, key: SocketKey) -> Result<LinkIncarnation, SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        if !s.protocol.receives() {
            return Err(SocketError::Unsupported);
        }
        if let Err(why) = s.protocol.check_recv() {
            // Reporting may change the readiness (a request socket's ReplierGone is told once).
            s.mark_ready(key, shared);
            return Err(SocketError::Refused(why));
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
        let mut payload = link.take(&mut sink).ok_or(SocketError::WouldBlock)?;
        s.protocol.on_taken(inc, &mut payload);
        if !shared.is_quiet() {
            self.after(key);
        }
        Ok(Received { payload, link: inc, peer })
    }

    /// Like [`SocketLayer::recv`], copying the payload into `buf` (the message stays queued
    /// if `buf` is too small). Returns its length and link. [`SocketError::Unsupported`] for
    /// a protocol that changes the payloads it hands out ([`Protocol::rewrites_incoming`]).
    ///
    /// [`Protocol::rewrites_incoming`]: super::Protocol::rewrites_incoming
    pub fn recv_into(
        &mut self,
        key: SocketKey,
        buf: &mut [u8],
    ) -> Result<(usize, LinkIncarnation), SocketError> {
        if self.socket(key).is_some_and(|s| s.protocol.rewrites_incoming()) {
            return Err(SocketError::Unsupported);
        }
        let inc = self.route_recv(key)?;
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        let link = s.links.get_mut(&inc).ok_or(SocketError::WouldBlock)?;
        let needed = link.peek_message().ok_or(SocketError::WouldBlock)?.len();
        let dst = buf.get_mut(..needed).ok_or(SocketError::BufferTooSmall { needed })?;
        let mut sink = Sink { tag: &s.id.tag, shared };
        let mut payload = link.take(&mut sink).ok_or(SocketError::WouldBlock)?;
        s.protocol.on_taken(inc, &mut payload);
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
}
