//! AES-256-GCM checked three ways: against NIST's test cases, against the `aes-gcm` crate,
//! and against a bit-serial reference written from SP 800-38D (no POLYVAL, no carry-less
//! multiplication: `aes-gcm`'s GHASH uses the same R/F multiplication as ours on x86-64, so
//! only this reference checks that method independently), with every GHASH implementation.

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
        if std::is_x86_feature_detected!("vpclmulqdq") && std::is_x86_feature_detected!("avx512bw")
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
            let aad = &data[..len % 301];
            let mut ours = data[..len].to_vec();
            let mut theirs = ours.clone();
            let tag = gcm.encrypt(&nonce, aad, (&mut ours[..]).into()).expect("seals");
            let want = reference
                .encrypt_inout_detached(&nonce.into(), aad, (&mut theirs[..]).into())
                .expect("seals");
            assert_eq!((ours.as_slice(), &tag[..]), (theirs.as_slice(), &want[..]), "len {len}");
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
        aad in proptest::collection::vec(any::<u8>(), 0..400),
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

// ---- A bit-serial reference (from a review) ----------------------------------------------

fn gf_mul(x: u128, y: u128) -> u128 {
    let r: u128 = 0xE1 << 120;
    let (mut z, mut v) = (0u128, y);
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 1 { (v >> 1) ^ r } else { v >> 1 };
    }
    z
}

fn ghash_ref(h: u128, aad: &[u8], c: &[u8]) -> u128 {
    let mut y = 0u128;
    for part in [aad, c] {
        for chunk in part.chunks(16) {
            let mut b = [0u8; 16];
            b[..chunk.len()].copy_from_slice(chunk);
            y = gf_mul(y ^ u128::from_be_bytes(b), h);
        }
    }
    let l = ((aad.len() as u128 * 8) << 64) | (c.len() as u128 * 8);
    gf_mul(y ^ l, h)
}

fn aes_block(aes: &Aes256, b: u128) -> u128 {
    let mut blk = Array::from(b.to_be_bytes());
    aes.encrypt_block(&mut blk);
    u128::from_be_bytes(blk.into())
}

/// SP 800-38D, 96-bit IV: returns (C, T).
fn gcm_ref(key: &[u8; 32], iv: &[u8; 12], aad: &[u8], p: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let aes = Aes256::new(key.into());
    let h = aes_block(&aes, 0);
    let mut j0b = [0u8; 16];
    j0b[..12].copy_from_slice(iv);
    j0b[15] = 1;
    let j0 = u128::from_be_bytes(j0b);
    let inc = |x: u128| (x & !0xffff_ffffu128) | ((x as u32).wrapping_add(1) as u128);
    let mut cb = inc(j0);
    let mut c = Vec::with_capacity(p.len());
    for chunk in p.chunks(16) {
        let ks = aes_block(&aes, cb).to_be_bytes();
        c.extend(chunk.iter().zip(ks).map(|(a, b)| a ^ b));
        cb = inc(cb);
    }
    let t = ghash_ref(h, aad, &c) ^ aes_block(&aes, j0);
    (c, t.to_be_bytes())
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, b: &mut [u8]) {
        for x in b {
            *x = self.next() as u8;
        }
    }
}

fn check(gcm: &AesGcm, key: &[u8; 32], iv: &[u8; 12], aad: &[u8], p: &[u8], what: &str) {
    let (want_c, want_t) = gcm_ref(key, iv, aad, p);
    let mut buf = p.to_vec();
    let tag = gcm.encrypt(iv, aad, (&mut buf[..]).into()).expect("seals");
    assert!(
        buf == want_c,
        "ciphertext {what} {} aad {} p {}",
        gcm.ghash_implementation(),
        aad.len(),
        p.len()
    );
    assert_eq!(
        tag,
        want_t,
        "tag {what} {} aad {} p {}",
        gcm.ghash_implementation(),
        aad.len(),
        p.len()
    );
    assert_eq!(gcm.decrypt(iv, aad, (&mut buf[..]).into(), &tag), Ok(()));
    assert!(buf == p);
}

#[test]
fn nist_vectors_13_to_15() {
    let z = [0u8; 32];
    for i in implementations() {
        let g = AesGcm::with(&z, i);
        let mut e: [u8; 0] = [];
        assert_eq!(
            g.encrypt(&[0; 12], &[], (&mut e[..]).into()).unwrap(),
            hex::<16>("530f8afbc74536b9a963b4f1c4cb738b")
        );
        let mut b = [0u8; 16];
        assert_eq!(
            g.encrypt(&[0; 12], &[], (&mut b[..]).into()).unwrap(),
            hex::<16>("d0d1c8a799996bf0265b98b5d48ab919")
        );
        assert_eq!(b, hex::<16>("cea7403d4d606b6e074ec5d3baf39d18"));
        let k = hex::<32>("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let g = AesGcm::with(&k, i);
        let mut p = hex::<64>(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        );
        let t =
            g.encrypt(&hex::<12>("cafebabefacedbaddecaf888"), &[], (&mut p[..]).into()).unwrap();
        assert_eq!(t, hex::<16>("b094dac5d93471bdec1a502270e3cc6c"));
        assert_eq!(
            p,
            hex::<64>(
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
            )
        );
    }
}

#[test]
fn reference_matches_nist_16() {
    let k = hex::<32>("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    let p = hex::<60>(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    );
    let a = hex::<20>("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let (_, t) = gcm_ref(&k, &hex("cafebabefacedbaddecaf888"), &a, &p);
    assert_eq!(t, hex::<16>("76fc6ece0f4e1768cddf8853bb2d551b"));
}

#[test]
fn boundary_lengths_many_keys_vs_bitwise_reference() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let lens = [
        0usize, 1, 15, 16, 17, 31, 32, 63, 64, 112, 127, 128, 129, 143, 144, 240, 255, 256, 257,
        271, 272, 383, 384, 511, 512, 513, 767, 768, 1023, 1024, 1025, 4096, 4097, 65535, 65536,
    ];
    let aad_lens = [0usize, 1, 13, 16, 17, 128, 129, 255, 256, 257, 300, 1000];
    let mut data = std::vec![0u8; 65536];
    let mut aad = std::vec![0u8; 1000];
    for round in 0..24 {
        let mut key = [0u8; 32];
        rng.fill(&mut key);
        let mut iv = [0u8; 12];
        rng.fill(&mut iv);
        rng.fill(&mut data);
        rng.fill(&mut aad);
        for i in implementations() {
            let g = AesGcm::with(&key, i);
            for (n, &pl) in lens.iter().enumerate() {
                if pl > 8192 && round % 6 != 0 {
                    continue;
                } // keep it quick
                let al = aad_lens[(n + round) % aad_lens.len()];
                check(&g, &key, &iv, &aad[..al], &data[..pl], "lens");
            }
        }
    }
}

#[test]
fn counter_wrap_nonce_and_all_ones_data() {
    // Low 32 bits of J0 cannot wrap with 96-bit nonces in practice, but all-0xff inputs
    // exercise every lane bit of the multiplications.
    let key = [0xffu8; 32];
    let iv = [0xffu8; 12];
    let d = std::vec![0xffu8; 5000];
    for i in implementations() {
        let g = AesGcm::with(&key, i);
        for pl in [0, 16, 256, 4096, 5000] {
            for al in [0, 16, 256, 1000] {
                check(&g, &key, &iv, &d[..al.min(d.len())], &d[..pl], "ones");
            }
        }
    }
}
