//! Helpers shared by the `socket_*` and `sealed_*` acceptance tests: nodes on UDP loopback
//! and numbered messages.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use a3m::{Node, NodeBuilder, Pull, Push, Socket, SocketOptions};

/// How long a test waits for something that should happen (generous: machines are slow).
pub const WAIT: Duration = Duration::from_secs(30);

/// A short wait for something that must not happen.
pub const BRIEF: Duration = Duration::from_millis(50);

/// An ephemeral port on the IPv4 loopback address.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A node builder bound to an ephemeral loopback port, sealing with `key` if there is one.
pub fn sealed_builder(id: &str, key: Option<[u8; 32]>) -> NodeBuilder {
    let builder = NodeBuilder::new(id).bind(loopback());
    match key {
        Some(key) => builder.psk(key),
        None => builder,
    }
}

/// A node on loopback.
pub fn node(id: &str) -> Node {
    NodeBuilder::new(id).linger(Duration::from_secs(5)).start().expect("node starts")
}

/// A node on loopback that knows where `peer` lives.
pub fn node_knowing(id: &str, peer: &Node) -> Node {
    NodeBuilder::new(id)
        .peer(peer.id().as_str(), peer.local_addr())
        .linger(Duration::from_secs(5))
        .start()
        .expect("node starts")
}

/// A pull socket with `options`.
pub fn pull(node: &Node, tag: &str, options: SocketOptions) -> Socket {
    node.socket_with(tag, Box::new(Pull::new()), options).expect("pull socket")
}

/// A push socket with `options`.
pub fn push(node: &Node, tag: &str, options: SocketOptions) -> Socket {
    node.socket_with(tag, Box::new(Push::new()), options).expect("push socket")
}

/// Message `n`: its number in the first 8 bytes, padded to `size`.
pub fn numbered(n: u64, size: usize) -> Vec<u8> {
    let mut m = vec![0x5A; size.max(8)];
    m[..8].copy_from_slice(&n.to_le_bytes());
    m
}

/// The number of a message made by [`numbered`].
pub fn number(message: &[u8]) -> u64 {
    u64::from_le_bytes(message[..8].try_into().expect("a numbered message"))
}

/// Calls `check` until it returns true, at most [`WAIT`]; panics with `what` otherwise.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !check() {
        assert!(std::time::Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}
