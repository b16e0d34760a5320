//! Sealed nodes against an attacker: every kind of bad datagram is dropped with its own
//! counter and changes nothing; mobility follows only proven senders (issue 15); path
//! challenges are rate-limited; a receiver that restarts refuses captures from before.

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
    /// Both nodes write with `poll_transmit_deferred` and seal afterwards, as the std
    /// runtime does, instead of `poll_transmit`.
    deferred: bool,
}

/// The next datagram of `node`: by `poll_transmit`, or by `poll_transmit_deferred` and then
/// its sealing, checking on the way that the unsealed datagram is refused by `check`.
fn next_datagram(
    node: &mut Node,
    now: Instant,
    buf: &mut [u8],
    deferred: bool,
    check: Option<(&mut Node, SocketAddr)>,
) -> Option<(SocketAddr, usize)> {
    if !deferred {
        return node.poll_transmit(now, buf);
    }
    let out = node.poll_transmit_deferred(now, buf)?;
    if let Some(seal) = out.seal {
        if let Some((receiver, from)) = check {
            // Not yet sealed: its records are in the clear under a sealed header, and must
            // not be taken for a datagram of the sender.
            let before = receiver.stats().clone();
            receiver.handle_datagram(now, from, &buf[..out.len]);
            assert_eq!(receiver.stats().sealed_bad_tag, before.sealed_bad_tag + 1);
            assert_eq!(receiver.stats().sealed_opened, before.sealed_opened);
        }
        assert_eq!(seal.apply(buf).unwrap(), out.len);
    }
    Some((out.to, out.len))
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
            deferred: false,
        }
    }

    fn pump(&mut self) {
        let mut buf = vec![0u8; 2048];
        let mut quiet_since = self.now;
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some((to, len)) = next_datagram(
                &mut self.a,
                self.now,
                &mut buf,
                self.deferred,
                Some((&mut self.b, self.a_addr)),
            ) {
                assert_eq!(to, self.b_addr);
                self.captured.push(buf[..len].to_vec());
                self.b.handle_datagram(self.now, self.a_addr, &buf[..len]);
                moved = true;
            }
            while let Some((to, len)) =
                next_datagram(&mut self.b, self.now, &mut buf, self.deferred, None)
            {
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

    /// `a` moves to a new address and tells `b`; checks that `b` validates the move and
    /// follows it, and that 5 messages sent from there all arrive (`case` names the run).
    fn move_a_and_check_it_is_followed(&mut self, case: &str) {
        let new_addr = addr("10.0.0.9:7001");
        self.a_addr = new_addr;
        self.a.announce(self.now);
        self.send(5);
        assert_eq!(self.delivered(), 5, "{case}");
        assert_eq!(self.b.peer_addr(&id("a")), Some(new_addr), "{case}");
        assert_eq!(self.b.stats().path_validated, 1, "{case}");
        assert_eq!(self.a.unacknowledged(), 0, "{case}");
    }

    /// `a` restarts with sealing epoch `epoch` (see [`restarted`]), knowing where b is.
    fn restart_a(&mut self, epoch: u64) {
        self.a = restarted(&self.a, epoch, Aead::ChaCha20Poly1305);
        self.a.set_peer_addr(id("b"), self.b_addr).unwrap();
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
fn drops(s: &NodeStats) -> [u64; 10] {
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
        s.stale_dst_epoch,
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
fn sealing_after_the_node_writes_the_same_datagrams_and_unsealed_ones_are_refused() {
    let run = |deferred: bool| {
        let mut p = Pair::new(Some(KEY), Some(KEY));
        p.deferred = deferred;
        p.send(300);
        assert_eq!(p.delivered(), 300);
        p.captured
    };
    let inline = run(false);
    assert!(!inline.is_empty());
    assert_eq!(run(true), inline);
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
    let home = p.a_addr;

    let check = |p: &mut Pair, name: &str, bytes: &[u8], from: SocketAddr, counter: usize| {
        // Only a plaintext datagram and one sealed with an unknown key get an answer: the
        // (plaintext) notice saying why they are refused. And an authentic datagram of a
        // stale epoch from a silent peer gets a challenge to that epoch (its clock may have
        // gone back: `node::probe`), sealed, where it came from.
        let now = p.now;
        let probe = counter == 7;
        let reason = match counter {
            1 => Some(a3m_core::wire::SEAL_MISMATCH_KEY_REQUIRED),
            3 => Some(a3m_core::wire::SEAL_MISMATCH_UNKNOWN_KEY),
            _ => None,
        };
        let notice = reason.is_some();
        let before = drops(p.b.stats());
        p.b.handle_datagram(now, from, bytes);
        let after = drops(p.b.stats());
        let changed: Vec<usize> = (0..after.len()).filter(|&i| after[i] != before[i]).collect();
        assert_eq!(changed, vec![counter], "{name}: {before:?} -> {after:?}");
        assert_eq!(p.b.peer_count(), peers, "{name}");
        assert_eq!(p.b.peer_addr(&id("a")), Some(p.a_addr), "{name}");
        assert!(!p.b.has_delivery(), "{name}");
        assert_eq!(p.b.wants_transmit(), notice || probe, "{name}: output after a drop");
        let mut buf = [0u8; 256];
        if let Some((to, len)) = p.b.poll_transmit(now, &mut buf) {
            assert!(notice || probe, "{name}");
            assert_eq!(to, from);
            if probe {
                let parts = a3m_core::wire::decode_sealed(&buf[..len]).unwrap();
                assert_eq!((parts.epoch, parts.dst_epoch), (200, 99), "{name}");
                assert_eq!(p.b.stats().epoch_probes_sent, 1, "{name}");
                assert!(p.b.poll_transmit(now, &mut buf).is_none(), "{name}");
                return;
            }
            let d = a3m_core::wire::decode_datagram(&buf[..len]).unwrap();
            let told = d.records().next();
            assert!(
                matches!(told, Some(a3m_core::wire::Record::SealMismatch(r)) if Some(r) == reason)
            );
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
    // A flipped counter is a fresh counter under a wrong tag (header 8 bytes, algorithm and
    // key id 2, destination epoch and epoch 16: the counter's last byte is at 8 + 2 + 23).
    let mut flipped = good.clone();
    flipped[8 + 2 + 23] ^= 0x40;
    check(&mut p, "flipped counter", &flipped, home, 4);
    // The destination epoch is authenticated: moved to "unknown" (0), the tag fails; moved
    // to another epoch of b, it is dropped unopened, and as it does not authenticate, gets
    // no answer.
    let parts = a3m_core::wire::decode_sealed(&unseen).unwrap();
    assert_eq!(parts.dst_epoch, 200, "a names the epoch it authenticated from b");
    let mut zeroed = unseen.clone();
    zeroed[8 + 2..8 + 2 + 8].fill(0);
    check(&mut p, "destination epoch zeroed", &zeroed, home, 4);
    let mut other_epoch = unseen.clone();
    other_epoch[8 + 2 + 7] ^= 0x01;
    check(&mut p, "destination epoch changed", &other_epoch, attacker, 9);
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
    // (Notices are rate-limited: the next one may go out only 100 ms later.)
    p.now += Duration::from_millis(200);
    // An older epoch of the peer (a previous start), authenticated but stale; a has been
    // quiet for more than a second.
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

    // (Key ids are one byte: these two keys' differ, so b finds a's key id unknown.)
    assert_ne!(Psk::new(KEY).id(), Psk::new([1; 32]).id());
    let mut p = Pair::new(Some(KEY), Some([1; 32]));
    p.a.submit(p.now, &id("b"), b"x").unwrap();
    p.pump();
    assert_eq!(p.delivered(), 0);
    assert!(p.b.stats().sealed_unknown_key > 0);
    // b told a, in plaintext, that it has another key.
    assert_eq!(p.a.last_refusal().unwrap().reason, RefusalReason::PeerHasOtherKey);
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
        p.move_a_and_check_it_is_followed(&format!("key {}", key.is_some()));
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
    /// dropped without delivery, output (but a mismatch notice), or a change of the peer's
    /// address.
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
            // At most the rate-limited notice of a mismatch (a changed key id reads as a
            // key b does not have), and nothing else.
            let mut buf = [0u8; 256];
            if let Some((to, len)) = p.b.poll_transmit(p.now, &mut buf) {
                prop_assert_eq!(to, from);
                let notice = a3m_core::wire::decode_datagram(&buf[..len]).unwrap();
                prop_assert_eq!(notice.record_count(), 1);
                let told = notice.records().next();
                prop_assert!(matches!(told, Some(a3m_core::wire::Record::SealMismatch(_))));
            }
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

/// A plaintext datagram from `src` to `dst` (a slot request), as anyone can write one.
fn plain_forgery(src: &str, dst: &str, n: u64) -> Vec<u8> {
    use a3m_core::wire::{self, Header, Record, ReqSlots};
    let records = [Record::ReqSlots(ReqSlots { start: n, count: 8, lowest: 0 })];
    let mut buf = [0u8; 128];
    let out = wire::encode_datagram(&mut buf, &Header { src, dst, flags: 0 }, &records).unwrap();
    buf[..out.len].to_vec()
}

/// The `i`th of 10,000 distinct forged source addresses (none of them a node's).
fn forged_addr(i: u32) -> SocketAddr {
    SocketAddr::from(([192, 0, (i / 250) as u8, (i % 250) as u8 + 1], 1024 + (i % 60_000) as u16))
}

/// Runs `b`'s output, keeping what goes elsewhere than `a`; returns how many datagrams went
/// to a forged address.
fn drain_b(p: &mut Pair) -> u64 {
    let mut buf = vec![0u8; 2048];
    let mut elsewhere = 0;
    while let Some((to, len)) = p.b.poll_transmit(p.now, &mut buf) {
        if to == p.a_addr {
            p.a.handle_datagram(p.now, p.b_addr, &buf[..len]);
        } else {
            elsewhere += 1;
            p.b_elsewhere.push((to, buf[..len].to_vec()));
        }
    }
    elsewhere
}

#[test]
fn forged_plaintext_from_ten_thousand_addresses_gets_a_bounded_number_of_challenges() {
    let mut p = Pair::new(None, None);
    p.send(5);
    assert_eq!(p.delivered(), 5);
    let forged = plain_forgery("a", "b", 1);
    let before = p.b.stats().clone();
    // 10,000 forgeries claiming a, each from a new address, over one second.
    let start = p.now;
    let mut reflected = 0;
    for i in 0..10_000u32 {
        p.now = start + Duration::from_micros(u64::from(i) * 100);
        p.b.handle_datagram(p.now, forged_addr(i), &forged);
        reflected += drain_b(&mut p);
    }
    let elapsed = p.now - start;
    let s = p.b.stats();
    let sent = s.path_challenges_sent - before.path_challenges_sent;
    let limited = s.path_challenges_limited - before.path_challenges_limited;
    // The peer's bucket: 8 at once, then one per 250 ms (new challenges; the retransmission
    // timers of the few sent have not fired within this second, or are counted too).
    let bound = 8 + (elapsed.as_millis() / 250) as u64 + 1;
    assert!(sent <= bound, "{sent} challenges for 10,000 forgeries in {elapsed:?} (bound {bound})");
    assert!(sent >= 8, "{sent}: the burst is there for real moves");
    assert_eq!(reflected, sent, "what went to forged addresses is the challenges");
    assert_eq!(sent + limited, 10_000, "every forgery is challenged or counted as limited");
    assert_eq!(s.path_unverified - before.path_unverified, 10_000);
    assert_eq!(p.b.peer_addr(&id("a")), Some(p.a_addr));
    // Later on, the retransmissions of those challenges stay bounded per challenge too.
    for _ in 0..10_000 {
        p.now += Duration::from_millis(1);
        p.b.handle_timeout(p.now);
        drain_b(&mut p);
    }
    let s = p.b.stats();
    assert!(s.path_challenges_sent - before.path_challenges_sent <= bound * 9, "{s:?}");
    // A genuine move afterwards is validated and followed.
    p.move_a_and_check_it_is_followed("after 10,000 forgeries");
}

#[test]
fn forgeries_claiming_many_peers_are_bounded_by_the_node_wide_limit() {
    let mut p = Pair::new(None, None);
    p.send(1);
    assert_eq!(p.delivered(), 1);
    let peers: Vec<String> = (0..100).map(|i| format!("peer{i}")).collect();
    for (i, name) in peers.iter().enumerate() {
        p.b.set_peer_addr(id(name), SocketAddr::from(([10, 1, 0, i as u8], 7000))).unwrap();
    }
    let forged: Vec<Vec<u8>> = peers.iter().map(|n| plain_forgery(n, "b", 1)).collect();
    let before = p.b.stats().clone();
    // 10,000 forgeries at one instant, claiming every peer in turn from new addresses.
    let mut reflected = 0;
    for i in 0..10_000u32 {
        p.b.handle_datagram(p.now, forged_addr(i), &forged[i as usize % forged.len()]);
        reflected += drain_b(&mut p);
    }
    let s = p.b.stats();
    let sent = s.path_challenges_sent - before.path_challenges_sent;
    let limited = s.path_challenges_limited - before.path_challenges_limited;
    assert_eq!(sent, 64, "the node-wide burst");
    assert_eq!(reflected, 64);
    assert_eq!(sent + limited, 10_000);
}

#[test]
fn sealed_replays_from_new_addresses_start_no_challenge_and_a_move_meanwhile_is_followed() {
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(5);
    assert_eq!(p.delivered(), 5);
    let captured = p.captured.clone();
    let new_addr = addr("10.0.0.9:7001");
    let mut buf = vec![0u8; 2048];
    let mut i = 0u32;
    let mut replay = |p: &mut Pair, n: u32| {
        for _ in 0..n {
            let d = &captured[i as usize % captured.len()];
            p.b.handle_datagram(p.now, forged_addr(i), d);
            i += 1;
        }
    };
    replay(&mut p, 5_000);
    // a moves while the replays go on: every datagram between them is interleaved with 10.
    p.a_addr = new_addr;
    p.a.announce(p.now);
    for k in 0..10 {
        p.a.submit(p.now, &id("b"), format!("moved {k}").as_bytes()).unwrap();
    }
    for _ in 0..10_000 {
        let mut moved = false;
        while let Some((_, len)) = p.a.poll_transmit(p.now, &mut buf) {
            replay(&mut p, 10);
            p.b.handle_datagram(p.now, p.a_addr, &buf[..len]);
            moved = true;
        }
        while let Some((to, len)) = p.b.poll_transmit(p.now, &mut buf) {
            if to == p.a_addr {
                p.a.handle_datagram(p.now, p.b_addr, &buf[..len]);
            } else {
                p.b_elsewhere.push((to, buf[..len].to_vec()));
            }
            moved = true;
        }
        if !moved {
            if p.a.unacknowledged() == 0 {
                break;
            }
            p.now += Duration::from_millis(1);
            p.a.handle_timeout(p.now);
            p.b.handle_timeout(p.now);
        }
    }
    assert_eq!(p.delivered(), 10);
    assert_eq!(p.a.unacknowledged(), 0);
    assert_eq!(p.b.peer_addr(&id("a")), Some(new_addr));
    assert_eq!(p.b.stats().path_validated, 1);
    // Replays are never the newest datagram of a: they start no challenge at all.
    assert_eq!(p.b.stats().path_challenges_limited, 0);
    assert!(p.b.stats().path_challenges_sent <= 1 + 8, "{:?}", p.b.stats());
    // (b may try a's previous address while the move is not confirmed; never a replayer's.)
    let to_replayers =
        p.b_elsewhere.iter().filter(|(to, _)| to.ip().to_string().starts_with("192."));
    assert_eq!(to_replayers.count(), 0, "b sent to a replayer");
}

/// A node as it restarts: a new node, a new (greater) epoch, same key and id, and its clock
/// above the one it reached (as the exactly-once protocol requires of a restart).
fn restarted(old: &Node, epoch: u64, aead: Aead) -> Node {
    let config = NodeConfig { initial_clock: old.clock() + 1, ..NodeConfig::default() };
    let mut n = Node::new(old.id().clone(), config);
    n.set_path_secret([old.id().as_str().as_bytes()[0]; 32]);
    n.set_seal(SealConfig { psk: Psk::new(KEY), epoch, aead });
    n
}

#[test]
fn a_capture_from_before_the_receiver_restarted_is_refused_by_the_new_start() {
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(10);
    assert_eq!(p.delivered(), 10);
    let captured = p.captured.clone();
    let dst_epochs: Vec<u64> =
        captured.iter().map(|d| a3m_core::wire::decode_sealed(d).unwrap().dst_epoch).collect();
    // a names b's epoch from the first datagram it authenticated from b on; before, 0.
    assert_eq!(dst_epochs[0], 0);
    assert!(dst_epochs.iter().all(|&e| e == 0 || e == 200), "{dst_epochs:?}");
    let bound_to_old: Vec<&Vec<u8>> =
        captured.iter().zip(&dst_epochs).filter(|(_, e)| **e == 200).map(|(d, _)| d).collect();
    assert!(!bound_to_old.is_empty(), "{dst_epochs:?}");

    // b restarts. Every capture naming its previous start is dropped unopened, counted, and
    // changes nothing: no peer slot, no delivery, no replay window; from the genuine address
    // or another one.
    p.b = restarted(&p.b, 201, Aead::Aes256Gcm);
    let attacker = addr("10.0.0.66:6666");
    for (k, d) in bound_to_old.iter().enumerate() {
        let from = if k % 2 == 0 { p.a_addr } else { attacker };
        p.b.handle_datagram(p.now, from, d);
    }
    let s = p.b.stats().clone();
    assert_eq!(s.stale_dst_epoch, bound_to_old.len() as u64);
    assert_eq!(s.sealed_opened, 0);
    assert_eq!(s.sealed_bad_tag + s.replayed + s.stale_epoch, 0);
    assert_eq!(p.b.peer_count(), 0);
    assert!(!p.b.has_delivery());
    assert_eq!((p.b.send_records(), p.b.receive_records()), (0, 0));
    // The only output: sealed notices of b's new epoch, one per replay (they authenticate),
    // to wherever they came from. They carry nothing else.
    let mut buf = vec![0u8; 2048];
    let mut notices = 0;
    while let Some((to, len)) = p.b.poll_transmit(p.now, &mut buf) {
        assert!(to == p.a_addr || to == attacker);
        let parts = a3m_core::wire::decode_sealed(&buf[..len]).unwrap();
        assert_eq!((parts.epoch, parts.dst_epoch, parts.ciphertext.len()), (201, 100, 2));
        notices += 1;
    }
    assert_eq!(notices, p.b.stats().epoch_notices_sent);
    assert!((1..=8).contains(&notices), "{notices}: at most the queue of notices");
    // The same replays again are refused again (nothing was remembered).
    let again = p.b.stats().stale_dst_epoch;
    p.b.handle_datagram(p.now, attacker, bound_to_old[0]);
    assert_eq!(p.b.stats().stale_dst_epoch, again + 1);
    assert_eq!(p.b.peer_count(), 0);
    while p.b.poll_transmit(p.now, &mut buf).is_some() {}

    // Liveness: a, which still names b's previous epoch, gets through to the new start
    // (b's notice tells it the new epoch; a switches at once) and everything it sends after
    // the restart is delivered exactly once.
    p.captured.clear();
    p.send(10);
    assert_eq!(p.delivered(), 10);
    assert_eq!(p.a.unacknowledged(), 0);
    assert!(p.b.stats().sealed_opened > 0);
    let last = a3m_core::wire::decode_sealed(p.captured.last().unwrap()).unwrap();
    assert_eq!(last.dst_epoch, 201, "a names b's new epoch");
    // Notices are not answered by notices.
    assert_eq!(p.a.stats().epoch_notices_sent, 0);
}

#[test]
fn the_residual_exposure_is_what_went_before_the_sender_heard_from_the_receiver() {
    // Documented in a3m_core::seal: a datagram sealed with destination epoch 0 (a's first
    // datagrams to b, before it authenticated any of b's) is accepted once by a later start
    // of b. It carries only the opening of a session: nothing is delivered.
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(3);
    assert_eq!(p.delivered(), 3);
    let first = p.captured[0].clone();
    assert_eq!(a3m_core::wire::decode_sealed(&first).unwrap().dst_epoch, 0);
    p.b = restarted(&p.b, 201, Aead::Aes256Gcm);
    p.b.handle_datagram(p.now, p.a_addr, &first);
    assert_eq!(p.b.stats().sealed_opened, 1);
    assert!(!p.b.has_delivery());
    p.b.handle_datagram(p.now, p.a_addr, &first);
    assert_eq!(p.b.stats().replayed, 1, "once");
}

#[test]
fn a_sender_that_restarts_is_refused_nothing_and_its_old_captures_are_still_stale() {
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(5);
    assert_eq!(p.delivered(), 5);
    let old = p.captured.clone();
    // a restarts: it knows no epoch of b, so it sends 0, which b accepts; b, which still
    // names a's previous epoch, is answered with a's new one and switches.
    p.restart_a(101);
    p.send(5);
    assert_eq!(p.delivered(), 5);
    assert_eq!(p.a.unacknowledged(), 0);
    // Captures of a's previous start are an older epoch of a for b.
    let before = p.b.stats().stale_epoch;
    for d in &old {
        p.b.handle_datagram(p.now, p.a_addr, d);
    }
    assert_eq!(p.b.stats().stale_epoch, before + old.len() as u64);
    assert!(!p.b.has_delivery());
}

#[test]
fn a_restart_during_a_key_rotation_recovers_too() {
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(5);
    let next = Psk::new([0x77; 32]);
    assert!(p.a.rotate_psk(p.now, &next, Duration::from_secs(60)));
    p.send(5);
    // (b has not rotated yet: those wait.)
    assert_eq!(p.delivered(), 5);
    // b restarts with both keys configured as after its own rotation: the new one current,
    // the old one still accepted. a's datagrams (new key, b's previous epoch) are answered.
    p.b = restarted(&p.b, 201, Aead::Aes256Gcm);
    p.b.rotate_psk(p.now, &next, Duration::from_secs(60));
    p.send(5);
    assert_eq!(p.delivered(), 10);
    assert_eq!(p.a.unacknowledged(), 0);
    assert!(p.b.stats().stale_dst_epoch > 0 && p.b.stats().epoch_notices_sent > 0);
}

/// Runs `p` for `ms` milliseconds of virtual time while an attacker replays `replays` (in
/// turn, `per_ms` each millisecond) to b from an address of its own.
fn run_under_replays(p: &mut Pair, ms: u64, replays: &[Vec<u8>], per_ms: usize) {
    let mut buf = vec![0u8; 2048];
    let attacker = addr("10.9.9.9:9999");
    let mut k = 0usize;
    for _ in 0..ms {
        for _ in 0..per_ms {
            p.b.handle_datagram(p.now, attacker, &replays[k % replays.len()]);
            k += 1;
        }
        loop {
            let mut moved = false;
            while let Some((to, len)) = p.b.poll_transmit(p.now, &mut buf) {
                if to == p.a_addr {
                    p.a.handle_datagram(p.now, p.b_addr, &buf[..len]);
                }
                moved = true;
            }
            while let Some((_, len)) = p.a.poll_transmit(p.now, &mut buf) {
                p.captured.push(buf[..len].to_vec());
                p.b.handle_datagram(p.now, p.a_addr, &buf[..len]);
                moved = true;
            }
            if !moved {
                break;
            }
        }
        p.now += Duration::from_millis(1);
        p.a.handle_timeout(p.now);
        p.b.handle_timeout(p.now);
    }
}

#[test]
fn replayed_captures_cannot_keep_a_restarted_receiver_from_telling_its_new_epoch() {
    // Found by review: each replay of a pre-restart capture used to take a token of the
    // node-wide notice budget, so 2 replays a millisecond kept it empty and the genuine
    // sender never learnt the new epoch (0 of 10 delivered in 60 s). Now a capture is
    // answered once at most: the genuine sender's higher counter gets the next token.
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(10);
    assert_eq!(p.delivered(), 10);
    let captures: Vec<Vec<u8>> = p
        .captured
        .iter()
        .filter(|d| a3m_core::wire::decode_sealed(d).unwrap().dst_epoch == 200)
        .cloned()
        .collect();
    assert!(!captures.is_empty());
    p.b = restarted(&p.b, 201, Aead::Aes256Gcm);
    run_under_replays(&mut p, 1_000, &captures, 2);
    for i in 0..10 {
        p.a.submit(p.now, &id("b"), format!("after {i}").as_bytes()).unwrap();
    }
    // Liveness bound: a few probe timeouts, far below the replays' 10 s.
    run_under_replays(&mut p, 10_000, &captures, 2);
    assert_eq!(p.delivered(), 10, "b {:?}", p.b.stats());
    assert_eq!(p.a.unacknowledged(), 0);
    // The replays got at most one answer each.
    assert!(p.b.stats().epoch_notices_sent <= captures.len() as u64 + 10, "{:?}", p.b.stats());
}

#[test]
fn a_receiver_restarted_with_another_key_says_so() {
    // Found by review: a datagram sealed for b's previous start with a key b no longer has
    // was dropped as stale without a word; the key check now comes first.
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(3);
    assert_eq!(p.delivered(), 3);
    let mut b =
        Node::new(id("b"), NodeConfig { initial_clock: p.b.clock() + 1, ..NodeConfig::default() });
    b.set_seal(SealConfig { psk: Psk::new([0x11; 32]), epoch: 201, aead: Aead::Aes256Gcm });
    p.b = b;
    p.send(3);
    assert_eq!(p.delivered(), 0);
    assert!(p.b.stats().sealed_unknown_key > 0);
    assert_eq!(p.b.last_refusal().unwrap().reason, RefusalReason::UnknownKey);
    assert_eq!(p.a.last_refusal().unwrap().reason, RefusalReason::PeerHasOtherKey);
}

#[test]
fn a_refusal_is_forgotten_once_the_peer_is_accepted() {
    // Found by review: the reason stayed after the mismatch was fixed, and would have
    // explained a later, unrelated timeout.
    let mut p = Pair::new(Some(KEY), None);
    p.send(1);
    assert_eq!(p.a.last_refusal().unwrap().reason, RefusalReason::PeerHasNoKey);
    p.b.set_seal(SealConfig { psk: Psk::new(KEY), epoch: 200, aead: Aead::Aes256Gcm });
    p.now += Duration::from_secs(5);
    p.send(3);
    assert_eq!(p.delivered(), 4);
    assert_eq!(p.a.last_refusal(), None);
}

#[test]
fn an_epoch_notice_is_never_answered_with_one() {
    // Both restart: b's notice to a names a's previous epoch, and a's new start drops it
    // (stale destination epoch) without answering it.
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(3);
    assert_eq!(p.delivered(), 3);
    p.b = restarted(&p.b, 201, Aead::Aes256Gcm);
    // a sends (naming b's old epoch); b answers with a notice, held back here.
    p.a.submit(p.now, &id("b"), b"x").unwrap();
    let mut buf = vec![0u8; 2048];
    while let Some((_, len)) = p.a.poll_transmit(p.now, &mut buf) {
        p.b.handle_datagram(p.now, p.a_addr, &buf[..len]);
    }
    let mut notices = Vec::new();
    while let Some((_, len)) = p.b.poll_transmit(p.now, &mut buf) {
        notices.push(buf[..len].to_vec());
    }
    assert_eq!(p.b.stats().epoch_notices_sent, 1);
    // a restarts before the notice arrives: the notice names a's previous epoch.
    let mut a =
        Node::new(id("a"), NodeConfig { initial_clock: p.a.clock() + 1, ..NodeConfig::default() });
    a.set_seal(SealConfig { psk: Psk::new(KEY), epoch: 101, aead: Aead::ChaCha20Poly1305 });
    a.set_peer_addr(id("b"), p.b_addr).unwrap();
    p.a = a;
    for n in &notices {
        p.a.handle_datagram(p.now, p.b_addr, n);
    }
    assert_eq!(p.a.stats().stale_dst_epoch, notices.len() as u64);
    assert!(p.a.poll_transmit(p.now, &mut buf).is_none(), "a answered a notice");
    assert_eq!(p.a.stats().epoch_notices_sent, 0);
}

/// Runs `x` (at `x_addr`) and `b` until neither has anything to send, `x` submitting
/// `messages` to b first; returns what b delivered.
fn exchange(x: &mut Node, x_addr: SocketAddr, b: &mut Node, now: &mut Instant, messages: usize) {
    for i in 0..messages {
        x.submit(*now, &id("b"), format!("m{i}").as_bytes()).unwrap();
    }
    let mut buf = vec![0u8; 2048];
    let mut quiet_since = *now;
    while *now < quiet_since + Duration::from_secs(2) {
        let mut moved = false;
        while let Some((_, len)) = x.poll_transmit(*now, &mut buf) {
            b.handle_datagram(*now, x_addr, &buf[..len]);
            moved = true;
        }
        while let Some((to, len)) = b.poll_transmit(*now, &mut buf) {
            if to == x_addr {
                x.handle_datagram(*now, addr("10.0.0.2:7000"), &buf[..len]);
            }
            moved = true;
        }
        if moved {
            quiet_since = *now;
        } else {
            *now += Duration::from_millis(1);
            x.handle_timeout(*now);
            b.handle_timeout(*now);
        }
    }
}

/// a and b (whose peer table holds 2) after a sent b 10 messages and went idle long enough
/// for b to forget it when room is needed; and a's datagrams, for replays.
fn idle_pair_with_a_table_of_two() -> (Pair, Vec<Vec<u8>>) {
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.b = Node::new(id("b"), NodeConfig { max_peers: 2, ..NodeConfig::default() });
    p.b.set_path_secret([b'b'; 32]);
    p.b.set_seal(SealConfig { psk: Psk::new(KEY), epoch: 200, aead: Aead::Aes256Gcm });
    p.send(10);
    assert_eq!(p.delivered(), 10);
    // Long idle: a forgets its send record and tells b, which may then forget a.
    for _ in 0..10 {
        p.now += Duration::from_secs(1);
        p.a.handle_timeout(p.now);
        p.b.handle_timeout(p.now);
        p.pump();
    }
    let captures = p.captured.clone();
    (p, captures)
}

#[test]
fn a_peer_evicted_from_a_full_table_keeps_its_replay_window() {
    // Found by review: an evicted entry took its replay window along, so captures of the
    // peer's past datagrams were new again to the entry a replay created (at the replayer's
    // address). Now the newest counter of an evicted peer is kept in short.
    let (mut p, captures) = idle_pair_with_a_table_of_two();
    // Two other peers fill b's table: a, idle and settled, gives way.
    let mut now = p.now;
    for (name, host) in [("c", "10.0.0.3:7000"), ("d", "10.0.0.4:7000")] {
        let mut x = sealed(name, Some(KEY), 300, Aead::Aes256Gcm);
        x.set_peer_addr(id("b"), p.b_addr).unwrap();
        exchange(&mut x, addr(host), &mut p.b, &mut now, 2);
    }
    p.now = now;
    assert_eq!(p.delivered(), 4);
    assert_eq!(p.b.peer_addr(&id("a")), None, "a was evicted");
    // Every capture of a, replayed from elsewhere: dropped before opening, nothing made.
    let attacker = addr("10.9.9.9:9999");
    let before = p.b.stats().replay_too_old;
    for d in &captures {
        p.b.handle_datagram(p.now, attacker, d);
    }
    assert_eq!(p.b.stats().replay_too_old - before, captures.len() as u64);
    assert_eq!(p.b.peer_addr(&id("a")), None);
    assert!(!p.b.has_delivery());
    // a itself gets through (its counters are above every capture), exactly once.
    p.send(5);
    assert_eq!(p.delivered(), 5);
    assert_eq!(p.a.unacknowledged(), 0);
}

#[test]
fn a_returning_peer_keeps_its_window_when_the_eviction_memory_is_full() {
    // Found by review: with the memory of evicted peers full and a's entry the oldest, a's
    // return evicted another peer first, whose record pushed a's out before a's new entry
    // could take it: a's old captures were then accepted again.
    let (mut p, captures) = idle_pair_with_a_table_of_two();
    // 65 other peers come and go through b's table of 2: a, then 63 of them, are evicted
    // and remembered (64 entries, a's the oldest).
    let mut now = p.now;
    for i in 0..65 {
        let host = addr(&format!("10.1.0.{}:7000", i + 1));
        let mut x = sealed(&format!("x{i}"), Some(KEY), 300, Aead::Aes256Gcm);
        x.set_peer_addr(id("b"), p.b_addr).unwrap();
        exchange(&mut x, host, &mut p.b, &mut now, 1);
        for _ in 0..10 {
            now += Duration::from_secs(1);
            x.handle_timeout(now);
            p.b.handle_timeout(now);
            exchange(&mut x, host, &mut p.b, &mut now, 0);
        }
    }
    p.now = now;
    while p.b.poll_delivery(&mut [0u8; 2048]).unwrap().is_some() {}
    assert_eq!(p.b.peer_addr(&id("a")), None, "a was evicted");
    // a returns (b evicts another peer to make room), then its old captures are replayed.
    p.send(1);
    assert_eq!(p.delivered(), 1);
    let attacker = addr("10.9.9.9:9999");
    let opened = p.b.stats().sealed_opened;
    let refused = p.b.stats().replayed + p.b.stats().replay_too_old;
    for d in &captures {
        p.b.handle_datagram(p.now, attacker, d);
    }
    assert_eq!(p.b.stats().sealed_opened, opened, "a replayed capture was opened");
    assert_eq!(p.b.stats().replayed + p.b.stats().replay_too_old - refused, captures.len() as u64);
    assert!(!p.b.has_delivery());
}

#[test]
fn a_sender_whose_clock_went_back_proves_its_start_and_is_let_in() {
    // A board without a battery-backed clock restarts in the past: its epoch (the wall
    // clock) is below the one b knows. b cannot tell it from a replay of an older start by
    // the epoch; a fresh challenge sealed for that epoch tells them apart.
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(5);
    assert_eq!(p.delivered(), 5);
    let dead = p.captured.clone();
    p.restart_a(40);
    let restart = p.now;
    p.send(5);
    assert_eq!(p.delivered(), 5);
    assert_eq!(p.a.unacknowledged(), 0);
    let s = p.b.stats().clone();
    assert_eq!(s.epoch_probes_proven, 1, "{s:?}");
    assert!((1..=2).contains(&s.epoch_probes_sent), "{s:?}");
    // The run ends after a second of quiet: everything was through within one more.
    assert!(p.now.saturating_since(restart) < Duration::from_secs(2), "{:?}", p.now);

    // Captures of a's dead start (epoch 100, above the live 40) stay stale, from any
    // address, and are not even opened while a is heard from.
    let attacker = addr("10.0.0.66:6666");
    let before = p.b.stats().clone();
    for d in &dead {
        p.b.handle_datagram(p.now, attacker, d);
        p.b.handle_datagram(p.now, p.a_addr, d);
    }
    let s = p.b.stats().clone();
    assert_eq!(s.stale_epoch - before.stale_epoch, 2 * dead.len() as u64);
    assert_eq!(
        (s.sealed_opened, s.epoch_probes_sent),
        (before.sealed_opened, before.epoch_probes_sent)
    );
    assert!(!p.b.has_delivery());
    // ... nor captures of the live start from before its proof.
    p.send(5);
    assert_eq!(p.delivered(), 5);
    assert_eq!(p.b.peer_addr(&id("a")), Some(p.a_addr));
}

#[test]
fn a_receiver_whose_clock_went_back_is_found_again_by_its_senders() {
    // b restarts in the past: a's datagrams name b's dead epoch and b answers with a notice
    // sealed at its new, lower epoch, which a holds for stale until b proves it live.
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(5);
    assert_eq!(p.delivered(), 5);
    p.b = restarted(&p.b, 150, Aead::Aes256Gcm);
    p.captured.clear();
    p.send(5);
    assert_eq!(p.delivered(), 5);
    assert_eq!(p.a.unacknowledged(), 0);
    assert_eq!(p.a.stats().epoch_probes_proven, 1, "{:?}", p.a.stats());
    let last = a3m_core::wire::decode_sealed(p.captured.last().unwrap()).unwrap();
    assert_eq!(last.dst_epoch, 150, "a names b's new epoch");
    // Both went back, one after the other: still found.
    p.restart_a(30);
    p.send(5);
    assert_eq!(p.delivered(), 5);
    assert_eq!(p.a.unacknowledged(), 0);
}

#[test]
fn replays_of_a_dead_start_start_probes_that_prove_nothing() {
    // a restarted forward (epoch 300); an attacker replays a's captures of epoch 100 while
    // a is quiet. b may probe epoch 100 (the replays are authentic), but nobody answers
    // for it: b keeps a at 300, sends the probes only where the replays came from, a
    // bounded number of times, and a's traffic is untouched.
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(5);
    assert_eq!(p.delivered(), 5);
    let dead = p.captured.clone();
    p.restart_a(300);
    p.send(5);
    assert_eq!(p.delivered(), 5);
    let attacker = addr("10.0.0.66:6666");
    for round in 0..5 {
        for d in &dead {
            p.b.handle_datagram(p.now, attacker, d);
        }
        p.now += Duration::from_secs(1);
        p.a.handle_timeout(p.now);
        p.b.handle_timeout(p.now);
        p.pump();
        assert!(!p.b.has_delivery(), "round {round}");
    }
    let s = p.b.stats().clone();
    assert_eq!(s.epoch_probes_proven, 0);
    assert!(s.epoch_probes_sent >= 1, "{s:?}");
    assert!(s.epoch_probes_sent <= 5 * 5, "{s:?}: at most 5 attempts a probe");
    assert!(p.b_elsewhere.iter().all(|(to, _)| *to == attacker));
    assert_eq!(p.b_elsewhere.len() as u64, s.epoch_probes_sent);
    // a's traffic still flows, to a's address.
    p.send(5);
    assert_eq!(p.delivered(), 5);
    assert_eq!(p.a.unacknowledged(), 0);
    assert_eq!(p.b.peer_addr(&id("a")), Some(p.a_addr));
}

#[test]
fn an_evicted_peer_whose_clock_went_back_proves_its_start_too() {
    let (mut p, captures) = idle_pair_with_a_table_of_two();
    let mut now = p.now;
    for (name, host) in [("c", "10.0.0.3:7000"), ("d", "10.0.0.4:7000")] {
        let mut x = sealed(name, Some(KEY), 300, Aead::Aes256Gcm);
        x.set_peer_addr(id("b"), p.b_addr).unwrap();
        exchange(&mut x, addr(host), &mut p.b, &mut now, 2);
    }
    p.now = now;
    assert_eq!(p.delivered(), 4);
    assert_eq!(p.b.peer_addr(&id("a")), None, "a was evicted");
    // a restarts in the past: only b's memory of evicted peers knows its epoch was 100.
    p.restart_a(40);
    p.send(5);
    assert_eq!(p.delivered(), 5);
    assert_eq!(p.a.unacknowledged(), 0);
    assert_eq!(p.b.stats().epoch_probes_proven, 1);
    // Captures of the dead start stay refused.
    let opened = p.b.stats().sealed_opened;
    for d in &captures {
        p.b.handle_datagram(p.now, addr("10.9.9.9:9999"), d);
    }
    assert_eq!(p.b.stats().sealed_opened, opened);
    assert!(!p.b.has_delivery());
}

#[test]
fn a_replayer_racing_a_start_whose_clock_went_back_cannot_keep_it_out() {
    // Found by review: a replayer who replays the new start's first datagram from its own
    // address, every millisecond, ahead of the genuine one, started the probe there and kept
    // its challenges: the start was never let in. Now the start's own next datagram (newer
    // than any capture) takes the challenges back.
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.send(5);
    assert_eq!(p.delivered(), 5);
    p.restart_a(40);
    for i in 0..5 {
        p.a.submit(p.now, &id("b"), format!("after {i}").as_bytes()).unwrap();
    }
    let replayer = addr("10.6.6.6:6666");
    let mut capture: Option<Vec<u8>> = None;
    let mut buf = vec![0u8; 2048];
    let mut delivered = 0;
    let start = p.now;
    while p.now < start + Duration::from_secs(10) && delivered < 5 {
        if let Some(d) = &capture {
            p.b.handle_datagram(p.now, replayer, d);
        }
        while let Some((_, len)) = p.a.poll_transmit(p.now, &mut buf) {
            if capture.is_none() {
                // The replayer gets the first datagram in ahead of the genuine one.
                capture = Some(buf[..len].to_vec());
                p.b.handle_datagram(p.now, replayer, &buf[..len]);
            }
            p.b.handle_datagram(p.now, p.a_addr, &buf[..len]);
        }
        while let Some((to, len)) = p.b.poll_transmit(p.now, &mut buf) {
            if to == p.a_addr {
                p.a.handle_datagram(p.now, p.b_addr, &buf[..len]);
            }
        }
        delivered += p.delivered();
        p.now += Duration::from_millis(1);
        p.a.handle_timeout(p.now);
        p.b.handle_timeout(p.now);
    }
    assert_eq!(delivered, 5, "{:?}", p.b.stats());
    assert!(
        p.now < start + Duration::from_secs(2),
        "let in after {:?}",
        p.now.saturating_since(start)
    );
    assert_eq!(p.b.stats().epoch_probes_proven, 1);
    assert_eq!(p.b.peer_addr(&id("a")), Some(p.a_addr));
}

/// `sealed`, with its exactly-once clock starting at `clock`.
fn sealed_at_clock(name: &str, epoch: u64, clock: u64) -> Node {
    let mut n = Node::new(id(name), NodeConfig { initial_clock: clock, ..NodeConfig::default() });
    n.set_path_secret([name.as_bytes()[0]; 32]);
    n.set_seal(SealConfig { psk: Psk::new(KEY), epoch, aead: Aead::Aes256Gcm });
    n
}

#[test]
fn a_sealed_receiver_whose_clock_went_far_back_resumes() {
    // b's first start took its clock from the wall clock (2^51); its second had none and
    // started at 2^22, more than the 2^40 a plaintext record may move a clock. Sealed, its
    // peer's tokens are authentic, so b jumps back above its first start's incarnation and
    // the stream resumes; a plaintext node stays behind (documented in `eo`, "Restarts").
    let mut p = Pair::new(Some(KEY), Some(KEY));
    p.b = sealed_at_clock("b", 200, 1 << 51);
    p.send(100);
    assert_eq!(p.delivered(), 100);
    p.b = sealed_at_clock("b", 300, 1 << 22);
    p.send(100);
    assert_eq!(p.delivered(), 100, "a: {:?}\nb: {:?}", p.a.stats(), p.b.stats());
    assert_eq!(p.a.unacknowledged(), 0);
    assert!(p.b.clock() > 1 << 51, "b's clock {}", p.b.clock());
}
