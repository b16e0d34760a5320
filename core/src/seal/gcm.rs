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
use zeroize::Zeroize;

use super::ghash::{GhashKey, Implementation};

/// Bytes of a GCM nonce here.
pub const NONCE_LEN: usize = 12;
/// Bytes of a tag.
pub const TAG_LEN: usize = 16;
/// The most bytes GCM encrypts under one nonce (2^39 − 256 bits).
const TEXT_MAX: u64 = (1 << 36) - 32;

/// An AES-256-GCM key, expanded: AES round keys and the GHASH key's powers (both wiped when
/// dropped).
#[derive(Clone)]
pub struct AesGcm {
    aes: Aes256,
    ghash: GhashKey,
}

/// The AEAD refused: a tag did not match, or a text was longer than GCM allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcmError;

impl AesGcm {
    /// The cipher under `key`, with the fastest GHASH this processor runs.
    pub fn new(key: &[u8; 32]) -> Self {
        Self::with(key, Implementation::Fastest)
    }

    pub(crate) fn with(key: &[u8; 32], ghash: Implementation) -> Self {
        let aes = Aes256::new(key.into());
        let mut h = Array::<u8, _>::default();
        aes.encrypt_block(&mut h);
        let mut h_bytes: [u8; 16] = h.into();
        let ghash = GhashKey::with(&h_bytes, ghash);
        h_bytes.zeroize();
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
    pub fn encrypt(
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
    pub fn decrypt(
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
        let expected = self.tag(&mask, aad, buf.get_in());
        mask.zeroize();
        if bool::from(expected.ct_eq(tag)) {
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
mod tests {
    extern crate std;

    use super::*;
    use aes_gcm::aead::AeadInOut;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn implementations() -> [Implementation; 3] {
        [Implementation::Fastest, Implementation::Narrow, Implementation::Portable]
    }

    /// NIST's GCM test case 16 (AES-256, 96-bit IV, with associated data), from the GCM
    /// specification's appendix B.
    #[test]
    fn nist_test_case_16() {
        let key: [u8; 32] = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let nonce: [u8; 12] = hex("cafebabefacedbaddecaf888");
        let aad: [u8; 20] = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let plain: [u8; 60] = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let cipher: [u8; 60] = hex(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        );
        let tag: [u8; 16] = hex("76fc6ece0f4e1768cddf8853bb2d551b");
        for implementation in implementations() {
            let gcm = AesGcm::with(&key, implementation);
            let mut buf = plain;
            assert_eq!(gcm.encrypt(&nonce, &aad, (&mut buf[..]).into()), Ok(tag));
            assert_eq!(buf, cipher);
            assert_eq!(gcm.decrypt(&nonce, &aad, (&mut buf[..]).into(), &tag), Ok(()));
            assert_eq!(buf, plain);
        }
    }

    #[test]
    fn the_fastest_implementation_is_used() {
        let name = AesGcm::new(&[7; 32]).ghash_implementation();
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("vpclmulqdq")
                && std::is_x86_feature_detected!("avx512bw")
            {
                assert_eq!(name, "vpclmulqdq");
            } else if std::is_x86_feature_detected!("pclmulqdq") {
                assert_eq!(name, "pclmulqdq");
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(name, "portable");
    }

    #[test]
    fn every_length_up_to_a_few_chunks_matches_aes_gcm() {
        let key = [0x42; 32];
        let reference = aes_gcm::Aes256Gcm::new(&key.into());
        let nonce = [9u8; 12];
        let data: Vec<u8> = (0..700u32).map(|i| (i * 31 + 7) as u8).collect();
        for implementation in implementations() {
            let gcm = AesGcm::with(&key, implementation);
            for len in 0..data.len() {
                let aad = &data[..len % 37];
                let mut ours = data[..len].to_vec();
                let mut theirs = ours.clone();
                let tag = gcm.encrypt(&nonce, aad, (&mut ours[..]).into()).expect("seals");
                let want = reference
                    .encrypt_inout_detached(&nonce.into(), aad, (&mut theirs[..]).into())
                    .expect("seals");
                assert_eq!(
                    (ours.as_slice(), &tag[..]),
                    (theirs.as_slice(), &want[..]),
                    "len {len}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Same ciphertext and tag as `aes-gcm` for any key, nonce, header and text, with
        /// every implementation; what one seals the other opens; any flipped bit is refused.
        #[test]
        fn matches_aes_gcm(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 12]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..80),
            text in proptest::collection::vec(any::<u8>(), 0..5000),
            flip in any::<proptest::sample::Index>(),
        ) {
            let reference = aes_gcm::Aes256Gcm::new(&key.into());
            let mut theirs = text.clone();
            let want = reference
                .encrypt_inout_detached(&nonce.into(), &aad, (&mut theirs[..]).into())
                .expect("seals");
            for implementation in implementations() {
                let gcm = AesGcm::with(&key, implementation);
                let mut ours = text.clone();
                let tag = gcm.encrypt(&nonce, &aad, (&mut ours[..]).into()).expect("seals");
                prop_assert_eq!(&ours, &theirs);
                prop_assert_eq!(&tag[..], &want[..]);
                let mut opened = std::vec![0u8; ours.len()];
                let io = InOutBuf::new(&ours, &mut opened).expect("same lengths");
                prop_assert_eq!(gcm.decrypt(&nonce, &aad, io, &tag), Ok(()));
                prop_assert_eq!(&opened, &text);
                let mut sealed = theirs.clone();
                sealed.extend_from_slice(&tag);
                let bit = flip.index(sealed.len() * 8);
                sealed[bit / 8] ^= 1 << (bit % 8);
                let (body, tag) = sealed.split_at_mut(theirs.len());
                let tag: [u8; 16] = (&*tag).try_into().expect("16 bytes");
                let before = body.to_vec();
                prop_assert_eq!(gcm.decrypt(&nonce, &aad, body.into(), &tag), Err(GcmError));
                prop_assert_eq!(&body[..], &before[..], "a refused datagram is left as it was");
            }
        }
    }

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }
}
