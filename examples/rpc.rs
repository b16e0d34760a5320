//! a3m RPC throughput: `CLIENTS` client threads, each with its own sockets, against one
//! server socket; the aggregate round trips per second. The counterpart of ci/peers'
//! `zmq_rpc` and `nng_rpc`.
//!
//! ```text
//! rpc server ADDR SIZE CLIENTS COUNT    e.g. rpc server 127.0.0.1:17003 100 4 20000
//! rpc client ADDR SIZE CLIENTS COUNT    (in another process, same arguments)
//! ```
//!
//! a3m has no req/rep sockets yet, so a pair of push/pull links carries each round trip:
//! client thread `i` of node `client` links its push socket `req<i>` to the server's pull
//! socket `server/requests` and its pull socket `rep<i>` to the server's push socket
//! `server/reply<i>`. Requests start with the client number (2 bytes, little endian), which
//! tells the server's single thread where to send the reply: the request itself, echoed.
//!
//! The client makes `COUNT` round trips in all, `COUNT / CLIENTS` per thread, each thread
//! after one untimed round trip; the clock runs from the moment every thread has made it
//! until the last one finishes. It prints
//!
//! ```text
//! a3m_rpc clients=C size=S count=N rps=R carrier=push/pull-pair
//! ```
//!
//! Options: `--spin` (microseconds a node polls before sleeping, default 50; 0: never),
//! `--datagram` (largest UDP datagram, default 65507), `--timeout` (seconds to wait
//! for the links and for each message, default 30).

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use a3m::{Node, NodeBuilder};
use a3m_examples::{Args, fail};

const USAGE: &str =
    "usage: rpc server|client ADDR SIZE CLIENTS COUNT [--datagram N] [--timeout S] [--spin US]";

/// What both sides are told.
struct Run {
    addr: SocketAddr,
    size: usize,
    clients: usize,
    per_client: u64,
    datagram: usize,
    spin: Duration,
    timeout: Duration,
}

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["datagram", "timeout", "spin"]);
    let p = &args.positional;
    if p.len() != 5 {
        fail(USAGE);
    }
    fn parse<T: FromStr>(word: &str, name: &str) -> T {
        word.parse().unwrap_or_else(|_| fail(&format!("{name}: cannot parse {word:?}")))
    }
    let size: usize = parse(&p[2], "SIZE");
    let clients: usize = parse(&p[3], "CLIENTS");
    let count: u64 = parse(&p[4], "COUNT");
    if size < 2 {
        fail("SIZE must be at least 2 (the client number)");
    }
    if clients == 0 || clients > usize::from(u16::MAX) {
        fail("CLIENTS must be between 1 and 65535");
    }
    if count < clients as u64 {
        fail("COUNT must be at least CLIENTS");
    }
    let run = Run {
        addr: parse(&p[1], "ADDR"),
        size,
        clients,
        per_client: count / clients as u64,
        datagram: args.get_or("datagram", 65_507),
        spin: args.spin(),
        timeout: Duration::from_secs(args.get_or("timeout", 30)),
    };
    match p[0].as_str() {
        "server" => server(&run),
        "client" => client(&run),
        _ => fail(USAGE),
    }
}

/// Answers every request with itself, through the push socket of the client that sent it.
fn server(run: &Run) {
    let node = NodeBuilder::new("server")
        .bind(run.addr)
        .max_datagram(run.datagram)
        .spin(run.spin)
        .linger(run.timeout)
        .start()
        .unwrap_or_else(|e| fail(&format!("cannot start node server on {}: {e}", run.addr)));
    let requests = node.pull("requests").unwrap_or_else(|e| fail(&format!("pull socket: {e}")));
    let replies: Vec<_> = (0..run.clients)
        .map(|i| {
            node.push(&format!("reply{i}")).unwrap_or_else(|e| fail(&format!("push socket: {e}")))
        })
        .collect();
    let mut buf = vec![0u8; requests.max_message().max(run.size)];
    let total = run.clients as u64 * (run.per_client + 1);
    for n in 0..total {
        let len = requests
            .recv_into(&mut buf, Some(run.timeout))
            .unwrap_or_else(|e| fail(&format!("request {n} of {total}: {e}")));
        let client = usize::from(u16::from_le_bytes([buf[0], buf[1]]));
        let Some(reply) = replies.get(client).filter(|_| len == run.size) else {
            fail(&format!("request {n}: {len} bytes from client {client}"));
        };
        reply.send(&buf[..len]).unwrap_or_else(|e| fail(&format!("reply {n}: {e}")));
    }
    // Each close waits until that client has received its last reply.
    for reply in &replies {
        reply.close(run.timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
    }
    node.close(run.timeout).unwrap_or_else(|e| fail(&format!("node close: {e}")));
}

/// Runs the client threads and prints the aggregate rate.
fn client(run: &Run) {
    let node = NodeBuilder::new("client")
        .peer("server", run.addr)
        .max_datagram(run.datagram)
        .spin(run.spin)
        .linger(run.timeout)
        .start()
        .unwrap_or_else(|e| fail(&format!("cannot start node client: {e}")));
    let ready = Barrier::new(run.clients + 1);
    let (node_ref, ready_ref) = (&node, &ready);
    let elapsed = thread::scope(|s| {
        let threads: Vec<_> = (0..run.clients)
            .map(|i| s.spawn(move || client_thread(node_ref, run, i, ready_ref)))
            .collect();
        ready.wait();
        let start = Instant::now();
        for thread in threads {
            thread.join().unwrap_or_else(|_| fail("a client thread panicked"));
        }
        start.elapsed()
    });
    let done = run.clients as u64 * run.per_client;
    println!(
        "a3m_rpc clients={} size={} count={done} rps={:.0} carrier=push/pull-pair",
        run.clients,
        run.size,
        done as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "(a3m has no req/rep sockets yet: a push/pull pair per client carries each round trip)"
    );
    node.close(run.timeout).unwrap_or_else(|e| fail(&format!("node close: {e}")));
}

/// One client: its own request and reply sockets, one untimed round trip, then its share.
fn client_thread(node: &Node, run: &Run, i: usize, ready: &Barrier) {
    let request = node.push(&format!("req{i}")).unwrap_or_else(|e| fail(&format!("push: {e}")));
    let reply = node.pull(&format!("rep{i}")).unwrap_or_else(|e| fail(&format!("pull: {e}")));
    let links = [(&request, "server/requests".to_string()), (&reply, format!("server/reply{i}"))];
    for (socket, peer) in &links {
        socket.link(peer.as_str()).unwrap_or_else(|e| fail(&format!("link {peer}: {e}")));
    }
    for (socket, peer) in &links {
        socket
            .wait_for_link(Some(run.timeout))
            .unwrap_or_else(|e| fail(&format!("link {peer} at {}: {e}", run.addr)));
    }
    let mut message = vec![b'x'; run.size];
    message[..2].copy_from_slice(&(i as u16).to_le_bytes());
    let mut answer = vec![0u8; reply.max_message()];
    let mut round_trip = |n: u64| {
        request.send(&message).unwrap_or_else(|e| fail(&format!("client {i} send {n}: {e}")));
        match reply.recv_into(&mut answer, Some(run.timeout)) {
            Ok(len) if answer[..len] == message[..] => {}
            Ok(len) => fail(&format!("client {i}: reply {n} ({len} bytes) is not its request")),
            Err(e) => fail(&format!("client {i} reply {n}: {e}")),
        }
    };
    round_trip(0);
    ready.wait();
    for n in 1..=run.per_client {
        round_trip(n);
    }
    request.close(run.timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
    reply.close(run.timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
}
