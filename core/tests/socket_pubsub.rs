//! Synchronized publish-subscribe over the socket layer, with the network delivering every
//! message exactly once in a random order (so subscription control messages are reordered
//! against each other and against data).
#![cfg(feature = "alloc")]

mod socket_sim;

use a3m_core::poll::Events;
use a3m_core::socket::pub_sub::{
    CMD_SUBSCRIBERS, MAX_SUBSCRIPTIONS, SUBSCRIPTION_REFUSED, subscription_command,
};
use a3m_core::socket::{
    Pub, Refusal, SocketError, SocketKey, SocketOptions, Sub, multipart, multipart::Multipart,
};
use socket_sim::{Net, sid, tag};

fn publish(
    net: &mut Net,
    n: usize,
    key: SocketKey,
    topic: &[u8],
    body: &[u8],
) -> Result<(), SocketError> {
    let mut buf = Vec::new();
    multipart::encode::<&[u8], _>(&[], &[topic, body], &mut buf);
    net.layer(n).send(key, &buf)
}

fn command(net: &mut Net, n: usize, key: SocketKey, subscribe: bool, topic: &[u8]) {
    let mut cmd = Vec::new();
    subscription_command(subscribe, topic, &mut cmd);
    net.layer(n).command(key, &cmd, &mut Vec::new()).unwrap();
}

fn subscribers(net: &mut Net, n: usize, key: SocketKey) -> u32 {
    let mut reply = Vec::new();
    net.layer(n).command(key, &[CMD_SUBSCRIBERS], &mut reply).unwrap();
    u32::from_be_bytes(reply[..4].try_into().unwrap())
}

/// Every message the subscriber has, as (topic, body).
fn drain(net: &mut Net, n: usize, key: SocketKey) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    while let Ok(r) = net.layer(n).recv(key) {
        let m = Multipart::parse(&r.payload).unwrap();
        let mut frames = m.frames();
        let topic = frames.next().unwrap().to_vec();
        out.push((topic, frames.flatten().copied().collect()));
    }
    out
}

/// A publisher on node 0 and one subscriber per other node, linked (subscriber to pub).
fn setup(seed: u64, subs: usize, capacity: u32) -> (Net, SocketKey, Vec<SocketKey>) {
    let names: Vec<String> =
        std::iter::once("P".to_string()).chain((1..=subs).map(|i| format!("S{i}"))).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut net = Net::new(seed, &names);
    let p = net.layer(0).create_socket(tag("pub"), Box::new(Pub::new())).unwrap();
    let options = SocketOptions { capacity, ..SocketOptions::DEFAULT };
    let mut keys = Vec::new();
    for i in 1..=subs {
        let s = net.layer(i).create_socket_with(tag("sub"), Box::new(Sub::new()), options).unwrap();
        net.layer(i).link(s, sid("P/pub")).unwrap();
        keys.push(s);
    }
    net.settle();
    (net, p, keys)
}

#[test]
fn prefixes_select_the_subscribers() {
    let (mut net, p, s) = setup(1, 3, 16);
    command(&mut net, 1, s[0], true, b"a");
    command(&mut net, 2, s[1], true, b"ab");
    command(&mut net, 3, s[2], true, b"");
    command(&mut net, 2, s[1], true, b"a"); // two prefixes of one topic: sent once
    net.settle();
    assert_eq!(subscribers(&mut net, 0, p), 3);
    for topic in [&b"a"[..], b"abc", b"b", b""] {
        publish(&mut net, 0, p, topic, b"x").unwrap();
    }
    net.settle();
    let topics = |v: Vec<(Vec<u8>, Vec<u8>)>| v.into_iter().map(|(t, _)| t).collect::<Vec<_>>();
    assert_eq!(topics(drain(&mut net, 1, s[0])), [&b"a"[..], b"abc"]);
    assert_eq!(topics(drain(&mut net, 2, s[1])), [&b"a"[..], b"abc"]);
    assert_eq!(topics(drain(&mut net, 3, s[2])), [&b"a"[..], b"abc", b"b", b""]);
}

#[test]
fn subscriptions_apply_in_order_though_the_transport_reorders_them() {
    for seed in 0..60 {
        let (mut net, p, s) = setup(seed, 1, 64);
        let topics: [&[u8]; 3] = [b"a", b"b", b"c"];
        let mut on = [false; 3];
        // Many changes (more than the window) in one burst, delivered in any order.
        for _ in 0..100 {
            let i = net.rng.below(3);
            on[i] = !on[i];
            command(&mut net, 1, s[0], on[i], topics[i]);
        }
        net.settle();
        for t in topics {
            publish(&mut net, 0, p, t, b"").unwrap();
        }
        net.settle();
        let got: Vec<Vec<u8>> = drain(&mut net, 1, s[0]).into_iter().map(|(t, _)| t).collect();
        let want: Vec<Vec<u8>> =
            topics.iter().zip(on).filter(|(_, on)| *on).map(|(t, _)| t.to_vec()).collect();
        assert_eq!(got, want, "seed {seed}");
    }
}

#[test]
fn the_subscription_bound_refuses_and_reports() {
    let mut net = Net::new(3, &["P", "S"]);
    let p = net
        .layer(0)
        .create_socket(tag("pub"), Box::new(Pub::new().with_max_subscriptions(2)))
        .unwrap();
    let s = net.layer(1).create_socket(tag("sub"), Box::new(Sub::new())).unwrap();
    net.layer(1).link(s, sid("P/pub")).unwrap();
    net.settle();
    for t in [b"a", b"b", b"c"] {
        command(&mut net, 1, s, true, t);
    }
    net.settle();
    // The refusal shows as readable and fails the next receive, once.
    assert!(net.layer(1).readiness(s).contains(Events::IN));
    assert_eq!(
        net.layer(1).recv(s),
        Err(SocketError::Refused(Refusal::Other(SUBSCRIPTION_REFUSED)))
    );
    assert_eq!(net.layer(1).recv(s), Err(SocketError::WouldBlock));
    for t in [b"a", b"b", b"c"] {
        publish(&mut net, 0, p, t, b"").unwrap();
    }
    net.settle();
    assert_eq!(drain(&mut net, 1, s).len(), 2);

    // The subscriber's own bound refuses at once.
    let lone = net.layer(1).create_socket(tag("lone"), Box::new(Sub::new())).unwrap();
    for i in 0..MAX_SUBSCRIPTIONS {
        command(&mut net, 1, lone, true, format!("t{i}").as_bytes());
    }
    let mut cmd = Vec::new();
    subscription_command(true, b"one too many", &mut cmd);
    assert!(matches!(
        net.layer(1).command(lone, &cmd, &mut Vec::new()),
        Err(SocketError::Refused(_))
    ));
    // A repeated topic is counted, not a new one.
    subscription_command(true, b"t0", &mut cmd);
    cmd.clear();
    subscription_command(true, b"t0", &mut cmd);
    net.layer(1).command(lone, &cmd, &mut Vec::new()).unwrap();
}

#[test]
fn subscriptions_are_replayed_when_a_link_is_made_again() {
    for seed in 0..20 {
        let (mut net, p, s) = setup(seed, 1, 16);
        command(&mut net, 1, s[0], true, b"x");
        net.settle();
        assert_eq!(subscribers(&mut net, 0, p), 1);
        let now = net.now;
        net.layer(1).unlink(now, s[0], &sid("P/pub")).unwrap();
        net.settle();
        assert_eq!(subscribers(&mut net, 0, p), 0);
        // Published meanwhile: nobody subscribed, sent to nobody.
        publish(&mut net, 0, p, b"x", b"lost").unwrap();
        // Linked again, from the publisher's side this time.
        net.layer(0).link(p, sid("S1/sub")).unwrap();
        net.settle();
        assert_eq!(subscribers(&mut net, 0, p), 1, "seed {seed}");
        publish(&mut net, 0, p, b"x", b"again").unwrap();
        net.settle();
        assert_eq!(drain(&mut net, 1, s[0]), [(b"x".to_vec(), b"again".to_vec())]);
    }
}

#[test]
fn a_publish_goes_to_all_or_none() {
    let (mut net, p, s) = setup(5, 2, 2);
    command(&mut net, 1, s[0], true, b"t");
    command(&mut net, 2, s[1], true, b"t");
    net.settle();
    publish(&mut net, 0, p, b"t", b"0").unwrap();
    publish(&mut net, 0, p, b"t", b"1").unwrap();
    net.settle();
    assert!(!net.layer(0).readiness(p).contains(Events::OUT));
    assert_eq!(drain(&mut net, 1, s[0]).len(), 2);
    net.settle();
    // The first subscriber has room again, the second has none: nobody gets the next one
    // (OUT says some publish may go: one subscribed link has a credit).
    assert!(net.layer(0).readiness(p).contains(Events::OUT));
    assert_eq!(publish(&mut net, 0, p, b"t", b"2"), Err(SocketError::WouldBlock));
    // A topic nobody subscribed to goes through (to nobody).
    publish(&mut net, 0, p, b"other", b"-").unwrap();
    net.settle();
    assert!(drain(&mut net, 1, s[0]).is_empty());
    // The slow one catches up: now both get it.
    assert_eq!(drain(&mut net, 2, s[1]).len(), 2);
    net.settle();
    assert!(net.layer(0).readiness(p).contains(Events::OUT));
    publish(&mut net, 0, p, b"t", b"2").unwrap();
    net.settle();
    assert_eq!(drain(&mut net, 1, s[0]), [(b"t".to_vec(), b"2".to_vec())]);
    assert_eq!(drain(&mut net, 2, s[1]), [(b"t".to_vec(), b"2".to_vec())]);
}

#[test]
fn a_closing_link_leaves_the_pending_publish() {
    let (mut net, p, s) = setup(6, 2, 1);
    command(&mut net, 1, s[0], true, b"t");
    command(&mut net, 2, s[1], true, b"t");
    net.settle();
    publish(&mut net, 0, p, b"t", b"0").unwrap();
    net.settle();
    assert_eq!(drain(&mut net, 1, s[0]).len(), 1);
    net.settle();
    assert_eq!(publish(&mut net, 0, p, b"t", b"1"), Err(SocketError::WouldBlock));
    // The slow subscriber goes away (its message taken by nobody: the linger drops it).
    let now = net.now;
    net.layer(2)
        .set_options(
            s[1],
            SocketOptions { linger: Some(core::time::Duration::ZERO), ..SocketOptions::DEFAULT },
        )
        .unwrap();
    net.layer(2).close(now, s[1]).unwrap();
    net.settle();
    assert_eq!(subscribers(&mut net, 0, p), 1);
    assert!(net.layer(0).readiness(p).contains(Events::OUT));
    publish(&mut net, 0, p, b"t", b"1").unwrap();
    net.settle();
    assert_eq!(drain(&mut net, 1, s[0]), [(b"t".to_vec(), b"1".to_vec())]);
}

#[test]
fn an_xpub_hands_subscriptions_to_its_application() {
    let mut net = Net::new(7, &["P", "S"]);
    let p = net.layer(0).create_socket(tag("xpub"), Box::new(Pub::xpub())).unwrap();
    let s = net.layer(1).create_socket(tag("xsub"), Box::new(Sub::xsub())).unwrap();
    net.layer(1).link(s, sid("P/xpub")).unwrap();
    net.settle();
    assert!(!net.layer(0).readiness(p).contains(Events::IN));
    command(&mut net, 1, s, true, b"a");
    command(&mut net, 1, s, true, b"a"); // counted: no second message
    command(&mut net, 1, s, true, b"b");
    command(&mut net, 1, s, false, b"a");
    net.settle();
    assert!(net.layer(0).readiness(p).contains(Events::IN));
    let mut got = Vec::new();
    let mut buf = Vec::new();
    while net.layer(0).take_generated(p, &mut buf).is_ok() {
        got.push(buf.clone());
    }
    assert_eq!(got, [b"\x01a".to_vec(), b"\x01b".to_vec()]);
    assert!(!net.layer(0).readiness(p).contains(Events::IN));
    command(&mut net, 1, s, false, b"a");
    net.settle();
    net.layer(0).take_generated(p, &mut buf).unwrap();
    assert_eq!(buf, b"\x00a");
    // A closing link's subscriptions leave as unsubscriptions.
    let now = net.now;
    net.layer(1).close(now, s).unwrap();
    net.settle();
    net.layer(0).take_generated(p, &mut buf).unwrap();
    assert_eq!(buf, b"\x00b");
    assert_eq!(net.layer(0).take_generated(p, &mut buf), Err(SocketError::WouldBlock));
}
