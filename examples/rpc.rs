//! a3m RPC throughput: `CLIENTS` client threads, each with its own socket, against one
//! server socket; the aggregate round trips per second. The counterpart of ci/peers'
//! `zmq_rpc` and `nng_rpc`.
//!
//! ```text
//! rpc server ADDR SIZE CLIENTS COUNT    e.g. rpc server 127.0.0.1:17003 100 4 20000
//! rpc client ADDR SIZE CLIENTS COUNT    (in another process, same arguments)
//! ```
//!
//! `--pattern reqrep` (the default): every client thread has a request socket linked to the
//! server's reply socket `server/rpc`, which a single thread serves, one request at a time.
//! `--pattern router`: every client thread has a dealer socket (one request in flight) and
//! the server's single thread answers through a router socket, by routing id. Requests carry
//! the client number and the request number; the server echoes each one and the client
//! checks that every reply is the answer to the request it sent.
//!
//! The client makes `COUNT` round trips in all, `COUNT / CLIENTS` per thread, each thread
//! after one untimed round trip; the clock runs from the moment every thread has made it
//! until the last one finishes. It prints
//!
//! ```text
//! a3m_rpc clients=C size=S count=N rps=R carrier=req/rep|dealer/router
//! ```
//!
//! Options: `--spin` (microseconds a node polls before sleeping, default 50; 0: never),
//! `--datagram` (largest UDP datagram, default 65507), `--timeout` (seconds to wait
//! for the links and for each message, default 30), `--key-file PATH` (seal every datagram
//! with the pre-shared key in that file; both sides need it).

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use a3m::{Node, NodeBuilder};
use a3m_examples::{Args, fail};

#[path = "keyopt.rs"]
mod keyopt;

const USAGE: &str = "usage: rpc server|client ADDR SIZE CLIENTS COUNT [--pattern reqrep|router] \
     [--datagram N] [--timeout S] [--spin US] [--key-file PATH]";

/// Which sockets carry the round trips.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pattern {
    /// Req sockets against one rep socket.
    ReqRep,
    /// Dealer sockets against one router socket.
    Router,
}

/// What both sides are told.
struct Run {
    addr: SocketAddr,
    size: usize,
    clients: usize,
    per_client: u64,
    datagram: usize,
    spin: Duration,
    timeout: Duration,
    pattern: Pattern,
}

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["datagram", "timeout", "spin", "pattern", keyopt::KEY_FILE]);
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
    if size < 10 {
        fail("SIZE must be at least 10 (client and request numbers)");
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
        pattern: match args.get_or("pattern", "reqrep".to_string()).as_str() {
            "reqrep" => Pattern::ReqRep,
            "router" => Pattern::Router,
            other => fail(&format!("--pattern: reqrep or router, not {other:?}")),
        },
    };
    let builder = |id: &str| keyopt::with_key_file(NodeBuilder::new(id), &args);
    match p[0].as_str() {
        "server" => server(&run, builder("server")),
        "client" => client(&run, builder("client")),
        _ => fail(USAGE),
    }
}

/// Answers every request with itself, from one thread.
fn server(run: &Run, builder: NodeBuilder) {
    let node = builder
        .bind(run.addr)
        .max_datagram(run.datagram)
        .spin(run.spin)
        .linger(run.timeout)
        .start()
        .unwrap_or_else(|e| fail(&format!("cannot start node server on {}: {e}", run.addr)));
    let total = run.clients as u64 * (run.per_client + 1);
    let check = |n: u64, len: usize| {
        if len != run.size {
            fail(&format!("request {n} of {total}: {len} bytes, expected {}", run.size));
        }
    };
    match run.pattern {
        Pattern::ReqRep => {
            let rep = node.rep("rpc").unwrap_or_else(|e| fail(&format!("rep socket: {e}")));
            for n in 0..total {
                let request = rep
                    .recv_timeout(run.timeout)
                    .unwrap_or_else(|e| fail(&format!("request {n} of {total}: {e}")));
                check(n, request.len());
                rep.send(&request).unwrap_or_else(|e| fail(&format!("reply {n}: {e}")));
            }
            // Wait until every client has taken its last reply and unlinked.
            rep.close(run.timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
        }
        Pattern::Router => {
            let router =
                node.router("rpc").unwrap_or_else(|e| fail(&format!("router socket: {e}")));
            for n in 0..total {
                let request = router
                    .recv_routed(Some(run.timeout))
                    .unwrap_or_else(|e| fail(&format!("request {n} of {total}: {e}")));
                check(n, request.body().len());
                router.send_routed(&request).unwrap_or_else(|e| fail(&format!("reply {n}: {e}")));
            }
            router.close(run.timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
        }
    }
    node.close(run.timeout).unwrap_or_else(|e| fail(&format!("node close: {e}")));
}

/// Runs the client threads and prints the aggregate rate.
fn client(run: &Run, builder: NodeBuilder) {
    let node = builder
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
    let carrier = match run.pattern {
        Pattern::ReqRep => "req/rep",
        Pattern::Router => "dealer/router",
    };
    println!(
        "a3m_rpc clients={} size={} count={done} rps={:.0} carrier={carrier}",
        run.clients,
        run.size,
        done as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    node.close(run.timeout).unwrap_or_else(|e| fail(&format!("node close: {e}")));
}

/// One client: its own socket, one untimed round trip, then its share. Request `n` of
/// client `i` starts with `i` (2 bytes) and `n` (8 bytes), little endian.
fn client_thread(node: &Node, run: &Run, i: usize, ready: &Barrier) {
    let tag = format!("client{i}");
    let mut message = vec![b'x'; run.size];
    message[..2].copy_from_slice(&(i as u16).to_le_bytes());
    let expect = |n: u64, reply: &[u8], message: &[u8]| {
        if reply != message {
            fail(&format!("client {i}: reply {n} ({} bytes) is not its request", reply.len()));
        }
    };
    match run.pattern {
        Pattern::ReqRep => {
            let req = node.req(&tag).unwrap_or_else(|e| fail(&format!("req socket: {e}")));
            req.link("server/rpc").unwrap_or_else(|e| fail(&format!("link: {e}")));
            req.wait_for_link(Some(run.timeout)).unwrap_or_else(|e| {
                let why = keyopt::refusal(node);
                fail(&format!("link server/rpc at {}: {e}{why}", run.addr))
            });
            let mut round_trip = |n: u64| {
                message[2..10].copy_from_slice(&n.to_le_bytes());
                let reply = req
                    .request(&message, run.timeout)
                    .unwrap_or_else(|e| fail(&format!("client {i} request {n}: {e}")));
                expect(n, &reply, &message);
            };
            round_trip(0);
            ready.wait();
            (1..=run.per_client).for_each(&mut round_trip);
            req.close(run.timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
        }
        Pattern::Router => {
            let dealer = node.dealer(&tag).unwrap_or_else(|e| fail(&format!("dealer socket: {e}")));
            dealer.link("server/rpc").unwrap_or_else(|e| fail(&format!("link: {e}")));
            dealer
                .wait_for_link(Some(run.timeout))
                .unwrap_or_else(|e| fail(&format!("link server/rpc at {}: {e}", run.addr)));
            let mut round_trip = |n: u64| {
                message[2..10].copy_from_slice(&n.to_le_bytes());
                dealer
                    .send(&message)
                    .unwrap_or_else(|e| fail(&format!("client {i} send {n}: {e}")));
                let reply = dealer
                    .recv_timeout(run.timeout)
                    .unwrap_or_else(|e| fail(&format!("client {i} reply {n}: {e}")));
                expect(n, &reply, &message);
            };
            round_trip(0);
            ready.wait();
            (1..=run.per_client).for_each(&mut round_trip);
            dealer.close(run.timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
        }
    }
}
