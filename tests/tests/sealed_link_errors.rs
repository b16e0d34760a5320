//! What a wait for a link says when the two nodes' sealing does not match (issue 15), over
//! UDP loopback through the public API: a timed-out `wait_for_link` / `wait_for_link_to`
//! across a mismatch is `Error::LinkTimeout` naming the peer socket and the reason, never
//! an early failure; a peer that gives no answer at all is a plain `Error::Timeout`;
//! matching keys link.

mod socket_support;

use std::net::UdpSocket;
use std::time::Duration;

use a3m::core::node::RefusalReason;
use a3m::{Error, LinkFailure, LinkTimeout, Node, Socket};
use socket_support::{WAIT, loopback, sealed_builder};

/// The wait that is expected to time out.
const BRIEF: Duration = Duration::from_millis(1500);
const KEY: [u8; 32] = [0x3c; 32];
const OTHER_KEY: [u8; 32] = [0xa5; 32];

/// Node B with a pull socket `sink`, and node A (knowing B) with a push socket `source`
/// linking to it.
fn pair(a_key: Option<[u8; 32]>, b_key: Option<[u8; 32]>) -> (Node, Node, Socket, Socket) {
    let b = sealed_builder("B", b_key).start().unwrap();
    let a = sealed_builder("A", a_key).peer("B", b.local_addr()).start().unwrap();
    let sink = b.pull("sink").unwrap();
    let source = a.push("source").unwrap();
    source.link("B/sink").unwrap();
    (a, b, source, sink)
}

/// The timeout a wait reported, checked to be a sealing mismatch with `peer` whose reason
/// contains `why`.
fn mismatch(result: Result<(), Error>, peer: &str, why: &str) -> LinkTimeout {
    let error = match result {
        Err(e @ Error::LinkTimeout(_)) => e,
        other => panic!("expected a link timeout naming the sealing mismatch, got {other:?}"),
    };
    assert!(error.is_timeout());
    let text = error.to_string();
    assert!(text.starts_with(&format!("no link with {peer} within 1.5s")), "{text}");
    assert!(text.contains("sealing mismatch"), "{text}");
    let Error::LinkTimeout(timeout) = error else { unreachable!() };
    assert_eq!(timeout.peer.to_string(), peer);
    assert_eq!(timeout.timeout, BRIEF);
    match &timeout.last_failure {
        LinkFailure::SealingMismatch(reason) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected a sealing mismatch, got {other:?}"),
    }
    *timeout
}

/// Both waits of `source` for its link with `peer` time out naming the mismatch.
fn both_waits_name_the_mismatch(source: &Socket, peer: &str, why: &str) {
    let any = source.wait_for_link(Some(BRIEF)).map(drop);
    mismatch(any, peer, why);
    let to = source.wait_for_link_to(peer, Some(BRIEF));
    let timeout = mismatch(to, peer, why);
    // The link is still being made (the reason is advice, never the end of it).
    let links = source.links();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].last_failure.as_ref(), Some(&timeout.last_failure));
}

#[test]
fn a_keyed_sender_linking_to_a_keyless_receiver_is_told_the_receiver_has_no_key() {
    let (_a, b, source, _sink) = pair(Some(KEY), None);
    both_waits_name_the_mismatch(&source, "B/sink", "has no key");
    let refusal = b.last_refusal().expect("B refused A's sealed datagrams");
    assert_eq!(refusal.reason, RefusalReason::SealedWithoutKey);
}

#[test]
fn a_keyless_sender_linking_to_a_keyed_receiver_is_told_the_receiver_has_a_key() {
    let (_a, b, source, _sink) = pair(None, Some(KEY));
    both_waits_name_the_mismatch(&source, "B/sink", "has a key");
    let refusal = b.last_refusal().expect("B refused A's plaintext datagrams");
    assert_eq!(refusal.reason, RefusalReason::PlaintextWithKey);
}

#[test]
fn a_one_way_link_to_a_node_with_another_key_is_told_the_node_has_another_key() {
    // The receiver cannot open A's datagrams; it tells A so in a plaintext notice (A could
    // not open a sealed one either), rate-limited like every mismatch notice.
    let (_a, b, source, _sink) = pair(Some(KEY), Some(OTHER_KEY));
    both_waits_name_the_mismatch(&source, "B/sink", "has another key");
    // The receiving node knows why too.
    let refusal = b.last_refusal().expect("B refused A's datagrams");
    assert_eq!(refusal.reason, RefusalReason::UnknownKey);
}

#[test]
fn links_both_ways_between_nodes_with_different_keys_name_the_mismatch_on_both_sides() {
    let (a, b, source, _sink) = pair(Some(KEY), Some(OTHER_KEY));
    b.add_peer("A", a.local_addr()).unwrap();
    let _back_sink = a.pull("sink").unwrap();
    let back = b.push("source").unwrap();
    back.link("A/sink").unwrap();
    // Each side hears both why it refuses the other and why the other refuses it: the
    // newest of the two is reported, and both name the other key.
    for (socket, peer) in [(&source, "B/sink"), (&back, "A/sink")] {
        let why = match socket.wait_for_link(Some(BRIEF)) {
            Err(Error::LinkTimeout(t)) => t.last_failure.to_string(),
            other => panic!("expected a link timeout naming the mismatch, got {other:?}"),
        };
        assert!(
            why.contains("has another key") || why.contains("a key this node does not have"),
            "{peer}: {why}"
        );
        assert!(!why.contains("has no key"), "{peer}: {why}");
    }
}

#[test]
fn a_link_to_an_address_where_nothing_listens_is_a_plain_timeout() {
    // A free port: bound, then released.
    let nobody = UdpSocket::bind(loopback()).unwrap().local_addr().unwrap();
    let a = sealed_builder("A", Some(KEY)).peer("B", nobody).start().unwrap();
    let source = a.push("source").unwrap();
    source.link("B/sink").unwrap();
    let error = source.wait_for_link(Some(BRIEF)).unwrap_err();
    assert!(matches!(error, Error::Timeout), "{error:?}");
    assert!(error.is_timeout());
    assert!(matches!(source.wait_for_link_to("B/sink", Some(BRIEF)), Err(Error::Timeout)));
    // The link says "no answer" (recorded after the first retry interval, 50 ms by default).
    let links = source.links();
    assert_eq!(links[0].last_failure, Some(LinkFailure::NoAnswer), "{links:?}");
    assert!(a.last_refusal().is_none());
}

#[test]
fn a_mismatch_with_one_peer_is_not_blamed_for_another_that_does_not_answer() {
    let nobody = UdpSocket::bind(loopback()).unwrap().local_addr().unwrap();
    let (a, _b, source, _sink) = pair(Some(KEY), None);
    a.add_peer("C", nobody).unwrap();
    source.link("C/sink").unwrap();
    // The link with C got no answer: a plain timeout, whatever B said.
    assert!(matches!(source.wait_for_link_to("C/sink", Some(BRIEF)), Err(Error::Timeout)));
    // Any link: the one with B explains the timeout.
    mismatch(source.wait_for_link(Some(BRIEF)).map(drop), "B/sink", "has no key");
}

#[test]
fn matching_keys_link() {
    let (_a, _b, source, sink) = pair(Some(KEY), Some(KEY));
    assert_eq!(source.wait_for_link(Some(WAIT)).unwrap().to_string(), "B/sink");
    source.wait_for_link_to("B/sink", Some(WAIT)).unwrap();
    assert_eq!(sink.wait_for_link(Some(WAIT)).unwrap().to_string(), "A/source");
    source.send(b"sealed").unwrap();
    assert_eq!(sink.recv_timeout(WAIT).unwrap(), b"sealed");
}
