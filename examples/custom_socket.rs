//! A socket type written outside a3m: an exclusive, two-way *pair* socket.
//!
//! ```text
//! cargo run --example custom_socket [-- --rounds 10000]
//! ```
//!
//! The a3m runtime does everything every socket does (links, handshake, credits, order,
//! unlinking, blocking, polling); a socket type only says whom it talks to and where
//! messages go, by implementing [`a3m::Protocol`]. `Pair` links only with another pair,
//! only one peer at a time (a third socket is refused, with a reason the caller sees),
//! and both sends and receives on that one link.
//!
//! The program pairs `alice/chat` with `bob/chat`, plays ping-pong over the link and prints
//! the round-trip time, shows `eve/chat` being refused by the already-paired bob and a push
//! socket being refused as incompatible, then unlinks: bob sees the end of the
//! conversation as his socket becomes link-free.

use std::thread;
use std::time::{Duration, Instant};

use a3m::{
    Error, LinkIncarnation, LinkSet, LinkView, NodeBuilder, Protocol, ProtocolId, Route, SocketId,
    SocketOptions,
};
use a3m_examples::{Args, fail};

/// The pair protocol's id on the wire (user-defined types use ids from 0x8000).
const PAIR: ProtocolId = 0x8001;

/// An exclusive two-way socket: one peer at a time, which must be a pair too.
#[derive(Debug, Default)]
struct Pair {
    /// The peer of the established link, once there is one.
    peer: Option<(LinkIncarnation, SocketId)>,
}

impl Protocol for Pair {
    fn id(&self) -> ProtocolId {
        PAIR
    }

    fn name(&self) -> &str {
        "pair"
    }

    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == PAIR
    }

    fn sends(&self) -> bool {
        true
    }

    fn receives(&self) -> bool {
        true
    }

    fn accept_link(&mut self, peer: &SocketId, _: ProtocolId, _: &[u8]) -> Result<(), String> {
        match &self.peer {
            Some((_, current)) if current != peer => {
                Err(format!("this pair socket is already paired with {current}"))
            }
            _ => Ok(()),
        }
    }

    fn route_send(&mut self, links: &LinkSet<'_>, _payload: &[u8]) -> Route {
        links.iter().find(LinkView::can_send).map_or(Route::Blocked, |l| Route::One(l.key()))
    }

    fn route_recv(&mut self, links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        links.iter().find(LinkView::has_message).map(|l| l.key())
    }

    fn on_link_established(&mut self, link: LinkView<'_>, _control: &mut a3m::Control) {
        self.peer = Some((link.key(), link.peer().clone()));
    }

    fn on_link_closed(&mut self, link: LinkIncarnation) {
        if self.peer.as_ref().is_some_and(|(key, _)| *key == link) {
            self.peer = None;
        }
    }
}

const PATIENCE: Duration = Duration::from_secs(10);

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["rounds"]);
    let rounds: u32 = args.get_or("rounds", 10_000);

    let bob_node = ok(NodeBuilder::new("bob").start(), "start bob");
    let addr = bob_node.local_addr();
    let alice_node = ok(NodeBuilder::new("alice").peer("bob", addr).start(), "start alice");
    let eve_node = ok(NodeBuilder::new("eve").peer("bob", addr).start(), "start eve");

    // Bob's end of the stream is the end of the conversation: notify-if-none.
    let bob = ok(
        bob_node.socket_with(
            "chat",
            Box::new(Pair::default()),
            SocketOptions::new().notify_if_none(true),
        ),
        "bob's pair socket",
    );
    let alice = ok(alice_node.socket("chat", Pair::default()), "alice's pair socket");
    ok(alice.link("bob/chat"), "alice links");
    let peer = ok(alice.wait_for_link(Some(PATIENCE)), "alice waits for bob");
    println!("alice/chat paired with {peer}");

    let echo = thread::spawn(move || {
        // Bob echoes every message until alice unlinks.
        let mut echoed = 0u32;
        loop {
            match bob.recv() {
                Ok(message) => {
                    ok(bob.send(&message), "bob echoes");
                    echoed += 1;
                }
                Err(Error::NoLinks) => return echoed,
                Err(e) => fail(&format!("bob: {e}")),
            }
        }
    });

    let started = Instant::now();
    for round in 0..rounds {
        ok(alice.send(&round.to_le_bytes()), "alice sends");
        let reply = ok(alice.recv_timeout(PATIENCE), "alice waits for the echo");
        if reply != round.to_le_bytes() {
            fail(&format!("round {round}: echo {reply:?}"));
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{rounds} round trips alice -> bob -> alice in {elapsed:.2?}: {:.1} us each",
        elapsed.as_secs_f64() * 1e6 / f64::from(rounds.max(1))
    );

    // A third pair is refused by bob's protocol, with its reason.
    let eve = ok(eve_node.socket("chat", Pair::default()), "eve's pair socket");
    ok(eve.link("bob/chat"), "eve links");
    match eve.wait_for_link(Some(PATIENCE)) {
        Err(e @ Error::LinkRefused(_)) => println!("eve/chat refused: {e}"),
        other => fail(&format!("eve/chat should be refused, got {other:?}")),
    }
    // A push socket is refused as incompatible.
    let push = ok(eve_node.push("push"), "eve's push socket");
    ok(push.link("bob/chat"), "eve's push links");
    match push.wait_for_link(Some(PATIENCE)) {
        Err(e @ Error::IncompatibleProtocol(_)) => println!("eve/push refused: {e}"),
        other => fail(&format!("eve/push should be refused, got {other:?}")),
    }

    ok(alice.unlink("bob/chat"), "alice unlinks");
    let echoed = echo.join().unwrap_or_else(|_| fail("bob panicked"));
    println!("bob echoed {echoed} messages, then saw alice unlink (no links left)");
}

fn ok<T>(result: Result<T, Error>, what: &str) -> T {
    result.unwrap_or_else(|e| fail(&format!("{what}: {e}")))
}
