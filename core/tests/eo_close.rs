//! Closing a node: it waits until its peers confirmed its last ACKs (so none of them keeps
//! retransmitting to a node that is gone), and stops waiting for a peer that went silent.
#![cfg(feature = "alloc")]

mod eo_net;

use std::time::Duration;

use a3m_core::node::NodeConfig;
use a3m_core::wire::Record;
use eo_net::{Net, has_record, payload};

/// n0 sends 10 payloads to n1 while every ACK from n1 is lost.
fn delivered_without_acks() -> Net {
    let mut net = Net::new(2, 3, NodeConfig::default());
    net.drop_if = Some(Box::new(|bytes, from| {
        from == 1 && has_record(bytes, |r| matches!(r, Record::Ack(_)))
    }));
    let to = net.ids[1].clone();
    for seq in 0..10 {
        let now = net.now;
        net.nodes[0].submit(now, &to, &payload(0, seq, 32)).unwrap();
    }
    net.run_until(1_000, |net| net.received[1].len() == 10);
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.nodes[0].unacknowledged(), 10, "no ACK got through");
    assert!(!net.nodes[1].receives_settled());
    net
}

#[test]
fn a_closing_receiver_waits_until_its_last_acks_are_confirmed() {
    let mut net = delivered_without_acks();
    let now = net.now;
    net.nodes[1].begin_close(now);
    net.drop_if = None;
    // One probe round trip (the status and a full ACK, then the sender's report).
    let start = net.now;
    net.run_until(1_000, |net| net.nodes[1].receives_settled());
    assert!(net.now - start < Duration::from_millis(200), "settled after {:?}", net.now - start);
    assert_eq!(net.nodes[0].unacknowledged(), 0);
    assert_eq!(net.received[1].len(), 10);
}

#[test]
fn a_closing_receiver_stops_waiting_for_a_silent_peer() {
    let mut net = delivered_without_acks();
    net.cut_off[0] = true;
    let now = net.now;
    net.nodes[1].begin_close(now);
    let start = net.now;
    net.run_until(10_000, |net| net.nodes[1].receives_settled());
    // Four probes backing off from the RTT timeout (at most rto_max each).
    assert!(net.now - start <= Duration::from_secs(6), "gave up after {:?}", net.now - start);
}

#[test]
fn a_node_with_nothing_delivered_is_settled_at_once() {
    let mut net = Net::new(2, 4, NodeConfig::default());
    let now = net.now;
    net.nodes[1].begin_close(now);
    assert!(net.nodes[1].receives_settled());
}
