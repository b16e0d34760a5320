//! Request-reply over UDP on loopback (issue 14, thesis §5.3): req/rep, dealer/router and
//! their mixes, through the typed handles, each rule with the error it must give.

mod socket_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use a3m::{Error, Events, LinkEvent, Refusal, RoutedMessage};
use socket_support::{BRIEF, WAIT, node, node_knowing};

/// "At once": far below the timeouts the calls were given.
const AT_ONCE: Duration = Duration::from_millis(500);

#[test]
fn req_rep_round_trips_and_enforces_one_request_at_a_time() {
    let server = node("S");
    let client = node_knowing("C", &server);
    let rep = server.rep("echo").unwrap();
    let req = client.req("ask").unwrap();

    // Receiving with no request in flight is an error, at once.
    let started = Instant::now();
    assert!(matches!(req.recv_timeout(WAIT), Err(Error::Refused(Refusal::NoRequestPending))));
    assert!(started.elapsed() < AT_ONCE);
    // Replying with no request is an error.
    assert!(matches!(rep.send(b"x"), Err(Error::Refused(Refusal::NoRequestToReply))));

    req.link("S/echo").unwrap();
    req.wait_for_link(Some(WAIT)).unwrap();
    let replier = thread::spawn(move || {
        for _ in 0..100 {
            let request = rep.recv_timeout(WAIT).unwrap();
            rep.send(&[b"re:".as_slice(), &request].concat()).unwrap();
        }
        rep
    });
    for i in 0..100u32 {
        let body = i.to_le_bytes();
        assert_eq!(req.request(&body, WAIT).unwrap(), [b"re:".as_slice(), &body].concat());
    }
    let _rep = replier.join().unwrap();
}

#[test]
fn a_second_send_waits_for_the_reply_and_any_thread_may_take_it() {
    let server = node("S");
    let client = node_knowing("C", &server);
    let rep = server.rep("echo").unwrap();
    let req = Arc::new(client.req("ask").unwrap());
    req.link("S/echo").unwrap();
    req.wait_for_link(Some(WAIT)).unwrap();

    req.send(b"first").unwrap();
    // A second request waits while the first is unanswered (not an error).
    assert!(matches!(req.send_timeout(b"second", BRIEF), Err(Error::Timeout)));
    assert!(!req.readiness().contains(Events::OUT));

    // Another thread takes the reply.
    let taker = {
        let req = Arc::clone(&req);
        thread::spawn(move || req.recv_timeout(WAIT).unwrap())
    };
    assert_eq!(rep.recv_timeout(WAIT).unwrap(), b"first");
    // Receiving again before replying finds nothing (one request at a time).
    assert!(matches!(rep.recv_timeout(BRIEF), Err(Error::Timeout)));
    rep.send(b"one").unwrap();
    assert_eq!(taker.join().unwrap(), b"one");
    // Now the second request goes.
    req.send_timeout(b"second", WAIT).unwrap();
    assert_eq!(rep.recv_timeout(WAIT).unwrap(), b"second");
    rep.send(b"two").unwrap();
    assert_eq!(req.recv_timeout(WAIT).unwrap(), b"two");
}

#[test]
fn unlink_refused_while_a_reply_is_awaited_or_owed_force_unlink_cancels() {
    let server = node("S");
    let client = node_knowing("C", &server);
    let rep = server.rep("echo").unwrap();
    let req = client.req("ask").unwrap();
    req.link("S/echo").unwrap();
    req.wait_for_link(Some(WAIT)).unwrap();
    req.send(b"q").unwrap();
    assert!(matches!(req.unlink("S/echo"), Err(Error::Refused(Refusal::ReplyAwaited))));
    assert_eq!(rep.recv_timeout(WAIT).unwrap(), b"q");
    assert!(matches!(rep.unlink("C/ask"), Err(Error::Refused(Refusal::ReplyOwed))));

    // The requester forces it: the replier's link closes, it owes nothing any more, and the
    // requester's receive fails with ReplierGone (the reply was never sent).
    req.force_unlink("S/echo").unwrap();
    assert!(matches!(req.recv_timeout(WAIT), Err(Error::Refused(Refusal::ReplierGone))));
    let deadline = Instant::now() + WAIT;
    while rep.links().iter().any(|l| l.peer.to_string() == "C/ask") {
        assert!(Instant::now() < deadline, "the replier's link never closed");
        thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(rep.send(b"late"), Err(Error::Refused(Refusal::NoRequestToReply))));
    // The requester may send again once it relinks.
    req.link("S/echo").unwrap();
    req.wait_for_link_to("S/echo", Some(WAIT)).unwrap();
    assert_eq!(
        {
            req.send(b"again").unwrap();
            rep.recv_timeout(WAIT).unwrap()
        },
        b"again"
    );
}

#[test]
fn the_repliers_link_closing_fails_the_pending_request() {
    let server = node("S");
    let client = node_knowing("C", &server);
    let rep = server.rep("echo").unwrap();
    let req = client.req("ask").unwrap();
    req.link("S/echo").unwrap();
    req.wait_for_link(Some(WAIT)).unwrap();
    req.send(b"q").unwrap();
    assert_eq!(rep.recv_timeout(WAIT).unwrap(), b"q");
    rep.force_unlink("C/ask").unwrap();
    let started = Instant::now();
    assert!(matches!(req.recv_timeout(WAIT), Err(Error::Refused(Refusal::ReplierGone))));
    assert!(started.elapsed() < WAIT);
    // The error is reported once; then the socket is free again.
    assert!(matches!(req.recv_timeout(BRIEF), Err(Error::Refused(Refusal::NoRequestPending))));
}

#[test]
fn requests_go_round_robin_and_replies_come_from_the_replier_asked() {
    let server = node("S");
    let client = node_knowing("C", &server);
    let reps: Vec<_> = (0..3).map(|i| server.rep(&format!("r{i}")).unwrap()).collect();
    let req = client.req("ask").unwrap();
    for i in 0..3 {
        req.link(format!("S/r{i}").as_str()).unwrap();
        req.wait_for_link_to(format!("S/r{i}").as_str(), Some(WAIT)).unwrap();
    }
    let servers: Vec<_> = reps
        .into_iter()
        .enumerate()
        .map(|(i, rep)| {
            thread::spawn(move || {
                let mut served = 0;
                while let Ok(request) = rep.recv_timeout(Duration::from_millis(1500)) {
                    rep.send(&[format!("r{i}:").as_bytes(), &request].concat()).unwrap();
                    served += 1;
                }
                served
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for n in 0..30u32 {
        let reply = req.request(&n.to_le_bytes(), WAIT).unwrap();
        assert_eq!(&reply[3..], n.to_le_bytes());
        seen.insert(reply[..3].to_vec());
    }
    assert_eq!(seen.len(), 3, "every replier served");
    let served: Vec<usize> = servers.into_iter().map(|s| s.join().unwrap()).collect();
    assert_eq!(served, vec![10, 10, 10]);
}

#[test]
fn router_replies_through_the_link_a_request_came_on() {
    let server = node("S");
    let clients: Vec<_> = (0..4).map(|i| node_knowing(&format!("C{i}"), &server)).collect();
    let router = server.router("route").unwrap();
    let dealers: Vec<_> = clients.iter().map(|c| c.dealer("d").unwrap()).collect();
    let reqs: Vec<_> = clients.iter().map(|c| c.req("q").unwrap()).collect();
    for s in dealers.iter().map(|d| d.as_socket()).chain(reqs.iter().map(|r| r.as_socket())) {
        s.link("S/route").unwrap();
        s.wait_for_link(Some(WAIT)).unwrap();
    }
    // Every client sends through its dealer and its req; the router answers each by its
    // routing id, naming the sender in the reply.
    for (i, d) in dealers.iter().enumerate() {
        d.send_multipart(&[format!("dealer {i}").as_bytes(), b"frame 2"]).unwrap();
    }
    for (i, r) in reqs.iter().enumerate() {
        r.send(format!("req {i}").as_bytes()).unwrap();
    }
    for _ in 0..8 {
        let request = router.recv_routed(Some(WAIT)).unwrap();
        assert_eq!(request.routes.len(), 1);
        router.send_routed(&request.reply(vec![request.body().to_vec()])).unwrap();
    }
    for (i, d) in dealers.iter().enumerate() {
        assert_eq!(d.recv_multipart(Some(WAIT)).unwrap(), vec![format!("dealer {i}").into_bytes()]);
    }
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.recv_timeout(WAIT).unwrap(), format!("req {i}").into_bytes());
    }
    // By a peer's socket id too.
    router.send_routed(&RoutedMessage::new("C2/d", vec![b"by name".to_vec()])).unwrap();
    assert_eq!(dealers[2].recv_timeout(WAIT).unwrap(), b"by name");
}

#[test]
fn router_refuses_unknown_and_missing_routes() {
    let server = node("S");
    let client = node_knowing("C", &server);
    let router = server.router("route").unwrap();
    let dealer = client.dealer("d").unwrap();
    dealer.link("S/route").unwrap();
    dealer.wait_for_link(Some(WAIT)).unwrap();
    dealer.send(b"hi").unwrap();
    let request = router.recv_routed(Some(WAIT)).unwrap();
    let missing = RoutedMessage { routes: vec![], frames: vec![b"x".to_vec()] };
    assert!(matches!(router.send_routed(&missing), Err(Error::Refused(Refusal::MissingRoute))));
    let unknown = RoutedMessage::new("nobody/here", vec![b"x".to_vec()]);
    assert!(matches!(router.send_routed(&unknown), Err(Error::Refused(Refusal::UnknownRoute))));
    // The dealer leaves; its routing id then names no link: an error, not a silent drop.
    dealer.close(WAIT).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match router.send_routed_timeout(&request.reply(vec![b"late".to_vec()]), BRIEF) {
            Err(Error::Refused(Refusal::UnknownRoute)) => break,
            other => {
                assert!(Instant::now() < deadline, "still {other:?}");
                assert!(!matches!(other, Ok(())), "a reply to a closed link was accepted");
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn rep_and_req_interoperate_with_a_dealer_router_broker() {
    // req -> router (front) | dealer (back) -> rep, with the broker forwarding both ways.
    let broker = node("B");
    let client = node_knowing("C", &broker);
    let worker_node = node_knowing("W", &broker);
    let front = broker.router("front").unwrap();
    let back = broker.dealer("back").unwrap();
    let rep = worker_node.rep("work").unwrap();
    let req = client.req("ask").unwrap();
    // The worker links to the broker (either side may start a link).
    rep.link("B/back").unwrap();
    back.wait_for_link(Some(WAIT)).unwrap();
    req.link("B/front").unwrap();
    req.wait_for_link(Some(WAIT)).unwrap();

    let forwarder = thread::spawn(move || {
        for _ in 0..5 {
            let request = front.recv_routed(Some(WAIT)).unwrap();
            back.send_routed(&request).unwrap();
            let reply = back.recv_routed(Some(WAIT)).unwrap();
            front.send_routed(&reply).unwrap();
        }
    });
    let worker = thread::spawn(move || {
        for _ in 0..5 {
            let request = rep.recv_timeout(WAIT).unwrap();
            rep.send(&[b"done ".as_slice(), &request].concat()).unwrap();
        }
    });
    for i in 0..5u8 {
        assert_eq!(req.request(&[i], WAIT).unwrap(), [b"done ".as_slice(), &[i]].concat());
    }
    forwarder.join().unwrap();
    worker.join().unwrap();
}

#[test]
fn incompatible_patterns_do_not_link() {
    let server = node("S");
    let client = node_knowing("C", &server);
    let _rep = server.rep("echo").unwrap();
    let _pull = server.pull("sink").unwrap();
    let dealer = client.dealer("d").unwrap();
    let req = client.req("q").unwrap();
    req.link("S/sink").unwrap();
    assert!(matches!(req.wait_for_link(Some(WAIT)), Err(Error::IncompatibleProtocol(_))));
    // A dealer talks to a rep.
    dealer.link("S/echo").unwrap();
    assert_eq!(dealer.wait_for_link(Some(WAIT)).unwrap().to_string(), "S/echo");
    let events: Vec<LinkEvent> = dealer.as_socket().events();
    assert!(events.iter().any(|e| matches!(e, LinkEvent::Established { .. })));
}

/// Bound on the relay test below: 4 clients × 250 round trips through 5 % loss, 2 % dup and
/// 5 % reorder; each loss is repaired within a few round trips of well under a millisecond
/// on loopback, so this takes seconds even in a debug build; a stalled request would wait
/// out the bound.
const LOSSY_BOUND: Duration = Duration::from_secs(120);

#[test]
fn request_reply_through_a_lossy_duplicating_reordering_relay_matches_every_reply() {
    use a3m::NodeBuilder;
    use a3m_tests::relay::{Faults, Relay, RelayConfig};

    let server = node("S");
    let relay = Relay::bind(RelayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        to: server.local_addr(),
        faults: Faults { loss: 0.05, dup: 0.02, reorder: 0.05, ..Faults::none() },
        seed: 14,
    })
    .unwrap()
    .spawn()
    .unwrap();
    // The client knows the server only at the relay: every datagram both ways crosses it.
    let client = NodeBuilder::new("C")
        .peer("S", relay.local_addr())
        .linger(Duration::from_secs(5))
        .start()
        .unwrap();
    let rep = server.rep("rep").unwrap();
    let router = server.router("router").unwrap();
    const CLIENTS: usize = 4;
    const ROUNDS: u32 = 250;
    let started = Instant::now();
    let rep_server = thread::spawn(move || {
        for _ in 0..CLIENTS as u32 * ROUNDS {
            let request = rep.recv_timeout(LOSSY_BOUND).unwrap();
            rep.send(&request).unwrap();
        }
        rep
    });
    let router_server = thread::spawn(move || {
        for _ in 0..CLIENTS as u32 * ROUNDS {
            let request = router.recv_routed(Some(LOSSY_BOUND)).unwrap();
            router.send_routed(&request).unwrap();
        }
        router
    });
    thread::scope(|s| {
        for i in 0..CLIENTS {
            let client = &client;
            s.spawn(move || {
                let req = client.req(&format!("req{i}")).unwrap();
                req.link("S/rep").unwrap();
                req.wait_for_link(Some(WAIT)).unwrap();
                for n in 0..ROUNDS {
                    let body = [&(i as u32).to_le_bytes()[..], &n.to_le_bytes()].concat();
                    assert_eq!(req.request(&body, LOSSY_BOUND).unwrap(), body, "req {i} #{n}");
                }
                req.close(WAIT).unwrap();
            });
            s.spawn(move || {
                let dealer = client.dealer(&format!("dealer{i}")).unwrap();
                dealer.link("S/router").unwrap();
                dealer.wait_for_link(Some(WAIT)).unwrap();
                for n in 0..ROUNDS {
                    let body = [&(i as u32).to_le_bytes()[..], &n.to_le_bytes()].concat();
                    dealer.send_multipart(&[&body[..], b"second frame"]).unwrap();
                    let reply = dealer.recv_multipart(Some(LOSSY_BOUND)).unwrap();
                    assert_eq!(reply, vec![body, b"second frame".to_vec()], "dealer {i} #{n}");
                }
                dealer.close(WAIT).unwrap();
            });
        }
    });
    let rep = rep_server.join().unwrap();
    let router = router_server.join().unwrap();
    // Exactly once: no request is left over, none came twice.
    assert!(matches!(rep.recv_timeout(BRIEF), Err(Error::Timeout | Error::NoLinks)));
    assert!(matches!(router.recv_routed(Some(BRIEF)), Err(Error::Timeout | Error::NoLinks)));
    let counters = relay.stop();
    eprintln!("2 x {CLIENTS} x {ROUNDS} round trips in {:?}: {counters:?}", started.elapsed());
    assert!(started.elapsed() < LOSSY_BOUND);
    assert!(counters.upstream.dropped + counters.downstream.dropped > 0, "the relay dropped");
}

#[test]
fn router_senders_blocked_on_different_links_each_go_when_their_link_frees() {
    // Two threads block sending to two full links; freeing the second must wake the sender
    // to it, even though the first (still full) was blocked before it.
    let n = node("R");
    let router = Arc::new(n.router("router").unwrap());
    let d1 = n.dealer("d1").unwrap();
    let d2 = n.dealer("d2").unwrap();
    for d in [&d1, &d2] {
        d.set_options(d.options().unwrap().capacity(4)).unwrap();
        d.link("R/router").unwrap();
        d.wait_for_link(Some(WAIT)).unwrap();
    }
    let m1 = RoutedMessage::new(b"R/d1".to_vec(), vec![b"x".to_vec()]);
    let m2 = RoutedMessage::new(b"R/d2".to_vec(), vec![b"x".to_vec()]);
    let mut full2 = 0;
    while router.send_routed_timeout(&m1, BRIEF).is_ok() {}
    while router.send_routed_timeout(&m2, BRIEF).is_ok() {
        full2 += 1;
    }
    let first = {
        let router = Arc::clone(&router);
        let m1 = m1.clone();
        thread::spawn(move || router.send_routed_timeout(&m1, Duration::from_secs(3)))
    };
    thread::sleep(Duration::from_millis(100));
    let second = {
        let router = Arc::clone(&router);
        thread::spawn(move || router.send_routed_timeout(&m2, WAIT))
    };
    thread::sleep(Duration::from_millis(100));
    for _ in 0..full2 {
        d2.recv_timeout(WAIT).unwrap();
    }
    let started = Instant::now();
    second.join().unwrap().expect("the sender to the freed link went");
    assert!(started.elapsed() < Duration::from_secs(2), "woken late: {:?}", started.elapsed());
    // The other one still waits for its own link, and times out (d1 never reads).
    assert!(matches!(first.join().unwrap(), Err(Error::Timeout)));
}

#[test]
fn a_malformed_request_does_not_stop_a_replier() {
    let n = node("M");
    let rep = n.rep("rep").unwrap();
    // A peer that does not follow the protocol: raw bytes through a dealer's generic socket.
    let bad = n.socket("bad", a3m::core::socket::Dealer::new()).unwrap();
    let req = n.req("req").unwrap();
    bad.link("M/rep").unwrap();
    bad.wait_for_link(Some(WAIT)).unwrap();
    bad.send(b"\xff").unwrap();
    assert!(matches!(rep.recv_timeout(WAIT), Err(Error::Malformed(_))));
    req.link("M/rep").unwrap();
    req.wait_for_link(Some(WAIT)).unwrap();
    req.send(b"hello").unwrap();
    assert_eq!(rep.recv_timeout(WAIT).unwrap(), b"hello");
    rep.send(b"hi").unwrap();
    assert_eq!(req.recv_timeout(WAIT).unwrap(), b"hi");
}
