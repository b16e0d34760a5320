//! a3m: brokerless messaging with exactly-once delivery.
//!
//! This crate is the one applications add. It re-exports the core types.
#![forbid(unsafe_code)]

pub use a3m_core as core;
