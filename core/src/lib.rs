//! a3m-core: the sans-I/O, `no_std` core of a3m.
//!
//! Everything here is a plain state machine: it never reads a clock, opens a socket,
//! spawns a thread or blocks. Callers feed inputs (datagrams, the current time) and
//! drain outputs (datagrams to send, the next deadline). See `DESIGN.md`.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod id;
pub mod time;
pub mod wire;
