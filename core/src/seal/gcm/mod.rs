//! AES-256-GCM (NIST SP 800-38D) with 96-bit nonces and 16-byte tags: RustCrypto's AES-256 in
//! counter mode (`aes`, `ctr`) for the encryption, [`super::ghash`] for the authentication.
//!
//! It computes exactly what the `aes-gcm` crate computes (its tests compare the two on random
//! keys, nonces and lengths, with every GHASH implementation); it exists because GHASH was
//! two thirds of that crate's cost on x86-64 (see [`super::ghash`]). The composition follows
//! `aes-gcm` 0.11: J0 = nonce ‖ 1, the keystream from J0 + 1 on, the tag is
//! GHASH(A, C) ⊕ AES(J0), and a tag is checked in constant time before anything is decrypted.

use aes::Aes256;
use aes::cipher::InOutBuf;
use aes::cipher::array::Array;
use aes::cipher::{BlockCipherEncrypt, InnerIvInit, KeyInit, StreamCipherCore};
use ctr::CtrCore;
use ctr::flavors::Ctr32BE;
use ctutils::CtEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::ghash::{GhashKey, Implementation};

/// Bytes of a GCM nonce here.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes of a tag.
pub(crate) const TAG_LEN: usize = 16;
/// The most bytes GCM encrypts under one nonce (2^39 − 256 bits).
const TEXT_MAX: u64 = (1 << 36) - 32;

/// An AES-256-GCM key, expanded: AES round keys and the GHASH key's powers (both wiped when
/// dropped). Datagrams are sealed and opened with it through [`super::Cipher`].
#[derive(Clone)]
pub struct AesGcm {
    aes: Aes256,
    ghash: GhashKey,
}

// Every field wipes itself when dropped (`aes`'s and `ghash`'s zeroize features, and the
// `Drop` of the carry-less multiplication keys).
impl ZeroizeOnDrop for AesGcm {}

/// The AEAD refused: a tag did not match, or a text was longer than GCM allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GcmError;

impl AesGcm {
    /// The cipher under `key`, with the fastest GHASH this processor runs.
    pub fn new(key: &[u8; 32]) -> Self {
        Self::with(key, Implementation::Fastest)
    }

    pub(crate) fn with(key: &[u8; 32], ghash: Implementation) -> Self {
        let aes = Aes256::new(key.into());
        let mut h = Array::<u8, _>::default();
        aes.encrypt_block(&mut h);
        let ghash = GhashKey::with(&h.0, ghash);
        h.zeroize();
        Self { aes, ghash }
    }

    /// The counter at J0 + 1 and the tag mask AES(J0).
    fn counter(&self, nonce: &[u8; NONCE_LEN]) -> (CtrCore<&Aes256, Ctr32BE>, [u8; 16]) {
        let mut j0 = [0u8; 16];
        j0[..NONCE_LEN].copy_from_slice(nonce);
        j0[15] = 1;
        let mut counter = CtrCore::inner_iv_init(&self.aes, &j0.into());
        let mut mask = Array::default();
        counter.write_keystream_block(&mut mask);
        (counter, mask.into())
    }

    fn tag(&self, mask: &[u8; 16], aad: &[u8], ciphertext: &[u8]) -> [u8; TAG_LEN] {
        let mut tag = self.ghash.mac(aad, ciphertext);
        for (t, m) in tag.iter_mut().zip(mask) {
            *t ^= m;
        }
        tag
    }

    /// Encrypts `buf` (from its input to its output, or in place) and returns the tag over
    /// `aad` and the ciphertext.
    pub(crate) fn encrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        mut buf: InOutBuf<'_, '_, u8>,
    ) -> Result<[u8; TAG_LEN], GcmError> {
        if buf.len() as u64 > TEXT_MAX || aad.len() as u64 > TEXT_MAX {
            return Err(GcmError);
        }
        let (counter, mut mask) = self.counter(nonce);
        counter.apply_keystream_partial(buf.reborrow());
        let tag = self.tag(&mask, aad, buf.get_out());
        mask.zeroize();
        Ok(tag)
    }

    /// Checks `tag` over `aad` and the ciphertext in `buf`'s input, then decrypts it to the
    /// output. On a bad tag nothing is written.
    pub(crate) fn decrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: InOutBuf<'_, '_, u8>,
        tag: &[u8; TAG_LEN],
    ) -> Result<(), GcmError> {
        if buf.len() as u64 > TEXT_MAX || aad.len() as u64 > TEXT_MAX {
            return Err(GcmError);
        }
        let (counter, mut mask) = self.counter(nonce);
        let mut expected = self.tag(&mask, aad, buf.get_in());
        mask.zeroize();
        let authentic = bool::from(expected.ct_eq(tag));
        // The tag a forgery should have had: of no use to keep around.
        expected.zeroize();
        if authentic {
            counter.apply_keystream_partial(buf);
            Ok(())
        } else {
            Err(GcmError)
        }
    }

    /// The GHASH implementation in use: `vpclmulqdq`, `pclmulqdq` or `portable`.
    pub fn ghash_implementation(&self) -> &'static str {
        self.ghash.name()
    }
}

#[cfg(test)]
mod tests;
