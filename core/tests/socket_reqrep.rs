//! Request-reply in the core (thesis §5.3) over the seeded test network that delivers every
//! message once in a random order: req/rep and dealer/router clients against one server,
//! with small capacities, every request served exactly once and every reply matched; plus
//! the rules' errors, and the multipart codec under property tests.
#![cfg(feature = "alloc")]

mod socket_sim;

use std::collections::BTreeMap;

use a3m_core::socket::multipart::{self, Multipart};
use a3m_core::socket::{
    Dealer, Refusal, Rep, Req, Router, SocketError, SocketEvent, SocketKey, SocketOptions,
};
use proptest::prelude::*;
use socket_sim::{Net, sid, tag};

const SERVER: usize = 0;

fn encode(frames: &[&[u8]]) -> Vec<u8> {
    let mut buf = Vec::new();
    multipart::encode::<&[u8], _>(&[], frames, &mut buf);
    buf
}

fn body(payload: &[u8]) -> Vec<u8> {
    Multipart::parse(payload).unwrap().frames().flatten().copied().collect()
}

fn established(net: &mut Net, node: usize) -> usize {
    net.take_events(node)
        .iter()
        .filter(|e| matches!(e, SocketEvent::LinkEstablished { .. }))
        .count()
}

/// `clients` clients (one node each) make `rounds` round trips each against one server
/// socket, in an order the seed picks; returns how many requests the server saw.
fn run(seed: u64, router: bool, clients: usize, rounds: u32) -> u64 {
    let names: Vec<String> =
        std::iter::once("S".to_string()).chain((0..clients).map(|i| format!("C{i}"))).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut net = Net::new(seed, &refs);
    let small = SocketOptions { capacity: 1 + (seed % 3) as u32, ..SocketOptions::DEFAULT };
    let server: SocketKey = if router {
        net.layer(SERVER).create_socket_with(tag("srv"), Box::new(Router::new()), small).unwrap()
    } else {
        net.layer(SERVER).create_socket_with(tag("srv"), Box::new(Rep::new()), small).unwrap()
    };
    let sockets: Vec<SocketKey> = (1..=clients)
        .map(|n| {
            let layer = net.layer(n);
            let s = if router {
                layer.create_socket_with(tag("c"), Box::new(Dealer::new()), small).unwrap()
            } else {
                layer.create_socket_with(tag("c"), Box::new(Req::new()), small).unwrap()
            };
            layer.link(s, sid("S/srv")).unwrap();
            s
        })
        .collect();
    let mut linked = vec![false; clients];
    let mut next = vec![0u32; clients];
    let mut waiting = vec![false; clients];
    // What the server holds: a request taken and not yet answered (rep: at most one).
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut served = 0u64;
    let mut seen = BTreeMap::new();
    for _ in 0..3_000_000usize {
        for (c, done) in linked.iter_mut().enumerate() {
            if established(&mut net, c + 1) > 0 {
                *done = true;
            }
        }
        // Clients: send the next request when linked and nothing is in flight; take replies.
        for c in 0..clients {
            let layer = net.layer(c + 1);
            if linked[c] && !waiting[c] && next[c] < rounds {
                let request = encode(&[&(c as u32).to_le_bytes(), &next[c].to_le_bytes()]);
                match layer.send(sockets[c], &request) {
                    Ok(()) => waiting[c] = true,
                    Err(SocketError::WouldBlock) => {}
                    Err(e) => panic!("seed {seed}: client {c} send: {e}"),
                }
            }
            if waiting[c] {
                match layer.recv(sockets[c]) {
                    Ok(reply) => {
                        let expect = [(c as u32).to_le_bytes(), next[c].to_le_bytes()].concat();
                        assert_eq!(body(&reply.payload), expect, "seed {seed}: client {c}");
                        waiting[c] = false;
                        next[c] += 1;
                    }
                    Err(SocketError::WouldBlock) => {}
                    Err(e) => panic!("seed {seed}: client {c} recv: {e}"),
                }
            }
        }
        // Server: take requests (a rep only one at a time) and answer them in a random order.
        loop {
            match net.layer(SERVER).recv(server) {
                Ok(r) => {
                    let key = body(Multipart::parse(&r.payload).unwrap().without_envelope());
                    *seen.entry(key).or_insert(0) += 1;
                    served += 1;
                    held.push(r.payload);
                    if !router {
                        break;
                    }
                }
                Err(SocketError::WouldBlock | SocketError::NoLinks) => break,
                Err(e) => panic!("seed {seed}: server recv: {e}"),
            }
        }
        if !held.is_empty() && net.rng.chance(1, 2) {
            let i = net.rng.below(held.len());
            match net.layer(SERVER).send(server, &held[i]) {
                Ok(()) => {
                    held.swap_remove(i);
                }
                Err(SocketError::WouldBlock) => {}
                Err(e) => panic!("seed {seed}: server send: {e}"),
            }
        }
        if next.iter().all(|&n| n == rounds) {
            break;
        }
        if !net.step() {
            // Nothing in flight and no timer: only the applications can move.
            continue;
        }
    }
    assert!(next.iter().all(|&n| n == rounds), "seed {seed}: stalled at {next:?}");
    assert!(seen.values().all(|&n| n == 1), "seed {seed}: a request was served twice");
    served
}

#[test]
fn req_rep_serves_every_request_once_under_any_order() {
    for seed in 0..40 {
        assert_eq!(run(seed, false, 3, 20), 60);
    }
}

#[test]
fn dealer_router_routes_every_reply_to_its_requester_under_any_order() {
    for seed in 0..40 {
        assert_eq!(run(seed, true, 4, 20), 80);
    }
}

#[test]
fn the_rules_and_their_errors() {
    let mut net = Net::new(7, &["S", "C"]);
    let rep = net.layer(0).create_socket(tag("rep"), Box::new(Rep::new())).unwrap();
    let req = net.layer(1).create_socket(tag("req"), Box::new(Req::new())).unwrap();
    assert_eq!(net.layer(1).recv(req), Err(SocketError::Refused(Refusal::NoRequestPending)));
    assert_eq!(
        net.layer(0).send(rep, &encode(&[b"x"])),
        Err(SocketError::Refused(Refusal::NoRequestToReply))
    );
    // No link yet: a request has nowhere to go.
    assert_eq!(net.layer(1).send(req, &encode(&[b"q"])), Err(SocketError::NoLinks));
    net.layer(1).link(req, sid("S/rep")).unwrap();
    net.settle();
    net.layer(1).send(req, &encode(&[b"q"])).unwrap();
    // One request at a time.
    assert_eq!(net.layer(1).send(req, &encode(&[b"q2"])), Err(SocketError::WouldBlock));
    let now = net.now;
    assert_eq!(
        net.layer(1).unlink(now, req, &sid("S/rep")),
        Err(SocketError::Refused(Refusal::ReplyAwaited))
    );
    net.settle();
    let request = net.layer(0).recv(rep).unwrap();
    assert_eq!(body(&request.payload), b"q");
    // Serving one request: a second receive finds nothing until the reply.
    assert_eq!(net.layer(0).recv(rep), Err(SocketError::WouldBlock));
    assert_eq!(
        net.layer(0).unlink(now, rep, &sid("C/req")),
        Err(SocketError::Refused(Refusal::ReplyOwed))
    );
    // The requester forces its unlink: the link closes, the request fails, the rep is free.
    net.layer(1).force_unlink(now, req, &sid("S/rep")).unwrap();
    net.settle();
    assert_eq!(net.layer(1).recv(req), Err(SocketError::Refused(Refusal::ReplierGone)));
    assert_eq!(net.layer(1).recv(req), Err(SocketError::Refused(Refusal::NoRequestPending)));
    assert_eq!(
        net.layer(0).send(rep, &encode(&[b"late"])),
        Err(SocketError::Refused(Refusal::NoRequestToReply))
    );
}

#[test]
fn a_router_refuses_what_it_cannot_route() {
    let mut net = Net::new(3, &["S", "C"]);
    let router = net.layer(0).create_socket(tag("r"), Box::new(Router::new())).unwrap();
    let dealer = net.layer(1).create_socket(tag("d"), Box::new(Dealer::new())).unwrap();
    net.layer(1).link(dealer, sid("S/r")).unwrap();
    net.settle();
    assert_eq!(
        net.layer(0).send(router, &encode(&[b"x"])),
        Err(SocketError::Refused(Refusal::MissingRoute))
    );
    assert_eq!(net.layer(0).send(router, b"\x05ab"), Err(SocketError::Refused(Refusal::Malformed)));
    let mut to_nobody = Vec::new();
    multipart::encode(
        &[&multipart::link_route(a3m_core::id::LinkIncarnation(999))],
        &[b"x"],
        &mut to_nobody,
    );
    assert_eq!(
        net.layer(0).send(router, &to_nobody),
        Err(SocketError::Refused(Refusal::UnknownRoute))
    );
    // By the peer's socket id: the route is removed on the way out.
    let mut by_name = Vec::new();
    multipart::encode(&[b"C/d"], &[b"hello"], &mut by_name);
    net.layer(0).send(router, &by_name).unwrap();
    net.settle();
    let got = net.layer(1).recv(dealer).unwrap();
    assert_eq!(got.payload, encode(&[b"hello"]));
}

proptest! {
    #[test]
    fn multipart_round_trips(
        routes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..4),
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..5),
    ) {
        let mut buf = Vec::new();
        multipart::encode(&routes, &frames, &mut buf);
        prop_assert_eq!(buf.len(), multipart::encoded_len(&routes, &frames));
        let m = Multipart::parse(&buf).unwrap();
        prop_assert_eq!(m.routes().map(<[u8]>::to_vec).collect::<Vec<_>>(), routes.clone());
        prop_assert_eq!(m.frames().map(<[u8]>::to_vec).collect::<Vec<_>>(), frames.clone());
        // A router's push then its pop give the message back.
        let mut pushed = buf.clone();
        multipart::push_route(&multipart::link_route(a3m_core::id::LinkIncarnation(5)), &mut pushed);
        let (_, skip) = Multipart::parse(&pushed).unwrap().first_route().unwrap();
        prop_assert_eq!(&pushed[skip..], &buf[..]);
    }

    #[test]
    fn multipart_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(m) = Multipart::parse(&bytes) {
            prop_assert_eq!(m.frames().count(), m.frame_count());
            prop_assert_eq!(m.routes().count(), m.route_count());
        }
    }
}
