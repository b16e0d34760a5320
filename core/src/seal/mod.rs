//! Sealing datagrams: pre-shared-key authenticated encryption and replay protection.
//!
//! A node given a [`SealConfig`] (see [`crate::node::Node::set_seal`]) seals every datagram
//! it sends and opens every datagram it receives before anything else looks at it: the
//! records are encrypted and the header is authenticated with an AEAD (ChaCha20-Poly1305,
//! or AES-256-GCM where the processor has AES instructions), under a key derived with
//! HKDF-SHA256 from the pre-shared key, the sender's epoch and both node ids. The byte
//! layout is in [`crate::wire`] ([Sealed datagrams](crate::wire#sealed-datagrams)).
//!
//! * **Nonces** are a per-sender counter (one sequence for all its peers) under a key that
//!   includes the sender's *epoch*, a number chosen at every start and growing from one start
//!   to the next: no key sees a counter twice, across restarts too.
//! * **Replays**: a receiver keeps the newest authenticated epoch of each peer and a
//!   [`ReplayWindow`] over its counters; an older epoch, a counter seen already or one too
//!   far behind is dropped and counted. The window is checked before the AEAD and committed
//!   only after it, so a forgery changes nothing.
//! * **Replays across the receiver's restarts**: those windows are in memory, so a receiver
//!   that restarts has none. Every sealed datagram therefore also names the epoch of its
//!   *destination*: the newest one the sender authenticated from it (its `dst_epoch`), and
//!   the AEAD covers that field like the rest of the header. A receiver drops, before opening
//!   it (`NodeStats::stale_dst_epoch`), a datagram whose `dst_epoch` is not 0 and not its own
//!   epoch: it was sealed for another start of the receiver, and may be a capture replayed
//!   into this one. A forger cannot move a datagram to another `dst_epoch` (the tag would
//!   fail), so this cannot cut a receiver off from genuine traffic.
//!
//!   A sender switches at once: the first datagram it authenticates from a new epoch of the
//!   peer makes every datagram it seals for that peer from then on (path challenges
//!   included) carry that epoch. A sender that does not restart would otherwise keep naming
//!   the receiver's previous start; so a receiver that drops a datagram for its `dst_epoch`,
//!   if the datagram authenticates, answers it with a sealed datagram (one `SEAL_MISMATCH`
//!   record of reason [`crate::wire::SEAL_MISMATCH_STALE_EPOCH`]) that carries its current
//!   epoch; the sender adopts it and its next retransmission gets through. Those answers
//!   are rate-limited (64 at once, 100 a second per node), never answer an answer, and
//!   answer a sender (per epoch of it) only above the highest counter answered before: a
//!   replayed capture gets one answer at most, and none once the genuine sender, whose
//!   counter is above every capture of its past, was answered. So replays cannot keep the
//!   budget from the genuine sender (a replayer would need captures from more than 32
//!   different sender starts to wear that memory out), and they never make the receiver
//!   accept anything.
//!
//!   **Residual exposure.** `dst_epoch` 0 means "not known yet", and such datagrams are
//!   accepted by every epoch of the receiver. A sender seals with 0 towards a peer only while
//!   it knows no epoch of it: from its own start (or `Node::set_seal`) until it authenticates
//!   the peer's first datagram, that is during its first round trip with the peer, and again
//!   if it dropped the peer's entry from its table (only an idle entry is dropped). A datagram
//!   sealed with 0 and captured can be replayed into any *later* start of the receiver and is
//!   accepted there once (that start's replay window then has it), unless that start has
//!   already authenticated a newer epoch of the sender (then it is a stale epoch), or this
//!   counter of the same epoch. Such a datagram carries the opening of a session: slot
//!   requests, statuses and announcements, path challenges and responses. It carries no
//!   token: a sender gets slots only in a sealed grant from the receiver, which tells it the
//!   receiver's epoch (and a token is bound to an incarnation of the receiver's previous
//!   start, which a new start never granted: the exactly-once layer would not deliver it). So
//!   the replay delivers nothing; it can make the new start take a peer slot for the sender,
//!   at the replayer's address if it knew none (first contact), create a receive record and
//!   send its grants there, sealed, until the sender's own traffic proves its real address
//!   by a path challenge. An epoch of 0 in [`SealConfig`] would disable the check for that
//!   node altogether: use epochs above 0.
//! * **A clock that went back.** An epoch below the newest authenticated from a peer (or
//!   between the one the node talks to and the highest it ever authenticated) is refused
//!   unopened while the peer is heard from at its known epoch. But a start whose wall clock
//!   went back (a board without a battery-backed clock, before NTP answers) has such an
//!   epoch too, and would be locked out. So once the peer has been silent for 250 ms, an
//!   authentic datagram of a stale epoch makes the node challenge that epoch: a
//!   `PATH_CHALLENGE` sealed with that epoch as its destination epoch, sent where the
//!   newest datagram of that epoch came from (5 attempts over 1.5 s; new probes
//!   rate-limited per node like the answers above). Only a live start at that epoch can open it and seal the
//!   `PATH_RESPONSE`; when that comes back, the node adopts the epoch, with a replay window
//!   that refuses everything sealed before the response. A replayer's captures can start a
//!   probe but never answer one (`NodeStats::epoch_probes_sent`, `epoch_probes_proven`).
//!   Peers find a node whose clock went back within one round trip after that silence, in
//!   both directions: a sender it refuses gets its sealed epoch notice, which starts the
//!   sender's own probe.
//! * **Rotation**: [`crate::node::Node::rotate_psk`] makes a new key the one datagrams are
//!   sealed with, and keeps the old one accepted for a grace period; each datagram names its
//!   key by a one-byte id taken from a hash of the key.
//! * Keys are wiped from memory when dropped ([`zeroize`]).
//! * **AES-256-GCM** is [`AesGcm`], composed here from RustCrypto's AES and CTR with a GHASH
//!   that uses carry-less multiplication on x86-64 (PCLMULQDQ, or VPCLMULQDQ with AVX-512):
//!   the same bytes as the `aes-gcm` crate (the tests compare them), at twice its speed on
//!   the machines we measure on; RustCrypto's `ghash` elsewhere.
//!
//! Everything here is `no_std` and needs no heap: the AEADs work in place over the caller's
//! buffer.

mod gcm;
mod ghash;
mod window;

use core::fmt;

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::aead::{self, AeadInOut, KeyInit};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub use gcm::AesGcm;
pub use window::{ReplayWindow, Verdict, WINDOW};

use crate::wire::SEAL_TAG_LEN;

/// Bytes of a pre-shared key.
pub const PSK_LEN: usize = 32;

/// HKDF salt of the sealing keys.
const SALT: &[u8] = b"a3m seal v1";
/// First part of the HKDF info of the sealing keys.
const INFO: &[u8] = b"a3m v1";

/// A 32-byte pre-shared key. Its `Debug` shows only its id; it is wiped when dropped.
#[derive(Clone)]
pub struct Psk([u8; PSK_LEN]);

impl Drop for Psk {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Psk {}

impl Psk {
    /// The key made of these bytes (use 32 random bytes).
    pub fn new(bytes: [u8; PSK_LEN]) -> Self {
        Self(bytes)
    }

    /// The key's one-byte id on the wire: the first byte of SHA-256(`"a3m psk id"` ‖ key).
    pub fn id(&self) -> u8 {
        let mut h = Sha256::new();
        h.update(b"a3m psk id");
        h.update(self.0);
        h.finalize()[0]
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Psk(id {:#04x}, redacted)", self.id())
    }
}

/// An AEAD algorithm a datagram can be sealed with; its id is in every sealed datagram, so
/// each sender picks its own and receivers open either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aead {
    /// ChaCha20-Poly1305 (RFC 8439): fast everywhere, constant time in software. Id 1.
    ChaCha20Poly1305,
    /// AES-256-GCM: faster where the processor has AES and carry-less multiply instructions
    /// (x86-64 AES-NI + PCLMULQDQ, ARMv8 crypto extensions). Id 2.
    Aes256Gcm,
}

impl Aead {
    /// The algorithm's id on the wire.
    pub fn id(self) -> u8 {
        match self {
            Aead::ChaCha20Poly1305 => 1,
            Aead::Aes256Gcm => 2,
        }
    }

    /// The algorithm with wire id `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Aead::ChaCha20Poly1305),
            2 => Some(Aead::Aes256Gcm),
            _ => None,
        }
    }
}

/// What a node seals with: its key, its epoch and its algorithm.
#[derive(Debug, Clone)]
pub struct SealConfig {
    /// The pre-shared key, the same on every node of the system.
    pub psk: Psk,
    /// This start's epoch: should grow from one start of the node to the next, and must be
    /// above 0 (0 means "unknown" in a datagram's destination epoch; the std adapters take
    /// the wall clock in microseconds). Peers refuse datagrams of an epoch older than the
    /// newest they authenticated from this node, until a challenge proves that epoch live (a
    /// clock that went back; see the module docs); this node refuses datagrams that peers
    /// sealed for another of its epochs.
    pub epoch: u64,
    /// The algorithm this node seals with.
    pub aead: Aead,
}

/// Why a datagram could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// The tag does not match: forged, altered, or sealed under another key.
    BadTag,
    /// The buffer is too short for the tag.
    BufferTooSmall,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::BadTag => f.write_str("authentication failed"),
            SealError::BufferTooSmall => f.write_str("buffer too small for the tag"),
        }
    }
}

/// The HKDF pseudo-random key of one pre-shared key (the extract step done once), and the
/// key's wire id.
#[derive(Clone)]
pub struct KeySchedule {
    prk: Zeroizing<[u8; 32]>,
    id: u8,
}

impl fmt::Debug for KeySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySchedule(id {:#04x}, redacted)", self.id)
    }
}

impl KeySchedule {
    /// Runs HKDF's extract step over `psk`.
    pub fn new(psk: &Psk) -> Self {
        let (prk, _) = Hkdf::<Sha256>::extract(Some(SALT), &psk.0);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&prk);
        Self { prk: out, id: psk.id() }
    }

    /// The key's wire id.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The cipher for datagrams from `src` (in its epoch `epoch`) to `dst`.
    pub fn cipher(&self, aead: Aead, epoch: u64, src: &str, dst: &str) -> Cipher {
        let mut key = Zeroizing::new([0u8; 32]);
        // The PRK is 32 bytes, a valid length for SHA-256, and 32 bytes of output are far
        // below HKDF's limit: neither call can fail.
        if let Ok(hk) = Hkdf::<Sha256>::from_prk(&self.prk[..]) {
            let _ = hk.expand_multi_info(
                &[
                    INFO,
                    &[aead.id(), self.id],
                    &epoch.to_be_bytes(),
                    &[src.len() as u8],
                    src.as_bytes(),
                    &[dst.len() as u8],
                    dst.as_bytes(),
                ],
                &mut key[..],
            );
        }
        Cipher::new(aead, &key)
    }
}

/// An AEAD keyed for one direction between two nodes.
// AES-256-GCM's expanded keys make its variant large; boxing needs a heap, which this
// module does without (the node keeps its ciphers in a boxed per-peer state anyway).
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Cipher {
    /// ChaCha20-Poly1305.
    ChaCha(ChaCha20Poly1305),
    /// AES-256-GCM.
    Aes(AesGcm),
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cipher({:?}, redacted)", self.aead())
    }
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

impl Cipher {
    /// The cipher of algorithm `aead` under `key`.
    pub fn new(aead: Aead, key: &[u8; 32]) -> Self {
        match aead {
            Aead::ChaCha20Poly1305 => Cipher::ChaCha(ChaCha20Poly1305::new(key.into())),
            Aead::Aes256Gcm => Cipher::Aes(AesGcm::new(key)),
        }
    }

    /// The algorithm.
    pub fn aead(&self) -> Aead {
        match self {
            Cipher::ChaCha(_) => Aead::ChaCha20Poly1305,
            Cipher::Aes(_) => Aead::Aes256Gcm,
        }
    }

    /// Encrypts `buf[aad_len..len]` in place, authenticating `buf[..aad_len]` with it, and
    /// writes the tag at `buf[len..len + 16]`. Returns the sealed length, `len + 16`.
    pub fn seal(
        &self,
        counter: u64,
        buf: &mut [u8],
        aad_len: usize,
        len: usize,
    ) -> Result<usize, SealError> {
        let total = len.checked_add(SEAL_TAG_LEN).ok_or(SealError::BufferTooSmall)?;
        if aad_len > len || total > buf.len() {
            return Err(SealError::BufferTooSmall);
        }
        let (aad, rest) = buf.split_at_mut(aad_len);
        let (body, tail) = rest.split_at_mut(len - aad_len);
        let nonce = nonce(counter);
        let tag: [u8; SEAL_TAG_LEN] = match self {
            Cipher::ChaCha(c) => {
                c.encrypt_inout_detached(&nonce.into(), aad, body.into()).map(Into::into)
            }
            Cipher::Aes(c) => c.encrypt(&nonce, aad, body.into()).map_err(|_| aead::Error),
        }
        .map_err(|_| SealError::BufferTooSmall)?;
        tail[..SEAL_TAG_LEN].copy_from_slice(&tag);
        Ok(total)
    }

    /// Checks `tag` over `aad` and `ciphertext`, decrypting it into `out` (as long) on the
    /// way: no copy of the input first. On failure `out` holds garbage: drop it.
    pub fn open_into(
        &self,
        counter: u64,
        aad: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
        tag: &[u8; SEAL_TAG_LEN],
    ) -> Result<(), SealError> {
        let buf = InOutBuf::new(ciphertext, out).map_err(|_| SealError::BufferTooSmall)?;
        let nonce = nonce(counter);
        match self {
            Cipher::ChaCha(c) => c.decrypt_inout_detached(&nonce.into(), aad, buf, tag.into()),
            Cipher::Aes(c) => c.decrypt(&nonce, aad, buf, tag).map_err(|_| aead::Error),
        }
        .map_err(|_| SealError::BadTag)
    }

    /// Checks `tag` over `aad` and the ciphertext in `body`, and decrypts `body` in place.
    /// On failure `body` holds garbage: the caller must drop it.
    pub fn open(
        &self,
        counter: u64,
        aad: &[u8],
        body: &mut [u8],
        tag: &[u8; SEAL_TAG_LEN],
    ) -> Result<(), SealError> {
        let nonce = nonce(counter);
        match self {
            Cipher::ChaCha(c) => {
                c.decrypt_inout_detached(&nonce.into(), aad, body.into(), tag.into())
            }
            Cipher::Aes(c) => c.decrypt(&nonce, aad, body.into(), tag).map_err(|_| aead::Error),
        }
        .map_err(|_| SealError::BadTag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psk(b: u8) -> Psk {
        Psk::new([b; 32])
    }

    #[test]
    fn seal_then_open_round_trips_and_any_flip_fails() {
        for aead in [Aead::ChaCha20Poly1305, Aead::Aes256Gcm] {
            let ks = KeySchedule::new(&psk(7));
            let tx = ks.cipher(aead, 9, "a", "b");
            let mut buf = [0u8; 64];
            buf[..10].copy_from_slice(b"header....");
            buf[10..20].copy_from_slice(b"plaintext!");
            let n = tx.seal(42, &mut buf, 10, 20).unwrap();
            assert_eq!(n, 36);
            assert_ne!(&buf[10..20], b"plaintext!");
            let rx = ks.cipher(aead, 9, "a", "b");
            for bit in 0..n * 8 {
                let mut copy = buf;
                copy[bit / 8] ^= 1 << (bit % 8);
                let (aad, rest) = copy.split_at_mut(10);
                let tag: [u8; 16] = rest[10..26].try_into().unwrap();
                assert_eq!(rx.open(42, aad, &mut rest[..10], &tag), Err(SealError::BadTag));
            }
            let (aad, rest) = buf.split_at_mut(10);
            let tag: [u8; 16] = rest[10..26].try_into().unwrap();
            // Wrong counter, wrong direction, wrong epoch, wrong key: all fail.
            let mut body = [0u8; 10];
            body.copy_from_slice(&rest[..10]);
            assert!(rx.open(43, aad, &mut body.clone(), &tag).is_err());
            for other in [
                ks.cipher(aead, 9, "b", "a"),
                ks.cipher(aead, 10, "a", "b"),
                KeySchedule::new(&psk(8)).cipher(aead, 9, "a", "b"),
            ] {
                assert!(other.open(42, aad, &mut body.clone(), &tag).is_err());
            }
            rx.open(42, aad, &mut rest[..10], &tag).unwrap();
            assert_eq!(&rest[..10], b"plaintext!");
        }
    }

    #[test]
    fn key_ids_and_debug_do_not_show_the_key() {
        let k = psk(1);
        assert_eq!(k.id(), psk(1).id());
        let shown = alloc_free_debug(&k);
        assert!(shown.contains("redacted"));
    }

    fn alloc_free_debug(k: &Psk) -> heapless::String<64> {
        use core::fmt::Write;
        let mut s = heapless::String::new();
        let _ = write!(s, "{k:?}");
        s
    }
}
