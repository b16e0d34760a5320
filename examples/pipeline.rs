//! The demo: a parallel pipeline on three nodes over UDP loopback (thesis §7.3).
//!
//! ```text
//! cargo run --example pipeline [-- --count 100000]
//! ```
//!
//! ```text
//!                       ┌─ work/in-1 → worker 1 → work/out-1 ─┐
//!   source/out (push) ──┤                                     ├──→ sink/in (pull)
//!                       └─ work/in-2 → worker 2 → work/out-2 ─┘
//! ```
//!
//! The source pushes the numbers 0..count to two workers (round robin, as credits allow);
//! each worker squares what it pulls and pushes it to the sink. Nobody tells anybody how
//! many messages there are: the source unlinks when it is done, and every stage sees the
//! end of the stream when its pull socket becomes link-free (its `recv` fails with
//! `NoLinks`), which happens only once it has received everything. A worker then closes
//! its push socket, passing the end of the stream on. The sink checks the count and the
//! sum of the squares, prints the counts and exits 0.

use std::thread;
use std::time::{Duration, Instant};

use a3m::{Error, LinkEvent, Node, NodeBuilder, Pull, Socket, SocketOptions};
use a3m_examples::{Args, fail};

/// How long any stage waits for the others before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["count"]);
    let count: u64 = args.get_or("count", 100_000);
    let started = Instant::now();
    println!("pipeline: source -> 2 workers -> sink on 3 nodes over UDP loopback, {count} numbers");

    let sink_node = start(NodeBuilder::new("sink"));
    let work_node = start(NodeBuilder::new("work").peer("sink", sink_node.local_addr()));
    let source_node = start(NodeBuilder::new("source").peer("work", work_node.local_addr()));

    // Sockets first, so that links find their peers at once (they would retry otherwise).
    let sink = pull(&sink_node, "in");
    let workers: Vec<(Socket, Socket)> = (1..=2)
        .map(|i| {
            let input = pull(&work_node, &format!("in-{i}"));
            let output = ok(work_node.push(&format!("out-{i}")), "worker push socket");
            ok(output.link("sink/in"), "worker link");
            (input, output)
        })
        .collect();
    let source = ok(source_node.push("out"), "source push socket");
    for i in 1..=2 {
        ok(source.link(format!("work/in-{i}")), "source link");
    }

    let total = thread::scope(|s| {
        let sink = s.spawn(|| run_sink(&sink, 2));
        let handled: Vec<_> = workers
            .iter()
            .enumerate()
            .map(|(i, (input, output))| s.spawn(move || run_worker(i + 1, input, output)))
            .collect();
        run_source(&source, count);
        for (i, worker) in handled.into_iter().enumerate() {
            let n = worker.join().unwrap_or_else(|_| fail("worker panicked"));
            println!("worker {}: squared {n} numbers, then saw the end of the stream", i + 1);
        }
        sink.join().unwrap_or_else(|_| fail("sink panicked"))
    });

    let (received, sum) = total;
    let expected: u128 = (0..u128::from(count)).map(|n| n * n).sum();
    println!("sink: received {received} squares, then saw the end of the stream");
    if received != count || sum != expected {
        fail(&format!(
            "sink got {received} squares summing to {sum}, expected {count} and {expected}"
        ));
    }
    println!("sum of squares {sum} is right; done in {:.2?}", started.elapsed());
}

/// The source: sends the numbers, then unlinks from both workers and closes.
fn run_source(source: &Socket, count: u64) {
    wait_for_links(source, 2);
    for n in 0..count {
        ok(source.send(&n.to_le_bytes()), "source send");
    }
    for i in 1..=2 {
        ok(source.unlink(format!("work/in-{i}")), "source unlink");
    }
    let report = ok(source.close(PATIENCE), "source close");
    if report.aborted_links > 0 {
        fail("the source's links did not finish unlinking");
    }
    println!("source: sent {count} numbers, then unlinked");
}

/// A worker: squares numbers until its input has no link left, then closes its output.
fn run_worker(i: usize, input: &Socket, output: &Socket) -> u64 {
    wait_for_links(output, 1);
    // Wait for the source before relying on notify-if-none (with it, `wait_for_link` on a
    // link-free socket fails at once: wait for the event instead).
    wait_for_links(input, 1);
    let mut handled = 0;
    loop {
        match input.recv_timeout(PATIENCE) {
            Ok(message) => {
                let n = u64::from_le_bytes(bytes(&message));
                ok(output.send(&(u128::from(n) * u128::from(n)).to_le_bytes()), "worker send");
                handled += 1;
            }
            Err(Error::NoLinks) => break,
            Err(e) => fail(&format!("worker {i}: {e}")),
        }
    }
    ok(output.close(PATIENCE), "worker close");
    handled
}

/// The sink: once both workers are linked, sums squares until link-free.
fn run_sink(sink: &Socket, workers: usize) -> (u64, u128) {
    // Both workers must be linked before an empty link set can mean the end.
    wait_for_links(sink, workers);
    let (mut received, mut sum) = (0u64, 0u128);
    loop {
        match sink.recv_timeout(PATIENCE) {
            Ok(message) => {
                sum += u128::from_le_bytes(bytes(&message));
                received += 1;
            }
            Err(Error::NoLinks) => return (received, sum),
            Err(e) => fail(&format!("sink: {e}")),
        }
    }
}

/// Waits until `n` links of `socket` are established, from its link events.
fn wait_for_links(socket: &Socket, n: usize) {
    let mut established = 0;
    while established < n {
        match socket.next_event(Some(PATIENCE)) {
            Ok(LinkEvent::Established { .. }) => established += 1,
            Ok(LinkEvent::Refused { peer, reason, .. }) => {
                fail(&format!("{peer} refused: {reason}"))
            }
            Ok(_) => {}
            Err(e) => fail(&format!("{} waiting for links: {e}", socket.id())),
        }
    }
}

fn start(builder: NodeBuilder) -> Node {
    ok(builder.linger(PATIENCE).start(), "node start")
}

/// A pull socket that reports the end of the stream (notify-if-none).
fn pull(node: &Node, tag: &str) -> Socket {
    let options = SocketOptions::new().notify_if_none(true);
    ok(node.socket_with(tag, Box::new(Pull::new()), options), "pull socket")
}

/// A fixed-size message.
fn bytes<const N: usize>(message: &[u8]) -> [u8; N] {
    message.try_into().unwrap_or_else(|_| fail(&format!("a message of {} bytes", message.len())))
}

fn ok<T>(result: Result<T, Error>, what: &str) -> T {
    result.unwrap_or_else(|e| fail(&format!("{what}: {e}")))
}
