//! Request-reply on two nodes over UDP loopback (thesis §5.3.1–§5.3.2).
//!
//! ```text
//! cargo run --example req_rep [-- --requests 1000 --threads 4]
//! ```
//!
//! A "calculator" node serves squares through a reply socket; a client node's request socket
//! is shared by several threads. One request is in flight at a time: a thread's `send` waits
//! while another thread's request is unanswered, and any thread may take the reply, so each
//! thread here makes whole round trips under a lock of its own choosing (`request` = send +
//! receive). The program also shows the rules' errors: receiving before sending a request,
//! replying before receiving one, unlinking the link a reply is awaited on. It checks every
//! reply, prints the round trips per second and exits 0.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use a3m::{Error, NodeBuilder, Refusal};
use a3m_examples::{Args, fail};

const PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["requests", "threads"]);
    let requests: u64 = args.get_or("requests", 1000);
    let threads: u64 = args.get_or("threads", 4);
    let ok = |what: &str, e: Error| -> ! { fail(&format!("{what}: {e}")) };

    let server = NodeBuilder::new("calculator").start().unwrap_or_else(|e| ok("server node", e));
    let client = NodeBuilder::new("client")
        .peer("calculator", server.local_addr())
        .start()
        .unwrap_or_else(|e| ok("client node", e));
    let rep = server.rep("square").unwrap_or_else(|e| ok("rep socket", e));
    let req = client.req("ask").unwrap_or_else(|e| ok("req socket", e));

    // The rules, each with its error.
    match req.recv_timeout(PATIENCE) {
        Err(Error::Refused(Refusal::NoRequestPending)) => {
            println!("recv before any request: refused (no request pending)")
        }
        other => fail(&format!("recv before a request gave {other:?}")),
    }
    match rep.send(b"unasked") {
        Err(Error::Refused(Refusal::NoRequestToReply)) => {
            println!("reply before any request: refused (no request to reply to)")
        }
        other => fail(&format!("reply before a request gave {other:?}")),
    }

    req.link("calculator/square").unwrap_or_else(|e| ok("link", e));
    req.wait_for_link(Some(PATIENCE)).unwrap_or_else(|e| ok("wait for link", e));

    let total = requests * threads;
    // The threads' requests, and one before and one after them.
    let served = thread::spawn(move || {
        for _ in 0..total + 2 {
            let request = rep.recv_timeout(PATIENCE).unwrap_or_else(|e| ok("request", e));
            let n = u64::from_le_bytes(request[..8].try_into().unwrap_or_else(|_| fail("size")));
            rep.send(&(n * n).to_le_bytes()).unwrap_or_else(|e| ok("reply", e));
        }
        rep
    });

    req.send(&3u64.to_le_bytes()).unwrap_or_else(|e| ok("send", e));
    match req.unlink("calculator/square") {
        Err(Error::Refused(Refusal::ReplyAwaited)) => {
            println!("unlink while a reply is awaited: refused (force_unlink would cancel)")
        }
        other => fail(&format!("unlink while awaiting gave {other:?}")),
    }
    let nine = req.recv_timeout(PATIENCE).unwrap_or_else(|e| ok("reply", e));
    assert_eq!(nine, 9u64.to_le_bytes(), "3 squared");

    let req = Arc::new(Mutex::new(req));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let req = Arc::clone(&req);
            thread::spawn(move || {
                for i in 0..requests {
                    let n = t * 1_000_000 + i;
                    // The lock makes each round trip whole: this thread's reply is the answer
                    // to this thread's request. Without it, sends wait in turn and whichever
                    // thread receives takes the pending reply.
                    let reply = req
                        .lock()
                        .unwrap_or_else(|_| fail("lock"))
                        .request(&n.to_le_bytes(), PATIENCE)
                        .unwrap_or_else(|e| ok("request", e));
                    if reply != (n * n).to_le_bytes() {
                        fail(&format!("thread {t}: wrong square for {n}"));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap_or_else(|_| fail("a client thread panicked"));
    }
    let elapsed = started.elapsed();
    // One last request, from the socket no longer shared.
    let last = Arc::try_unwrap(req).ok().and_then(|m| m.into_inner().ok());
    let req = last.unwrap_or_else(|| fail("socket still shared"));
    let reply = req.request(&0u64.to_le_bytes(), PATIENCE).unwrap_or_else(|e| ok("last", e));
    assert_eq!(reply, 0u64.to_le_bytes());
    let rep = served.join().unwrap_or_else(|_| fail("the server panicked"));
    println!(
        "{total} requests from {threads} threads, every reply checked: {:.0} round trips/s",
        total as f64 / elapsed.as_secs_f64()
    );
    req.close(PATIENCE).unwrap_or_else(|e| ok("close req", e));
    rep.close(PATIENCE).unwrap_or_else(|e| ok("close rep", e));
    println!("req_rep: ok");
}
