//! a3m: brokerless messaging with ZeroMQ-style sockets and exactly-once delivery.
//!
//! This is the crate applications add. A [`Node`] is one a3m instance: it owns a UDP socket
//! and a reader thread. Its [`Socket`]s link to sockets of other nodes (or of the same
//! node) and exchange messages over those links: exactly once, in order per link, with
//! per-link credit flow control, over a network that may lose, duplicate and reorder
//! datagrams, split for a while, or move a node to a new address.
//!
//! ```
//! use std::time::Duration;
//! // Node B has a pull socket "sink"; node A pushes to it.
//! let b = a3m::NodeBuilder::new("B").start()?;
//! let a = a3m::NodeBuilder::new("A").peer("B", b.local_addr()).start()?;
//! let sink = b.socket_with(
//!     "sink",
//!     Box::new(a3m::Pull::new()),
//!     a3m::SocketOptions::new().notify_if_none(true),
//! )?;
//! let source = a.push("source")?;
//! source.link("B/sink")?;
//! for i in 0..3u8 {
//!     source.send(&[i])?;
//! }
//! // Unlinking ends the stream once the sink has received everything.
//! source.close(Duration::from_secs(5))?;
//! let mut got = Vec::new();
//! loop {
//!     match sink.recv() {
//!         Ok(message) => got.extend(message),
//!         Err(a3m::Error::NoLinks) => break, // end of stream
//!         Err(e) => return Err(e),
//!     }
//! }
//! assert_eq!(got, [0, 1, 2]);
//! # Ok::<(), a3m::Error>(())
//! ```
//!
//! Socket types are [`Protocol`]s: [`Push`] and [`Pull`] are built in, and applications
//! can write their own ([`Node::socket`] takes any). Sockets are `Send + Sync`; blocking
//! calls have timeout and non-blocking variants, and several sockets can be waited on at
//! once with a [`Poller`] or [`poll()`].
//!
//! # Socket patterns
//!
//! The patterns ZeroMQ users know come as typed handles, each with only the calls that make
//! sense for it (thesis chapter 5):
//!
//! | pattern | made by | links with | what it guarantees |
//! |---|---|---|---|
//! | pipeline | [`Node::push`], [`Node::pull`] | pull, push | round robin; fair queuing |
//! | request-reply | [`Node::req`] → [`ReqSocket`] | rep, router | one request in flight; exactly-once request and reply |
//! | | [`Node::rep`] → [`RepSocket`] | req, dealer | one request at a time; the reply goes where the request came from |
//! | | [`Node::dealer`] → [`DealerSocket`] | rep, router, dealer | any order; envelopes pass through |
//! | | [`Node::router`] → [`RouterSocket`] | req, dealer, router | replies by routing id, through the exact link |
//!
//! Their messages are [multipart](a3m_core::socket::multipart): several frames (and an
//! envelope of routing ids) sent and received atomically by one call.
//!
//! # Socket options by type
//!
//! Each socket type takes only the [`SocketOptions`] it uses; setting another one
//! ([`Node::socket_with`], [`Socket::set_options`], [`Socket::set_capacity`]...) fails with
//! [`Error::Unsupported`] naming the option. A type that does not receive has no receive
//! capacity (thesis §5.1.1):
//!
//! | option                 | [`Push`] | [`Pull`] | your [`Protocol`]              |
//! |------------------------|:--------:|:--------:|--------------------------------|
//! | `capacity` (0 pauses)  | no       | yes      | if [`Protocol::receives`]      |
//! | `credit_batch_percent` | no       | yes      | if [`Protocol::receives`]      |
//! | `link_retry`           | yes      | yes      | yes                            |
//! | `linger`               | yes      | yes      | yes                            |
//! | `notify_if_none`       | yes      | yes      | yes                            |
//! | `max_links`            | yes      | yes      | yes                            |
//! | `accept_incoming`      | yes      | yes      | yes                            |
//!
//! # Links that say why
//!
//! A link being made is listed by [`Socket::links`] with its attempts and the reason the
//! last one failed, and every failed attempt is a [`LinkEvent::AttemptFailed`]: no answer
//! from the address (reported after the first retry interval), no answer because the two
//! nodes disagree on sealing ([`LinkFailure::SealingMismatch`]: one has a key, the other
//! not), an unknown socket at the peer, an incompatible protocol, or another refusal with the
//! peer's reason. A [`Socket::wait_for_link`] that times out across a sealing mismatch fails
//! with [`Error::LinkTimeout`], which says so, rather than a bare [`Error::Timeout`].
#![forbid(unsafe_code)]

mod error;
mod handle;
mod key_hash;
pub mod keyfile;
mod node;
mod options;
mod patterns;
mod poll;
mod pubsub;
mod reader;
mod reports;
mod runtime;
mod socket;
mod spin;

pub use a3m_core as core;
pub use a3m_core::id::{LinkIncarnation, NodeId, SocketId, TagId};
pub use a3m_core::link::{AttemptFailure, Backoff, LinkPhase, RefusalCode};
pub use a3m_core::node::{NodeConfig, NodeStats};
pub use a3m_core::poll::{Events, Interest, PollEvent, PollId, PollRequest, Pollable};
pub use a3m_core::socket::{
    Control, LayerConfig, LayerStats, LinkSet, LinkView, PUB, PULL, PUSH, Protocol, ProtocolId,
    Pub, Pull, Push, Refusal, Rewrite, RoundRobin, Route, SUB, Sub, XPUB, XSUB,
};
pub use error::{Error, Result};
pub use node::{CloseReport, DEFAULT_SPIN, Delivery, Node, NodeBuilder};
pub use options::SocketOptions;
pub use patterns::{DealerSocket, RepSocket, ReqSocket, RoutedMessage, RouterSocket};
pub use poll::{Poller, poll};
pub use pubsub::{PubSocket, Publication, SubSocket, Subscription, XPubSocket, XSubSocket};
pub use reports::{LinkEvent, LinkFailure, LinkTimeout, SocketCloseReport};
pub use socket::{IntoSocketId, Lifecycle, LinkInfo, Socket};
