//! Many seeds of one scenario, with totals: what the `sim` example and the simulator tests run.

use core::ops::Range;
use core::time::Duration;

use a3m_core::id::NodeId;

use super::liveness::quantile;
use super::scenario::Scenario;
use super::{CheckReport, NetStats, RunReport, SimNode, Simulator};

/// Totals over the seeds of a campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Seeds run.
    pub seeds: u64,
    /// Checker totals over all seeds.
    pub check: CheckReport,
    /// Datagram totals over all seeds.
    pub net: NetStats,
    /// Events processed over all seeds.
    pub events: u64,
    /// Anomalies over all seeds.
    pub anomalies: u64,
    /// Seeds whose run was not [`RunReport::ok`], in order.
    pub failed_seeds: Vec<u64>,
    /// Seeds whose run did not finish by its completion bound (a subset of `failed_seeds`).
    pub stalled_seeds: Vec<u64>,
    /// Per seed, in order: virtual microseconds from the start of the run until it was
    /// complete (everything delivered and acknowledged), or until it stopped.
    pub completion_us: Vec<u64>,
    /// Per seed: virtual microseconds from the end of the faults until the run was complete.
    pub recovery_us: Vec<u64>,
    /// Per seed of a quiescing scenario: virtual microseconds from the end of the faults until
    /// every record was closed (or the run stopped); empty without quiesce.
    pub close_us: Vec<u64>,
    /// Largest share of its bound's allowance a run used, in parts per million (over 10⁶:
    /// some run was late).
    pub worst_bound_use_ppm: u64,
    /// Smallest and largest completion bound, in virtual microseconds (`u64::MAX`: none).
    pub bound_us: (u64, u64),
    /// XOR of the runs' trace hashes rotated by their seed (equal campaigns hash equal).
    pub trace_hash: u64,
}

impl Totals {
    /// Adds one run.
    pub fn add(&mut self, report: &RunReport) {
        self.seeds += 1;
        self.check.add(&report.check);
        self.net.add(&report.net);
        self.events += report.events;
        self.anomalies += report.anomalies;
        if !report.ok() {
            self.failed_seeds.push(report.seed);
        }
        if !report.live() {
            self.stalled_seeds.push(report.seed);
        }
        self.completion_us.push(report.completion().as_micros());
        self.recovery_us.push(micros(report.recovery()));
        if report.bound.close_at.is_some() {
            let closed = report.closed_at.unwrap_or(report.end_time);
            self.close_us.push(micros(closed.saturating_since(report.bound.fault_end)));
        }
        let bound = report.bound.at.map_or(u64::MAX, |b| b.as_micros());
        if self.seeds == 1 {
            self.bound_us = (bound, bound);
        } else {
            self.bound_us = (self.bound_us.0.min(bound), self.bound_us.1.max(bound));
        }
        let used = match report.bound.allowance() {
            Some(a) if !a.is_zero() => {
                (report.recovery().as_secs_f64() / a.as_secs_f64() * 1e6).round() as u64
            }
            _ => u64::MAX,
        };
        self.worst_bound_use_ppm = self.worst_bound_use_ppm.max(used);
        self.trace_hash ^= report.trace_hash.rotate_left((report.seed % 64) as u32);
    }

    /// True if every run was ok.
    pub fn ok(&self) -> bool {
        self.failed_seeds.is_empty()
    }

    /// Messages delivered per virtual second, over all seeds (delivered messages divided by
    /// the sum of the runs' virtual durations).
    pub fn goodput(&self) -> f64 {
        let us: u64 = self.completion_us.iter().sum();
        if us == 0 { 0.0 } else { self.check.delivered as f64 / (us as f64 / 1e6) }
    }

    /// Completion time (from the start of the run) at quantile `q` over the seeds.
    pub fn completion(&self, q: f64) -> Duration {
        Duration::from_micros(sorted_quantile(&self.completion_us, q))
    }

    /// Recovery time (from the end of the faults) at quantile `q` over the seeds.
    pub fn recovery(&self, q: f64) -> Duration {
        Duration::from_micros(sorted_quantile(&self.recovery_us, q))
    }

    /// Close time (from the end of the faults) at quantile `q` over the seeds (zero without
    /// quiesce).
    pub fn close(&self, q: f64) -> Duration {
        Duration::from_micros(sorted_quantile(&self.close_us, q))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn sorted_quantile(values: &[u64], q: f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    quantile(&sorted, q)
}

/// Runs `scenario` for every seed in `seeds`, building nodes with `make_node(index, id)`, and
/// calls `each` with every run's report (to print progress or failures). Panics if the
/// scenario itself is invalid (a bug in the caller, not in the node).
pub fn run_seeds<N: SimNode>(
    scenario: &Scenario,
    seeds: Range<u64>,
    mut make_node: impl FnMut(usize, NodeId) -> N,
    mut each: impl FnMut(&RunReport),
) -> Totals {
    let mut totals = Totals::default();
    for seed in seeds {
        let mut sim = Simulator::new(scenario.config(seed), &mut make_node)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let report = sim.run();
        each(&report);
        totals.add(&report);
    }
    totals
}
