//! Incarnations keep conversations apart: a message of an old link never reaches a new link
//! between the same sockets, and a LINK to a missing socket is answered as if that socket
//! replied.
#![cfg(feature = "alloc")]

mod socket_sim;

use a3m_core::id::LinkIncarnation;
use a3m_core::link::LinkPhase;
use a3m_core::socket::{LayerConfig, Pull, Push, SocketError, SocketLayer};
use a3m_core::time::Instant;
use a3m_core::wire::message::{self, Body, ErrorCode, Message};
use socket_sim::{Net, node, sid, tag};

#[test]
fn a_link_to_a_missing_socket_gets_an_error_as_if_it_replied() {
    let mut b = SocketLayer::new(node("B"), LayerConfig::DEFAULT);
    let link = Message {
        src_tag: "src",
        dst_tag: "ghost",
        link: LinkIncarnation(42),
        body: Body::Link { protocol: 1, capacity: 10, metadata: b"" },
    };
    b.handle_message(Instant::ZERO, &node("A"), &link);
    let out = b.poll_outgoing().expect("an error reply");
    assert_eq!(out.to, node("A"));
    let reply = message::decode(&out.bytes).unwrap();
    assert_eq!(reply.src_tag, "ghost");
    assert_eq!(reply.dst_tag, "src");
    assert_eq!(reply.link, LinkIncarnation(42), "echoes the requester's incarnation");
    assert!(matches!(reply.body, Body::Error { code: ErrorCode::SocketNotFound, .. }));
    // Anything else for a missing socket is only counted.
    let data = Message { body: Body::Data { seq: 0, payload: b"x" }, ..link };
    b.handle_message(Instant::ZERO, &node("A"), &data);
    assert!(b.poll_outgoing().is_none());
    assert_eq!(b.stats().not_found, 2);
}

#[test]
fn messages_of_an_old_link_never_reach_a_new_one() {
    for seed in 0..50 {
        let mut net = Net::new(seed, &["A", "B"]);
        let a = net.layer(0).create_socket(tag("src"), Box::new(Push::new())).unwrap();
        let b = net.layer(1).create_socket(tag("sink"), Box::new(Pull::new())).unwrap();
        let old = net.layer(0).link(a, sid("B/sink")).unwrap();
        net.settle();
        let now = net.now;
        net.layer(0).unlink(now, a, &sid("B/sink")).unwrap();
        net.settle();
        assert!(!net.layers[1].has_links(b));
        let new = net.layer(0).link(a, sid("B/sink")).unwrap();
        net.settle();
        assert_ne!(old, new);
        let lb = net.layers[1].link_of(b, &sid("A/src")).unwrap();
        assert_eq!(net.layers[1].link_status(b, lb).unwrap().phase, LinkPhase::Established);
        let stale_before = net.layers[1].stats().stale;

        // A DATA, FLOW, custom control and UNLINK of the old conversation turn up late.
        for body in [
            Body::Data { seq: 0, payload: b"old" },
            Body::Flow { credits: 5, capacity_delta: 0 },
            Body::Custom { kind: 0x40, body: b"" },
            Body::Unlink { sent: 0 },
        ] {
            let msg = Message { src_tag: "src", dst_tag: "sink", link: old, body };
            let now = net.now;
            net.layer(1).handle_message(now, &node("A"), &msg);
        }
        assert_eq!(net.layers[1].stats().stale, stale_before + 4, "seed {seed}");
        assert_eq!(net.layer(1).recv(b), Err(SocketError::WouldBlock));
        assert_eq!(net.layers[1].link_status(b, lb).unwrap().phase, LinkPhase::Established);

        // The new link still works.
        net.layer(0).send(a, b"new").unwrap();
        net.settle();
        assert_eq!(net.layer(1).recv(b).unwrap().payload, b"new");
    }
}
