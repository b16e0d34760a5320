//! Sealed nodes against an attacker: every kind of bad datagram is dropped with its own
//! counter and changes nothing; mobility follows only proven senders (issue 15).

use std::net::SocketAddr;
use std::time::Duration;

use a3m_core::id::NodeId;
use a3m_core::node::{Node, NodeConfig, NodeStats, RefusalReason};
use a3m_core::seal::{Aead, Psk, SealConfig, WINDOW};
use a3m_core::time::Instant;
use proptest::prelude::*;

const KEY: [u8; 32] = [0x5a; 32];

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn sealed(name: &str, key: Option<[u8; 32]>, epoch: u64, aead: Aead) -> Node {
    let mut n = Node::new(id(name), NodeConfig::default());
    n.set_path_secret([name.as_bytes()[0]; 32]);
    if let Some(key) = key {
        n.set_seal(SealConfig { psk: Psk::new(key), epoch, aead });
    }
    n
}

/// Two nodes on a perfect network, with every datagram from `a` to `b` kept for replays.
struct Pair {
    a: Node,
    b: Node,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    now: Instant,
    captured: Vec<Vec<u8>>,
    /// Datagrams `b` sent to an address other than `a`'s.
    b_elsewhere: Vec<(SocketAddr, Vec<u8>)>,
}

impl Pair {
    fn new(key_a: Option<[u8; 32]>, key_b: Option<[u8; 32]>) -> Self {
        let a_addr = addr("10.0.0.1:7000");
        let b_addr = addr("10.0.0.2:7000");
        let mut a = sealed("a", key_a, 100, Aead::ChaCha20Poly1305);
        let b = sealed("b", key_b, 200, Aead::Aes256Gcm);
        a.set_peer_addr(id("b"), b_addr).unwrap();
        Self {
            a,
            b,
            a_addr,
            b_addr,
            now: Instant::ZERO,
            captured: Vec::new(),
            b_elsewhere: Vec::new(),
        }
    }

    fn pump(&mut self) {
        let mut buf = vec![0u8; 2048];
        let mut quiet_since = self.now;
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some((to, len)) = self.a.poll_transmit(self.now, &mut buf) {
                assert_eq!(to, self.b_addr);
                self.captured.push(buf[..len].to_vec());
                self.b.handle_datagram(self.now, self.a_addr, &buf[..len]);
                moved = true;
            }
            while let Some((to, len)) = self.b.poll_transmit(self.now, &mut buf) {
                if to == self.a_addr {
                    self.a.handle_datagram(self.now, self.b_addr, &buf[..len]);
                } else {
                    self.b_elsewhere.push((to, buf[..len].to_vec()));
                }
                moved = true;
            }
            if moved {
                quiet_since = self.now;
            } else {
                // Quiet: let the timers run (retransmissions), up to a second of silence.
                if self.now >= quiet_since + Duration::from_secs(1) {
                    return;
                }
                self.now += Duration::from_millis(1);
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
            }
        }
    }

    fn send(&mut self, n: usize) {
        for i in 0..n {
            self.a.submit(self.now, &id("b"), format!("message {i}").as_bytes()).unwrap();
        }
        self.pump();
    }

    fn delivered(&mut self) -> usize {
        let mut n = 0;
        let mut out = [0u8; 2048];
        while self.b.poll_delivery(&mut out).unwrap().is_some() {
            n += 1;
        }
        n
    }
}

/// The counters of `b` that a dropped datagram may change, all else zeroed.
fn drops(s: &NodeStats) -> [u64; 9] {
    [
        s.sealed_refused,
        s.plaintext_refused,
        s.sealed_malformed,
        s.sealed_unknown_key,
        s.sealed_bad_tag,
        s.replayed,
        s.replay_too_old,
        s.stale_epoch,
        s.malformed_dropped,
    ]
}

#[test]
fn sealed_nodes_deliver_exactly_once_with_either_aead() {
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(100);
    assert_eq!(p.delivered(), 100);
    assert_eq!(p.a.unacknowledged(), 0);
    assert!(p.b.stats().sealed_opened > 0);
    assert!(p.a.stats().sealed_opened > 0);
    // Nothing on the wire is plaintext: the payload text never appears.
    for d in &p.captured {
        assert_eq!(d[3], 1, "sealed flag");
        assert!(!d.windows(7).any(|w| w == b"message"), "payload visible on the wire");
    }
}

#[test]
fn each_bad_datagram_is_dropped_with_its_own_counter_and_changes_nothing() {
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(10);
    assert_eq!(p.delivered(), 10);
    let good = p.captured.last().unwrap().clone();
    // A datagram b has not seen (a fresh counter), for the tampering cases.
    p.a.submit(p.now, &id("b"), b"unseen").unwrap();
    let mut buf = vec![0u8; 2048];
    let (_, len) = p.a.poll_transmit(p.now, &mut buf).unwrap();
    let unseen = buf[..len].to_vec();
    let attacker = addr("10.0.0.66:6666");
    let peers = p.b.peer_count();
    let before = drops(p.b.stats());
    let now = p.now;
    let home = p.a_addr;

    let check = |p: &mut Pair, name: &str, bytes: &[u8], from: SocketAddr, counter: usize| {
        // Only a plaintext datagram gets an answer: the notice saying why it is refused.
        let notice = counter == 1;
        let before = drops(p.b.stats());
        p.b.handle_datagram(now, from, bytes);
        let after = drops(p.b.stats());
        let changed: Vec<usize> = (0..after.len()).filter(|&i| after[i] != before[i]).collect();
        assert_eq!(changed, vec![counter], "{name}: {before:?} -> {after:?}");
        assert_eq!(p.b.peer_count(), peers, "{name}");
        assert_eq!(p.b.peer_addr(&id("a")), Some(p.a_addr), "{name}");
        assert!(!p.b.has_delivery(), "{name}");
        assert_eq!(p.b.wants_transmit(), notice, "{name}: output after a dropped datagram");
        let mut buf = [0u8; 256];
        if let Some((to, len)) = p.b.poll_transmit(now, &mut buf) {
            assert!(notice, "{name}");
            assert_eq!(to, from);
            let d = a3m_core::wire::decode_datagram(&buf[..len]).unwrap();
            assert!(matches!(d.records().next(), Some(a3m_core::wire::Record::SealMismatch(2))));
        }
        assert!(p.b.poll_transmit(now, &mut buf).is_none(), "{name}");
    };
    // Replays, from the same address and from another one.
    check(&mut p, "replayed", &good, home, 5);
    check(&mut p, "replayed elsewhere", &good, attacker, 5);
    // Bit flips anywhere after the magic and version (a flip there is plain malformed).
    let mut flipped = unseen.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    check(&mut p, "flipped tag", &flipped, attacker, 4);
    let mut flipped = unseen.clone();
    flipped[30] ^= 0x80;
    check(&mut p, "flipped ciphertext", &flipped, home, 4);
    // A flipped counter is a fresh counter under a wrong tag.
    let mut flipped = good.clone();
    flipped[8 + 2 + 15] ^= 0x40;
    check(&mut p, "flipped counter", &flipped, home, 4);
    // Truncated: cut inside the seal prefix, and inside the tag.
    check(&mut p, "truncated prefix", &unseen[..14], home, 2);
    check(&mut p, "truncated tag", &unseen[..unseen.len() - 3], home, 4);
    // Unknown algorithm.
    let mut bad_alg = unseen.clone();
    bad_alg[8] = 9;
    check(&mut p, "unknown algorithm", &bad_alg, home, 2);
    // Another key (same node ids, same epoch).
    // (A later epoch, else its counter 0 would be dropped as a replay before any key is tried.)
    let mut other = Pair::new(Some([0x11; 32]), Some([0x11; 32]));
    other.a = sealed("a", Some([0x11; 32]), 1000, Aead::ChaCha20Poly1305);
    other.a.set_peer_addr(id("b"), other.b_addr).unwrap();
    other.send(1);
    let wrong_key = other.captured[0].clone();
    check(&mut p, "wrong key", &wrong_key, attacker, 3);
    // An older epoch of the peer (a previous start), authenticated but stale.
    let mut old = Pair::new(Some(KEY), Some(KEY));
    old.a = sealed("a", Some(KEY), 99, Aead::ChaCha20Poly1305);
    old.a.set_peer_addr(id("b"), old.b_addr).unwrap();
    old.send(1);
    check(&mut p, "stale epoch", &old.captured[0], home, 7);
    // Plaintext to a node with a key.
    let mut plain = Pair::new(None, None);
    plain.send(1);
    check(&mut p, "plaintext", &plain.captured[0], home, 1);
    assert_eq!(p.b.last_refusal().map(|r| r.reason), Some(RefusalReason::PlaintextWithKey));
    let after = drops(p.b.stats());
    assert!(after.iter().zip(before).all(|(a, b)| *a >= b));
}

#[test]
fn a_counter_beyond_the_window_is_too_old() {
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(1);
    let first = p.captured[0].clone();
    // Let the sender's counter run far ahead: statuses through announcements.
    let mut buf = vec![0u8; 2048];
    let mut sent = 0;
    while sent <= WINDOW as usize + 10 {
        p.a.announce(p.now);
        while let Some((_, len)) = p.a.poll_transmit(p.now, &mut buf) {
            p.b.handle_datagram(p.now, p.a_addr, &buf[..len]);
            sent += 1;
        }
        while p.b.poll_transmit(p.now, &mut buf).is_some() {}
    }
    let before = p.b.stats().replay_too_old;
    p.b.handle_datagram(p.now, p.a_addr, &first);
    assert_eq!(p.b.stats().replay_too_old, before + 1);
}

#[test]
fn mismatched_configurations_are_refused_with_a_reason() {
    let mut p = Pair::new(Some(KEY), None);
    p.a.submit(p.now, &id("b"), b"x").unwrap();
    p.pump();
    assert_eq!(p.delivered(), 0);
    assert!(p.b.stats().sealed_refused > 0);
    let refusal = p.b.last_refusal().unwrap();
    assert_eq!(refusal.reason, RefusalReason::SealedWithoutKey);
    assert!(refusal.to_string().contains("has no key"), "{refusal}");
    // b told a why: a's application gets the reason too, not only a timeout.
    assert!(p.b.stats().seal_mismatch_sent > 0);
    let told = p.a.last_refusal().unwrap();
    assert_eq!(told.reason, RefusalReason::PeerHasNoKey, "{told}");

    let mut p = Pair::new(None, Some(KEY));
    p.a.submit(p.now, &id("b"), b"x").unwrap();
    p.pump();
    assert_eq!(p.delivered(), 0);
    assert!(p.b.stats().plaintext_refused > 0);
    assert_eq!(p.b.last_refusal().unwrap().reason, RefusalReason::PlaintextWithKey);
    assert_eq!(p.a.last_refusal().unwrap().reason, RefusalReason::PeerRequiresKey);
    // Notices are rate-limited: at most one per 100 ms, whatever the traffic.
    let plain = p.captured[0].clone();
    let sent = p.b.stats().seal_mismatch_sent;
    let mut buf = [0u8; 256];
    for i in 0..1000u32 {
        let at = p.now + Duration::from_millis(u64::from(i / 10));
        p.b.handle_datagram(at, addr(&format!("10.9.0.{}:1", i % 250)), &plain);
        while p.b.poll_transmit(at, &mut buf).is_some() {}
    }
    let notices = p.b.stats().seal_mismatch_sent - sent;
    assert!(notices <= 1 + 100 / 100, "{notices} notices in 100 ms");

    let mut p = Pair::new(Some(KEY), Some([1; 32]));
    p.a.submit(p.now, &id("b"), b"x").unwrap();
    p.pump();
    assert_eq!(p.delivered(), 0);
    assert!(p.b.stats().sealed_unknown_key + p.b.stats().sealed_bad_tag > 0);
}

#[test]
fn key_rotation_loses_nothing() {
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(20);
    let next = Psk::new([0x77; 32]);
    assert_ne!(next.id(), Psk::new(KEY).id());
    // a rotates first: b does not know the new key yet, so a's datagrams wait...
    assert!(p.a.rotate_psk(p.now, &next, Duration::from_secs(60)));
    for i in 0..20 {
        p.a.submit(p.now, &id("b"), format!("after {i}").as_bytes()).unwrap();
    }
    p.pump();
    // ...until b rotates too; b's datagrams under the old key were accepted meanwhile.
    assert!(p.b.rotate_psk(p.now, &next, Duration::from_secs(60)));
    for _ in 0..100 {
        p.now += Duration::from_millis(50);
        p.a.handle_timeout(p.now);
        p.pump();
    }
    assert_eq!(p.delivered(), 40);
    assert_eq!(p.a.unacknowledged(), 0);
}

#[test]
fn a_sealed_replay_from_another_address_never_moves_the_peer() {
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(5);
    let attacker = addr("10.0.0.66:6666");
    // The attacker replays everything it captured, before and after new traffic.
    for d in p.captured.clone() {
        p.b.handle_datagram(p.now, attacker, &d);
    }
    p.send(5);
    assert_eq!(p.delivered(), 10);
    assert_eq!(p.b.peer_addr(&id("a")), Some(p.a_addr));
    assert!(p.b_elsewhere.is_empty(), "b sent to the attacker: {:?}", p.b_elsewhere);
}

#[test]
fn a_genuine_move_is_proven_then_followed_sealed_and_plaintext() {
    for key in [Some(KEY), None] {
        let mut p = Pair::new(key, key);
        p.send(5);
        assert_eq!(p.delivered(), 5);
        let new_addr = addr("10.0.0.9:7001");
        p.a_addr = new_addr;
        p.a.announce(p.now);
        p.send(5);
        assert_eq!(p.delivered(), 5, "key {}", key.is_some());
        assert_eq!(p.b.peer_addr(&id("a")), Some(new_addr));
        assert_eq!(p.b.stats().path_validated, 1);
        assert_eq!(p.a.unacknowledged(), 0);
    }
}

#[test]
fn a_plaintext_forgery_from_another_address_is_challenged_not_followed() {
    let mut p = Pair::new(None, None);
    p.send(5);
    assert_eq!(p.delivered(), 5);
    let attacker = addr("10.0.0.66:6666");
    for d in p.captured.clone() {
        p.b.handle_datagram(p.now, attacker, &d);
    }
    assert!(p.b.stats().path_unverified > 0);
    p.send(5);
    assert_eq!(p.delivered(), 5);
    assert_eq!(p.b.peer_addr(&id("a")), Some(p.a_addr));
    // All b sent elsewhere are the challenges the attacker provoked.
    let challenges = p.b.stats().path_challenges_sent;
    assert!(p.b_elsewhere.iter().all(|(to, _)| *to == attacker));
    assert_eq!(p.b_elsewhere.len() as u64, challenges);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any change to a sealed datagram (flips, cuts, extensions, from any address) is
    /// dropped without delivery, output, or a change of the peer's address.
    #[test]
    fn mutated_sealed_datagrams_change_nothing(
        flips in proptest::collection::vec((0usize..2000, 0u8..8), 0..4),
        cut in proptest::option::of(0usize..2000),
        extra in proptest::collection::vec(any::<u8>(), 0..4),
        other_port in any::<bool>(),
        pick in 0usize..1000,
    ) {
        let mut p = Pair::new(Some(KEY), Some(KEY));
        p.send(3);
        prop_assert_eq!(p.delivered(), 3);
        let mut d = p.captured[pick % p.captured.len()].clone();
        let original = d.clone();
        for (at, bit) in &flips {
            let i = at % d.len();
            d[i] ^= 1 << bit;
        }
        if let Some(c) = cut {
            d.truncate(c % (d.len() + 1));
        }
        d.extend(&extra);
        let from = if other_port { addr("10.0.0.66:1") } else { p.a_addr };
        let peers = p.b.peer_count();
        p.b.handle_datagram(p.now, from, &d);
        prop_assert!(!p.b.has_delivery());
        prop_assert_eq!(p.b.peer_count(), peers);
        prop_assert_eq!(p.b.peer_addr(&id("a")), Some(p.a_addr));
        if d != original {
            prop_assert!(!p.b.wants_transmit());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The replay window against a model that remembers every counter: a counter is
    /// accepted once at most; a counter within the window of the newest is accepted iff never
    /// seen; anything newer is accepted; anything older than the window is refused. Sequences
    /// mix small steps, reordering and far jumps ahead.
    #[test]
    fn replay_window_matches_a_model(
        steps in proptest::collection::vec((0u8..4, 0u64..5000), 1..400),
    ) {
        use a3m_core::seal::{ReplayWindow, Verdict};
        use std::collections::HashSet;
        let mut w = ReplayWindow::new();
        let mut seen = HashSet::new();
        let mut newest: Option<u64> = None;
        let mut base = 1u64 << 20;
        for (kind, x) in steps {
            let c = match kind {
                0 => base + x,                    // ahead a little
                1 => base.saturating_sub(x),      // behind (reordered or too old)
                2 => { base += x * 1000; base }  // a far jump
                _ => base.saturating_sub(x % 64), // the near past
            };
            let expected = match newest {
                None => Verdict::Newest,
                Some(n) if c > n => Verdict::Newest,
                Some(n) if n - c >= WINDOW => Verdict::TooOld,
                Some(_) if seen.contains(&c) => Verdict::Replayed,
                Some(_) => Verdict::Fresh,
            };
            prop_assert_eq!(w.commit(c), expected, "counter {}", c);
            if expected.accepted() {
                seen.insert(c);
                newest = Some(newest.map_or(c, |n| n.max(c)));
            }
            base = base.max(c);
        }
    }
}
