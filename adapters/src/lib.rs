//! a3m: brokerless messaging with exactly-once delivery.
//!
//! This is the crate applications add. A [`Node`] is one a3m instance: it owns a UDP socket
//! and a reader thread, and exchanges messages with other nodes exactly once, over a network
//! that may lose, duplicate and reorder datagrams, split for a while, or move a node to a new
//! address.
//!
//! ```no_run
//! use std::time::Duration;
//! let b = a3m::NodeBuilder::new("B").start()?;
//! let a = a3m::NodeBuilder::new("A").peer("B", b.local_addr()).start()?;
//! a.send_to("B", b"hello")?;
//! let msg = b.recv_timeout(Duration::from_secs(5))?;
//! assert_eq!(msg.payload, b"hello");
//! # Ok::<(), a3m::Error>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod node;

pub use a3m_core as core;
pub use a3m_core::id::{NodeId, SocketId, TagId};
pub use a3m_core::node::{NodeConfig, NodeStats};
pub use error::{Error, Result};
pub use node::{CloseReport, Delivery, Node, NodeBuilder};
