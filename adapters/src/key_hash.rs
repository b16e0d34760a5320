//! A hasher for the runtime's small integer keys.
//!
//! The runtime looks a socket up by its [`SocketKey`](a3m_core::socket::SocketKey) (two
//! `u32`s) on every send and receive; std's SipHash cost about 200 instructions there, a
//! fifth of a send. The keys are handed out by the node itself, not chosen by a peer, so
//! resistance to collision attacks buys nothing; this is the multiply-rotate hash of
//! rustc's `FxHasher`.

use core::hash::{BuildHasherDefault, Hasher};
use std::collections::HashMap;

/// A `HashMap` keyed by values the node itself hands out.
pub(crate) type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// FxHash: mixes each word in with a rotate, an xor and a multiply.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl KeyHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keys_hash_apart_and_maps_work() {
        let hash = |a: u32, b: u32| {
            let mut h = KeyHasher::default();
            h.write_u32(a);
            h.write_u32(b);
            h.finish()
        };
        assert_ne!(hash(1, 0), hash(0, 1));
        assert_ne!(hash(1, 2), hash(1, 3));
        let mut map: KeyMap<(u32, u32), u32> = KeyMap::default();
        for i in 0..1000 {
            map.insert((i, i / 7), i);
        }
        assert!((0..1000).all(|i| map[&(i, i / 7)] == i));
    }

    #[test]
    fn byte_writes_cover_every_byte() {
        let hash = |bytes: &[u8]| {
            let mut h = KeyHasher::default();
            h.write(bytes);
            h.finish()
        };
        assert_ne!(hash(b"0123456789"), hash(b"0123456788"));
        assert_ne!(hash(b"abc"), hash(b"abd"));
    }
}
