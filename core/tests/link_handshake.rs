//! The link management protocol through the socket layer's public API, over a network that
//! delivers every message exactly once but in a random order: establishment from one side
//! and from both at once, refusals with reasons, retries until the peer socket exists.
#![cfg(feature = "alloc")]

mod socket_sim;

use a3m_core::link::{Backoff, LinkPhase, RefusalCode};
use a3m_core::socket::{
    Protocol, Pull, Push, SocketError, SocketEvent, SocketKey, SocketLayer, SocketOptions,
};
use socket_sim::{Net, sid, tag};
use std::time::Duration;

const SEEDS: u64 = 300;

fn established(layer: &SocketLayer, key: SocketKey) -> usize {
    layer
        .links(key)
        .filter(|&l| layer.link_status(key, l).unwrap().phase == LinkPhase::Established)
        .count()
}

fn count_established_events(events: &[SocketEvent]) -> usize {
    events.iter().filter(|e| matches!(e, SocketEvent::LinkEstablished { .. })).count()
}

fn push() -> Box<dyn Protocol> {
    Box::new(Push::new())
}

fn pull() -> Box<dyn Protocol> {
    Box::new(Pull::new())
}

#[test]
fn the_layer_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<SocketLayer>();
}

#[test]
fn one_side_links_and_both_establish() {
    for seed in 0..SEEDS {
        let mut net = Net::new(seed, &["A", "B"]);
        let a = net.layer(0).create_socket(tag("src"), push()).unwrap();
        let b = net.layer(1).create_socket(tag("sink"), pull()).unwrap();
        let link = net.layer(0).link(a, sid("B/sink")).unwrap();
        net.settle();
        assert_eq!(established(&net.layers[0], a), 1, "seed {seed}");
        assert_eq!(established(&net.layers[1], b), 1, "seed {seed}");
        let ev = net.take_events(0);
        assert!(ev.contains(&SocketEvent::LinkEstablished {
            socket: a,
            link,
            peer: sid("B/sink")
        }));
        assert_eq!(count_established_events(&net.take_events(1)), 1);
        // The push side got the pull side's capacity as credits; the pull side none.
        let a_status = net.layers[0].link_status(a, link).unwrap();
        assert_eq!(a_status.credits, 100);
        assert_eq!(a_status.peer_protocol, Some(a3m_core::socket::PULL));
        let b_link = net.layers[1].link_of(b, &sid("A/src")).unwrap();
        assert_eq!(net.layers[1].link_status(b, b_link).unwrap().credits, 0);
    }
}

#[test]
fn simultaneous_links_converge_to_one_link() {
    for seed in 0..SEEDS {
        let mut net = Net::new(seed, &["A", "B"]);
        let a = net.layer(0).create_socket(tag("src"), push()).unwrap();
        let b = net.layer(1).create_socket(tag("sink"), pull()).unwrap();
        let la = net.layer(0).link(a, sid("B/sink")).unwrap();
        let lb = net.layer(1).link(b, sid("A/src")).unwrap();
        net.settle();
        assert_eq!(net.layers[0].link_count(a), 1, "seed {seed}");
        assert_eq!(net.layers[1].link_count(b), 1, "seed {seed}");
        assert_eq!(established(&net.layers[0], a), 1, "seed {seed}");
        assert_eq!(established(&net.layers[1], b), 1, "seed {seed}");
        assert_eq!(net.layers[0].link_of(a, &sid("B/sink")), Some(la));
        assert_eq!(net.layers[1].link_of(b, &sid("A/src")), Some(lb));
        assert_eq!(count_established_events(&net.take_events(0)), 1, "seed {seed}");
        assert_eq!(count_established_events(&net.take_events(1)), 1, "seed {seed}");
        // The one link works.
        net.layer(0).send(a, b"x").unwrap();
        net.settle();
        assert_eq!(net.layer(1).recv(b).unwrap().payload, b"x");
    }
}

#[test]
fn incompatible_protocols_are_refused_with_the_reason() {
    for seed in 0..50 {
        let mut net = Net::new(seed, &["A", "B"]);
        let a = net.layer(0).create_socket(tag("p1"), push()).unwrap();
        let b = net.layer(1).create_socket(tag("p2"), push()).unwrap();
        let link = net.layer(0).link(a, sid("B/p2")).unwrap();
        net.settle();
        let ev = net.take_events(0);
        let refusal = ev
            .iter()
            .find_map(|e| match e {
                SocketEvent::LinkRefused { link: l, refusal, peer, .. } if *l == link => {
                    assert_eq!(*peer, sid("B/p2"));
                    Some(refusal.clone())
                }
                _ => None,
            })
            .expect("a refusal event");
        assert_eq!(refusal.code, RefusalCode::Incompatible);
        assert!(refusal.reason.contains("push socket"), "{refusal}");
        assert!(ev.contains(&SocketEvent::LinkClosed {
            socket: a,
            link,
            peer: sid("B/p2"),
            established: false
        }));
        assert!(ev.contains(&SocketEvent::LinkFree { socket: a }));
        assert!(!net.layers[0].has_links(a) && !net.layers[1].has_links(b));
        assert_eq!(net.layers[1].stats().refused_requests, 1);
    }
}

#[test]
fn incompatible_simultaneous_links_close_on_both_sides() {
    for seed in 0..SEEDS {
        let mut net = Net::new(seed, &["A", "B"]);
        let a = net.layer(0).create_socket(tag("p1"), pull()).unwrap();
        let b = net.layer(1).create_socket(tag("p2"), pull()).unwrap();
        net.layer(0).link(a, sid("B/p2")).unwrap();
        net.layer(1).link(b, sid("A/p1")).unwrap();
        net.settle();
        assert!(!net.layers[0].has_links(a) && !net.layers[1].has_links(b), "seed {seed}");
        for side in 0..2 {
            let refused = net
                .take_events(side)
                .iter()
                .filter(|e| matches!(e, SocketEvent::LinkRefused { refusal, .. } if refusal.code == RefusalCode::Incompatible))
                .count();
            assert_eq!(refused, 1, "seed {seed} side {side}");
        }
    }
}

#[test]
fn refusing_incoming_requests_is_reported_as_not_allowed() {
    let mut net = Net::new(1, &["A", "B"]);
    let a = net.layer(0).create_socket(tag("src"), push()).unwrap();
    let options = SocketOptions { accept_incoming: false, ..SocketOptions::DEFAULT };
    net.layer(1).create_socket_with(tag("sink"), pull(), options).unwrap();
    net.layer(0).link(a, sid("B/sink")).unwrap();
    net.settle();
    let refused = net.take_events(0).into_iter().find_map(|e| match e {
        SocketEvent::LinkRefused { refusal, .. } => Some(refusal.code),
        _ => None,
    });
    assert_eq!(refused, Some(RefusalCode::NotAllowed));
}

#[test]
fn link_retries_until_the_peer_socket_appears() {
    for seed in 0..100 {
        let mut net = Net::new(seed, &["A", "B"]);
        let a = net.layer(0).create_socket(tag("src"), push()).unwrap();
        let link = net.layer(0).link(a, sid("B/late")).unwrap();
        // Let a few attempts fail.
        let mut attempts_seen = 0;
        while attempts_seen < 3 {
            net.drain();
            let status = net.layers[0].link_status(a, link).unwrap();
            assert_eq!(status.phase, LinkPhase::RetryWait, "seed {seed}");
            // Other timers (the watch for an answer) may come first.
            while net.layers[0].link_status(a, link).unwrap().phase == LinkPhase::RetryWait {
                assert!(net.fire_next_timer());
            }
            attempts_seen += 1;
        }
        assert!(net.layers[1].stats().not_found >= 3);
        let b = net.layer(1).create_socket(tag("late"), pull()).unwrap();
        net.settle();
        assert_eq!(established(&net.layers[0], a), 1, "seed {seed}");
        assert_eq!(established(&net.layers[1], b), 1, "seed {seed}");
        assert!(
            net.take_events(0).iter().any(|e| matches!(e, SocketEvent::LinkEstablished { .. }))
        );
    }
}

#[test]
fn retry_backoff_grows_and_the_limit_gives_up() {
    let mut net = Net::new(7, &["A", "B"]);
    let retry =
        Backoff { min: Duration::from_millis(10), max: Duration::from_millis(40), limit: Some(4) };
    let options = SocketOptions { retry, ..SocketOptions::DEFAULT };
    let a = net.layer(0).create_socket_with(tag("src"), push(), options).unwrap();
    let link = net.layer(0).link(a, sid("B/nobody")).unwrap();
    let mut delays = Vec::new();
    loop {
        net.drain();
        let Some(status) = net.layers[0].link_status(a, link) else { break };
        let at = status.retry_at.expect("waiting to retry");
        delays.push((at - net.now).as_millis());
        // Other timers (the watch for an answer) may come first.
        while net.layers[0].link_status(a, link).is_some_and(|s| s.phase == LinkPhase::RetryWait) {
            assert!(net.fire_next_timer());
        }
    }
    // Three waits (10, 20, 40 ms, each measured from a moment a little after the ERROR),
    // then the fourth failure gives up.
    assert_eq!(delays.len(), 3, "{delays:?}");
    assert!(delays[0] <= 10 && delays[1] <= 20 && delays[2] <= 40 && delays[2] > 20, "{delays:?}");
    let ev = net.take_events(0);
    assert!(ev.iter().any(|e| matches!(e, SocketEvent::LinkRefused { refusal, .. } if refusal.code == RefusalCode::NotFound)));
    assert!(ev.contains(&SocketEvent::LinkFree { socket: a }));
    assert_eq!(net.layers[0].send(a, b"x"), Err(SocketError::NoLinks));
}

#[test]
fn unlink_during_the_handshake_cancels_it() {
    for seed in 0..SEEDS {
        let mut net = Net::new(seed, &["A", "B"]);
        let a = net.layer(0).create_socket(tag("src"), push()).unwrap();
        let b = net.layer(1).create_socket(tag("sink"), pull()).unwrap();
        net.layer(0).link(a, sid("B/sink")).unwrap();
        // Deliver a random part of the handshake, then cancel.
        let steps = net.rng.below(4);
        for _ in 0..steps {
            net.deliver_one();
        }
        let now = net.now;
        net.layer(0).unlink(now, a, &sid("B/sink")).unwrap();
        net.settle();
        assert!(!net.layers[0].has_links(a), "seed {seed}");
        assert!(!net.layers[1].has_links(b), "seed {seed}");
        // No refusal is reported for a link we cancelled ourselves.
        assert!(!net.take_events(0).iter().any(|e| matches!(e, SocketEvent::LinkRefused { .. })));
    }
}

#[test]
fn link_to_self_is_invalid_and_a_second_link_call_is_the_same_link() {
    let mut net = Net::new(3, &["A", "B"]);
    let a = net.layer(0).create_socket(tag("src"), push()).unwrap();
    net.layer(1).create_socket(tag("sink"), pull()).unwrap();
    assert_eq!(net.layer(0).link(a, sid("A/src")), Err(SocketError::InvalidPeer));
    let l1 = net.layer(0).link(a, sid("B/sink")).unwrap();
    let l2 = net.layer(0).link(a, sid("B/sink")).unwrap();
    assert_eq!(l1, l2);
    net.settle();
    assert_eq!(net.layers[0].link_count(a), 1);
}

#[test]
fn link_requests_beyond_the_link_limit_are_retried_later() {
    for seed in 0..50 {
        let mut net = Net::new(seed, &["A", "B", "C"]);
        let options = SocketOptions { max_links: 1, ..SocketOptions::DEFAULT };
        let sink = net.layer(2).create_socket_with(tag("sink"), pull(), options).unwrap();
        let a = net.layer(0).create_socket(tag("src"), push()).unwrap();
        let b = net.layer(1).create_socket(tag("src"), push()).unwrap();
        net.layer(0).link(a, sid("C/sink")).unwrap();
        net.layer(1).link(b, sid("C/sink")).unwrap();
        // Run until one of them is established; the other keeps retrying.
        while established(&net.layers[2], sink) == 0 {
            assert!(net.step());
        }
        for _ in 0..200 {
            net.step();
        }
        assert_eq!(net.layers[2].link_count(sink), 1, "seed {seed}");
        let (winner, loser, wk, lk) =
            if established(&net.layers[0], a) == 1 { (0, 1, a, b) } else { (1, 0, b, a) };
        assert_eq!(established(&net.layers[winner], wk), 1);
        let waiting = net.layers[loser].links(lk).next().unwrap();
        let phase = net.layers[loser].link_status(lk, waiting).unwrap().phase;
        assert!(matches!(phase, LinkPhase::RetryWait | LinkPhase::Linking), "{phase:?}");
        // When the winner unlinks, the other gets in.
        let now = net.now;
        net.layer(winner).unlink(now, wk, &sid("C/sink")).unwrap();
        while established(&net.layers[loser], lk) == 0 {
            assert!(net.step(), "seed {seed}");
        }
        assert_eq!(net.layers[2].link_count(sink), 1);
    }
}

#[test]
fn a_late_peer_that_links_back_meets_the_retrying_link() {
    for seed in 0..SEEDS {
        let mut net = Net::new(seed, &["A", "B"]);
        let a = net.layer(0).create_socket(tag("src"), push()).unwrap();
        net.layer(0).link(a, sid("B/late")).unwrap();
        // The peer socket appears at a random moment and links back at once.
        for _ in 0..net.rng.below(6) {
            net.step();
        }
        let b = net.layer(1).create_socket(tag("late"), pull()).unwrap();
        net.layer(1).link(b, sid("A/src")).unwrap();
        net.settle();
        assert_eq!(net.layers[0].link_count(a), 1, "seed {seed}");
        assert_eq!(established(&net.layers[0], a), 1, "seed {seed}");
        assert_eq!(established(&net.layers[1], b), 1, "seed {seed}");
    }
}
