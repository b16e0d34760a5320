//! Sockets: the socket core, the [`Protocol`] trait for socket types, and the
//! [`SocketLayer`] that owns the sockets of a node (thesis §4.3.3–§4.3.9, §4.8–§4.10, §5).
//!
//! The layer is sans-I/O like the rest of the core. It sits on the exactly-once transport
//! (`crate::node`): every message it produces is one transport payload, delivered once
//! but in any order. Its inputs and outputs:
//!
//! ```text
//! layer.handle_message(now, from, &msg)   // a socket message arrived (or handle_payload)
//! layer.handle_timeout(now)               // a link retry or a close linger is due
//! layer.poll_timeout() -> Option<Instant>
//! layer.poll_outgoing() -> Option<Outgoing>            // encoded message + destination node
//! layer.poll_event() -> Option<SocketEvent>            // link established/refused/closed, ...
//! layer.poll_ready() -> Option<SocketKey>              // a socket's readiness may have changed
//! ```
//!
//! and the application's calls: [`SocketLayer::create_socket`], [`SocketLayer::link`],
//! [`SocketLayer::unlink`], [`SocketLayer::close`], [`SocketLayer::send`],
//! [`SocketLayer::recv`], [`SocketLayer::readiness`]. None of them blocks: a send without a
//! credit fails with [`SocketError::WouldBlock`], one on a socket without any link with
//! [`SocketError::NoLinks`]; a blocking layer waits on the readiness notifications
//! ([`crate::poll::Events`]: IN, OUT, HUP once closed) or, for credits, on a
//! [`crate::ticket::CreditCoordinator`] fed from [`SocketEvent::Credits`].
//!
//! # Messages
//!
//! Link management (LINK, LINKREPLY, UNLINK), FLOW and custom control messages travel
//! without credits; DATA needs one ([`crate::flow`]) and is delivered in order per link
//! ([`crate::link::InOrderQueue`]). A message longer than [`LayerConfig::max_fragment`]
//! travels as several DATA messages of one link, a credit each, and is delivered whole or
//! not at all, up to [`LayerConfig::max_payload`] (see "Messages larger than one DATA" in
//! [`crate::link`]). A LINK for a tag with no socket is answered by an ERROR
//! socket-not-found built as if the missing socket replied; other messages for unknown
//! sockets or old links are dropped and counted ([`LayerStats`]).
//!
//! # End of stream
//!
//! A socket is *link-free* when it has no link in any state ([`SocketLayer::has_links`];
//! [`SocketEvent::LinkFree`] when the last one goes). Since a link closes only after every
//! message sent on it was received, a pull socket whose upstream unlinked becomes link-free
//! exactly when it has received everything: [`SocketLayer::recv`] then fails with
//! [`SocketError::NoLinks`], the end-of-stream signal of thesis §7.3.
//!
//! # Inside
//!
//! One concept per file; this one holds [`SocketLayer`] and re-exports the rest:
//! `sockets` (a socket: creating, configuring, closing, settling it after each operation),
//! `links` (making and unlinking links, what they report, [`LinkStatus`]), `send` and
//! `recv` (the data paths), `incoming` (messages from the transport, the traffic of
//! established links), `route` (the DATA route cache), `timers` (retries, lingers),
//! `events` ([`SocketEvent`], readiness), `outbox` (messages for the transport, buffer
//! pool), `shared` (what every socket's links share, [`LayerStats`]), `error`, `options`,
//! `protocol`, [`multipart`] (frames and envelopes in one message), and the socket types:
//! `push_pull`, `req_rep`, `dealer_router`, [`pub_sub`] (with its trie, `topics`, and the
//! application's commands to a protocol, `command`).
//!
//! # Example
//!
//! Two nodes' layers, with the transport replaced by handing messages over in order:
//!
//! ```
//! use a3m_core::id::{NodeId, TagId};
//! use a3m_core::socket::{LayerConfig, Pull, Push, SocketError, SocketLayer};
//! use a3m_core::time::Instant;
//!
//! let now = Instant::ZERO;
//! let mut a = SocketLayer::new(NodeId::new("A").unwrap(), LayerConfig::DEFAULT);
//! let mut b = SocketLayer::new(NodeId::new("B").unwrap(), LayerConfig::DEFAULT);
//! let src = a.create_socket(TagId::new("src").unwrap(), Box::new(Push::new())).unwrap();
//! let sink = b.create_socket(TagId::new("sink").unwrap(), Box::new(Pull::new())).unwrap();
//! a.link(src, "B/sink".parse().unwrap()).unwrap();
//!
//! // What the node does: submit outgoing messages, hand deliveries to the layer.
//! fn pump(from: &mut SocketLayer, to: &mut SocketLayer) -> usize {
//!     let mut n = 0;
//!     while let Some(out) = from.poll_outgoing() {
//!         to.handle_payload(Instant::ZERO, &from.node().clone(), &out.bytes).unwrap();
//!         from.recycle(out.bytes);
//!         n += 1;
//!     }
//!     n
//! }
//! while pump(&mut a, &mut b) + pump(&mut b, &mut a) > 0 {}
//!
//! a.send(src, b"hello").unwrap();
//! a.close(now, src).unwrap();
//! while pump(&mut a, &mut b) + pump(&mut b, &mut a) > 0 {}
//! assert_eq!(b.recv(sink).unwrap().payload, b"hello");
//! while pump(&mut a, &mut b) + pump(&mut b, &mut a) > 0 {}
//! // The source closed and its link is gone: end of stream.
//! assert_eq!(b.recv(sink), Err(SocketError::NoLinks));
//! ```

mod command;
mod dealer_router;
mod error;
mod events;
mod incoming;
mod links;
pub mod multipart;
mod options;
mod outbox;
mod protocol;
pub mod pub_sub;
mod push_pull;
mod recv;
mod req_rep;
mod route;
mod send;
mod shared;
mod sockets;
mod timers;
mod topics;

pub use dealer_router::{DEALER, Dealer, ROUTER, Router};
pub use error::SocketError;
pub use events::SocketEvent;
pub use links::LinkStatus;
pub use options::{LayerConfig, SocketOptions};
pub use outbox::{Offer, Outgoing};
pub use protocol::{
    Control, ControlError, LinkSet, LinkView, Protocol, ProtocolId, Refusal, Rewrite, RoundRobin,
    Route,
};
pub use pub_sub::{PUB, Pub, SUB, Sub, XPUB, XSUB};
pub use push_pull::{PULL, PUSH, Pull, Push};
pub use recv::Received;
pub use req_rep::{REP, REQ, Rep, Req};
pub use shared::LayerStats;
pub use topics::Topics;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::fmt;

use crate::id::{NodeId, TagId};
use outbox::Outbox;
use shared::Shared;
use sockets::Socket;

/// Names a socket of a [`SocketLayer`]. A key of a closed socket never names another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketKey {
    index: u32,
    generation: u32,
}

struct Slot {
    generation: u32,
    socket: Option<Socket>,
}

/// The sockets of one node. See the [module docs](self).
pub struct SocketLayer {
    node: NodeId,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_tag: BTreeMap<TagId, SocketKey>,
    live: usize,
    shared: Shared,
}

impl fmt::Debug for SocketLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketLayer")
            .field("node", &self.node)
            .field("sockets", &self.live)
            .field("stats", &self.shared.stats)
            .finish_non_exhaustive()
    }
}

impl SocketLayer {
    /// An empty layer for node `node`.
    pub fn new(node: NodeId, config: LayerConfig) -> Self {
        Self {
            node,
            slots: Vec::new(),
            free: Vec::new(),
            by_tag: BTreeMap::new(),
            live: 0,
            shared: Shared {
                routes: Default::default(),
                config,
                next_incarnation: 1,
                out: Outbox::new(config.pooled_buffers),
                link_events: Vec::new(),
                events: VecDeque::new(),
                ready: VecDeque::new(),
                timers: BTreeSet::new(),
                control: Control::new(),
                stats: LayerStats::default(),
            },
        }
    }

    /// The node this layer belongs to.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The layer's configuration.
    pub fn config(&self) -> &LayerConfig {
        &self.shared.config
    }

    /// The layer's counters.
    pub fn stats(&self) -> &LayerStats {
        &self.shared.stats
    }

    #[inline]
    fn socket(&self, key: SocketKey) -> Option<&Socket> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.socket.as_ref()
    }

    #[inline]
    fn parts(&mut self, key: SocketKey) -> Option<(&mut Socket, &mut Shared)> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        Some((slot.socket.as_mut()?, &mut self.shared))
    }
}
