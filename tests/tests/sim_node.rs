//! The core node under the simulator: every message delivered exactly once through loss,
//! duplication, reordering, partitions, address changes, tight limits and record collection.
//!
//! Debug builds run fewer seeds than release builds (`cargo test --release -p a3m-tests`) so
//! that `cargo test` stays quick; the 1000-seed campaign is `ci/sim.sh`.

use core::time::Duration;

use a3m_core::node::{Node, NodeConfig, NodeStats};
use a3m_tests::sim::{RunReport, Scenario, Simulator, Totals};

/// `debug` seeds in a debug build, `release` seeds in an optimized one.
fn seeds(debug: u64, release: u64) -> u64 {
    if cfg!(debug_assertions) { debug } else { release }
}

/// Sums of the node counters that show which protocol paths a campaign went through.
#[derive(Debug, Default)]
struct Coverage {
    retransmitted: u64,
    duplicates: u64,
    address_changes: u64,
    inbox_full_deferrals: u64,
    send_records_collected: u64,
    receive_records_collected: u64,
    payloads_rebound: u64,
    backpressure: u64,
}

impl Coverage {
    fn add(&mut self, s: &NodeStats) {
        self.retransmitted += s.tokens_retransmitted;
        self.duplicates += s.duplicates;
        self.address_changes += s.address_changes;
        self.inbox_full_deferrals += s.inbox_full_deferrals;
        self.send_records_collected += s.send_records_collected;
        self.receive_records_collected += s.receive_records_collected;
        self.payloads_rebound += s.payloads_rebound;
    }
}

/// Runs `scenario` on `count` seeds with core nodes configured by `config`, asserting that every
/// run delivers every message exactly once; returns the totals and the node counters.
fn campaign(scenario: &Scenario, count: u64, config: &NodeConfig) -> (Totals, Coverage) {
    let mut totals = Totals::default();
    let mut coverage = Coverage::default();
    for seed in 0..count {
        let mut sim = Simulator::new(scenario.config(seed), |_, id| Node::new(id, config.clone()))
            .expect("valid scenario");
        let report: RunReport = sim.run();
        assert!(report.ok(), "{report}\nscenario: {scenario:?}\nconfig: {config:?}");
        assert_eq!((report.check.lost, report.check.duplicated), (0, 0), "{report}");
        totals.add(&report);
        coverage.backpressure += report.backpressure;
        for node in sim.nodes() {
            coverage.add(node.stats());
        }
    }
    assert_eq!(totals.check.delivered, totals.check.planned);
    (totals, coverage)
}

fn faults() -> Scenario {
    Scenario {
        messages: 300,
        loss: 0.3,
        duplicate: 0.1,
        reorder: 0.3,
        partition: Some(Duration::from_secs(10)),
        move_node: true,
        ..Scenario::default()
    }
}

#[test]
fn exactly_once_through_loss_duplication_reordering_partition_and_a_silent_move() {
    let (totals, cov) = campaign(
        &Scenario { messages: 1000, ..faults() },
        seeds(500, 5000),
        &NodeConfig::default(),
    );
    assert!(totals.net.lost > 0 && totals.net.duplicated > 0 && totals.net.reordered > 0);
    assert!(totals.net.partitioned > 0 && totals.net.unroutable > 0);
    assert!(cov.retransmitted > 0 && cov.duplicates > 0 && cov.address_changes > 0, "{cov:?}");
}

#[test]
fn exactly_once_with_five_nodes_and_heavy_faults() {
    let scenario = Scenario {
        nodes: 5,
        loss: 0.5,
        duplicate: 0.3,
        reorder: 0.6,
        jitter: Duration::from_millis(30),
        reorder_delay: Duration::from_millis(500),
        partition: Some(Duration::from_secs(30)),
        ..faults()
    };
    campaign(&scenario, seeds(300, 3000), &NodeConfig::default());
}

#[test]
fn exactly_once_when_a_receive_only_node_announces_its_move() {
    // Node 1 only receives: peers can learn its new address only because it announces it.
    let scenario = Scenario { senders: vec![0, 2], announce_move: true, ..faults() };
    let (_, cov) = campaign(&scenario, seeds(300, 3000), &NodeConfig::default());
    assert!(cov.address_changes > 0, "{cov:?}");
}

#[test]
fn exactly_once_with_tight_limits_and_a_slow_application() {
    let config = NodeConfig {
        window: 4,
        base_slots: 2,
        max_queued: 3,
        max_inbox: 2,
        max_datagram: 200,
        ..NodeConfig::default()
    };
    let scenario =
        Scenario { drain_interval: Some(Duration::from_millis(300)), payload_len: 40, ..faults() };
    let (_, cov) = campaign(&scenario, seeds(300, 3000), &config);
    assert!(cov.backpressure > 0 && cov.inbox_full_deferrals > 0, "{cov:?}");
}

#[test]
fn exactly_once_when_records_are_collected_during_a_partition() {
    let config = NodeConfig {
        idle_timeout: Duration::from_millis(200),
        receive_idle_timeout: Duration::from_secs(1),
        ..NodeConfig::default()
    };
    let scenario = Scenario { partition: Some(Duration::from_secs(30)), ..faults() };
    let (_, cov) = campaign(&scenario, seeds(300, 3000), &config);
    assert!(cov.send_records_collected > 0 && cov.receive_records_collected > 0, "{cov:?}");
}

#[test]
fn core_node_runs_are_deterministic() {
    for seed in [0, 7, 1 << 40] {
        let run = || {
            let mut config = faults().config(seed);
            config.hash_datagrams = true;
            Simulator::new(config, |_, id| Node::new(id, NodeConfig::default())).unwrap().run()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        assert!(a.ok(), "{a}");
    }
}
