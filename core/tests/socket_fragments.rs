//! Messages larger than one DATA message, over a network that delivers every message once
//! in any order: they arrive whole, exactly once and in order, never mixed with another
//! message; a receiver of any capacity takes any size; the receive queue stays within the
//! credits; unlink and close never deliver a partial message.
#![cfg(feature = "alloc")]

mod socket_sim;

use a3m_core::flow::BatchPercent;
use a3m_core::id::LinkIncarnation;
use a3m_core::link::LinkPhase;
use a3m_core::socket::{
    LayerConfig, Pull, Push, SocketError, SocketEvent, SocketKey, SocketLayer, SocketOptions,
};
use a3m_core::wire::message::{self, Body};
use socket_sim::{Net, Rng, sid, tag};

/// Small fragments, so that a few hundred bytes already make many of them.
const FRAGMENT: usize = 16;

fn config(max_message: usize) -> LayerConfig {
    LayerConfig { max_fragment: FRAGMENT, max_payload: max_message, ..LayerConfig::DEFAULT }
}

/// Message `index` of `len` bytes: its index, then bytes that depend on both.
fn message(index: u32, len: usize) -> Vec<u8> {
    let mut m: Vec<u8> =
        (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(index) as u8).collect();
    if len >= 4 {
        m[..4].copy_from_slice(&index.to_le_bytes());
    }
    m
}

fn check(index: u32, len: usize, got: &[u8]) {
    assert_eq!(got.len(), len, "message {index}: length");
    assert!(got == message(index, len).as_slice(), "message {index}: content");
}

/// A push socket on node 0 linked to a pull socket on node 1.
fn linked_pair(
    seed: u64,
    sender: LayerConfig,
    receiver: LayerConfig,
    options: SocketOptions,
) -> (Net, SocketKey, SocketKey) {
    let mut net = Net::with_config(seed, &["A", "B"], sender);
    net.layers[1] = SocketLayer::new(socket_sim::node("B"), receiver);
    let a = net.layer(0).create_socket(tag("src"), Box::new(Push::new())).unwrap();
    let b = net.layer(1).create_socket_with(tag("sink"), Box::new(Pull::new()), options).unwrap();
    net.layer(0).link(a, sid("B/sink")).unwrap();
    net.settle();
    (net, a, b)
}

fn only_link(layer: &SocketLayer, key: SocketKey) -> LinkIncarnation {
    layer.links(key).next().expect("a link")
}

/// A size: mostly small, sometimes a few fragments, sometimes many; fragment boundaries
/// often.
fn size(rng: &mut Rng) -> usize {
    match rng.below(6) {
        0 => rng.below(FRAGMENT + 1),
        1 => FRAGMENT * (1 + rng.below(4)) + rng.below(3),
        2 => FRAGMENT * (1 + rng.below(4)) - rng.below(2),
        3 => rng.below(20 * FRAGMENT),
        4 => rng.below(200 * FRAGMENT),
        _ => 4 + rng.below(8),
    }
}

#[test]
fn messages_of_any_size_arrive_whole_once_and_in_order() {
    for seed in 0..200 {
        let capacity = 1 + (seed % 7) as u32;
        let batch = BatchPercent::new([1, 25, 50, 100][(seed % 4) as usize]).unwrap();
        let options = SocketOptions { capacity, batch, ..SocketOptions::DEFAULT };
        let (mut net, a, b) = linked_pair(seed, config(1 << 20), config(1 << 20), options);
        let lb = only_link(&net.layers[1], b);
        let mut sizes = Vec::new();
        let mut got = 0;
        let mut steps = 0;
        while got < 60 {
            steps += 1;
            assert!(steps < 200_000, "seed {seed}: stuck after {got} messages");
            if sizes.len() < 60 && net.rng.chance(1, 2) {
                let len = size(&mut net.rng);
                let m = message(sizes.len() as u32, len);
                if net.layer(0).send(a, &m).is_ok() {
                    sizes.push(len);
                }
            }
            if net.rng.chance(1, 3)
                && let Ok(m) = net.layer(1).recv(b)
            {
                check(got as u32, sizes[got], &m.payload);
                got += 1;
            }
            net.step();
            // Every fragment holds a credit until it joins the message at the head.
            let status = net.layers[1].link_status(b, lb).unwrap();
            assert!(status.queued <= capacity as usize, "seed {seed}: {status:?}");
        }
        net.settle();
        assert_eq!(net.layer(1).recv(b), Err(SocketError::WouldBlock), "seed {seed}");
        let stats = net.layers[1].stats();
        assert_eq!((stats.violations, stats.oversized, stats.malformed), (0, 0, 0), "seed {seed}");
    }
}

#[test]
fn a_receiver_of_capacity_one_takes_a_message_of_any_size() {
    for seed in 0..10 {
        let options = SocketOptions { capacity: 1, ..SocketOptions::DEFAULT };
        let (mut net, a, b) = linked_pair(seed, config(1 << 20), config(1 << 20), options);
        let big = message(7, 40_000 + seed as usize);
        net.layer(0).send(a, &big).unwrap();
        assert!(net.layers[0].readiness(a).is_empty(), "the link is busy with the message");
        assert_eq!(net.layer(0).send(a, b"next"), Err(SocketError::WouldBlock));
        net.settle();
        check(7, big.len(), &net.layer(1).recv(b).unwrap().payload);
        // The last fragment's credit comes back once the message is taken.
        net.settle();
        net.layer(0).send(a, b"next").unwrap();
        net.settle();
        assert_eq!(net.layer(1).recv(b).unwrap().payload, b"next");
    }
}

#[test]
fn a_message_that_fits_one_fragment_is_one_plain_data() {
    let (mut net, a, _b) = linked_pair(1, config(1 << 20), config(1 << 20), SocketOptions::DEFAULT);
    for (len, kinds) in [(0, "D"), (FRAGMENT, "D"), (FRAGMENT + 1, "MD"), (3 * FRAGMENT, "MMD")] {
        net.layer(0).send(a, &message(1, len)).unwrap();
        let mut seen = String::new();
        let mut total = 0;
        while let Some(out) = net.layer(0).poll_outgoing() {
            match message::decode(&out.bytes).unwrap().body {
                Body::Data { payload, .. } => {
                    seen.push('D');
                    total += payload.len();
                }
                Body::DataMore { payload, .. } => {
                    assert_eq!(payload.len(), FRAGMENT);
                    seen.push('M');
                    total += payload.len();
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((seen.as_str(), total), (kinds, len));
    }
}

#[test]
fn a_message_above_the_maximum_is_refused_and_nothing_leaves() {
    let (mut net, a, b) = linked_pair(2, config(1000), config(1000), SocketOptions::DEFAULT);
    assert_eq!(net.layer(0).send(a, &message(0, 1001)), Err(SocketError::TooLarge));
    assert_eq!(net.layer(0).outgoing_len(), 0);
    net.layer(0).send(a, &message(1, 1000)).unwrap();
    net.settle();
    check(1, 1000, &net.layer(1).recv(b).unwrap().payload);
}

#[test]
fn a_receiver_with_a_lower_maximum_drops_and_counts_a_larger_message() {
    for seed in 0..30 {
        let options = SocketOptions { capacity: 1 + (seed % 4) as u32, ..SocketOptions::DEFAULT };
        let (mut net, a, b) = linked_pair(seed, config(10_000), config(100), options);
        let mut expected = Vec::new();
        for (index, len) in [(0, 50), (1, 101), (2, 100), (3, 5000), (4, 3), (5, 99)] {
            net.layer(0).send(a, &message(index, len)).unwrap_or_else(|e| panic!("{e}"));
            if len <= 100 {
                expected.push((index, len));
            }
            for _ in 0..1000 {
                if let Ok(m) = net.layer(1).recv(b) {
                    let (i, l) = expected.remove(0);
                    check(i, l, &m.payload);
                }
                if !net.step() && net.layers[0].readiness(a).contains(a3m_core::poll::Events::OUT) {
                    break;
                }
            }
        }
        net.settle();
        while let Ok(m) = net.layer(1).recv(b) {
            let (i, l) = expected.remove(0);
            check(i, l, &m.payload);
            net.settle();
        }
        assert!(expected.is_empty(), "seed {seed}: missing {expected:?}");
        assert_eq!(net.layers[1].stats().oversized, 2, "seed {seed}");
        assert_eq!(net.layers[1].stats().violations, 0, "seed {seed}");
    }
}

#[test]
fn fragments_of_two_messages_never_mix_and_a_busy_link_is_passed_over() {
    for seed in 0..50 {
        let mut net = Net::with_config(seed, &["A", "B", "C"], config(1 << 20));
        let options = SocketOptions { capacity: 2, ..SocketOptions::DEFAULT };
        let a = net.layer(0).create_socket(tag("src"), Box::new(Push::new())).unwrap();
        let sinks: Vec<SocketKey> = (1..3)
            .map(|i| net.layer(i).create_socket_with(tag("sink"), Box::new(Pull::new()), options))
            .collect::<Result<_, _>>()
            .unwrap();
        net.layer(0).link(a, sid("B/sink")).unwrap();
        net.layer(0).link(a, sid("C/sink")).unwrap();
        net.settle();
        let mut sizes = Vec::new();
        let mut received = Vec::new();
        for _ in 0..20_000 {
            if sizes.len() < 40 {
                let len = size(&mut net.rng);
                let m = message(sizes.len() as u32, len);
                match net.layer(0).send(a, &m) {
                    Ok(()) => sizes.push(len),
                    Err(SocketError::WouldBlock) => {}
                    Err(e) => panic!("seed {seed}: {e}"),
                }
            }
            for (i, &sink) in sinks.iter().enumerate() {
                if net.rng.chance(1, 2)
                    && let Ok(m) = net.layer(i + 1).recv(sink)
                {
                    received.push((i, m.payload));
                }
            }
            if !net.step() && received.len() == 40 {
                break;
            }
        }
        assert_eq!(received.len(), 40, "seed {seed}");
        // Each message whole; each sink gets its messages in the order they were sent.
        let mut last = [None::<u32>; 2];
        for (sink, payload) in &received {
            let index = if payload.len() >= 4 {
                u32::from_le_bytes(payload[..4].try_into().unwrap())
            } else {
                (0..sizes.len() as u32)
                    .find(|&i| {
                        sizes[i as usize] == payload.len() && message(i, payload.len()) == *payload
                    })
                    .unwrap()
            };
            check(index, sizes[index as usize], payload);
            if payload.len() >= 4 {
                assert!(last[*sink].is_none_or(|l| l < index), "seed {seed}: order");
                last[*sink] = Some(index);
            }
        }
    }
}

#[test]
fn unlinking_during_a_message_finishes_it_before_the_link_closes() {
    for seed in 0..50 {
        let options = SocketOptions { capacity: 2, ..SocketOptions::DEFAULT };
        let (mut net, a, b) = linked_pair(seed, config(1 << 20), config(1 << 20), options);
        let big = message(3, 2000);
        net.layer(0).send(a, b"first").unwrap();
        net.layer(0).send(a, &big).unwrap_or_else(|_| {
            net.step();
            net.settle();
            net.layer(1).recv(b).unwrap();
            net.settle();
            net.layer(0).send(a, &big).unwrap();
        });
        for _ in 0..net.rng.below(30) {
            net.step();
        }
        // Either end unlinks while the message is on its way.
        let now = net.now;
        if seed % 2 == 0 {
            net.layer(0).unlink(now, a, &sid("B/sink")).unwrap();
        } else {
            net.layer(1).unlink(now, b, &sid("A/src")).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..100_000 {
            match net.layer(1).recv(b) {
                Ok(m) => got.push(m.payload),
                Err(SocketError::NoLinks) => break,
                Err(_) => {
                    net.step();
                }
            }
        }
        if got.first().is_some_and(|m| m == b"first") {
            got.remove(0);
        }
        assert_eq!(got.len(), 1, "seed {seed}: exactly the whole message");
        check(3, big.len(), &got[0]);
        net.settle();
        assert!(!net.layers[0].has_links(a), "seed {seed}");
    }
}

#[test]
fn a_close_that_gives_up_during_a_message_never_delivers_part_of_it() {
    for seed in 0..50 {
        let options = SocketOptions { capacity: 3, ..SocketOptions::DEFAULT };
        let (mut net, a, b) = linked_pair(seed, config(1 << 20), config(1 << 20), options);
        let lb = only_link(&net.layers[1], b);
        net.layer(0).send(a, &message(9, 5000)).unwrap();
        for _ in 0..net.rng.below(40) {
            net.step();
        }
        let zero = SocketOptions { linger: Some(core::time::Duration::ZERO), ..options };
        net.layer(0).set_options(a, zero).unwrap();
        let now = net.now;
        net.layer(0).close(now, a).unwrap();
        assert!(net.layers[0].socket_id(a).is_none(), "seed {seed}: the socket is gone");
        net.settle();
        assert_eq!(net.layer(1).recv(b), Err(SocketError::WouldBlock), "seed {seed}");
        let status = net.layers[1].link_status(b, lb).unwrap();
        assert_eq!(status.phase, LinkPhase::Established, "seed {seed}");
        assert!(status.taken < 5000 / FRAGMENT as u64, "seed {seed}: {status:?}");
    }
}

#[test]
fn credit_events_mirror_the_send_balance_with_fragments() {
    let config = LayerConfig { credit_events: true, ..config(1 << 20) };
    for seed in 0..30 {
        let mut net = Net::with_config(seed, &["A", "B"], config);
        let options = SocketOptions { capacity: 4, ..SocketOptions::DEFAULT };
        let a = net.layer(0).create_socket(tag("src"), Box::new(Push::new())).unwrap();
        let b =
            net.layer(1).create_socket_with(tag("sink"), Box::new(Pull::new()), options).unwrap();
        let la = net.layer(0).link(a, sid("B/sink")).unwrap();
        let mut mirror = 0i64;
        for _ in 0..1000 {
            let len = size(&mut net.rng);
            let _ = net.layer(0).send(a, &message(0, len));
            if net.rng.chance(1, 2) {
                let _ = net.layer(1).recv(b);
            }
            net.step();
            for ev in net.take_events(0) {
                if let SocketEvent::Credits { link, delta, .. } = ev {
                    assert_eq!(link, la);
                    mirror += delta;
                }
            }
            if let Some(status) = net.layers[0].link_status(a, la)
                && status.phase == LinkPhase::Established
            {
                assert_eq!(mirror, status.credits, "seed {seed}");
            }
        }
    }
}
