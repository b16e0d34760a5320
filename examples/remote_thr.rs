//! The sending half of a3m's push/pull throughput test, modelled on libzmq's `remote_thr`
//! (see `local_thr`).
//!
//! ```text
//! remote_thr ADDR SIZE COUNT     e.g. remote_thr 127.0.0.1:17001 100 1000000
//! ```
//!
//! Starts node `remote` on an ephemeral loopback port, links a push socket to `local/sink`
//! at `ADDR` (retrying until `local_thr` is up), sends `COUNT` messages of `SIZE` bytes and
//! closes the socket, which waits until every message has been received. Prints nothing on
//! success. `--key-file PATH` seals the node's datagrams with that pre-shared key (both
//! sides need it); `--stats` prints the node's counters on standard error at the end.
//! Options: `--spin` (microseconds the node polls before sleeping, default 50; 0:
//! never), `--datagram` (largest UDP datagram, default 65507), `--timeout` (seconds
//! to wait for the link and for the close, default 30).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use a3m::NodeBuilder;
use a3m_examples::{Args, fail};

#[path = "keyopt.rs"]
mod keyopt;

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["datagram", "timeout", "spin", "stats", keyopt::KEY_FILE]);
    let (addr, size, count) = positional(&args);
    let datagram: usize = args.get_or("datagram", 65_507);
    let timeout = Duration::from_secs(args.get_or("timeout", 30));

    let node = keyopt::with_key_file(
        NodeBuilder::new("remote")
            .peer("local", addr)
            .max_datagram(datagram)
            .spin(args.spin())
            .socket_buffers(8 << 20, 8 << 20)
            .linger(timeout),
        &args,
    )
    .start()
    .unwrap_or_else(|e| fail(&format!("cannot start node remote: {e}")));
    let source = node.push("source").unwrap_or_else(|e| fail(&format!("push socket: {e}")));
    if size > source.max_message() {
        fail(&format!("SIZE {size} exceeds the largest message, {}", source.max_message()));
    }
    source.link("local/sink").unwrap_or_else(|e| fail(&format!("link local/sink: {e}")));
    source.wait_for_link(Some(timeout)).unwrap_or_else(|e| {
        fail(&format!("link local/sink at {addr}: {e}{}", keyopt::refusal(&node)))
    });

    let message = vec![b'x'; size];
    for i in 0..count {
        source.send(&message).unwrap_or_else(|e| fail(&format!("send {i} of {count}: {e}")));
    }
    let report = source.close(timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
    if report.aborted_links > 0 {
        fail(&format!("the link did not finish unlinking within {timeout:?}"));
    }
    if args.has("stats") {
        eprintln!("{:#?}", node.stats());
    }
    let closed = node.close(timeout).unwrap_or_else(|e| fail(&format!("node close: {e}")));
    if closed.unacknowledged > 0 {
        fail(&format!("{} messages unacknowledged at close", closed.unacknowledged));
    }
}

/// `ADDR SIZE COUNT`, or exits with the usage.
fn positional(args: &Args) -> (SocketAddr, usize, u64) {
    const USAGE: &str = "usage: remote_thr ADDR SIZE COUNT [--datagram N] [--timeout S] [--spin US] [--key-file PATH] [--stats]";
    if args.positional.len() != 3 {
        fail(USAGE);
    }
    fn parse<T: FromStr>(word: &str, name: &str) -> T {
        word.parse().unwrap_or_else(|_| fail(&format!("{name}: cannot parse {word:?}")))
    }
    let p = &args.positional;
    (parse(&p[0], "ADDR"), parse(&p[1], "SIZE"), parse(&p[2], "COUNT"))
}
