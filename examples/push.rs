//! The sending half of a one-way pipeline over UDP, as its own process.
//!
//! ```text
//! cargo run --release --example pull -- --node B --bind 127.0.0.1:7001 --tag sink --count 1000000
//! cargo run --release --example push -- --node A --bind 127.0.0.1:0 --peer B=127.0.0.1:7001 \
//!     --link B/sink --count 1000000 --size 100
//! ```
//!
//! Sends `--count` messages of `--size` bytes (at least 8), numbered 0, 1, ... in their first
//! 8 bytes (little endian), through a push socket linked to `--link`, then closes the
//! socket, which waits until the pull side has received every message. The link is retried
//! until the pull socket exists, so the two may start in any order.
//!
//! `--key-file PATH` seals the node's datagrams with that pre-shared key (both sides need it).
//!
//! Options: `--tag` (default `source`), `--datagram` (largest UDP datagram, default 65507),
//! `--timeout` (seconds to wait for the link and for the close, default 60), `--stats`
//! (print the transport's counters to stderr at the end).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use a3m::NodeBuilder;
use a3m_examples::{Args, fail};

#[path = "keyopt.rs"]
mod keyopt;

const KNOWN: &[&str] = &[
    "node",
    "bind",
    "peer",
    "link",
    "count",
    "size",
    "tag",
    "datagram",
    "timeout",
    "stats",
    keyopt::KEY_FILE,
];

fn main() {
    let args = Args::from_env();
    args.reject_unknown(KNOWN);
    let node_id: String = args.require("node");
    let bind: SocketAddr = args.get_or("bind", SocketAddr::from(([127, 0, 0, 1], 0)));
    let peer: String = args.require("peer");
    let link: String = args.require("link");
    let count: u64 = args.require("count");
    let size: usize = args.get_or("size", 100);
    let tag: String = args.get_or("tag", "source".to_string());
    let datagram: usize = args.get_or("datagram", 65_507);
    let timeout = Duration::from_secs(args.get_or("timeout", 60));
    if size < 8 {
        fail("--size must be at least 8 (the message number)");
    }
    let (peer_id, peer_addr) = peer
        .split_once('=')
        .and_then(|(id, addr)| Some((id, addr.parse::<SocketAddr>().ok()?)))
        .unwrap_or_else(|| fail(&format!("--peer {peer}: expected NODE=IP:PORT")));

    let node = keyopt::with_key_file(
        NodeBuilder::new(&node_id)
            .bind(bind)
            .peer(peer_id, peer_addr)
            .max_datagram(datagram)
            .socket_buffers(8 << 20, 8 << 20)
            .linger(timeout),
        &args,
    )
    .start()
    .unwrap_or_else(|e| fail(&format!("cannot start node {node_id}: {e}")));
    let push = node.push(&tag).unwrap_or_else(|e| fail(&format!("push socket: {e}")));
    if size > push.max_message() {
        fail(&format!("--size {size} exceeds the largest message, {}", push.max_message()));
    }
    push.link(link.as_str()).unwrap_or_else(|e| fail(&format!("link {link}: {e}")));
    let peer = push
        .wait_for_link(Some(timeout))
        .unwrap_or_else(|e| fail(&format!("link {link}: {e}{}", keyopt::refusal(&node))));
    println!("push linked to {peer}");

    let start = Instant::now();
    let mut message = vec![0xA5u8; size];
    for n in 0..count {
        message[..8].copy_from_slice(&n.to_le_bytes());
        push.send(&message).unwrap_or_else(|e| fail(&format!("send {n} of {count}: {e}")));
    }
    let sent = start.elapsed();
    let report = push.close(timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
    if report.aborted_links > 0 {
        fail(&format!("the link to {peer} did not finish unlinking within {timeout:?}"));
    }
    let delivered = start.elapsed();
    let rate = count as f64 / delivered.as_secs_f64().max(1e-9);
    println!(
        "push sent={count} size={size} sent_in={:.3}s delivered_in={:.3}s msgs_per_sec={rate:.0}",
        sent.as_secs_f64(),
        delivered.as_secs_f64()
    );
    if args.has("stats") {
        eprintln!("push transport: {:?}", node.stats());
    }
    let closed = node.close(timeout).unwrap_or_else(|e| fail(&format!("node close: {e}")));
    if closed.unacknowledged > 0 {
        fail(&format!("{} messages unacknowledged at close", closed.unacknowledged));
    }
}
