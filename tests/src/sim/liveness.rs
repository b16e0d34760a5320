//! Liveness: the virtual time by which a run must have finished.
//!
//! Safety alone is not exactly-once: a run that never duplicates but never finishes fails too
//! (DESIGN.md, "Safety and liveness"). A run is *complete* when every planned message has
//! been delivered and every sender has had every message acknowledged (`unacknowledged() ==
//! 0` on every node); with [`super::SimConfig::quiesce`] it is *closed* once every node has
//! also closed every record (the close phase: the core node's idle send record reports its
//! last slot with `REQSLOTS(0, l)` and the receiver drops its record). A run that is not
//! complete by [`Bound::at`], or not closed by [`Bound::close_at`], fails
//! ([`super::RunReport::ok`] is false) with the reason `stalled: N of M delivered ... at
//! virtual T, bound B`.
//!
//! # The bound
//!
//! ```text
//! at       = fault_end + rounds × round + inbox_wait
//! close_at = at + close_wait                                   (with quiesce)
//! ```
//!
//! * `fault_end`: the last instant anything disturbs the run: the last burst of submissions,
//!   the end of the last partition, the last address change. Random and burst loss,
//!   duplication and reordering go on for ever; they are priced into the rounds.
//! * `round = retransmit_max + 2 × max_transit + drain_interval`: within one round every
//!   unacknowledged message is retransmitted at least once (a node that has backed off fully
//!   still retransmits within `retransmit_max`, its RTO ceiling), the datagram and the one
//!   acknowledging it each arrive within `max_transit`, and a slow application takes the
//!   delivery within one drain interval.
//! * `p`: the long-run loss of the worst path (random and burst loss); `q = (1 − p)²`: the
//!   chance that one round trip (the message, then its acknowledgement) gets through.
//! * `rounds = (tail + steps) × windows + burst`, where
//!   * `tail = ⌈ln(ε / M) / ln(1 − q)⌉`, with `M` the messages of the run and `ε = 10⁻⁶`: if
//!     each round gives each message an independent chance `q`, all `M` are through after
//!     `tail` rounds except with probability `ε` (union bound over the messages);
//!   * `steps = ⌈STEPS / q⌉`: the exchanges that precede or repair delivery and need round
//!     trips of their own (a slot grant; after a long partition, the status that proves an
//!     incarnation gone and the new grant; a peer learning a moved address), each taking
//!     `1 / q` rounds on average;
//!   * `windows = ⌈m / window⌉`, with `m` the messages of the busiest sender-receiver pair:
//!     a sender with more than a window to send waits for the head of its window, so the
//!     rounds repeat per window;
//!   * `burst = ⌈2 L ln(1 / ε)⌉` when the burst model is on, with `L` its mean length: a bad
//!     state outlasts `k` more datagrams with probability `(1 − 1/L)^k`, and a quiet path may
//!     carry a single retransmission per round, so a burst costs up to `L ln(1/ε)` rounds in
//!     each direction.
//! * `inbox_wait = ⌈n / inbox⌉ × round` with a slow application, `n` the messages of the
//!   busiest receiver: it takes at most `inbox` of them per drain, and while the inbox is full
//!   tokens are refused, so refilling it after a drain may take a retransmission (a round).
//! * `close_wait`: the close (the core node's final `REQSLOTS(0, l)`) goes `close_after`
//!   after the last activity; a lost one is repaired through the peer's probe, sent at least
//!   every `silent_max` (the probe's backoff ceiling) and answered with the close again:
//!   `close_after + (2 + ⌈ln(ε / P) / ln(1 − q)⌉ + burst) × silent_max`, with `P` the
//!   ordered pairs of nodes (the first probe may come two idle periods after the silence;
//!   on a path that quiet, a burst lasts `burst` probes).
//!
//! # Runs without a bound
//!
//! Peers learn a moved node's address only from datagrams it sends. A node that moves
//! silently (not announced) and is not sure to send a message to every peer afterwards (the
//! move comes after its last submission, or it sends to some peers only) may never speak to
//! some peer again: it may hold no record for that peer, so nothing makes it speak. Such a run
//! has no finite bound ([`Bound::at`] is `None`, and the run fails) if
//!
//! * the moving node receives messages: a peer with messages for it may never find it; or
//! * the run must quiesce: a peer whose close was lost probes the old address for ever.
//!
//! A moving node that only sends (the push side of a pipeline) is bounded whenever it moves:
//! its retransmissions and its close come from its new address, and nobody needs to reach it
//! first. Announced moves are bounded: the node tells every peer.
//!
//! The formula looks only at timers, limits and loss rates, not at how a protocol recovers
//! inside a round (how many tokens one ACK covers, how many duplicates a receiver
//! re-acknowledges): a protocol that needs many rounds to recover from one lost datagram is
//! exactly what it is meant to catch.

use core::fmt;
use core::time::Duration;

use a3m_core::time::Instant;

use super::SimConfig;
use super::endpoint::LivenessHints;
use super::workload::Plan;

/// Accepted chance, per run and per term, that a live protocol still misses its bound.
pub const EPSILON: f64 = 1e-6;
/// Round trips besides a message's own that delivery may need (see the module docs).
pub const STEPS: f64 = 6.0;

/// The completion bound of one run, with the terms it is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// When the last fault (or the last burst of submissions) is over.
    pub fault_end: Instant,
    /// The virtual time by which the run must be complete; `None` if the scenario has no
    /// finite bound (see the module docs).
    pub at: Option<Instant>,
    /// With quiesce, the virtual time by which the run must also be closed.
    pub close_at: Option<Instant>,
    /// Rounds allowed after `fault_end`.
    pub rounds: u64,
    /// Length of one round.
    pub round: Duration,
    /// Extra time for a slow application.
    pub waits: Duration,
    /// Why there is no finite bound, when `at` is `None`.
    pub unbounded: &'static str,
}

impl Bound {
    /// Time allowed after `fault_end`, if finite.
    pub fn allowance(&self) -> Option<Duration> {
        self.at.map(|at| at - self.fault_end)
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |t: Instant| t.as_micros() as f64 / 1e6;
        match self.at {
            Some(at) => {
                write!(
                    f,
                    "{:.3}s (faults end {:.3}s + {} rounds x {:.3}s + {:.3}s waits)",
                    s(at),
                    s(self.fault_end),
                    self.rounds,
                    self.round.as_secs_f64(),
                    self.waits.as_secs_f64()
                )?;
                if let Some(close) = self.close_at {
                    write!(f, ", closed by {:.3}s", s(close))?;
                }
                Ok(())
            }
            None => write!(f, "none (faults end {:.3}s; {})", s(self.fault_end), self.unbounded),
        }
    }
}

/// `⌈ln(target) / ln(fail)⌉`: trials until every one of them failing is less likely than
/// `target` (1 when failure is impossible, `None` when it is certain).
fn trials(target: f64, fail: f64) -> Option<u64> {
    if fail <= 0.0 {
        return Some(1);
    }
    if fail >= 1.0 {
        return None;
    }
    Some((target.ln() / fail.ln()).ceil().max(1.0) as u64)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The hints that hold for all the nodes: the slowest timers and the smallest limits.
pub fn combine(hints: impl IntoIterator<Item = LivenessHints>) -> LivenessHints {
    let mut all = hints.into_iter();
    let Some(first) = all.next() else { return LivenessHints::default() };
    all.fold(first, |a, b| LivenessHints {
        retransmit_max: a.retransmit_max.max(b.retransmit_max),
        window: a.window.min(b.window),
        inbox: a.inbox.min(b.inbox),
        silent_max: a.silent_max.zip(b.silent_max).map(|(x, y)| x.max(y)),
        close_after: a.close_after.max(b.close_after),
    })
}

/// True if node `node`, moving at `at`, submits a message to every other node afterwards,
/// so that its own tokens tell every peer its new address.
fn sends_to_all_after(plan: &Plan, nodes: usize, node: usize, at: Instant) -> bool {
    let first_burst = (0..plan.bursts()).find(|&b| plan.burst_time(b) >= at);
    let Some(b) = first_burst else { return false };
    let before = if b == 0 { 0 } else { plan.due_after(node, b - 1) };
    let after = plan.per_sender[node].saturating_sub(before);
    after as usize >= nodes - 1
}

/// The completion bound of `config` run by nodes with these (combined) `hints`, where no
/// datagram spends more than `max_transit` on the wire.
pub(crate) fn bound(
    config: &SimConfig,
    plan: &Plan,
    hints: &LivenessHints,
    max_transit: Duration,
) -> Bound {
    let n = config.nodes;
    let last_burst = plan.burst_time(plan.bursts() - 1);
    let fault_end = config
        .partitions
        .iter()
        .map(|p| p.end)
        .chain(config.address_changes.iter().map(|c| c.at))
        .fold(last_burst, Instant::max);

    let paths = core::iter::once(&config.paths).chain(config.path_overrides.iter().map(|o| &o.2));
    let p = paths.clone().map(|c| c.effective_loss()).fold(0.0, f64::max);
    let burst_len =
        paths.filter(|c| c.burst_loss > 0.0).map(|c| c.burst_len.max(1.0)).fold(0.0, f64::max);
    let q = (1.0 - p) * (1.0 - p);
    let messages = plan.per_sender.iter().map(|&m| u64::from(m)).sum::<u64>().max(1);
    let unbounded = |why: &'static str| Bound {
        fault_end,
        at: None,
        close_at: None,
        rounds: 0,
        round: Duration::ZERO,
        waits: Duration::ZERO,
        unbounded: why,
    };
    let Some(tail) = trials(EPSILON / messages as f64, 1.0 - q) else {
        return unbounded("every datagram is lost");
    };
    let steps = (STEPS / q).ceil() as u64;
    // Messages of the busiest (sender, receiver) pair and of the busiest receiver.
    let mut pair = 0u64;
    let mut received = vec![0u64; n];
    for (sender, &total) in plan.per_sender.iter().enumerate() {
        let mut to = vec![0u64; n];
        for seq in 0..total {
            to[plan.destination(sender, seq)] += 1;
        }
        pair = pair.max(to.iter().copied().max().unwrap_or(0));
        for (r, m) in to.iter().enumerate() {
            received[r] += m;
        }
    }
    let windows = pair.div_ceil(hints.window.max(1)).max(1);
    let burst =
        if burst_len > 0.0 { (2.0 * burst_len * (1.0 / EPSILON).ln()).ceil() as u64 } else { 0 };
    let rounds = (tail + steps).saturating_mul(windows).saturating_add(burst);

    let drain = config.drain_interval.unwrap_or(Duration::ZERO);
    let round = hints.retransmit_max + max_transit * 2 + drain;
    let mut waits = Duration::ZERO;
    if !drain.is_zero() && hints.inbox != u64::MAX {
        let busiest = received.iter().copied().max().unwrap_or(0);
        let drains = u32::try_from(busiest.div_ceil(hints.inbox.max(1))).unwrap_or(u32::MAX);
        waits += round.saturating_mul(drains);
    }
    for c in config.address_changes.iter() {
        if c.announce || sends_to_all_after(plan, n, c.node, c.at) {
            continue;
        }
        if received[c.node] > 0 {
            return unbounded(
                "a node that receives messages moves silently and may never speak to a peer \
                 that has messages for it",
            );
        }
        if config.quiesce {
            return unbounded(
                "a node moves silently and may never speak again to a peer that must close \
                 with it",
            );
        }
    }
    let mut close_wait = None;
    if config.quiesce {
        let pairs = (n * (n - 1)) as f64;
        let (Some(every), Some(k)) = (hints.silent_max, trials(EPSILON / pairs, 1.0 - q)) else {
            return unbounded("the nodes never repair a lost close");
        };
        let probes = u32::try_from(k.saturating_add(2 + burst)).unwrap_or(u32::MAX);
        close_wait = Some(hints.close_after + every.saturating_mul(probes));
    }
    let total_us = micros(round)
        .saturating_mul(rounds)
        .saturating_add(micros(waits))
        .saturating_add(fault_end.as_micros());
    let close_us = close_wait.map(|w| total_us.saturating_add(micros(w)));
    // Far beyond any useful run: treat as unbounded rather than overflow.
    if total_us.max(close_us.unwrap_or(0)) >= u64::MAX / 4 {
        return unbounded("the bound overflows");
    }
    Bound {
        fault_end,
        at: Some(Instant::from_micros(total_us)),
        close_at: close_us.map(Instant::from_micros),
        rounds,
        round,
        waits,
        unbounded: "",
    }
}

/// The value at quantile `q` (0 to 1, nearest rank) of `values`, which must be sorted.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::network::PathConditions;
    use crate::sim::workload::Workload;

    fn plan(config: &SimConfig) -> Plan {
        Plan::new(&config.workload, config.nodes)
    }

    #[test]
    fn trials_and_quantiles() {
        assert_eq!(trials(1e-6, 0.0), Some(1));
        assert_eq!(trials(1e-6, 1.0), None);
        assert_eq!(trials(1e-9, 0.51), Some(31));
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!((quantile(&v, 0.5), quantile(&v, 0.99), quantile(&v, 1.0)), (5, 10, 10));
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn the_bound_grows_with_loss_and_bursts_and_stays_finite() {
        let hints = LivenessHints::default();
        let transit = Duration::from_millis(65);
        let at = |config: &SimConfig| {
            let b = bound(config, &plan(config), &hints, transit);
            b.allowance().expect("finite")
        };
        let clean = SimConfig { workload: Workload::default(), ..SimConfig::default() };
        let lossy = SimConfig {
            paths: PathConditions { loss: 0.3, ..PathConditions::default() },
            ..clean.clone()
        };
        let bursty = SimConfig {
            paths: PathConditions {
                loss: 0.3,
                burst_loss: 0.05,
                burst_len: 4.0,
                ..PathConditions::default()
            },
            ..clean.clone()
        };
        let (a, b, c) = (at(&clean), at(&lossy), at(&bursty));
        assert!(a < b && b < c, "{a:?} {b:?} {c:?}");
        // 30 % loss, 1000 messages: 31 tail rounds + 13 step rounds of 1.13 s.
        assert_eq!(b, Duration::from_millis(1130) * 44);
        assert!(c < Duration::from_secs(300), "{c:?}");
    }
}
