//! Many seeds of one scenario, with totals: what the `sim` example and the simulator tests run.

use core::ops::Range;

use a3m_core::id::NodeId;

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
        self.trace_hash ^= report.trace_hash.rotate_left((report.seed % 64) as u32);
    }

    /// True if every run was ok.
    pub fn ok(&self) -> bool {
        self.failed_seeds.is_empty()
    }
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
