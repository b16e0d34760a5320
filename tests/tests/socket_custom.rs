//! A socket type defined outside a3m (a two-way pair) over UDP loopback: both directions
//! in order at once, and both ends unlinking at the same time end both streams.

mod socket_support;

use std::thread;

use a3m::{
    Error, LinkIncarnation, LinkSet, LinkView, Protocol, ProtocolId, Route, Socket, SocketOptions,
};
use socket_support::{WAIT, eventually, node, node_knowing, number, numbered};

/// Sends and receives on its links, talking only to its own kind.
struct TwoWay;

const TWO_WAY: ProtocolId = 0x8123;

impl Protocol for TwoWay {
    fn id(&self) -> ProtocolId {
        TWO_WAY
    }
    fn name(&self) -> &str {
        "two-way"
    }
    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == TWO_WAY
    }
    fn sends(&self) -> bool {
        true
    }
    fn receives(&self) -> bool {
        true
    }
    fn route_send(&mut self, links: &LinkSet<'_>, _payload: &[u8]) -> Route {
        links.iter().find(LinkView::can_send).map_or(Route::Blocked, |l| Route::One(l.key()))
    }
    fn route_recv(&mut self, links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        links.iter().find(LinkView::has_message).map(|l| l.key())
    }
}

/// Sends `count` numbered messages while receiving the peer's; once both are done, unlinks
/// and receives until the end of the stream. Returns how many it received.
fn converse(me: &Socket, peer: &str, count: u64) -> u64 {
    thread::scope(|s| {
        let sender = s.spawn(|| {
            for n in 0..count {
                me.send(&numbered(n, 8)).unwrap();
            }
        });
        let mut sender = Some(sender);
        let mut got = 0;
        loop {
            match me.recv_timeout(WAIT) {
                Ok(m) => {
                    assert_eq!(number(&m), got, "{} received out of order", me.id());
                    got += 1;
                    if got == count {
                        // Unlinking stops our sending too: only once all of ours are out.
                        sender.take().unwrap().join().unwrap();
                        // The peer may have unlinked first: then the link may be gone.
                        match me.unlink(peer) {
                            Ok(()) | Err(Error::InvalidArgument(_)) => {}
                            Err(e) => panic!("unlink: {e}"),
                        }
                    }
                }
                Err(Error::NoLinks) => return got,
                Err(e) => panic!("{} after {got} messages: {e}", me.id()),
            }
        }
    })
}

#[test]
fn a_two_way_user_protocol_carries_both_directions_and_ends_cleanly() {
    const COUNT: u64 = 500;
    for _ in 0..5 {
        let b = node("B");
        let a = node_knowing("A", &b);
        b.add_peer("A", a.local_addr()).unwrap();
        let options = SocketOptions::new().capacity(4).notify_if_none(true);
        let x = a.socket_with("x", Box::new(TwoWay), options).unwrap();
        let y = b.socket_with("y", Box::new(TwoWay), options).unwrap();
        x.link("B/y").unwrap();
        x.wait_for_link(Some(WAIT)).unwrap();
        // (With notify-if-none a link-free socket does not wait: y's link is being made.)
        eventually("y has its link", || !y.links().is_empty());
        y.wait_for_link(Some(WAIT)).unwrap();
        let (from_y, from_x) = thread::scope(|s| {
            let at_x = s.spawn(|| converse(&x, "B/y", COUNT));
            let at_y = converse(&y, "A/x", COUNT);
            (at_x.join().unwrap(), at_y)
        });
        assert_eq!((from_y, from_x), (COUNT, COUNT));
        assert!(x.links().is_empty() && y.links().is_empty());
    }
}

#[test]
fn a_user_protocol_refuses_other_kinds() {
    let b = node("B");
    let a = node_knowing("A", &b);
    let _two_way = b.socket("y", TwoWay).unwrap();
    let push = a.push("push").unwrap();
    push.link("B/y").unwrap();
    match push.wait_for_link(Some(WAIT)) {
        Err(Error::IncompatibleProtocol(reason)) => assert!(reason.contains("two-way"), "{reason}"),
        other => panic!("expected an incompatible-protocol refusal, got {other:?}"),
    }
}
