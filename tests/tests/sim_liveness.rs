//! Liveness of the core node under the simulator: every run must be complete (everything
//! delivered and acknowledged) and, where asked, closed (every record dropped) within the
//! completion bound of `a3m_tests::sim::liveness`, not merely exactly-once.
//!
//! The seeds below are regressions: each stalled (finished far past its bound) on the core of
//! commit 2a490ac, where a receiver re-acknowledged at most 16 duplicate slots below its window
//! per datagram, so a lost ACK covering hundreds of tokens (large datagrams, small payloads)
//! cost dozens of retransmission timeouts: ~30 messages per second. They pass once that is
//! fixed.

use core::cell::RefCell;
use core::time::Duration;
use std::rc::Rc;

use a3m_core::node::{Node, NodeConfig};
use a3m_core::wire::{Record, decode_datagram};
use a3m_tests::sim::{RunReport, Scenario, SendFate, Simulator, Totals};

/// `debug` seeds in a debug build, `release` seeds in an optimized one.
fn seeds(debug: u64, release: u64) -> u64 {
    if cfg!(debug_assertions) { debug } else { release }
}

/// Runs `scenario` on `seeds` with core nodes configured by `config` and asserts that every run
/// is ok: exactly-once and within its completion bound.
fn campaign(
    scenario: &Scenario,
    seeds: impl IntoIterator<Item = u64>,
    config: &NodeConfig,
) -> Totals {
    let mut totals = Totals::default();
    let mut failures = Vec::new();
    for seed in seeds {
        let mut sim = Simulator::new(scenario.config(seed), |_, id| Node::new(id, config.clone()))
            .expect("valid scenario");
        let report: RunReport = sim.run();
        if !report.ok() {
            failures.push(format!("{report}"));
        }
        totals.add(&report);
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed (stalled seeds {:?}); first:\n{}\nscenario: {scenario:?}\nconfig: \
         {config:?}",
        failures.len(),
        totals.seeds,
        totals.stalled_seeds,
        failures[0]
    );
    totals
}

fn large_datagrams() -> NodeConfig {
    NodeConfig { max_datagram: 65_507, ..NodeConfig::default() }
}

/// 6000 16-byte messages in two bursts: each sender has 1000 tokens per peer in flight at
/// once, hundreds to a datagram, at 30 % loss.
fn large_with_loss() -> Scenario {
    Scenario { messages: 6000, bursts: 2, loss: 0.3, ..Scenario::default() }
}

/// The second campaign of `ci/sim.sh`: large datagrams, random and burst loss, duplication,
/// reordering, a partition, a silent move, and the close phase.
fn large_with_bursts_and_faults() -> Scenario {
    Scenario {
        messages: 6000,
        bursts: 2,
        loss: 0.25,
        burst_loss: 0.05,
        burst_len: 2.0,
        duplicate: 0.1,
        reorder: 0.3,
        partition: Some(Duration::from_secs(10)),
        move_node: true,
        quiesce: true,
        ..Scenario::default()
    }
}

/// The first campaign of `ci/sim.sh`, with 300 messages per seed.
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
fn large_datagrams_with_loss_complete_within_the_bound() {
    // On 2a490ac, 812 of seeds 0..1000 stalled, these among them: seed 0 completed at 86.5 s
    // (bound 73.1 s) after 34 204 tokens sent for 2000 acknowledged, with 51 ACK datagrams.
    let stalled = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20];
    campaign(&large_with_loss(), stalled, &large_datagrams());
    campaign(&large_with_loss(), 1000..1000 + seeds(5, 100), &large_datagrams());
}

#[test]
fn large_datagrams_with_burst_loss_and_faults_complete_and_close_within_the_bound() {
    // Stalled on 2a490ac (complete 137 s to 168 s, bound 133 s).
    let stalled = [0, 2, 4, 6, 7, 8, 13, 19, 21, 23, 26, 31, 32, 34, 35, 38, 39, 43, 44, 47];
    let scenario = large_with_bursts_and_faults();
    let totals = campaign(&scenario, stalled, &large_datagrams());
    assert!(totals.net.burst_lost > 0 && totals.net.unroutable > 0, "{totals:?}");
    campaign(&scenario, 1000..1000 + seeds(5, 100), &large_datagrams());
}

#[test]
fn the_fault_campaign_completes_and_closes_within_the_bound() {
    let scenario = Scenario { quiesce: true, ..faults() };
    let totals = campaign(&scenario, 0..seeds(30, 500), &NodeConfig::default());
    assert_eq!(totals.close_us.len() as u64, totals.seeds);
}

#[test]
fn two_nodes_at_half_loss_recover_from_a_silent_move_within_the_bound() {
    // Late on 953b53b (complete 131 s to 162 s, bound 129.6 s; 0 of 3000 seeds late without
    // the move): long after node 0 moved (at ~7 s) and node 1 had heard from its new address,
    // node 1 still sent every other retransmission to the dead old one (`Peer::destination`
    // alternates with `prev_addr` whenever the peer has been silent for two RTOs, and never
    // drops `prev_addr`), halving its retransmission rate at 50 % loss. With the alternation
    // disabled, none of 3000 seeds is late and p99 recovery drops from 93 s to 48 s.
    let late = [27, 196, 361, 647, 868, 874, 1194, 1549, 1799, 1962];
    let scenario = Scenario { nodes: 2, loss: 0.5, quiesce: true, ..faults() };
    let scenario = Scenario { messages: 1000, ..scenario };
    campaign(&scenario, late, &NodeConfig::default());
}

#[test]
fn a_sender_whose_address_disappears_completes_within_the_bound() {
    // Node 0 only sends; it moves silently at any time up to 4 s after its last submission,
    // when all it still sends are retransmissions: the receivers learn its new address only
    // from those, and their ACKs to the old address are black-holed until then.
    let mut unroutable = 0;
    for move_at in [(0.1, 0.9), (1.0, 1.2)] {
        let scenario = Scenario { senders: vec![0], mover: Some(0), move_at, ..faults() };
        let totals = campaign(&scenario, 0..seeds(30, 500), &NodeConfig::default());
        unroutable += totals.net.unroutable;
        let large = Scenario { messages: 6000, bursts: 2, ..scenario };
        unroutable += campaign(&large, 0..seeds(5, 100), &large_datagrams()).net.unroutable;
    }
    assert!(unroutable > 0);
}

#[test]
fn a_receiver_that_moves_silently_after_its_last_message_has_no_bound() {
    // Its peers can only learn its new address from it, and it may have nothing to say.
    let scenario = Scenario { move_at: (1.0, 1.2), ..faults() };
    let sim = Simulator::new(scenario.config(0), |_, id| Node::new(id, NodeConfig::default()))
        .expect("valid scenario");
    assert!(sim.bound().at.is_none(), "{}", sim.bound());
    // Announced, it is bounded again.
    let announced = Scenario { announce_move: true, ..scenario };
    campaign(&announced, 0..seeds(10, 200), &NodeConfig::default());
}

/// The kinds of record the tap tells apart.
const KINDS: [&str; 6] = ["REQSLOTS", "REQSLOTS(n=0)", "SLOTS", "SLOTS(n=0)", "TOKEN", "ACK"];

fn kinds(bytes: &[u8]) -> [bool; 6] {
    let mut seen = [false; 6];
    let Ok(datagram) = decode_datagram(bytes) else { return seen };
    for record in datagram.records() {
        let k = match record {
            Record::ReqSlots(q) if q.count == 0 => 1,
            Record::ReqSlots(_) => 0,
            Record::Slots(g) if g.count == 0 => 3,
            Record::Slots(_) => 2,
            Record::Token(_) => 4,
            Record::Ack(_) => 5,
            Record::PathChallenge(_) | Record::PathResponse(_) | Record::SealMismatch(_) => {
                continue;
            }
        };
        seen[k] = true;
    }
    seen
}

#[test]
fn loss_hits_every_record_kind_in_both_directions_and_in_every_phase() {
    // Phases: while messages are submitted; after the faults, until complete; the close phase.
    let scenario = Scenario { quiesce: true, ..faults() };
    let mut lost = [[0u64; 6]; 3];
    let mut lost_on_path = [[0u64; 3]; 3];
    for seed in 0..seeds(10, 40) {
        let config = scenario.config(seed);
        let mut sim = Simulator::new(config, |_, id| Node::new(id, NodeConfig::default()))
            .expect("valid scenario");
        let sent = Rc::new(RefCell::new(Vec::new()));
        let log = Rc::clone(&sent);
        sim.set_tap(move |s| {
            if matches!(s.fate, SendFate::Lost | SendFate::BurstLost) {
                log.borrow_mut().push((s.at, s.from, s.to, kinds(s.bytes)));
            }
        });
        let report = sim.run();
        assert!(report.ok(), "{report}");
        let fault_end = report.bound.fault_end;
        let complete = report.complete_at.expect("complete");
        for (at, from, to, seen) in sent.borrow().iter() {
            let phase = if *at <= fault_end {
                0
            } else if *at <= complete {
                1
            } else {
                2
            };
            for (k, _) in seen.iter().enumerate().filter(|(_, s)| **s) {
                lost[phase][k] += 1;
            }
            if let Some(to) = to {
                lost_on_path[*from][*to] += 1;
            }
        }
    }
    let table = |lost: &[[u64; 6]; 3]| {
        let mut t = String::new();
        for (p, name) in ["submission", "recovery", "close"].iter().enumerate() {
            let row: Vec<String> =
                KINDS.iter().zip(lost[p]).map(|(k, n)| format!("{k}={n}")).collect();
            t += &format!("\n  {name}: {}", row.join(" "));
        }
        t
    };
    // Grants, requests (with slots and without: the reports of `l`), tokens and ACKs are lost
    // while messages flow and in the recovery after the faults; the close (a sender's
    // REQSLOTS(n=0)) and the receiver's probe (a status, SLOTS(n=0)) in the close phase.
    let expected: [(usize, &[usize]); 3] =
        [(0, &[0, 1, 2, 4, 5]), (1, &[0, 1, 2, 4, 5]), (2, &[1, 3])];
    for (phase, kinds) in expected {
        for &k in kinds {
            assert!(lost[phase][k] > 0, "no {} lost in phase {phase}:{}", KINDS[k], table(&lost));
        }
    }
    for (from, row) in lost_on_path.iter().enumerate() {
        for (to, n) in row.iter().enumerate() {
            assert!(from == to || *n > 0, "nothing lost from n{from} to n{to}: {lost_on_path:?}");
        }
    }
}
