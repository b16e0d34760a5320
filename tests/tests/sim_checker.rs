//! The simulator's checker and fault injection can fail: fed bad delivery records directly, or
//! driving nodes that are deliberately not exactly-once, the reports say so.

use core::net::SocketAddr;
use core::time::Duration;

use a3m_core::id::NodeId;

use a3m_core::time::Instant;
use a3m_tests::sim::checker::{MessageTag, PAYLOAD_HEADER_LEN, encode_payload};
use a3m_tests::sim::naive::{NaiveConfig, NaiveNode};
use a3m_tests::sim::{
    ExactlyOnceChecker, LivenessHints, Partition, PathConditions, Scenario, SimConfig, SimNode,
    Simulator, SubmitError, Verdict, node_id, run_seeds,
};

fn payload(sender: u32, seq: u32, dest: u32) -> Vec<u8> {
    let mut p = vec![0; PAYLOAD_HEADER_LEN + 4];
    encode_payload(MessageTag { sender, seq, dest }, &mut p);
    p
}

fn two_node_checker(planned: &[u32]) -> ExactlyOnceChecker {
    ExactlyOnceChecker::new(vec![node_id(0), node_id(1)], planned)
}

#[test]
fn checker_counts_a_duplicate_fed_directly() {
    let mut c = two_node_checker(&[2, 0]);
    c.record_accepted(0, 0);
    c.record_accepted(0, 1);
    let p0 = payload(0, 0, 1);
    let p1 = payload(0, 1, 1);
    assert!(matches!(c.record_delivery(1, &node_id(0), &p0), Verdict::First(_)));
    assert!(matches!(c.record_delivery(1, &node_id(0), &p1), Verdict::First(_)));
    assert!(c.report().exactly_once());
    assert!(matches!(c.record_delivery(1, &node_id(0), &p0), Verdict::Duplicate(_)));
    let r = c.report();
    assert_eq!((r.delivered, r.lost, r.duplicated), (2, 0, 1));
    assert!(!r.exactly_once());
}

#[test]
fn checker_counts_lost_misrouted_and_corrupt() {
    let mut c = two_node_checker(&[3, 1]);
    for seq in 0..3 {
        c.record_accepted(0, seq);
    }
    // Message 2 of node 0 is never delivered; node 1's only message is never even accepted.
    assert!(matches!(c.record_delivery(1, &node_id(0), &payload(0, 0, 1)), Verdict::First(_)));
    // Delivered to the wrong node, and reported with the wrong sender.
    assert!(matches!(c.record_delivery(0, &node_id(0), &payload(0, 1, 1)), Verdict::Misrouted(_)));
    assert!(matches!(c.record_delivery(1, &node_id(1), &payload(0, 1, 1)), Verdict::Misrouted(_)));
    // Damaged payload, and a message that was never accepted.
    let mut damaged = payload(0, 1, 1);
    damaged[PAYLOAD_HEADER_LEN + 1] ^= 1;
    assert_eq!(c.record_delivery(1, &node_id(0), &damaged), Verdict::Corrupt);
    assert_eq!(c.record_delivery(0, &node_id(1), &payload(1, 0, 0)), Verdict::Corrupt);
    let r = c.report();
    assert_eq!(
        (r.planned, r.accepted, r.delivered, r.lost, r.misrouted, r.corrupt),
        (4, 3, 1, 3, 2, 2)
    );
    assert!(!r.exactly_once());
    assert_eq!(c.missing(10), vec![(0, 1), (0, 2)]);
}

fn faulty() -> Scenario {
    Scenario {
        messages: 300,
        loss: 0.2,
        duplicate: 0.2,
        reorder: 0.3,
        partition: Some(Duration::from_secs(5)),
        move_node: true,
        ..Scenario::default()
    }
}

#[test]
fn simulator_catches_a_node_that_duplicates() {
    let no_dedup = NaiveConfig { dedup: false, ..NaiveConfig::default() };
    let totals = run_seeds(&faulty(), 0..5, |_, id| NaiveNode::new(id, no_dedup), |_| {});
    assert!(totals.check.duplicated > 0, "{totals:?}");
    assert_eq!(totals.check.lost, 0, "{totals:?}");
    assert_eq!(totals.failed_seeds.len(), 5);
}

#[test]
fn simulator_catches_a_node_that_loses() {
    let fire_and_forget = NaiveConfig { retransmit: false, ..NaiveConfig::default() };
    let scenario = Scenario { time_limit: Some(Duration::from_secs(60)), ..faulty() };
    let totals = run_seeds(&scenario, 0..5, |_, id| NaiveNode::new(id, fire_and_forget), |_| {});
    assert!(totals.check.lost > 0, "{totals:?}");
    assert_eq!(totals.failed_seeds.len(), 5);
}

#[test]
fn an_exactly_once_node_passes_every_fault() {
    let totals = run_seeds(
        &faulty(),
        0..20,
        |_, id| NaiveNode::new(id, NaiveConfig::default()),
        |r| {
            assert!(r.ok(), "{r}");
            assert!(r.net.lost > 0 && r.net.duplicated > 0 && r.net.reordered > 0, "{r}");
            assert!(r.net.partitioned > 0 && r.net.unroutable > 0, "{r}");
        },
    );
    assert_eq!(totals.check.delivered, 20 * 300);
}

#[test]
fn a_partition_cuts_the_groups_for_its_whole_window() {
    let config = SimConfig {
        nodes: 2,
        partitions: vec![Partition {
            start: Instant::ZERO,
            end: Instant::from_micros(1_000_000_000),
            side_a: 0b01,
        }],
        time_limit: Some(Instant::from_micros(100_000_000)),
        ..SimConfig::default()
    };
    let mut sim =
        Simulator::new(config, |_, id| NaiveNode::new(id, NaiveConfig::default())).unwrap();
    let r = sim.run();
    assert!(!r.completed);
    assert_eq!(r.check.delivered, 0);
    assert_eq!(r.check.lost, r.check.planned);
    assert_eq!(r.net.arrived, 0);
    assert!(r.net.partitioned > 0);
}

#[test]
fn a_lossy_path_override_applies_to_that_direction_only() {
    let config = SimConfig {
        nodes: 2,
        path_overrides: vec![(0, 1, PathConditions { loss: 1.0, ..PathConditions::default() })],
        time_limit: Some(Instant::from_micros(60_000_000)),
        ..SimConfig::default()
    };
    let mut sim =
        Simulator::new(config, |_, id| NaiveNode::new(id, NaiveConfig::default())).unwrap();
    let r = sim.run();
    // Node 1's messages reach node 0 (node 1 then stalls: node 0's acks never come back), but
    // none of node 0's messages reach node 1.
    let missing = sim.checker().missing(usize::MAX);
    assert!(r.check.delivered > 0, "{r}");
    assert!(missing.iter().all(|&(sender, _)| sender == 0), "{missing:?}");
    assert_eq!(missing.len() as u64 + r.check.delivered, r.check.accepted, "{r}");
}

#[test]
fn simulator_reports_a_node_that_gives_up_as_deadlocked() {
    // Sent once and never again: once the last datagram lands nothing is scheduled, and the
    // run ends there as deadlocked, not at the time limit.
    let fire_and_forget = NaiveConfig { retransmit: false, ..NaiveConfig::default() };
    let config = faulty().config(3);
    let mut sim = Simulator::new(config, |_, id| NaiveNode::new(id, fire_and_forget)).unwrap();
    let r = sim.run();
    assert!(!r.ok() && !r.live() && !r.completed && r.deadlocked, "{r}");
    let why = r.liveness_failure().unwrap();
    assert!(why.starts_with("stalled: ") && why.contains("deadlocked"), "{why}");
    assert!(r.end_time < r.bound.at.unwrap(), "{r}");
}

/// A naive node that claims to retransmit within 1 ms but waits its full (long) RTO.
struct Sluggish(NaiveNode);

impl SimNode for Sluggish {
    fn max_datagram(&self) -> usize {
        self.0.max_datagram()
    }
    fn max_payload(&self) -> usize {
        self.0.max_payload()
    }
    fn set_peer_addr(&mut self, peer: &NodeId, addr: SocketAddr) -> Result<(), String> {
        self.0.set_peer_addr(peer, addr)
    }
    fn submit(&mut self, now: Instant, to: &NodeId, payload: &[u8]) -> Result<(), SubmitError> {
        self.0.submit(now, to, payload)
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.0.handle_datagram(now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.0.handle_timeout(now);
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        self.0.poll_transmit(now, buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn poll_delivery(&mut self, out: &mut [u8]) -> Result<Option<(NodeId, usize)>, String> {
        self.0.poll_delivery(out)
    }
    fn unacknowledged(&self) -> usize {
        self.0.unacknowledged()
    }
    fn liveness_hints(&self) -> LivenessHints {
        LivenessHints { retransmit_max: Duration::from_millis(1), ..self.0.liveness_hints() }
    }
}

#[test]
fn simulator_reports_a_node_that_finishes_after_its_bound_as_late() {
    let slow = NaiveConfig { rto: Duration::from_secs(20), ..NaiveConfig::default() };
    let scenario = Scenario {
        partition: None,
        move_node: false,
        time_limit: Some(Duration::from_secs(600)),
        ..faulty()
    };
    let mut sim =
        Simulator::new(scenario.config(1), |_, id| Sluggish(NaiveNode::new(id, slow))).unwrap();
    let r = sim.run();
    // Safe, complete, but late: not ok.
    assert!(r.completed && r.check.exactly_once() && !r.live() && !r.ok(), "{r}");
    let why = r.liveness_failure().unwrap();
    assert!(why.starts_with("late: complete at virtual "), "{why}");
    assert!(r.complete_at.unwrap() > r.bound.at.unwrap());
}
