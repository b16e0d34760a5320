//! Messages the transport cannot take yet: held per destination, in order, without holding
//! back other destinations; retried in order; dropped when the transport refuses them.
#![cfg(feature = "alloc")]

use a3m_core::id::{NodeId, SocketId, TagId};
use a3m_core::socket::{LayerConfig, Offer, Push, SocketLayer};

fn peer(s: &str) -> SocketId {
    s.parse().unwrap()
}

/// A layer of node A whose outbox holds three LINKs: to B, to C, then to B again.
fn layer() -> SocketLayer {
    let mut a = SocketLayer::new(NodeId::new("A").unwrap(), LayerConfig::DEFAULT);
    for (tag, to) in [("s1", "B/x"), ("s2", "C/z"), ("s3", "B/y")] {
        let key = a.create_socket(TagId::new(tag).unwrap(), Box::new(Push::new())).unwrap();
        a.link(key, peer(to)).unwrap();
    }
    assert_eq!(a.outgoing_len(), 3);
    a
}

fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

#[test]
fn held_messages_keep_their_order_and_hold_back_only_their_destination() {
    let mut a = layer();
    let (to, first) = a.peek_outgoing().map(|(to, b)| (to.clone(), b.to_vec())).unwrap();
    assert_eq!(to, node("B"));
    assert!(a.hold_outgoing());
    // C is not held back by B.
    assert_eq!(a.peek_outgoing().unwrap().0, &node("C"));
    assert!(a.pop_outgoing());
    // The second message for B waits behind the first.
    assert!(a.peek_outgoing().is_none());
    assert_eq!(a.outgoing_len(), 2);

    // Still full: nothing moves.
    let mut offered = Vec::new();
    assert!(!a.retry_held(|to, bytes| {
        offered.push((to.clone(), bytes.to_vec()));
        Offer::Full
    }));
    assert_eq!(offered.len(), 1);
    assert_eq!(a.outgoing_len(), 2);

    // Room again: both go, in order.
    offered.clear();
    assert!(a.retry_held(|to, bytes| {
        offered.push((to.clone(), bytes.to_vec()));
        Offer::Taken
    }));
    assert_eq!(offered.len(), 2);
    assert_eq!(offered[0], (node("B"), first));
    assert_eq!(offered[1].0, node("B"));
    assert_eq!(a.outgoing_len(), 0);
    assert!(!a.retry_held(|_, _| unreachable!()));

    // A new message for B is no longer held.
    let key = a.create_socket(TagId::new("s4").unwrap(), Box::new(Push::new())).unwrap();
    a.link(key, peer("B/w")).unwrap();
    assert_eq!(a.peek_outgoing().unwrap().0, &node("B"));
}

#[test]
fn refused_held_messages_are_dropped() {
    let mut a = layer();
    assert!(a.hold_outgoing());
    while a.peek_outgoing().is_some() {
        assert!(a.pop_outgoing());
    }
    assert_eq!(a.outgoing_len(), 2);
    assert!(!a.retry_held(|_, _| Offer::Refused));
    assert_eq!(a.outgoing_len(), 0);
}

#[test]
fn poll_outgoing_holds_messages_behind_held_ones() {
    let mut a = layer();
    assert!(a.hold_outgoing());
    assert_eq!(a.poll_outgoing().unwrap().to, node("C"));
    assert!(a.poll_outgoing().is_none());
    assert_eq!(a.outgoing_len(), 2);
}
