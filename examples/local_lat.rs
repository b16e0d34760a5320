//! The echoing half of a3m's round-trip latency test, modelled on libzmq's `local_lat`.
//!
//! ```text
//! local_lat ADDR SIZE COUNT      e.g. local_lat 127.0.0.1:17002 100 10000
//! remote_lat ADDR SIZE COUNT     (in another process)
//! ```
//!
//! a3m has no req/rep sockets yet, so a pair of push/pull links carries the round trip:
//! node `local`, bound to `ADDR`, has a pull socket `in` and a push socket `out`; `remote_lat`
//! links its push socket to `local/in` and its pull socket to `local/out` (it opens both
//! links, as a ZeroMQ client connects, so this side needs no address of it). Every message
//! that arrives on `in` goes back on `out`: `COUNT` timed round trips plus one untimed first.
//! Prints nothing on success. Options: `--spin` (microseconds the node polls before
//! sleeping, default 50; 0: never), `--datagram` (largest UDP datagram, default 65507),
//! `--timeout` (seconds to wait for the links and for each message, default 30).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use a3m::NodeBuilder;
use a3m_examples::{Args, fail};

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["datagram", "timeout", "spin"]);
    let (addr, size, count) = positional(&args);
    let datagram: usize = args.get_or("datagram", 65_507);
    let timeout = Duration::from_secs(args.get_or("timeout", 30));

    let node = NodeBuilder::new("local")
        .bind(addr)
        .max_datagram(datagram)
        .spin(args.spin())
        .linger(timeout)
        .start()
        .unwrap_or_else(|e| fail(&format!("cannot start node local on {addr}: {e}")));
    let input = node.pull("in").unwrap_or_else(|e| fail(&format!("pull socket: {e}")));
    let output = node.push("out").unwrap_or_else(|e| fail(&format!("push socket: {e}")));
    input.wait_for_link(Some(timeout)).unwrap_or_else(|e| fail(&format!("no sender: {e}")));
    output.wait_for_link(Some(timeout)).unwrap_or_else(|e| fail(&format!("no receiver: {e}")));

    let mut buf = vec![0u8; input.max_message().max(size)];
    for i in 0..=count {
        let len = input
            .recv_into(&mut buf, Some(timeout))
            .unwrap_or_else(|e| fail(&format!("receive {i} of {count}: {e}")));
        if len != size {
            fail(&format!("message {i} has {len} bytes, expected {size}"));
        }
        output.send(&buf[..len]).unwrap_or_else(|e| fail(&format!("send {i} of {count}: {e}")));
    }
    // Closing waits until the last reply has been received.
    let report = output.close(timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
    if report.aborted_links > 0 {
        fail(&format!("the reply link did not finish unlinking within {timeout:?}"));
    }
    node.close(timeout).unwrap_or_else(|e| fail(&format!("node close: {e}")));
}

/// `ADDR SIZE COUNT`, or exits with the usage.
fn positional(args: &Args) -> (SocketAddr, usize, u64) {
    const USAGE: &str = "usage: local_lat ADDR SIZE COUNT [--datagram N] [--timeout S] [--spin US]";
    if args.positional.len() != 3 {
        fail(USAGE);
    }
    fn parse<T: FromStr>(word: &str, name: &str) -> T {
        word.parse().unwrap_or_else(|_| fail(&format!("{name}: cannot parse {word:?}")))
    }
    let p = &args.positional;
    (parse(&p[0], "ADDR"), parse(&p[1], "SIZE"), parse(&p[2], "COUNT"))
}
