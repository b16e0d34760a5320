//! Asynchronous request-reply through a router (thesis §5.3.3–§5.3.4), on three nodes over
//! UDP loopback.
//!
//! ```text
//! cargo run --example router [-- --clients 8 --requests 500]
//! ```
//!
//! ```text
//!   client-0 (dealer) ─┐                       ┌─ rep (worker-0)
//!   client-1 (dealer) ─┼─ broker/front (router) │
//!   client-2 (req)    ─┘   broker/back (dealer) ┴─ rep (worker-1)
//! ```
//!
//! Clients send requests to the broker's router; the broker forwards each one, envelope and
//! all, through its dealer to the workers (round robin), and each reply back through the
//! router by the routing id at the head of its envelope: the exact link the request came
//! on. Dealers keep several requests in flight; a req client keeps one. Every reply is
//! checked against its request; a routing id of a closed link is shown to be refused. Exits
//! 0 when every reply arrived.

use std::thread;
use std::time::{Duration, Instant};

use a3m::{Error, NodeBuilder, Refusal, RoutedMessage};
use a3m_examples::{Args, fail};

const PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["clients", "requests"]);
    let clients: usize = args.get_or("clients", 8);
    let requests: u32 = args.get_or("requests", 500);
    let ok = |what: &str, e: Error| -> ! { fail(&format!("{what}: {e}")) };

    let broker = NodeBuilder::new("broker").start().unwrap_or_else(|e| ok("broker node", e));
    let workers = NodeBuilder::new("workers")
        .peer("broker", broker.local_addr())
        .start()
        .unwrap_or_else(|e| ok("workers node", e));
    let clients_node = NodeBuilder::new("clients")
        .peer("broker", broker.local_addr())
        .start()
        .unwrap_or_else(|e| ok("clients node", e));
    let front = broker.router("front").unwrap_or_else(|e| ok("router", e));
    let back = broker.dealer("back").unwrap_or_else(|e| ok("dealer", e));

    // Two workers: rep sockets linked to the broker's dealer.
    let total = clients as u64 * u64::from(requests) + u64::from(requests);
    let worker_threads: Vec<_> = (0..2)
        .map(|w| {
            let rep = workers.rep(&format!("worker-{w}")).unwrap_or_else(|e| ok("rep", e));
            rep.link("broker/back").unwrap_or_else(|e| ok("link", e));
            rep.wait_for_link(Some(PATIENCE)).unwrap_or_else(|e| ok("worker link", e));
            thread::spawn(move || {
                let mut served = 0u64;
                while let Ok(request) = rep.recv_timeout(Duration::from_secs(2)) {
                    let reply = [format!("worker-{w}:").into_bytes(), request].concat();
                    rep.send(&reply).unwrap_or_else(|e| ok("reply", e));
                    served += 1;
                }
                (w, served)
            })
        })
        .collect();

    // The broker: requests from the front go out the back; replies come back the front.
    let broker_thread = thread::spawn(move || {
        let mut forwarded = 0u64;
        let mut last_route: Option<RoutedMessage> = None;
        while forwarded < 2 * total {
            if let Ok(request) = front.recv_routed(Some(Duration::from_millis(1))) {
                last_route = Some(request.clone());
                back.send_routed(&request).unwrap_or_else(|e| ok("forward request", e));
                forwarded += 1;
            }
            while let Ok(reply) = back.recv_routed(Some(Duration::ZERO)) {
                front.send_routed(&reply).unwrap_or_else(|e| ok("forward reply", e));
                forwarded += 1;
            }
        }
        (front, last_route)
    });

    let started = Instant::now();
    thread::scope(|s| {
        for c in 0..clients {
            let node = &clients_node;
            s.spawn(move || {
                let dealer = node.dealer(&format!("client-{c}")).unwrap_or_else(|e| ok("d", e));
                dealer.link("broker/front").unwrap_or_else(|e| ok("link", e));
                dealer.wait_for_link(Some(PATIENCE)).unwrap_or_else(|e| ok("client link", e));
                // Up to 8 requests in flight; replies may come back in any order.
                let mut outstanding = std::collections::BTreeSet::new();
                let mut sent = 0u32;
                while sent < requests || !outstanding.is_empty() {
                    while sent < requests && outstanding.len() < 8 {
                        dealer.send(&sent.to_le_bytes()).unwrap_or_else(|e| ok("send", e));
                        outstanding.insert(sent);
                        sent += 1;
                    }
                    let reply = dealer.recv_timeout(PATIENCE).unwrap_or_else(|e| ok("recv", e));
                    let n = u32::from_le_bytes(reply[reply.len() - 4..].try_into().unwrap());
                    if !outstanding.remove(&n) {
                        fail(&format!("client {c}: reply to {n} twice or never asked"));
                    }
                }
                dealer.close(PATIENCE).unwrap_or_else(|e| ok("close", e));
            });
        }
        let node = &clients_node;
        s.spawn(move || {
            let req = node.req("client-req").unwrap_or_else(|e| ok("req", e));
            req.link("broker/front").unwrap_or_else(|e| ok("link", e));
            req.wait_for_link(Some(PATIENCE)).unwrap_or_else(|e| ok("req link", e));
            for n in 0..requests {
                let reply = req.request(&n.to_le_bytes(), PATIENCE).unwrap_or_else(|e| ok("rt", e));
                if reply[reply.len() - 4..] != n.to_le_bytes() {
                    fail("req client: reply is not the answer to its request");
                }
            }
            req.close(PATIENCE).unwrap_or_else(|e| ok("close", e));
        });
    });
    let elapsed = started.elapsed();
    let (front, last_route) = broker_thread.join().unwrap_or_else(|_| fail("broker panicked"));
    println!(
        "{total} requests from {} clients through the broker, every reply matched: {:.0}/s",
        clients + 1,
        total as f64 / elapsed.as_secs_f64()
    );
    for w in worker_threads {
        let (w, served) = w.join().unwrap_or_else(|_| fail("worker panicked"));
        println!("worker-{w} served {served}");
    }
    // The clients closed: the routing id of their links names nothing now.
    if let Some(request) = last_route {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let late = request.reply(vec![b"late".to_vec()]);
            match front.send_routed_timeout(&late, Duration::from_millis(100)) {
                Err(Error::Refused(Refusal::UnknownRoute)) => {
                    println!("a reply to a closed link: refused (unknown route), not dropped");
                    break;
                }
                Err(Error::Timeout) if Instant::now() < deadline => {}
                other => fail(&format!("a reply to a closed link gave {other:?}")),
            }
        }
    }
    println!("router: ok");
}
