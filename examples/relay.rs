//! A UDP fault relay between two endpoints (the library is `a3m_tests::relay`): this kernel has
//! no `netem`, so real-process fault tests put it between two nodes.
//!
//! ```text
//! cargo run --release --example relay -- --listen 127.0.0.1:7000 --to 127.0.0.1:7001 \
//!     --loss 0.05 --dup 0.02 --reorder 0.05 --delay 2ms --jitter 1ms \
//!     --blackout 10s@3s --burst 4 --seed 1 --duration 60s
//! ```
//!
//! The first datagram that arrives at `--listen` makes its sender the client (the latest
//! sender stays the client, so a moving client is followed); client datagrams are forwarded
//! to `--to` from an ephemeral port on the listen IP, and `--to`'s answers go back to the
//! client. Faults, in both directions, seeded by `--seed` (default 1):
//!
//! - `--loss P`: drop probability; with `--burst L` the same long-run rate in bursts of
//!   mean length `L` datagrams (Gilbert-Elliott: the bad state drops everything).
//! - `--dup P`: send a datagram twice. `--reorder P`: hold a datagram back behind the next
//!   1 to 3 of its direction (at most 5 ms).
//! - `--delay D` and `--jitter D`: a fixed plus a uniform random delay per copy.
//! - `--blackout DURATION@START[,DURATION@START...]`: drop everything in both directions in
//!   these windows, measured from the start of the relay.
//!
//! Durations take the suffix `us`, `ms` or `s`. Prints `relay listening on ADDR -> TO` when
//! ready, then the counters to stderr every `--report` (default 1s; `0`: never) and, after
//! `--duration` (default: run until killed), `relay done after SECONDS: COUNTERS` to stdout.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use a3m_examples::{Args, fail};
use a3m_tests::relay::{Blackout, Faults, Relay, RelayConfig, parse_duration};

const KNOWN: &[&str] = &[
    "listen", "to", "loss", "dup", "reorder", "delay", "jitter", "blackout", "burst", "seed",
    "duration", "report",
];

/// The value of a duration flag, if given.
fn duration(args: &Args, name: &str) -> Option<Duration> {
    let text: String = args.get(name)?;
    Some(parse_duration(&text).unwrap_or_else(|e| fail(&format!("--{name}: {e}"))))
}

fn main() {
    let args = Args::from_env();
    args.reject_unknown(KNOWN);
    let listen: SocketAddr = args.require("listen");
    let to: SocketAddr = args.require("to");
    let blackouts = args
        .get::<String>("blackout")
        .map(|list| {
            list.split(',')
                .map(|b| b.parse::<Blackout>().unwrap_or_else(|e| fail(&format!("--{e}"))))
                .collect()
        })
        .unwrap_or_default();
    let faults = Faults {
        loss: args.get_or("loss", 0.0),
        dup: args.get_or("dup", 0.0),
        reorder: args.get_or("reorder", 0.0),
        delay: duration(&args, "delay").unwrap_or_default(),
        jitter: duration(&args, "jitter").unwrap_or_default(),
        burst: args.get("burst"),
        blackouts,
    };
    faults.validate().unwrap_or_else(|e| fail(&format!("--{e}")));
    let run_for = duration(&args, "duration");
    let report = duration(&args, "report").unwrap_or(Duration::from_secs(1));
    let config = RelayConfig { listen, to, faults, seed: args.get_or("seed", 1) };
    let relay = Relay::bind(config)
        .unwrap_or_else(|e| fail(&format!("cannot bind {listen}: {e}")))
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start the relay: {e}")));
    println!("relay listening on {} -> {to}", relay.local_addr());

    let start = Instant::now();
    let deadline = run_for.map(|d| start + d);
    let mut next_report = start + report;
    loop {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if !report.is_zero() && now >= next_report {
            eprintln!("relay {:.1}s: {}", start.elapsed().as_secs_f64(), relay.counters());
            next_report += report;
        }
        let mut wake = deadline.unwrap_or(now + Duration::from_secs(1));
        if !report.is_zero() {
            wake = wake.min(next_report);
        }
        thread::sleep(wake.saturating_duration_since(now).max(Duration::from_millis(1)));
    }
    let counters = relay.stop();
    println!("relay done after {:.3}s: {counters}", start.elapsed().as_secs_f64());
}
