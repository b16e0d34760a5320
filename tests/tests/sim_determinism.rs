//! The simulator is deterministic: a seed fixes the whole run, down to every datagram's bytes.

use core::time::Duration;

use a3m_tests::sim::naive::{NaiveConfig, NaiveNode};
use a3m_tests::sim::{RunReport, Scenario, Simulator};

fn scenario() -> Scenario {
    Scenario {
        messages: 300,
        loss: 0.3,
        duplicate: 0.1,
        reorder: 0.3,
        jitter: Duration::from_millis(7),
        partition: Some(Duration::from_secs(10)),
        move_node: true,
        ..Scenario::default()
    }
}

fn run(seed: u64) -> RunReport {
    let mut config = scenario().config(seed);
    config.hash_datagrams = true;
    Simulator::new(config, |_, id| NaiveNode::new(id, NaiveConfig::default())).unwrap().run()
}

#[test]
fn same_seed_gives_an_identical_trace() {
    for seed in [0, 1, 42, u64::MAX] {
        let (a, b) = (run(seed), run(seed));
        assert_eq!(a, b, "seed {seed}");
        assert!(a.ok(), "{a}");
    }
}

#[test]
fn different_seeds_give_different_traces() {
    let hashes: Vec<u64> = (0..20).map(|seed| run(seed).trace_hash).collect();
    for (i, h) in hashes.iter().enumerate() {
        assert!(!hashes[..i].contains(h), "seeds collide at {i}");
    }
}
