//! The receiving half of a3m's push/pull throughput test, modelled on libzmq's `local_thr`.
//!
//! ```text
//! local_thr ADDR SIZE COUNT      e.g. local_thr 127.0.0.1:17001 100 1000000
//! remote_thr ADDR SIZE COUNT     (in another process, started before or after)
//! ```
//!
//! Starts node `local` bound to `ADDR` with a pull socket `sink`, receives `COUNT` messages of
//! `SIZE` bytes from `remote_thr`, and prints, measured like libzmq from the first message
//! received to the last:
//!
//! ```text
//! a3m size=S count=N msgs_per_sec=R mbit=M
//! ```
//!
//! It then waits for the end of the stream (the pusher unlinked) so that the pusher's close
//! completes. `--key-file PATH` seals the node's datagrams with that pre-shared key (both
//! sides need it); `--stats` prints the node's counters (datagrams, acknowledgements,
//! retransmissions, drops) on standard error at the end. Options: `--spin` (microseconds the node polls before sleeping, default 50; 0:
//! never), `--capacity` (messages the link may have waiting here, default 1000,
//! as libzmq's high-water mark), `--datagram` (largest UDP datagram, default 65507),
//! `--timeout` (seconds to wait for the link or a message, default 30).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use a3m::{Error, NodeBuilder, Pull, SocketOptions};
use a3m_examples::{Args, fail};

#[path = "keyopt.rs"]
mod keyopt;

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["capacity", "datagram", "timeout", "spin", "stats", keyopt::KEY_FILE]);
    let (addr, size, count) = positional(&args);
    let capacity: u32 = args.get_or("capacity", 1000);
    let datagram: usize = args.get_or("datagram", 65_507);
    let timeout = Duration::from_secs(args.get_or("timeout", 30));

    let node = keyopt::with_key_file(
        NodeBuilder::new("local")
            .bind(addr)
            .max_datagram(datagram)
            .spin(args.spin())
            .socket_buffers(8 << 20, 8 << 20),
        &args,
    )
    .start()
    .unwrap_or_else(|e| fail(&format!("cannot start node local on {addr}: {e}")));
    // Notify-if-none: once the pusher has unlinked, receiving reports the end of the stream.
    // (Set once linked: a link-free socket with it would not wait for the first link.)
    let options = SocketOptions::new().capacity(capacity);
    let sink = node
        .socket_with("sink", Box::new(Pull::new()), options)
        .unwrap_or_else(|e| fail(&format!("pull socket: {e}")));
    sink.wait_for_link(Some(timeout))
        .unwrap_or_else(|e| fail(&format!("no sender: {e}{}", keyopt::refusal(&node))));
    sink.set_notify_if_none(true).unwrap_or_else(|e| fail(&format!("notify-if-none: {e}")));

    let mut buf = vec![0u8; sink.max_message().max(size)];
    let mut receive = |i: u64| match sink.recv_into(&mut buf, Some(timeout)) {
        Ok(len) if len == size => {}
        Ok(len) => fail(&format!("message {i} has {len} bytes, expected {size}")),
        Err(e) => fail(&format!("receive {i} of {count}: {e}")),
    };
    receive(0);
    let start = Instant::now();
    for i in 1..count {
        receive(i);
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let rate = (count - 1) as f64 / elapsed;
    println!(
        "a3m size={size} count={count} msgs_per_sec={rate:.0} mbit={:.1}",
        rate * size as f64 * 8.0 / 1e6
    );

    match sink.recv_into(&mut buf, Some(timeout)) {
        Err(Error::NoLinks) => {}
        Ok(_) => fail(&format!("more than {count} messages arrived")),
        Err(e) => fail(&format!("waiting for the end of the stream: {e}")),
    }
    if args.has("stats") {
        eprintln!("{:#?}", node.stats());
    }
    node.close(timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
}

/// `ADDR SIZE COUNT`, or exits with the usage.
fn positional(args: &Args) -> (SocketAddr, usize, u64) {
    const USAGE: &str = "usage: local_thr ADDR SIZE COUNT [--capacity N] [--datagram N] [--timeout S] [--spin US] [--key-file PATH] [--stats]";
    if args.positional.len() != 3 {
        fail(USAGE);
    }
    fn parse<T: FromStr>(word: &str, name: &str) -> T {
        word.parse().unwrap_or_else(|_| fail(&format!("{name}: cannot parse {word:?}")))
    }
    let p = &args.positional;
    let count: u64 = parse(&p[2], "COUNT");
    if count < 2 {
        fail("COUNT must be at least 2 (the clock starts at the first message)");
    }
    (parse(&p[0], "ADDR"), parse(&p[1], "SIZE"), count)
}
