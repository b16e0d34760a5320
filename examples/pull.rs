//! The receiving half of a one-way pipeline over UDP, as its own process (see `push`).
//!
//! ```text
//! cargo run --release --example pull -- --node B --bind 127.0.0.1:7001 --tag sink --count N
//! ```
//!
//! Receives on a pull socket until the stream ends (the pusher unlinked and everything it
//! sent was received: the socket becomes link-free) and checks the messages: numbered 0 to
//! N-1 in order, none twice. Prints, last,
//! `pull received=R in_order=true|false duplicates=D` and exits with 0 only if R = N, in
//! order, and D = 0.
//!
//! `--key-file PATH` seals the node's datagrams with that pre-shared key (both sides need it).
//!
//! Options: `--capacity` (messages the link may have waiting, default 4096),
//! `--datagram` (largest UDP datagram, default 65507), `--timeout` (seconds without a
//! message before giving up, default 60), `--stats` (print the transport's counters to
//! stderr at the end).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use a3m::{Error, NodeBuilder, Pull, SocketOptions};
use a3m_examples::{Args, fail};

#[path = "keyopt.rs"]
mod keyopt;

const KNOWN: &[&str] =
    &["node", "bind", "tag", "count", "capacity", "datagram", "timeout", "stats", keyopt::KEY_FILE];

fn main() {
    let args = Args::from_env();
    args.reject_unknown(KNOWN);
    let node_id: String = args.require("node");
    let bind: SocketAddr = args.require("bind");
    let tag: String = args.require("tag");
    let count: u64 = args.require("count");
    let capacity: u32 = args.get_or("capacity", 4096);
    let datagram: usize = args.get_or("datagram", 65_507);
    let timeout = Duration::from_secs(args.get_or("timeout", 60));

    let node = keyopt::with_key_file(
        NodeBuilder::new(&node_id)
            .bind(bind)
            .max_datagram(datagram)
            .socket_buffers(8 << 20, 8 << 20)
            .linger(Duration::from_secs(2)),
        &args,
    )
    .start()
    .unwrap_or_else(|e| fail(&format!("cannot start node {node_id}: {e}")));
    let options = SocketOptions::new().capacity(capacity);
    let pull = node
        .socket_with(&tag, Box::new(Pull::new()), options)
        .unwrap_or_else(|e| fail(&format!("pull socket: {e}")));
    println!("pull listening on {} as {}", node.local_addr(), pull.id());
    // Notify-if-none ends the stream once the socket is link-free: wait for the first link
    // without it (with it, a link-free socket's wait would fail at once), then set it.
    let peer = pull
        .wait_for_link(None)
        .unwrap_or_else(|e| fail(&format!("waiting for a link: {e}{}", keyopt::refusal(&node))));
    pull.set_notify_if_none(true).unwrap_or_else(|e| fail(&format!("notify-if-none: {e}")));
    println!("pull linked from {peer}");

    let mut seen = vec![0u64; count.div_ceil(64) as usize];
    let (mut received, mut duplicates, mut in_order) = (0u64, 0u64, true);
    let mut buf = vec![0u8; pull.max_message()];
    let mut first = None;
    loop {
        let len = match pull.recv_into(&mut buf, Some(timeout)) {
            Ok(len) => len,
            Err(Error::NoLinks) => break,
            Err(Error::Timeout) => {
                eprintln!("pull: nothing for {timeout:?}, giving up");
                break;
            }
            Err(e) => fail(&format!("receive: {e}")),
        };
        first.get_or_insert_with(Instant::now);
        // A message too short to carry a number counts as out of order.
        let n = buf[..len].first_chunk::<8>().map_or(u64::MAX, |b| u64::from_le_bytes(*b));
        in_order &= n == received;
        received += 1;
        if n < count {
            let (word, bit) = ((n / 64) as usize, n % 64);
            if seen[word] & (1 << bit) != 0 {
                duplicates += 1;
            }
            seen[word] |= 1 << bit;
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed()).as_secs_f64().max(1e-9);
    println!(
        "pull took {elapsed:.3}s from the first message: {:.0} msgs/s",
        received as f64 / elapsed
    );
    if args.has("stats") {
        eprintln!("pull transport: {:?}", node.stats());
    }
    drop(pull);
    drop(node);
    println!("pull received={received} in_order={in_order} duplicates={duplicates}");
    if received != count || !in_order || duplicates > 0 {
        std::process::exit(1);
    }
}
