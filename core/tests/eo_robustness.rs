//! Bad input, limits and errors of the node, through the public API.
#![cfg(feature = "alloc")]

mod eo_net;

use std::net::SocketAddr;

use a3m_core::node::{Node, NodeConfig, NodeError};
use a3m_core::time::Instant;
use a3m_core::wire::{self, Header, Record, ReqSlots, Slots, Token};
use eo_net::{Net, Traffic, id};
use proptest::prelude::*;

const T0: Instant = Instant::from_micros(1_000_000);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn datagram(src: &str, dst: &str, records: &[Record<'_>]) -> Vec<u8> {
    let mut buf = vec![0u8; 65_507];
    let header = Header { src, dst, flags: 0 };
    let n = wire::encode_datagram(&mut buf, &header, records).unwrap().len;
    buf.truncate(n);
    buf
}

/// Everything `node` sends now, decoded to debug strings.
fn sent(node: &mut Node) -> Vec<(SocketAddr, String)> {
    let mut buf = vec![0u8; 1400];
    let mut out = Vec::new();
    while let Some((to, len)) = node.poll_transmit(T0, &mut buf) {
        let d = wire::decode_datagram(&buf[..len]).unwrap();
        for r in d.records() {
            out.push((to, format!("{r:?}")));
        }
    }
    out
}

#[test]
fn malformed_foreign_and_oversized_datagrams_are_counted_and_ignored() {
    let mut b = Node::new(id("b"), NodeConfig::default());
    let from = addr("10.0.0.1:1");
    b.handle_datagram(T0, from, b"");
    b.handle_datagram(T0, from, b"hello, world");
    b.handle_datagram(T0, from, &[0xA3, 0x4D, 1, 0, 1, b'a', 1, b'b', 0x7f]);
    b.handle_datagram(T0, from, &vec![0u8; 70_000]);
    let req = Record::ReqSlots(ReqSlots { start: 0, count: 4, lowest: 0 });
    b.handle_datagram(T0, from, &datagram("a", "c", &[req]));
    b.handle_datagram(T0, from, &datagram("b", "b", &[req]));
    let s = b.stats();
    assert_eq!(s.datagrams_received, 6);
    assert_eq!(s.malformed_dropped, 4);
    assert_eq!(s.oversized_dropped, 1);
    assert_eq!(s.wrong_destination_dropped, 1);
    assert_eq!(b.peer_count(), 0);
    assert!(sent(&mut b).is_empty());
    // The node still works.
    b.handle_datagram(T0, from, &datagram("a", "b", &[req]));
    assert_eq!(b.receive_records(), 1);
    assert_eq!(b.peer_addr(&id("a")), Some(from));
    let out = sent(&mut b);
    assert_eq!(out.len(), 1);
    assert!(out[0].1.starts_with("Slots"), "{out:?}");
}

#[test]
fn tokens_of_unknown_incarnations_are_never_delivered() {
    let mut b = Node::new(id("b"), NodeConfig::default());
    let from = addr("10.0.0.1:1");
    // No record yet: the token is refused and answered with the node clock, which is
    // above every incarnation this node ever issued.
    let token = Record::Token(Token { slot: 0, incarnation: 0, payload: b"forged" });
    b.handle_datagram(T0, from, &datagram("a", "b", &[token]));
    let mut out = [0u8; 64];
    assert_eq!(b.poll_delivery(&mut out), Ok(None));
    let status =
        |inc, start| format!("{:?}", Record::Slots(Slots { start, incarnation: inc, count: 0 }));
    assert_eq!(sent(&mut b), vec![(from, status(b.clock(), 0))]);
    // With a record (incarnation 1), a token of another incarnation gets its status.
    let req = Record::ReqSlots(ReqSlots { start: 0, count: 4, lowest: 0 });
    b.handle_datagram(T0, from, &datagram("a", "b", &[req]));
    sent(&mut b);
    let token = Record::Token(Token { slot: 0, incarnation: 0, payload: b"forged" });
    b.handle_datagram(T0, from, &datagram("a", "b", &[token]));
    assert_eq!(b.poll_delivery(&mut out), Ok(None));
    assert_eq!(sent(&mut b), vec![(from, status(1, 4))]);
    assert_eq!(b.stats().stale_records, 2);
}

#[test]
fn submit_errors_take_nothing() {
    let config = NodeConfig { max_queued: 3, max_payload: 100, ..NodeConfig::default() };
    let mut a = Node::new(id("a"), config.clone());
    let b = id("b");
    assert_eq!(a.submit(T0, &b, b"x"), Err(NodeError::UnknownPeer));
    a.set_peer_addr(b.clone(), addr("10.0.0.2:1")).unwrap();
    assert_eq!(a.submit(T0, &b, &[0; 101]), Err(NodeError::PayloadTooLarge { len: 101, max: 100 }));
    for _ in 0..3 {
        a.submit(T0, &b, b"x").unwrap();
    }
    assert_eq!(a.submit(T0, &b, b"x"), Err(NodeError::QueueFull));
    assert_eq!(a.unacknowledged(), 3);
    assert_eq!(a.unacknowledged_to(&b), 3);
    // Self-sends are bounded the same way once the inbox is full.
    let mut solo = Node::new(id("s"), NodeConfig { max_inbox: 1, max_queued: 1, ..config });
    let me = id("s");
    solo.submit(T0, &me, b"1").unwrap();
    solo.submit(T0, &me, b"2").unwrap();
    assert_eq!(solo.submit(T0, &me, b"3"), Err(NodeError::QueueFull));
    assert_eq!(solo.unacknowledged_to(&me), 1);
}

#[test]
fn max_payload_is_lowered_to_what_one_datagram_carries() {
    let node = Node::new(
        id("a"),
        NodeConfig { max_datagram: 300, max_payload: 10_000, ..NodeConfig::default() },
    );
    assert_eq!(node.max_payload(), 300 - a3m_core::node::TOKEN_OVERHEAD);
    // The largest payload, between the longest ids, still fits one datagram.
    let long_a = "a".repeat(32);
    let long_b = "b".repeat(32);
    let mut a = Node::new(id(&long_a), NodeConfig { max_datagram: 300, ..NodeConfig::default() });
    let mut b = Node::new(id(&long_b), NodeConfig { max_datagram: 300, ..NodeConfig::default() });
    a.set_peer_addr(id(&long_b), addr("10.0.0.2:1")).unwrap();
    let big = vec![7u8; a.max_payload()];
    a.submit(T0, &id(&long_b), &big).unwrap();
    let mut buf = vec![0u8; 300];
    for _ in 0..4 {
        while let Some((_, len)) = a.poll_transmit(T0, &mut buf) {
            b.handle_datagram(T0, addr("10.0.0.1:1"), &buf[..len]);
        }
        while let Some((_, len)) = b.poll_transmit(T0, &mut buf) {
            a.handle_datagram(T0, addr("10.0.0.2:1"), &buf[..len]);
        }
    }
    let mut out = vec![0u8; 300];
    let d = b.poll_delivery(&mut out).unwrap().unwrap();
    assert_eq!(&out[..d.len], &big[..]);
    assert_eq!(a.unacknowledged(), 0);
}

#[test]
fn a_short_buffer_keeps_the_delivery() {
    let mut net = Net::new(2, 1, NodeConfig::default());
    net.read_limit = Some(0);
    let to = net.ids[1].clone();
    net.nodes[0].submit(net.now, &to, &[5; 40]).unwrap();
    net.run_until(1_000, |net| net.nodes[1].has_delivery());
    let mut short = [0u8; 10];
    assert_eq!(
        net.nodes[1].poll_delivery(&mut short),
        Err(NodeError::BufferTooSmall { needed: 40 })
    );
    let mut out = [0u8; 40];
    let d = net.nodes[1].poll_delivery(&mut out).unwrap().unwrap();
    assert_eq!((d.from, d.len), (net.ids[0].clone(), 40));
}

#[test]
fn the_peer_table_is_bounded() {
    let config = NodeConfig { max_peers: 3, ..NodeConfig::default() };
    let mut b = Node::new(id("b"), config);
    b.set_peer_addr(id("x"), addr("10.0.0.9:1")).unwrap();
    let req = Record::ReqSlots(ReqSlots { start: 0, count: 4, lowest: 0 });
    for i in 0..50 {
        let name = format!("p{i}");
        b.handle_datagram(T0, addr(&format!("10.0.1.{i}:1")), &datagram(&name, "b", &[req]));
    }
    assert_eq!(b.peer_count(), 3);
    // Fresh receive records are safe to forget, so newcomers replaced them.
    assert_eq!(b.stats().peer_limit_dropped, 0);
    assert!(b.stats().receive_records_collected >= 47);
    // Unsafe records stay: deliver one token to each of two peers, then a third peer waits.
    let mut c = Node::new(id("c"), NodeConfig { max_peers: 2, ..NodeConfig::default() });
    for (i, name) in ["p0", "p1"].iter().enumerate() {
        let from = addr(&format!("10.0.2.{i}:1"));
        c.handle_datagram(T0, from, &datagram(name, "c", &[req]));
        let inc = c.clock() - 1;
        let token = Record::Token(Token { slot: 0, incarnation: inc, payload: b"x" });
        c.handle_datagram(T0, from, &datagram(name, "c", &[token]));
    }
    assert_eq!(c.pending_deliveries(), 2);
    c.handle_datagram(T0, addr("10.0.2.9:1"), &datagram("p9", "c", &[req]));
    assert_eq!(c.stats().peer_limit_dropped, 1);
    assert_eq!(c.peer_count(), 2);
    assert_eq!(c.set_peer_addr(id("q"), addr("10.0.3.1:1")), Err(NodeError::PeerTableFull));
}

#[test]
fn announce_tells_peers_the_new_address() {
    let mut net = Net::new(2, 3, NodeConfig::default());
    let mut traffic = Traffic::new(&[(1, 0, 100)], 20);
    traffic.run(&mut net, 10_000);
    // Node 0 only receives; it moves, and node 1 must learn where to send its ACK-awaiting
    // tokens.
    net.addrs[0] = addr("10.9.9.9:9");
    let now = net.now;
    net.nodes[0].announce(now);
    let mut more = Traffic::new(&[(1, 0, 100)], 30);
    more.run(&mut net, 100_000);
    // Virtual time: without the announcement node 1 would wait for node 0's idle probe.
    assert!(net.now - now < std::time::Duration::from_secs(1), "{:?}", net.now - now);
    assert_eq!(net.nodes[1].peer_addr(&net.ids[0]), Some(net.addrs[0]));
    let mut got: Vec<(usize, Vec<u8>)> =
        net.received[0].iter().map(|(_, p)| (p.len(), p[1..9].to_vec())).collect();
    got.sort();
    got.dedup();
    assert_eq!((net.received[0].len(), got.len()), (200, 200));
}

fn arb_record() -> impl Strategy<Value = (u8, u64, u64, u32, Vec<u8>)> {
    (
        0u8..4,
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Arbitrary bytes and arbitrary (valid) records never panic, and memory stays bounded.
    #[test]
    fn arbitrary_input_never_panics(
        junk in proptest::collection::vec(any::<u8>(), 0..200),
        records in proptest::collection::vec(arb_record(), 1..60),
        small in any::<bool>(),
    ) {
        let config = NodeConfig {
            max_peers: 4,
            window: if small { 2 } else { 64 },
            max_inbox: 3,
            ..NodeConfig::default()
        };
        let mut b = Node::new(id("b"), config);
        b.set_peer_addr(id("a"), addr("10.0.0.1:1")).unwrap();
        b.submit(T0, &id("a"), b"mine").unwrap();
        b.handle_datagram(T0, addr("10.0.0.1:1"), &junk);
        let mut now = T0;
        for (i, (kind, x, y, n, payload)) in records.iter().enumerate() {
            // Small numbers often, so records hit real slots and incarnations.
            let (x, y, n) = if i % 2 == 0 { (x % 8, y % 8, n % 8) } else { (*x, *y, *n) };
            let rec = match kind {
                0 => Record::ReqSlots(ReqSlots { start: x, count: n, lowest: y }),
                1 => Record::Slots(Slots { start: x, incarnation: y, count: n }),
                2 => Record::Token(Token { slot: x, incarnation: y % 4 + 99, payload }),
                _ => {
                    let ranges = [wire::SlotRange { start: x.min(y), end: x.max(y).saturating_add(1) }];
                    let bytes = datagram(&format!("p{}", i % 6), "b", &[Record::Ack(wire::Ack::new(y, &ranges))]);
                    b.handle_datagram(now, addr("10.0.0.1:1"), &bytes);
                    continue;
                }
            };
            let src = if i % 3 == 0 { "a".to_string() } else { format!("p{}", i % 6) };
            b.handle_datagram(now, addr(&format!("10.0.0.{}:1", i % 5)), &datagram(&src, "b", &[rec]));
            let mut buf = vec![0u8; 1400];
            while b.poll_transmit(now, &mut buf).is_some() {}
            if let Some(t) = b.poll_timeout() {
                now = now.max(t);
                b.handle_timeout(now);
            }
            let mut out = [0u8; 64];
            let _ = b.poll_delivery(&mut out);
            prop_assert!(b.peer_count() <= 4);
            prop_assert!(b.pending_deliveries() <= 3);
        }
        // Our own payload is never lost by garbage: still held or acknowledged.
        prop_assert!(b.unacknowledged() <= 1);
    }
}

#[test]
fn coalescing_delays_small_output_but_not_a_full_datagram() {
    use std::time::Duration;
    let delay = Duration::from_millis(5);
    let config = NodeConfig { coalesce_delay: delay, ..NodeConfig::default() };
    let (a_addr, b_addr) = (addr("10.0.0.1:1"), addr("10.0.0.2:1"));
    let mut a = Node::new(id("a"), config.clone());
    let mut b = Node::new(id("b"), config);
    a.set_peer_addr(id("b"), b_addr).unwrap();
    let mut buf = vec![0u8; 1400];
    a.submit(T0, &id("b"), b"first").unwrap();
    assert_eq!(a.poll_transmit(T0, &mut buf), None);
    assert_eq!(a.poll_timeout(), Some(T0 + delay));
    let t1 = T0 + delay;
    a.handle_timeout(t1);
    let (to, len) = a.poll_transmit(t1, &mut buf).unwrap();
    assert_eq!(to, b_addr);
    b.handle_datagram(t1, a_addr, &buf[..len]);
    // The grant waits too, then the token goes once the delay passed.
    assert_eq!(b.poll_transmit(t1, &mut buf), None);
    let t2 = t1 + delay;
    let (_, len) = b.poll_transmit(t2, &mut buf).unwrap();
    a.handle_datagram(t2, b_addr, &buf[..len]);
    assert_eq!(a.poll_transmit(t2, &mut buf), None);
    // Enough tokens for a full datagram go at once.
    for _ in 0..20 {
        a.submit(t2, &id("b"), &[1; 100]).unwrap();
    }
    let (_, len) = a.poll_transmit(t2, &mut buf).unwrap();
    assert!(len > 1000, "{len}");
}
