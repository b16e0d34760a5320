//! Test support for a3m: the deterministic network simulator lives here.

pub mod relay;
pub mod sim;
