//! Link and unlink called at random on both ends while data flows, over a network that
//! reorders everything: at rest, both ends agree (one established link with matching
//! incarnations, or none), and every message accepted by `send` is received exactly once,
//! in order per link.
#![cfg(feature = "alloc")]

mod socket_sim;

use a3m_core::flow::BatchPercent;
use a3m_core::id::LinkIncarnation;
use a3m_core::link::LinkPhase;
use a3m_core::socket::{Pull, Push, SocketError, SocketKey, SocketOptions};
use socket_sim::{Net, sid, tag};
use std::collections::BTreeMap;

struct Pair {
    net: Net,
    a: SocketKey,
    b: SocketKey,
    next: u64,
    sent: Vec<u64>,
    /// Per link of the receiver, the sequence of message numbers received.
    received: BTreeMap<LinkIncarnation, Vec<u64>>,
}

impl Pair {
    fn new(seed: u64) -> Self {
        let mut net = Net::new(seed, &["A", "B"]);
        let a = net.layer(0).create_socket(tag("src"), Box::new(Push::new())).unwrap();
        // Small capacities: credits run out and FLOWs (some of them stale) are frequent.
        let options = SocketOptions {
            capacity: 1 + (seed % 6) as u32,
            batch: BatchPercent::new(if seed.is_multiple_of(2) { 1 } else { 50 }).unwrap(),
            ..SocketOptions::DEFAULT
        };
        let b =
            net.layer(1).create_socket_with(tag("sink"), Box::new(Pull::new()), options).unwrap();
        Pair { net, a, b, next: 0, sent: Vec::new(), received: BTreeMap::new() }
    }

    fn send(&mut self) {
        match self.net.layer(0).send(self.a, &self.next.to_le_bytes()) {
            Ok(()) => {
                self.sent.push(self.next);
                self.next += 1;
            }
            Err(SocketError::WouldBlock | SocketError::NoLinks) => {}
            Err(e) => panic!("send failed: {e}"),
        }
    }

    fn recv(&mut self) -> bool {
        match self.net.layer(1).recv(self.b) {
            Ok(m) => {
                let n = u64::from_le_bytes(m.payload.as_slice().try_into().unwrap());
                self.received.entry(m.link).or_default().push(n);
                true
            }
            Err(SocketError::WouldBlock | SocketError::NoLinks) => false,
            Err(e) => panic!("recv failed: {e}"),
        }
    }

    /// Delivers, runs timers and receives until nothing moves.
    fn rest(&mut self) {
        for _ in 0..1_000_000 {
            while self.recv() {}
            if self.net.in_flight() == 0 && self.net.next_timer().is_none() {
                return;
            }
            self.net.step();
        }
        panic!("did not come to rest");
    }

    fn check_agreement(&self, seed: u64) {
        let la = self.net.layers[0].link_of(self.a, &sid("B/sink"));
        let lb = self.net.layers[1].link_of(self.b, &sid("A/src"));
        assert_eq!(self.net.layers[0].link_count(self.a), usize::from(la.is_some()));
        assert_eq!(self.net.layers[1].link_count(self.b), usize::from(lb.is_some()));
        match (la, lb) {
            (None, None) => {}
            (Some(la), Some(lb)) => {
                let sa = self.net.layers[0].link_status(self.a, la).unwrap();
                let sb = self.net.layers[1].link_status(self.b, lb).unwrap();
                assert_eq!(sa.phase, LinkPhase::Established, "seed {seed}");
                assert_eq!(sb.phase, LinkPhase::Established, "seed {seed}");
                assert_eq!(sa.peer_incarnation, Some(lb), "seed {seed}");
                assert_eq!(sb.peer_incarnation, Some(la), "seed {seed}");
            }
            other => panic!("seed {seed}: the ends disagree: {other:?}"),
        }
    }

    fn check_delivery(&self, seed: u64) {
        let mut all: Vec<u64> = self.received.values().flatten().copied().collect();
        for (link, seq) in &self.received {
            assert!(seq.windows(2).all(|w| w[0] < w[1]), "seed {seed}: link {link} out of order");
        }
        all.sort_unstable();
        assert_eq!(all, self.sent, "seed {seed}: not exactly once");
    }
}

#[test]
fn random_link_and_unlink_calls_agree_at_rest_and_lose_nothing() {
    for seed in 0..400 {
        let mut p = Pair::new(seed);
        // Some seeds let many messages pile up in flight, others deliver promptly.
        let calm = 11 + (seed % 9) as usize;
        for _ in 0..400 {
            let now = p.net.now;
            match p.net.rng.below(calm) {
                0 => {
                    let _ = p.net.layer(0).link(p.a, sid("B/sink"));
                }
                1 => {
                    let _ = p.net.layer(0).unlink(now, p.a, &sid("B/sink"));
                }
                2 => {
                    let _ = p.net.layer(1).link(p.b, sid("A/src"));
                }
                3 => {
                    let _ = p.net.layer(1).unlink(now, p.b, &sid("A/src"));
                }
                4..=7 => p.send(),
                8..=10 => {
                    p.recv();
                }
                11 | 12 => {}
                _ => {
                    p.net.step();
                }
            }
        }
        p.rest();
        p.check_agreement(seed);
        p.check_delivery(seed);

        // Whatever happened, a fresh request links them, and unlinking both ends parts them.
        p.net.layer(0).link(p.a, sid("B/sink")).unwrap();
        p.rest();
        p.check_agreement(seed);
        assert!(p.net.layers[0].has_links(p.a), "seed {seed}");
        for _ in 0..5 {
            p.send();
        }
        let now = p.net.now;
        if p.net.rng.chance(1, 2) {
            p.net.layer(0).unlink(now, p.a, &sid("B/sink")).unwrap();
        } else {
            p.net.layer(1).unlink(now, p.b, &sid("A/src")).unwrap();
        }
        p.rest();
        p.check_agreement(seed);
        assert!(!p.net.layers[0].has_links(p.a) && !p.net.layers[1].has_links(p.b), "seed {seed}");
        p.check_delivery(seed);
    }
}

#[test]
fn relinking_while_unlinking_reopens_with_a_new_incarnation() {
    for seed in 0..200 {
        let mut p = Pair::new(seed);
        let first = p.net.layer(0).link(p.a, sid("B/sink")).unwrap();
        p.rest();
        for _ in 0..3 {
            p.send();
        }
        let now = p.net.now;
        p.net.layer(0).unlink(now, p.a, &sid("B/sink")).unwrap();
        // Ask again before the old link has closed: it reopens afterwards.
        assert_eq!(p.net.layer(0).link(p.a, sid("B/sink")), Ok(first));
        p.rest();
        p.check_agreement(seed);
        let second = p.net.layers[0].link_of(p.a, &sid("B/sink")).expect("relinked");
        assert!(second > first);
        p.send();
        p.rest();
        p.check_delivery(seed);
        assert_eq!(p.received.len(), 2, "seed {seed}: two incarnations carried data");
    }
}
