//! Delayed acknowledgements (`NodeConfig::ack_delay`): a receiver holds an ACK back until a
//! datagram of its own carries it, or the delay is over, so a request and its reply take two
//! datagrams instead of four; with no delay, every token is acknowledged at once.
#![cfg(feature = "alloc")]

use std::net::SocketAddr;
use std::time::Duration;

use a3m_core::id::NodeId;
use a3m_core::node::{Node, NodeConfig};
use a3m_core::time::Instant;

const A: &str = "a";
const B: &str = "b";
const DELAY: Duration = Duration::from_millis(2);

fn addr(node: &str) -> SocketAddr {
    if node == A { "10.0.0.1:7000".parse().unwrap() } else { "10.0.0.2:7000".parse().unwrap() }
}

fn pair(ack_delay: Duration) -> (Node, Node) {
    let config = NodeConfig { ack_delay, ..NodeConfig::default() };
    let mut a = Node::new(NodeId::new(A).unwrap(), config.clone());
    let mut b = Node::new(NodeId::new(B).unwrap(), config);
    a.set_peer_addr(NodeId::new(B).unwrap(), addr(B)).unwrap();
    b.set_peer_addr(NodeId::new(A).unwrap(), addr(A)).unwrap();
    (a, b)
}

/// Moves every datagram `from` has to send now into `to`; returns how many there were.
fn deliver(now: Instant, from: &mut Node, from_name: &str, to: &mut Node) -> usize {
    let mut buf = vec![0u8; 2048];
    let mut count = 0;
    while let Some((_, len)) = from.poll_transmit(now, &mut buf) {
        to.handle_datagram(now, addr(from_name), &buf[..len]);
        count += 1;
    }
    count
}

/// Runs the slot handshake and delivers one payload from `a` to `b` (nothing `b` sends
/// after the token reached it is delivered yet); returns the time.
fn request(a: &mut Node, b: &mut Node) -> Instant {
    let now = Instant::from_micros(1_000);
    a.submit(now, &NodeId::new(B).unwrap(), b"request").unwrap();
    // REQSLOTS, SLOTS, then the token.
    for _ in 0..3 {
        deliver(now, a, A, b);
        if b.has_delivery() {
            break;
        }
        deliver(now, b, B, a);
    }
    let mut out = [0u8; 64];
    assert!(b.poll_delivery(&mut out).unwrap().is_some(), "the request arrived");
    assert_eq!(a.unacknowledged(), 1);
    now
}

#[test]
fn without_a_delay_the_token_is_acknowledged_at_once() {
    let (mut a, mut b) = pair(Duration::ZERO);
    let now = request(&mut a, &mut b);
    assert_eq!(deliver(now, &mut b, B, &mut a), 1, "an ACK goes at once");
    assert_eq!(a.unacknowledged(), 0);
}

#[test]
fn a_delayed_ack_goes_alone_once_the_delay_is_over() {
    let (mut a, mut b) = pair(DELAY);
    let now = request(&mut a, &mut b);
    assert_eq!(deliver(now, &mut b, B, &mut a), 0, "the ACK waits");
    assert_eq!(a.unacknowledged(), 1);
    let due = b.poll_timeout().expect("a timer for the ACK");
    assert!(due <= now + DELAY, "due by the end of the delay");
    b.handle_timeout(now + DELAY);
    assert_eq!(deliver(now + DELAY, &mut b, B, &mut a), 1, "the ACK goes alone");
    assert_eq!(a.unacknowledged(), 0);
}

#[test]
fn a_reply_carries_the_delayed_ack() {
    let (mut a, mut b) = pair(DELAY);
    let now = request(&mut a, &mut b);
    assert_eq!(deliver(now, &mut b, B, &mut a), 0, "the ACK waits");
    // The reply needs slots from `a` first: REQSLOTS carries the ACK already.
    b.submit(now, &NodeId::new(A).unwrap(), b"reply").unwrap();
    assert_eq!(deliver(now, &mut b, B, &mut a), 1, "one datagram: the reply's request");
    assert_eq!(a.unacknowledged(), 0, "and the ACK rode along");
}

#[test]
fn the_delay_never_reaches_the_retransmission_timeout() {
    let config = NodeConfig {
        ack_delay: Duration::from_secs(1),
        rto_min: Duration::from_millis(10),
        ..NodeConfig::default()
    };
    let node = Node::new(NodeId::new(A).unwrap(), config);
    assert_eq!(node.config().ack_delay, Duration::from_millis(5));
}
