//! Scenarios: the usual shape of a run (uniform path conditions, one partition somewhere in
//! the middle, one node moving) turned into a full [`SimConfig`] for any seed.
//!
//! Large datagrams (many tokens lost as one) are a node setting (`max_datagram`, e.g. 65 507,
//! with small payloads and large bursts so that hundreds of tokens share a datagram); burst
//! loss is [`Scenario::burst_loss`] and [`Scenario::burst_len`]; a sender whose own address
//! disappears is [`Scenario::move_node`] with [`Scenario::mover`] and [`Scenario::move_at`].

use core::time::Duration;

use a3m_core::time::Instant;

use super::SimConfig;
use super::network::{AddressChange, Partition, PathConditions, node_addr};
use super::rng::Rng;
use super::workload::Workload;

/// The knobs of the `sim` example and of the simulator tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Number of nodes.
    pub nodes: usize,
    /// Indexes of the nodes that send; empty means every node.
    pub senders: Vec<usize>,
    /// Messages per run (per seed), shared among all senders.
    pub messages: u64,
    /// Bytes per payload.
    pub payload_len: usize,
    /// Loss probability on every path.
    pub loss: f64,
    /// Long-run share of datagrams lost in bursts on every path (Gilbert-Elliott, see
    /// [`super::PathConditions::burst_loss`]); 0 for none.
    pub burst_loss: f64,
    /// Mean burst length in datagrams.
    pub burst_len: f64,
    /// Duplication probability on every path.
    pub duplicate: f64,
    /// Reordering probability on every path.
    pub reorder: f64,
    /// One-way delay on every path.
    pub delay: Duration,
    /// Jitter on every path.
    pub jitter: Duration,
    /// Largest extra delay of a reordered datagram.
    pub reorder_delay: Duration,
    /// Length of one partition between two random groups, starting at a random time between
    /// 1/5 and 1/2 of the workload's spread; `None` for no partition.
    pub partition: Option<Duration>,
    /// If true, one node moves to a new address at a random time in [`Scenario::move_at`]:
    /// datagrams to its old address are black-holed from then on and its own datagrams come
    /// from the new one.
    pub move_node: bool,
    /// The node that moves (`None`: a random one).
    pub mover: Option<usize>,
    /// When the node moves, as fractions of the workload's spread (default 0.1 to 0.5, so it
    /// still sends to every peer afterwards, which is how the peers learn its new address;
    /// above 1 is after the last submission, when it only retransmits, acknowledges and
    /// closes).
    pub move_at: (f64, f64),
    /// If true, the moving node's runtime notices its move and tells the node (which may then
    /// announce its new address); if false, the move is invisible to it, like a NAT rebinding.
    pub announce_move: bool,
    /// Time over which the messages are submitted.
    pub spread: Duration,
    /// Number of submission bursts.
    pub bursts: u32,
    /// Virtual time after which a run stops even if messages are missing (`None`: from the
    /// completion bound, see [`SimConfig::time_limit`]).
    pub time_limit: Option<Duration>,
    /// Require every record to be closed too (see [`SimConfig::quiesce`]).
    pub quiesce: bool,
    /// If set, the application empties the inboxes only this often (see
    /// [`SimConfig::drain_interval`]).
    pub drain_interval: Option<Duration>,
    /// Print every event of every run (see [`SimConfig::log`]).
    pub log: bool,
}

impl Default for Scenario {
    /// Three nodes, 1000 messages per run, perfect 10 ms paths with 5 ms jitter, no partition,
    /// no move, 40 bursts over 20 s, the time limit from the completion bound.
    fn default() -> Self {
        Scenario {
            nodes: 3,
            senders: Vec::new(),
            messages: 1000,
            payload_len: super::checker::PAYLOAD_HEADER_LEN,
            loss: 0.0,
            burst_loss: 0.0,
            burst_len: 1.0,
            duplicate: 0.0,
            reorder: 0.0,
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            reorder_delay: Duration::from_millis(50),
            partition: None,
            move_node: false,
            mover: None,
            move_at: (0.1, 0.5),
            announce_move: false,
            spread: Duration::from_secs(20),
            bursts: 40,
            time_limit: None,
            quiesce: false,
            drain_interval: None,
            log: false,
        }
    }
}

fn between(rng: &mut Rng, lo: Duration, hi: Duration) -> Instant {
    let lo = u64::try_from(lo.as_micros()).unwrap_or(u64::MAX);
    let hi = u64::try_from(hi.as_micros()).unwrap_or(u64::MAX);
    Instant::from_micros(rng.between(lo, hi))
}

impl Scenario {
    /// The configuration of the run for `seed`: the seed picks the partition's time and sides,
    /// the moving node and its time, and every random choice of the network.
    pub fn config(&self, seed: u64) -> SimConfig {
        let mut placement = Rng::new(seed ^ 0x5CE7_A510_5CE7_A510);
        let n = self.nodes;
        let mut partitions = Vec::new();
        if let Some(length) = self.partition {
            let start = between(&mut placement, self.spread / 5, self.spread / 2);
            let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            // A random group that is neither empty nor everyone.
            let side_a = 1 + placement.below(all.saturating_sub(1));
            partitions.push(Partition { start, end: start + length, side_a });
        }
        let mut address_changes = Vec::new();
        if self.move_node {
            // Draw the node even when it is fixed, so the time is the same either way.
            let random = placement.below(n as u64) as usize;
            let node = self.mover.unwrap_or(random);
            let (from, to) = self.move_at;
            let at = between(&mut placement, self.spread.mul_f64(from), self.spread.mul_f64(to));
            address_changes.push(AddressChange {
                node,
                at,
                new_addr: node_addr(node, 1),
                announce: self.announce_move,
            });
        }
        SimConfig {
            seed,
            nodes: n,
            paths: PathConditions {
                loss: self.loss,
                duplicate: self.duplicate,
                reorder: self.reorder,
                delay: self.delay,
                jitter: self.jitter,
                reorder_delay: self.reorder_delay,
                burst_loss: self.burst_loss,
                burst_len: self.burst_len,
            },
            path_overrides: Vec::new(),
            partitions,
            address_changes,
            workload: Workload {
                messages: self.messages,
                senders: self.senders.clone(),
                payload_len: self.payload_len,
                start: Instant::ZERO,
                spread: self.spread,
                bursts: self.bursts,
            },
            time_limit: self.time_limit.map(|t| Instant::ZERO + t),
            quiesce: self.quiesce,
            hash_datagrams: false,
            drain_interval: self.drain_interval,
            log: self.log,
        }
    }
}

/// Parses a duration such as `10s`, `250ms`, `1.5s`, `500us`, `2m` or `0` (plain numbers are
/// seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || format!("'{text}' is not a duration like 10s, 250ms or 1.5s");
    let micros_per_unit: u64 = match unit {
        "" | "s" => 1_000_000,
        "ms" => 1000,
        "us" => 1,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        _ => return Err(format!("'{text}': unknown unit '{unit}' (use h, m, s, ms or us)")),
    };
    let micros = if number.contains('.') {
        let value: f64 = number.parse().map_err(|_| bad())?;
        let micros = (value * micros_per_unit as f64).round();
        if !(0.0..1e18).contains(&micros) {
            return Err(bad());
        }
        micros as u64
    } else {
        let value: u64 = number.parse().map_err(|_| bad())?;
        value.checked_mul(micros_per_unit).ok_or_else(bad)?
    };
    Ok(Duration::from_micros(micros))
}

/// Formats a duration the way [`parse_duration`] reads it back.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7us"), Ok(Duration::from_micros(7)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        for d in [Duration::from_secs(3), Duration::from_millis(15), Duration::from_micros(9)] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn partition_and_move_land_mid_run_with_two_nonempty_sides() {
        let s = Scenario {
            partition: Some(Duration::from_secs(10)),
            move_node: true,
            ..Scenario::default()
        };
        for seed in 0..200 {
            let c = s.config(seed);
            let p = c.partitions[0];
            assert!(p.start >= Instant::ZERO + Duration::from_secs(4));
            assert!(p.start <= Instant::ZERO + Duration::from_secs(10));
            assert_eq!(p.end - p.start, Duration::from_secs(10));
            assert!(p.side_a != 0 && p.side_a != 0b111, "{:b}", p.side_a);
            let m = c.address_changes[0];
            assert!(m.node < 3);
            assert!(m.at >= Instant::ZERO + Duration::from_secs(2));
            assert!(m.at <= Instant::ZERO + Duration::from_secs(10));
        }
    }
}
