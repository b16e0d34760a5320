//! One socket of the layer: its protocol, options and links; creating, configuring and
//! closing it, and settling it after each operation.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::id::{LinkIncarnation, SocketId, TagId};
use crate::link::Link;
use crate::time::Instant;

use super::shared::{Shared, Sink};
use super::timers::LINGER;
use super::{Protocol, Slot, SocketError, SocketEvent, SocketKey, SocketLayer, SocketOptions};

/// One socket: its protocol, options and links.
pub(super) struct Socket {
    pub(super) id: SocketId,
    pub(super) protocol: Box<dyn Protocol>,
    pub(super) options: SocketOptions,
    pub(super) closing: bool,
    pub(super) links: BTreeMap<LinkIncarnation, Link>,
    pub(super) by_peer: BTreeMap<SocketId, LinkIncarnation>,
    /// Queued in `Shared::ready`.
    pub(super) ready_queued: bool,
    /// Where the protocol rewrites outgoing payloads ([`super::Rewrite::Replaced`]), kept
    /// for reuse.
    pub(super) scratch: Vec<u8>,
}

impl Socket {
    pub(super) fn link_capacity(&self) -> u32 {
        if self.protocol.receives() { self.options.capacity } else { 0 }
    }

    #[inline]
    pub(super) fn mark_ready(&mut self, key: SocketKey, shared: &mut Shared) {
        if !self.ready_queued {
            self.ready_queued = true;
            shared.ready.push_back(key);
        }
    }

    /// Reacts to what the links reported, sends protocol control messages; repeats until
    /// quiet (a relink reports events of its own).
    pub(super) fn settle(&mut self, key: SocketKey, shared: &mut Shared) {
        let mut touched = false;
        while !shared.link_events.is_empty() || !shared.control.is_empty() {
            touched = true;
            let mut events = core::mem::take(&mut shared.link_events);
            for (inc, event) in events.drain(..) {
                self.on_link_event(key, inc, event, shared);
            }
            if shared.link_events.is_empty() {
                // Keep the allocation for next time.
                shared.link_events = events;
            }
            for (inc, kind, body) in shared.control.take() {
                if let Some(link) = self.links.get_mut(&inc) {
                    let mut sink = Sink { tag: &self.id.tag, shared };
                    link.send_control(kind, &body, &mut sink);
                }
            }
        }
        if touched {
            self.mark_ready(key, shared);
        }
    }
}

impl SocketLayer {
    /// Creates a socket with default options.
    pub fn create_socket(
        &mut self,
        tag: TagId,
        protocol: Box<dyn Protocol>,
    ) -> Result<SocketKey, SocketError> {
        self.create_socket_with(tag, protocol, SocketOptions::DEFAULT)
    }

    /// Creates a socket: it takes link requests at once. [`SocketError::TooLarge`] if the
    /// protocol's metadata is longer than [`LayerConfig::max_fragment`] (LINK and
    /// LINKREPLY carry it in one message).
    ///
    /// [`LayerConfig::max_fragment`]: super::LayerConfig::max_fragment
    pub fn create_socket_with(
        &mut self,
        tag: TagId,
        protocol: Box<dyn Protocol>,
        options: SocketOptions,
    ) -> Result<SocketKey, SocketError> {
        if self.by_tag.contains_key(&tag) {
            return Err(SocketError::TagInUse);
        }
        if protocol.metadata().len() > self.shared.config.max_fragment {
            return Err(SocketError::TooLarge);
        }
        if self.live >= self.shared.config.max_sockets {
            return Err(SocketError::TooManySockets);
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index =
                    u32::try_from(self.slots.len()).map_err(|_| SocketError::TooManySockets)?;
                self.slots.push(Slot { generation: 0, socket: None });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        let key = SocketKey { index, generation: slot.generation };
        slot.socket = Some(Socket {
            id: SocketId::new(self.node.clone(), tag.clone()),
            protocol,
            options,
            closing: false,
            links: BTreeMap::new(),
            by_peer: BTreeMap::new(),
            ready_queued: false,
            scratch: Vec::new(),
        });
        self.by_tag.insert(tag, key);
        self.shared.routes.clear();
        self.live += 1;
        Ok(key)
    }

    /// The open (or closing) socket with this tag.
    pub fn socket_by_tag(&self, tag: &TagId) -> Option<SocketKey> {
        self.by_tag.get(tag).copied()
    }

    /// The global id of a socket.
    pub fn socket_id(&self, key: SocketKey) -> Option<&SocketId> {
        self.socket(key).map(|s| &s.id)
    }

    /// A socket's options.
    pub fn options(&self, key: SocketKey) -> Option<&SocketOptions> {
        self.socket(key).map(|s| &s.options)
    }

    /// Replaces a socket's options (link options apply to links created from now on).
    pub fn set_options(
        &mut self,
        key: SocketKey,
        options: SocketOptions,
    ) -> Result<(), SocketError> {
        let (s, _) = self.parts(key).ok_or(SocketError::Closed)?;
        s.options = options;
        Ok(())
    }

    /// A socket's protocol.
    pub fn protocol(&self, key: SocketKey) -> Option<&dyn Protocol> {
        self.socket(key).map(|s| &*s.protocol)
    }

    /// A socket's protocol, to call protocol-specific methods.
    pub fn protocol_mut(&mut self, key: SocketKey) -> Option<&mut (dyn Protocol + 'static)> {
        self.parts(key).map(|(s, _)| &mut *s.protocol)
    }

    /// Whether the socket is closing (it stays until its links have closed).
    pub fn is_closing(&self, key: SocketKey) -> bool {
        self.socket(key).is_none_or(|s| s.closing)
    }

    /// Closes a socket: unlinks every link and refuses new ones. The socket leaves the layer
    /// ([`SocketEvent::Closed`]) once its links have closed, or when the linger option
    /// expires (dropping what was not taken). Receiving stays possible meanwhile.
    pub fn close(&mut self, now: Instant, key: SocketKey) -> Result<(), SocketError> {
        let (s, shared) = self.parts(key).ok_or(SocketError::Closed)?;
        if s.closing {
            return Ok(());
        }
        s.closing = true;
        let links: Vec<LinkIncarnation> = s.links.keys().copied().collect();
        for inc in links {
            if let Some(link) = s.links.get_mut(&inc) {
                let mut sink = Sink { tag: &s.id.tag, shared };
                link.unlink(now, &s.options.retry, &mut sink);
            }
        }
        s.mark_ready(key, shared);
        match s.options.linger {
            Some(linger) if linger.is_zero() => self.abort_links(key),
            Some(linger) => {
                shared.timers.insert((now + linger, key, LINGER));
            }
            None => {}
        }
        self.after(key);
        Ok(())
    }

    pub(super) fn abort_links(&mut self, key: SocketKey) {
        let Some((s, shared)) = self.parts(key) else { return };
        for link in s.links.values_mut() {
            let mut sink = Sink { tag: &s.id.tag, shared };
            link.abort(&mut sink);
        }
        self.after(key);
    }

    /// Settles a socket after an operation; removes it once closed.
    pub(super) fn after(&mut self, key: SocketKey) {
        let Some((s, shared)) = self.parts(key) else { return };
        s.settle(key, shared);
        if s.closing && s.links.is_empty() {
            self.finalize(key);
        }
    }

    pub(super) fn finalize(&mut self, key: SocketKey) {
        let Some(slot) = self.slots.get_mut(key.index as usize) else { return };
        let Some(socket) = slot.socket.take() else { return };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.by_tag.remove(&socket.id.tag);
        self.shared.routes.clear();
        self.live -= 1;
        self.shared.emit(SocketEvent::Closed { socket: key });
        self.shared.ready.push_back(key);
    }
}
