//! One-way throughput of the exactly-once transport over UDP loopback, in two processes.
//!
//! ```text
//! cargo run --release --example eo_thr -- --size 100 --count 1000000
//! ```
//!
//! The program starts a receiver process (itself, with `recv`), sends `--count` messages of
//! `--size` bytes to it, and prints the receiver's figure, measured like libzmq's
//! `local_thr`: from the first message received to the last. The two roles can also be run
//! by hand:
//!
//! ```text
//! eo_thr recv --bind 127.0.0.1:7100 --count N --size S
//! eo_thr send --peer 127.0.0.1:7100 --count N --size S
//! ```

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use a3m::NodeBuilder;
use a3m_examples::{Args, fail};

const KNOWN: &[&str] = &["size", "count", "bind", "peer", "datagram", "linger"];

fn main() {
    let args = Args::from_env();
    args.reject_unknown(KNOWN);
    let size: usize = args.get_or("size", 100);
    let count: u64 = args.get_or("count", 100_000);
    if count == 0 {
        fail("--count must be at least 1");
    }
    match args.positional.first().map(String::as_str) {
        Some("recv") => receiver(&args, size, count),
        Some("send") => sender(&args, size, count, args.require("peer")),
        None => both(&args, size, count),
        Some(other) => fail(&format!("unknown mode {other:?} (recv, send, or nothing for both)")),
    }
}

fn node(args: &Args, id: &str, bind: SocketAddr) -> a3m::Node {
    let datagram: usize = args.get_or("datagram", 65_507);
    NodeBuilder::new(id)
        .bind(bind)
        .max_datagram(datagram)
        .socket_buffers(8 << 20, 8 << 20)
        .start()
        .unwrap_or_else(|e| fail(&format!("cannot start node {id}: {e}")))
}

/// Receives `count` messages and prints the rate.
fn receiver(args: &Args, size: usize, count: u64) {
    let bind = args.get_or("bind", SocketAddr::from(([127, 0, 0, 1], 0)));
    let node = node(args, "thr-recv", bind);
    println!("ready {}", node.local_addr());
    let mut buf = vec![0u8; 65_536];
    let mut start = None;
    for i in 0..count {
        let (_, len) = node
            .recv_into(&mut buf, Some(Duration::from_secs(30)))
            .unwrap_or_else(|e| fail(&format!("receive {i} of {count}: {e}")));
        if len != size {
            fail(&format!("message {i} has {len} bytes, expected {size}"));
        }
        start.get_or_insert_with(Instant::now);
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed()).as_secs_f64().max(1e-9);
    let rate = (count - 1) as f64 / elapsed;
    println!(
        "eo_thr size={size} count={count} msgs_per_sec={rate:.0} mbit={:.1}",
        rate * size as f64 * 8.0 / 1e6
    );
    // Give the last acknowledgements time to leave before the socket closes.
    drop(node);
}

/// Sends `count` messages of `size` bytes to the receiver at `peer` and waits for all acks.
fn sender(args: &Args, size: usize, count: u64, peer: SocketAddr) {
    let node = node(args, "thr-send", SocketAddr::from(([127, 0, 0, 1], 0)));
    node.add_peer("thr-recv", peer).unwrap_or_else(|e| fail(&e.to_string()));
    let payload = vec![b'x'; size];
    for i in 0..count {
        node.send_to("thr-recv", &payload)
            .unwrap_or_else(|e| fail(&format!("send {i} of {count}: {e}")));
    }
    let linger: u64 = args.get_or("linger", 30);
    let report =
        node.close(Duration::from_secs(linger)).unwrap_or_else(|e| fail(&format!("close: {e}")));
    if report.unacknowledged > 0 {
        fail(&format!("{} messages unacknowledged at close", report.unacknowledged));
    }
}

/// Runs the receiver as a child process and the sender here.
fn both(args: &Args, size: usize, count: u64) {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));
    let mut child = Command::new(exe)
        .args(["recv", "--size", &size.to_string(), "--count", &count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start the receiver: {e}")));
    let stdout = child.stdout.take().unwrap_or_else(|| fail("receiver has no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    let peer: SocketAddr = ready
        .strip_prefix("ready ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| fail(&format!("receiver said {ready:?} instead of 'ready ADDR'")));
    sender(args, size, count, peer);
    for line in lines.map_while(Result::ok) {
        println!("{line}");
    }
    let status = child.wait().unwrap_or_else(|e| fail(&format!("receiver: {e}")));
    if !status.success() {
        fail(&format!("receiver exited with {status}"));
    }
}
