//! Data through sockets over a network that reorders everything: credits bound the receive
//! queue, capacity changes at runtime converge, each link is FIFO, the pull socket queues
//! fairly, and unlink / close deliver every message in flight before the link goes.
#![cfg(feature = "alloc")]

mod socket_sim;

use a3m_core::flow::BatchPercent;
use a3m_core::id::LinkIncarnation;
use a3m_core::link::LinkPhase;
use a3m_core::poll::Events;
use a3m_core::socket::{
    LayerConfig, Pull, Push, SocketError, SocketEvent, SocketKey, SocketLayer, SocketOptions,
};
use socket_sim::{Net, sid, tag};
use std::collections::BTreeMap;
use std::time::Duration;

fn num(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload.try_into().unwrap())
}

/// A push socket on node 0 linked to a pull socket on node 1 with `options`.
fn linked_pair(seed: u64, options: SocketOptions) -> (Net, SocketKey, SocketKey, LinkIncarnation) {
    let mut net = Net::new(seed, &["A", "B"]);
    let a = net.layer(0).create_socket(tag("src"), Box::new(Push::new())).unwrap();
    let b = net.layer(1).create_socket_with(tag("sink"), Box::new(Pull::new()), options).unwrap();
    net.layer(0).link(a, sid("B/sink")).unwrap();
    net.settle();
    let lb = net.layers[1].link_of(b, &sid("A/src")).unwrap();
    (net, a, b, lb)
}

fn only_link(layer: &SocketLayer, key: SocketKey) -> LinkIncarnation {
    layer.links(key).next().expect("a link")
}

#[test]
fn the_receive_queue_never_exceeds_the_capacity() {
    for seed in 0..100 {
        let capacity = 1 + (seed % 9) as u32;
        let batch = BatchPercent::new([1, 25, 50, 100][(seed % 4) as usize]).unwrap();
        let options = SocketOptions { capacity, batch, ..SocketOptions::DEFAULT };
        let (mut net, a, b, lb) = linked_pair(seed, options);
        let mut next = 0u64;
        let mut got = 0u64;
        for _ in 0..3000 {
            // A greedy sender and a receiver at a random pace.
            while net.layer(0).send(a, &next.to_le_bytes()).is_ok() {
                next += 1;
            }
            if net.rng.chance(1, 3)
                && let Ok(m) = net.layer(1).recv(b)
            {
                assert_eq!(num(&m.payload), got, "seed {seed}: FIFO");
                got += 1;
                net.layer(1).recycle(m.payload);
            }
            net.step();
            let status = net.layers[1].link_status(b, lb).unwrap();
            assert!(status.queued <= capacity as usize, "seed {seed}: {status:?}");
        }
        assert!(got > 50, "seed {seed}: only {got} messages moved");
    }
}

#[test]
fn credits_are_conserved_at_rest() {
    for seed in 0..100 {
        let options = SocketOptions { capacity: 10, ..SocketOptions::DEFAULT };
        let (mut net, a, b, lb) = linked_pair(seed, options);
        let la = only_link(&net.layers[0], a);
        for round in 0..20 {
            for _ in 0..net.rng.below(15) {
                let _ = net.layer(0).send(a, &[round]);
            }
            for _ in 0..net.rng.below(15) {
                let _ = net.layer(1).recv(b);
            }
            net.settle();
            let tx = net.layers[0].link_status(a, la).unwrap();
            let rx = net.layers[1].link_status(b, lb).unwrap();
            assert_eq!(
                tx.credits + rx.queued as i64 + i64::from(rx.owed),
                i64::from(rx.capacity),
                "seed {seed} round {round}: {tx:?} {rx:?}"
            );
            assert_eq!(tx.sent, rx.taken + rx.queued as u64);
        }
    }
}

#[test]
fn capacity_changes_at_runtime_converge_in_any_order() {
    for seed in 0..100 {
        let options = SocketOptions { capacity: 4, ..SocketOptions::DEFAULT };
        let (mut net, a, b, lb) = linked_pair(seed, options);
        let la = only_link(&net.layers[0], a);
        let mut next = 0u64;
        let mut got = 0u64;
        let mut fill = |net: &mut Net| {
            while net.layer(0).send(a, &next.to_le_bytes()).is_ok() {
                next += 1;
            }
        };
        fill(&mut net);
        net.settle();
        assert_eq!(net.layers[1].link_status(b, lb).unwrap().queued, 4);

        // Grow: the sender may now have 10 outstanding.
        net.layer(1).set_link_capacity(b, lb, 10).unwrap();
        net.settle();
        fill(&mut net);
        net.settle();
        assert_eq!(net.layers[1].link_status(b, lb).unwrap().queued, 10, "seed {seed}");

        // Several changes in a row, delivered in any order: only the sum matters.
        let mut capacity = 10i64;
        for _ in 0..5 {
            let delta = net.rng.below(9) as i32 - 4;
            net.layer(1).adjust_link_capacity(b, lb, delta).unwrap();
            capacity = (capacity + i64::from(delta)).max(0);
        }
        net.layer(1).set_link_capacity(b, lb, 3).unwrap();
        net.settle();
        let tx = net.layers[0].link_status(a, la).unwrap();
        let rx = net.layers[1].link_status(b, lb).unwrap();
        assert_eq!(rx.capacity, 3);
        assert_eq!(tx.credits + rx.queued as i64 + i64::from(rx.owed), 3, "seed {seed}");
        assert!(tx.credits <= 0, "shrunk below what is queued: no credit left");

        // Take everything: from then on the queue stays within the new capacity.
        for _ in 0..200 {
            fill(&mut net);
            if let Ok(m) = net.layer(1).recv(b) {
                assert_eq!(num(&m.payload), got);
                got += 1;
            }
            net.step();
            if got >= 10 {
                let rx = net.layers[1].link_status(b, lb).unwrap();
                assert!(rx.queued <= 3, "seed {seed}: {rx:?}");
            }
        }
        assert!(got > 10);
    }
}

#[test]
fn each_link_is_fifo_and_pull_queues_fairly() {
    for seed in 0..100 {
        let mut net = Net::new(seed, &["A", "B", "C"]);
        let options = SocketOptions { capacity: 8, ..SocketOptions::DEFAULT };
        let c =
            net.layer(2).create_socket_with(tag("sink"), Box::new(Pull::new()), options).unwrap();
        let mut pushes = Vec::new();
        for n in 0..2 {
            let p = net.layer(n).create_socket(tag("src"), Box::new(Push::new())).unwrap();
            net.layer(n).link(p, sid("C/sink")).unwrap();
            pushes.push(p);
        }
        net.settle();
        // Each sender's messages in order per link, whatever the delivery order.
        let mut next = [0u64; 2];
        let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for _ in 0..2000 {
            for n in 0..2 {
                if net.rng.chance(1, 2)
                    && net.layer(n).send(pushes[n], &next[n].to_le_bytes()).is_ok()
                {
                    next[n] += 1;
                }
            }
            if net.rng.chance(1, 2)
                && let Ok(m) = net.layer(2).recv(c)
            {
                seen.entry(m.peer.to_string()).or_default().push(num(&m.payload));
            }
            net.step();
        }
        loop {
            net.settle();
            let Ok(m) = net.layer(2).recv(c) else { break };
            seen.entry(m.peer.to_string()).or_default().push(num(&m.payload));
        }
        for (n, name) in ["A/src", "B/src"].iter().enumerate() {
            let got = seen.get(*name).cloned().unwrap_or_default();
            assert_eq!(got, (0..next[n]).collect::<Vec<_>>(), "seed {seed}: {name}");
        }

        // Both links full: receiving alternates between them.
        for (n, &p) in pushes.iter().enumerate() {
            while net.layer(n).send(p, &[n as u8]).is_ok() {}
        }
        net.settle();
        // (Credits owed below the batch threshold are not back yet, so a link may hold
        // fewer than its capacity.)
        let queued: Vec<usize> = net.layers[2]
            .links(c)
            .map(|l| net.layers[2].link_status(c, l).unwrap().queued)
            .collect();
        let both = 2 * queued.iter().copied().min().unwrap();
        assert!(both >= 10, "seed {seed}: {queued:?}");
        let order: Vec<u8> = (0..both).map(|_| net.layer(2).recv(c).unwrap().payload[0]).collect();
        assert!(order.windows(2).all(|w| w[0] != w[1]), "seed {seed}: not fair: {order:?}");
    }
}

#[test]
fn unlink_delivers_every_message_in_flight_before_closing() {
    for seed in 0..200 {
        let (mut net, a, b, _) =
            linked_pair(seed, SocketOptions { capacity: 50, ..SocketOptions::DEFAULT });
        let count = 1 + net.rng.below(50) as u64;
        for i in 0..count {
            net.layer(0).send(a, &i.to_le_bytes()).unwrap();
        }
        let now = net.now;
        net.layer(0).unlink(now, a, &sid("B/sink")).unwrap();
        assert_eq!(net.layer(0).send(a, b"late"), Err(SocketError::WouldBlock));
        let mut got = Vec::new();
        // The link stays until the application took everything.
        loop {
            net.settle();
            match net.layer(1).recv(b) {
                Ok(m) => got.push(num(&m.payload)),
                Err(SocketError::NoLinks) => break,
                Err(e) => panic!("seed {seed}: {e:?} after {} messages", got.len()),
            }
        }
        assert_eq!(got, (0..count).collect::<Vec<_>>(), "seed {seed}");
        assert!(!net.layers[0].has_links(a));
        let ev = net.take_events(1);
        assert!(ev.contains(&SocketEvent::LinkFree { socket: b }));
    }
}

#[test]
fn closing_a_socket_delivers_what_it_sent_and_then_it_leaves() {
    for seed in 0..200 {
        let (mut net, a, b, _) = linked_pair(seed, SocketOptions::DEFAULT);
        for i in 0..30u64 {
            net.layer(0).send(a, &i.to_le_bytes()).unwrap();
        }
        let now = net.now;
        net.layer(0).close(now, a).unwrap();
        assert_eq!(net.layer(0).send(a, b"x"), Err(SocketError::Closed));
        let mut got = Vec::new();
        loop {
            net.settle();
            match net.layer(1).recv(b) {
                Ok(m) => got.push(num(&m.payload)),
                Err(SocketError::NoLinks) => break,
                Err(e) => panic!("seed {seed}: {e:?}"),
            }
        }
        assert_eq!(got, (0..30).collect::<Vec<_>>());
        net.settle();
        assert!(net.take_events(0).contains(&SocketEvent::Closed { socket: a }), "seed {seed}");
        assert_eq!(net.layers[0].readiness(a), Events::HUP);
        assert_eq!(net.layers[0].socket_by_tag(&tag("src")), None);
        // The tag is free again.
        net.layer(0).create_socket(tag("src"), Box::new(Push::new())).unwrap();
    }
}

#[test]
fn linger_drops_what_the_application_never_took() {
    let options =
        SocketOptions { linger: Some(Duration::from_millis(100)), ..SocketOptions::DEFAULT };
    let (mut net, a, b, _) = linked_pair(5, options);
    for i in 0..5u64 {
        net.layer(0).send(a, &i.to_le_bytes()).unwrap();
    }
    net.drain();
    let now = net.now;
    net.layer(1).close(now, b).unwrap();
    net.drain();
    // Not closed yet: five messages wait to be taken.
    assert!(net.layers[1].socket_by_tag(&tag("sink")).is_some());
    assert!(net.fire_next_timer());
    assert!(net.take_events(1).contains(&SocketEvent::Closed { socket: b }));
    net.settle();
    // The sender's side of the link finished normally.
    assert!(!net.layers[0].has_links(a));
}

/// Hands every queued message of `from` to `to`, in order.
fn pump(from: &mut SocketLayer, to: &mut SocketLayer) -> usize {
    let mut n = 0;
    while let Some(out) = from.poll_outgoing() {
        to.handle_payload(a3m_core::time::Instant::ZERO, from.node(), &out.bytes).unwrap();
        n += 1;
    }
    n
}

#[test]
fn readiness_follows_credits_and_messages_and_changes_are_announced() {
    let mut a_layer = SocketLayer::new(socket_sim::node("A"), LayerConfig::DEFAULT);
    let mut b_layer = SocketLayer::new(socket_sim::node("B"), LayerConfig::DEFAULT);
    let a = a_layer.create_socket(tag("src"), Box::new(Push::new())).unwrap();
    let options = SocketOptions { capacity: 1, ..SocketOptions::DEFAULT };
    let b = b_layer.create_socket_with(tag("sink"), Box::new(Pull::new()), options).unwrap();
    a_layer.link(a, sid("B/sink")).unwrap();
    while pump(&mut a_layer, &mut b_layer) + pump(&mut b_layer, &mut a_layer) > 0 {}
    assert_eq!(a_layer.readiness(a), Events::OUT);
    assert_eq!(b_layer.readiness(b), Events::empty());
    while a_layer.poll_ready().is_some() {}
    while b_layer.poll_ready().is_some() {}

    a_layer.send(a, b"1").unwrap();
    assert_eq!(a_layer.readiness(a), Events::empty());
    pump(&mut a_layer, &mut b_layer);
    assert_eq!(b_layer.poll_ready(), Some(b));
    assert_eq!(b_layer.poll_ready(), None, "listed once");
    assert_eq!(b_layer.readiness(b), Events::IN);

    b_layer.recv(b).unwrap();
    assert_eq!(b_layer.readiness(b), Events::empty());
    assert_eq!(a_layer.poll_ready(), None);
    pump(&mut b_layer, &mut a_layer);
    assert_eq!(a_layer.poll_ready(), Some(a), "the returned credit makes it writable");
    assert_eq!(a_layer.readiness(a), Events::OUT);

    a_layer.close(a3m_core::time::Instant::ZERO, a).unwrap();
    assert_eq!(a_layer.readiness(a), Events::empty(), "closing: no more sending");
    assert_eq!(a_layer.poll_ready(), Some(a));
    while pump(&mut a_layer, &mut b_layer) + pump(&mut b_layer, &mut a_layer) > 0 {}
    assert_eq!(a_layer.readiness(a), Events::HUP);
    assert_eq!(a_layer.poll_ready(), Some(a));
}

#[test]
fn errors_for_misuse() {
    let (mut net, a, b, lb) = linked_pair(2, SocketOptions::DEFAULT);
    assert_eq!(net.layer(1).send(b, b"x"), Err(SocketError::Unsupported));
    assert_eq!(net.layer(0).recv(a), Err(SocketError::Unsupported));
    assert_eq!(net.layer(1).recv(b), Err(SocketError::WouldBlock));
    let big = vec![0u8; LayerConfig::DEFAULT.max_payload + 1];
    assert_eq!(net.layer(0).send(a, &big), Err(SocketError::TooLarge));
    assert_eq!(net.layer(1).send_control(b, lb, 0x10, b""), Err(SocketError::ReservedKind));
    assert_eq!(
        net.layer(0).create_socket(tag("src"), Box::new(Pull::new())),
        Err(SocketError::TagInUse)
    );
    net.layer(0).send(a, b"hello").unwrap();
    net.settle();
    let mut small = [0u8; 2];
    assert_eq!(
        net.layer(1).recv_into(b, &mut small),
        Err(SocketError::BufferTooSmall { needed: 5 })
    );
    let mut buf = [0u8; 16];
    let (n, link) = net.layer(1).recv_into(b, &mut buf).unwrap();
    assert_eq!((&buf[..n], link), (&b"hello"[..], lb));
    let lone = net.layer(0).create_socket(tag("lone"), Box::new(Push::new())).unwrap();
    assert_eq!(net.layer(0).send(lone, b"x"), Err(SocketError::NoLinks));
    let now = net.now;
    assert_eq!(net.layer(1).unlink(now, b, &sid("A/nobody")), Err(SocketError::UnknownLink));
}

#[test]
fn credit_events_mirror_the_send_balance() {
    let config = LayerConfig { credit_events: true, ..LayerConfig::DEFAULT };
    for seed in 0..30 {
        let mut net = Net::with_config(seed, &["A", "B"], config);
        let options = SocketOptions {
            capacity: 6,
            batch: BatchPercent::new(50).unwrap(),
            ..SocketOptions::DEFAULT
        };
        let a = net.layer(0).create_socket(tag("src"), Box::new(Push::new())).unwrap();
        let b =
            net.layer(1).create_socket_with(tag("sink"), Box::new(Pull::new()), options).unwrap();
        let la = net.layer(0).link(a, sid("B/sink")).unwrap();
        let mut mirror = 0i64;
        for _ in 0..500 {
            let _ = net.layer(0).send(a, b"m");
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

#[test]
fn a_cached_stream_is_routed_by_its_header_and_bad_tails_are_still_malformed() {
    let mut a_layer = SocketLayer::new(socket_sim::node("A"), LayerConfig::DEFAULT);
    let mut b_layer = SocketLayer::new(socket_sim::node("B"), LayerConfig::DEFAULT);
    let a = a_layer.create_socket(tag("src"), Box::new(Push::new())).unwrap();
    let b = b_layer.create_socket(tag("sink"), Box::new(Pull::new())).unwrap();
    a_layer.link(a, sid("B/sink")).unwrap();
    while pump(&mut a_layer, &mut b_layer) + pump(&mut b_layer, &mut a_layer) > 0 {}

    // A stream: the first message fills the route cache, the rest take the header path.
    let mut last = Vec::new();
    for i in 0..10u64 {
        a_layer.send(a, &i.to_le_bytes()).unwrap();
        let out = a_layer.poll_outgoing().unwrap();
        b_layer.handle_payload(a3m_core::time::Instant::ZERO, a_layer.node(), &out.bytes).unwrap();
        last = out.bytes;
    }
    let got: Vec<u64> = (0..10).map(|_| num(&b_layer.recv(b).unwrap().payload)).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());

    // Same header, malformed sequence number: decoded the long way and counted.
    let header = last.len() - 8 - 1; // 8 payload bytes, a one-byte sequence number
    let mut bad = last[..header].to_vec();
    bad.push(0x80);
    let before = b_layer.stats().malformed;
    assert!(b_layer.handle_payload(a3m_core::time::Instant::ZERO, a_layer.node(), &bad).is_err());
    assert_eq!(b_layer.stats().malformed, before + 1);
    assert_eq!(b_layer.recv(b).unwrap_err(), SocketError::WouldBlock);

    // From another node, the same bytes are not this stream's.
    let stale = b_layer.stats().not_found + b_layer.stats().stale;
    let other = socket_sim::node("C");
    b_layer.handle_payload(a3m_core::time::Instant::ZERO, &other, &last).unwrap();
    assert_eq!(b_layer.recv(b).unwrap_err(), SocketError::WouldBlock);
    assert!(b_layer.stats().not_found + b_layer.stats().stale > stale);
}
