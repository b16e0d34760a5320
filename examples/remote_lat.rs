//! The measuring half of a3m's round-trip latency test, modelled on libzmq's `remote_lat`
//! (see `local_lat`).
//!
//! ```text
//! remote_lat ADDR SIZE COUNT     e.g. remote_lat 127.0.0.1:17002 100 10000
//! ```
//!
//! Node `remote` links a push socket to `local/in` and a pull socket to `local/out` at `ADDR`
//! (a push/pull pair carries the round trip until a3m has req/rep sockets), makes one
//! untimed round trip, then `COUNT` timed ones of `SIZE` bytes each way, and prints
//!
//! ```text
//! a3m_lat size=S count=N rtt_us=L carrier=push/pull-pair
//! ```
//!
//! where `rtt_us` is the mean round-trip time in microseconds (libzmq prints half of it).
//! Options: `--spin` (microseconds the node polls before sleeping, default 50; 0:
//! never), `--datagram` (largest UDP datagram, default 65507), `--timeout` (seconds to
//! wait for the links and for each reply, default 30).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use a3m::NodeBuilder;
use a3m_examples::{Args, fail};

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["datagram", "timeout", "spin"]);
    let (addr, size, count) = positional(&args);
    let datagram: usize = args.get_or("datagram", 65_507);
    let timeout = Duration::from_secs(args.get_or("timeout", 30));

    let node = NodeBuilder::new("remote")
        .peer("local", addr)
        .max_datagram(datagram)
        .spin(args.spin())
        .linger(timeout)
        .start()
        .unwrap_or_else(|e| fail(&format!("cannot start node remote: {e}")));
    let output = node.push("out").unwrap_or_else(|e| fail(&format!("push socket: {e}")));
    let input = node.pull("in").unwrap_or_else(|e| fail(&format!("pull socket: {e}")));
    if size > output.max_message() {
        fail(&format!("SIZE {size} exceeds the largest message, {}", output.max_message()));
    }
    output.link("local/in").unwrap_or_else(|e| fail(&format!("link local/in: {e}")));
    input.link("local/out").unwrap_or_else(|e| fail(&format!("link local/out: {e}")));
    for (socket, peer) in [(&output, "local/in"), (&input, "local/out")] {
        socket
            .wait_for_link(Some(timeout))
            .unwrap_or_else(|e| fail(&format!("link {peer} at {addr}: {e}")));
    }

    let request = vec![b'x'; size];
    let mut reply = vec![0u8; input.max_message()];
    let mut round_trip = |i: u64| {
        output.send(&request).unwrap_or_else(|e| fail(&format!("send {i} of {count}: {e}")));
        match input.recv_into(&mut reply, Some(timeout)) {
            Ok(len) if len == size => {}
            Ok(len) => fail(&format!("reply {i} has {len} bytes, expected {size}")),
            Err(e) => fail(&format!("reply {i} of {count}: {e}")),
        }
    };
    round_trip(0);
    let start = Instant::now();
    for i in 1..=count {
        round_trip(i);
    }
    let elapsed = start.elapsed();
    println!(
        "a3m_lat size={size} count={count} rtt_us={:.2} carrier=push/pull-pair",
        elapsed.as_secs_f64() * 1e6 / count as f64
    );
    output.close(timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
    input.close(timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
    node.close(timeout).unwrap_or_else(|e| fail(&format!("node close: {e}")));
}

/// `ADDR SIZE COUNT`, or exits with the usage.
fn positional(args: &Args) -> (SocketAddr, usize, u64) {
    const USAGE: &str =
        "usage: remote_lat ADDR SIZE COUNT [--datagram N] [--timeout S] [--spin US]";
    if args.positional.len() != 3 {
        fail(USAGE);
    }
    fn parse<T: FromStr>(word: &str, name: &str) -> T {
        word.parse().unwrap_or_else(|_| fail(&format!("{name}: cannot parse {word:?}")))
    }
    let p = &args.positional;
    let count: u64 = parse(&p[2], "COUNT");
    if count == 0 {
        fail("COUNT must be at least 1");
    }
    (parse(&p[0], "ADDR"), parse(&p[1], "SIZE"), count)
}
