//! a3m-core: the sans-I/O, `no_std` core of a3m.
//!
//! Everything here is a plain state machine: it never reads a clock, opens a socket,
//! spawns a thread or blocks. Callers feed inputs (datagrams, the current time) and
//! drain outputs (datagrams to send, the next deadline). See `DESIGN.md`.
//!
//! Features: `alloc` enables the parts that need a heap (the exactly-once sessions and the
//! node); `std` adds `std::error::Error` impls and std lock types.
#![no_std]
// Denied, not forbidden: `seal::ghash` has one module of x86-64 intrinsics that allows it,
// with the proof of soundness in its comments.
#![deny(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(feature = "std", loom))]
extern crate std;

#[cfg(feature = "alloc")]
pub mod eo;
#[cfg(feature = "alloc")]
pub mod flow;
pub mod id;
#[cfg(feature = "alloc")]
pub mod link;
#[cfg(feature = "alloc")]
pub mod node;
pub mod poll;
pub mod seal;
#[cfg(feature = "alloc")]
pub mod socket;
pub mod sync;
pub mod ticket;
pub mod time;
pub mod wait;
pub mod wire;
