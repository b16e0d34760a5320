//! a3m synchronized pub/sub throughput: one publisher, `SUBS` subscribers, every message to
//! every subscriber, none lost.
//!
//! ```text
//! pubsub sub ADDR SIZE SUBS COUNT    start first, e.g. pubsub sub 127.0.0.1:17005 100 10 100000
//! pubsub pub ADDR SIZE SUBS COUNT    then, in another process, the same arguments
//! ```
//!
//! The pub process runs node `pub` bound at `ADDR` with a publisher socket `pub`; it waits
//! until `SUBS` links hold their subscription ([`a3m::PubSocket::subscribers`]), publishes
//! `COUNT` messages of `SIZE` bytes on topic `t` as fast as the slowest subscriber allows,
//! and closes (waiting until every subscriber received everything).
//!
//! The sub process runs node `sub` (bound at `127.0.0.1:0`) with `SUBS` subscriber sockets
//! `sub<i>`, each subscribed to `t` and linked to `pub/pub`, all received by one thread
//! through a [`a3m::Poller`]. It stops when every subscriber has `COUNT` messages, or when
//! no message came for `--timeout` seconds, and prints one line:
//!
//! ```text
//! a3m_pubsub subscribers=N size=S published=P delivered=D lost=L msgs_per_s=R
//! ```
//!
//! `D` counts the messages of all subscribers, `L = N * P - D`, and `R = D / seconds` from
//! the first message any subscriber received to the last.
//!
//! Options: `--spin` (microseconds a node polls before sleeping, default 50; 0: never),
//! `--capacity` (each subscriber's window in messages, default 1000), `--timeout`
//! (seconds, default 30).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use a3m::{Error, Events, Interest, NodeBuilder, PollEvent, Poller};
use a3m_examples::{Args, fail};

const USAGE: &str =
    "usage: pubsub sub|pub ADDR SIZE SUBS COUNT [--spin US] [--capacity N] [--timeout S]";

struct Run {
    addr: SocketAddr,
    size: usize,
    subs: usize,
    count: u64,
    spin: Duration,
    capacity: u32,
    timeout: Duration,
}

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["spin", "capacity", "timeout"]);
    let p = &args.positional;
    if p.len() != 5 {
        fail(USAGE);
    }
    fn parse<T: FromStr>(word: &str, name: &str) -> T {
        word.parse().unwrap_or_else(|_| fail(&format!("{name}: cannot parse {word:?}")))
    }
    let run = Run {
        addr: parse(&p[1], "ADDR"),
        size: parse(&p[2], "SIZE"),
        subs: parse(&p[3], "SUBS"),
        count: parse(&p[4], "COUNT"),
        spin: args.spin(),
        capacity: args.get_or("capacity", 1000),
        timeout: Duration::from_secs(args.get_or("timeout", 30)),
    };
    if run.subs == 0 {
        fail("SUBS must be at least 1");
    }
    match p[0].as_str() {
        "pub" => publisher(&run),
        "sub" => subscribers(&run),
        _ => fail(USAGE),
    }
}

fn publisher(run: &Run) {
    let node = NodeBuilder::new("pub")
        .bind(run.addr)
        .spin(run.spin)
        .linger(run.timeout)
        .start()
        .unwrap_or_else(|e| fail(&format!("cannot start node pub on {}: {e}", run.addr)));
    let publisher = node.publisher("pub").unwrap_or_else(|e| fail(&format!("publisher: {e}")));
    publisher
        .wait_for_subscribers(run.subs, run.timeout)
        .unwrap_or_else(|e| fail(&format!("waiting for {} subscribers: {e}", run.subs)));
    let payload = vec![b'x'; run.size];
    for n in 0..run.count {
        publisher
            .publish_timeout(b"t", &payload, run.timeout)
            .unwrap_or_else(|e| fail(&format!("publish {n}: {e}")));
    }
    // Waits until every subscriber received everything.
    publisher.close(run.timeout).unwrap_or_else(|e| fail(&format!("close: {e}")));
    node.close(run.timeout).unwrap_or_else(|e| fail(&format!("node close: {e}")));
}

fn subscribers(run: &Run) {
    let node = NodeBuilder::new("sub")
        .bind("127.0.0.1:0".parse().unwrap_or_else(|_| fail("address")))
        .peer("pub", run.addr)
        .spin(run.spin)
        .start()
        .unwrap_or_else(|e| fail(&format!("cannot start node sub: {e}")));
    let poller = Poller::new();
    let subs: Vec<_> = (0..run.subs)
        .map(|i| {
            let s = node
                .subscriber(&format!("sub{i}"))
                .unwrap_or_else(|e| fail(&format!("subscriber: {e}")));
            let options = s.options().unwrap_or_else(|e| fail(&format!("options: {e}")));
            s.set_options(options.capacity(run.capacity).link_retry(
                Duration::from_millis(20),
                Duration::from_millis(500),
                None,
            ))
            .unwrap_or_else(|e| fail(&format!("options: {e}")));
            s.subscribe(b"t").unwrap_or_else(|e| fail(&format!("subscribe: {e}")));
            s.link("pub/pub").unwrap_or_else(|e| fail(&format!("link: {e}")));
            poller
                .add(s.as_socket(), Interest::new(Events::IN))
                .unwrap_or_else(|e| fail(&format!("poller: {e}")));
            s
        })
        .collect();
    let index: std::collections::HashMap<_, _> =
        subs.iter().enumerate().map(|(i, s)| (s.as_socket().poll_id(), i)).collect();
    let mut got = vec![0u64; run.subs];
    let mut done = 0;
    let mut delivered = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut buf = vec![0u8; run.size + 64];
    let mut events = vec![PollEvent::EMPTY; run.subs.min(256)];
    let wanted = run.count;
    // The first message may take a while (the publisher starts after us).
    let idle_limit =
        |first: Option<Instant>| if first.is_some() { run.timeout } else { run.timeout * 4 };
    let mut idle_since = Instant::now();
    while done < run.subs {
        let n = match poller.wait(&mut events, Some(Duration::from_millis(100))) {
            Ok(n) => n,
            Err(e) => fail(&format!("poll: {e}")),
        };
        if n == 0 {
            if idle_since.elapsed() > idle_limit(first) {
                break;
            }
            continue;
        }
        idle_since = Instant::now();
        for ev in &events[..n] {
            let Some(&i) = index.get(&ev.id) else { continue };
            let socket = subs[i].as_socket();
            // Everything it has now; the clock is read once per burst.
            let before = delivered;
            loop {
                match socket.recv_into(&mut buf, Some(Duration::ZERO)) {
                    Ok(len) => {
                        if len != run.size + 4 || &buf[..4] != b"\x00\x02\x01t" {
                            fail(&format!("sub{i}: unexpected message of {len} bytes"));
                        }
                        delivered += 1;
                        got[i] += 1;
                        if got[i] == wanted {
                            done += 1;
                        }
                    }
                    Err(Error::Timeout | Error::WouldBlock) => break,
                    Err(e) => fail(&format!("sub{i}: {e}")),
                }
            }
            if delivered > before {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
            }
        }
    }
    let seconds = first.map_or(0.0, |f| (last - f).as_secs_f64()).max(1e-9);
    let expected = run.subs as u64 * run.count;
    println!(
        "a3m_pubsub subscribers={} size={} published={} delivered={delivered} lost={} msgs_per_s={:.0}",
        run.subs,
        run.size,
        run.count,
        expected.saturating_sub(delivered),
        delivered as f64 / seconds
    );
    drop(subs);
    let _ = node.close(Duration::from_secs(2));
}
