//! Fan-out: a message sent on several links whose peers share a node travels once, as a
//! DATA_FANOUT, and still reaches every link exactly once, in order, one credit each; over
//! the seeded network that delivers every message once in a random order. Plus property
//! tests of the DATA_FANOUT codec.
#![cfg(feature = "alloc")]

mod socket_sim;

use a3m_core::id::LinkIncarnation;
use a3m_core::socket::pub_sub::subscription_command;
use a3m_core::socket::{Pub, SocketError, SocketKey, SocketOptions, Sub, multipart};
use a3m_core::wire::message::{self, FanoutDestination};
use proptest::prelude::*;
use socket_sim::{Net, sid, tag};

/// Subscribers per subscriber node: two nodes share several, one has a single one.
const PER_NODE: [usize; 3] = [5, 3, 1];

fn run(seed: u64, messages: u32) {
    let mut net = Net::new(seed, &["P", "S", "T", "U"]);
    let publisher = net.layer(0).create_socket(tag("pub"), Box::new(Pub::new())).unwrap();
    let options = SocketOptions { capacity: 1 + (seed % 4) as u32, ..SocketOptions::DEFAULT };
    let mut subs: Vec<(usize, SocketKey)> = Vec::new();
    for (node, &count) in PER_NODE.iter().enumerate() {
        for i in 0..count {
            let layer = net.layer(node + 1);
            let s = layer.create_socket_with(tag(&format!("s{i}")), Box::new(Sub::new()), options);
            let s = s.unwrap();
            let mut cmd = Vec::new();
            subscription_command(true, b"t", &mut cmd);
            layer.command(s, &cmd, &mut Vec::new()).unwrap();
            layer.link(s, sid("P/pub")).unwrap();
            subs.push((node + 1, s));
        }
    }
    net.settle();
    let mut next = vec![0u32; subs.len()];
    let mut sent = 0u32;
    for _ in 0..2_000_000usize {
        if sent < messages {
            let mut buf = Vec::new();
            multipart::encode::<&[u8], &[u8]>(&[], &[b"t", &sent.to_le_bytes()], &mut buf);
            match net.layer(0).send(publisher, &buf) {
                Ok(()) => sent += 1,
                Err(SocketError::WouldBlock) => {}
                Err(e) => panic!("seed {seed}: publish: {e}"),
            }
        }
        // Subscribers take what they have now and then (so credits run out).
        for (k, &(node, s)) in subs.iter().enumerate() {
            if !net.rng.chance(1, 3) {
                continue;
            }
            while let Ok(r) = net.layer(node).recv(s) {
                let m = multipart::Multipart::parse(&r.payload).unwrap();
                let body: Vec<u8> = m.frames().nth(1).unwrap().to_vec();
                assert_eq!(body, next[k].to_le_bytes(), "seed {seed}: subscriber {k}");
                next[k] += 1;
            }
        }
        if next.iter().all(|&n| n == messages) {
            break;
        }
        net.step();
    }
    assert!(next.iter().all(|&n| n == messages), "seed {seed}: stalled at {next:?}");
    let out = net.layer(0).stats().messages_out;
    let deliveries = u64::from(messages) * subs.len() as u64;
    // One message per node per publish, not one per subscriber (plus link management).
    assert!(out < deliveries / 2, "seed {seed}: {out} messages out for {deliveries} deliveries");
}

#[test]
fn every_subscriber_of_a_shared_node_gets_every_message_once_in_order() {
    for seed in 0..30 {
        run(seed, 100);
    }
}

fn destinations() -> impl Strategy<Value = Vec<(String, u32, u64)>> {
    proptest::collection::vec(("[a-z]{1,12}", any::<u32>(), any::<u64>()), 2..20)
}

proptest! {
    #[test]
    fn fanout_round_trips(
        src in "[a-z]{1,12}",
        dests in destinations(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let dests: Vec<FanoutDestination<'_>> = dests
            .iter()
            .map(|(t, l, s)| FanoutDestination { dst_tag: t, link: LinkIncarnation(*l), seq: *s })
            .collect();
        let mut buf = vec![0u8; message::fanout_len(&src, &dests, &payload)];
        let n = message::encode_fanout(&src, &dests, &payload, &mut buf).unwrap();
        prop_assert_eq!(n, buf.len());
        prop_assert!(message::is_fanout(&buf));
        let f = message::decode_fanout(&buf).unwrap();
        prop_assert_eq!(f.src_tag, src.as_str());
        prop_assert_eq!(f.payload, &payload[..]);
        prop_assert_eq!(f.destinations().collect::<Vec<_>>(), dests);
        // Not a message of another kind.
        prop_assert!(message::decode(&buf).is_err());
    }

    #[test]
    fn fanout_decoding_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Some(b) = bytes.first_mut() {
            *b = 0x08;
        }
        if let Ok(f) = message::decode_fanout(&bytes) {
            prop_assert_eq!(f.destinations().count(), f.len());
        }
    }
}
