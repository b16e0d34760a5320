//! GHASH, the hash that authenticates AES-GCM, keyed once per cipher: carry-less
//! multiplication on x86-64 processors that have it ([`x86`]), RustCrypto's `ghash`
//! elsewhere.

#[cfg(target_arch = "x86_64")]
mod x86;

use ghash::GHash;
use ghash::universal_hash::UniversalHash;

/// A GHASH key and the implementation this processor runs fastest.
// Boxing the wide powers would need a heap, which this module does without; a key lives in a
// `Cipher`, itself in the node's boxed per-peer state.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum GhashKey {
    /// VPCLMULQDQ (AVX-512), 16 blocks at a time.
    #[cfg(target_arch = "x86_64")]
    Wide(x86::Wide),
    /// PCLMULQDQ, 8 blocks at a time.
    #[cfg(target_arch = "x86_64")]
    Narrow(x86::Narrow),
    /// RustCrypto's `ghash` (which has its own intrinsics on some processors).
    Portable(GHash),
}

/// Which implementations [`GhashKey::with`] may pick (tests compare them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Implementation {
    /// The fastest this processor has.
    Fastest,
    /// PCLMULQDQ at most.
    #[cfg_attr(not(test), allow(dead_code))]
    Narrow,
    /// RustCrypto's `ghash`.
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
}

impl GhashKey {
    /// The key `h` (AES_K(0¹²⁸)) with the fastest implementation allowed by `limit` that the processor has.
    pub(crate) fn with(h: &[u8; 16], limit: Implementation) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if limit == Implementation::Fastest
                && let Some(wide) = x86::Wide::new(h)
            {
                return GhashKey::Wide(wide);
            }
            if limit != Implementation::Portable
                && let Some(narrow) = x86::Narrow::new(h)
            {
                return GhashKey::Narrow(narrow);
            }
        }
        let _ = limit;
        GhashKey::Portable(GHash::new(h.into()))
    }

    /// GHASH(H, A, C) of GCM: `aad` and `text`, each zero-padded to whole blocks, then the
    /// block of their lengths in bits.
    pub(crate) fn mac(&self, aad: &[u8], text: &[u8]) -> [u8; 16] {
        match self {
            #[cfg(target_arch = "x86_64")]
            GhashKey::Wide(key) => key.mac(aad, text),
            #[cfg(target_arch = "x86_64")]
            GhashKey::Narrow(key) => key.mac(aad, text),
            GhashKey::Portable(key) => {
                let mut hash = key.clone();
                hash.update_padded(aad);
                hash.update_padded(text);
                let mut lengths = [0u8; 16];
                lengths[..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
                lengths[8..].copy_from_slice(&((text.len() as u64) * 8).to_be_bytes());
                hash.update(&[lengths.into()]);
                hash.finalize().into()
            }
        }
    }

    /// The implementation in use (for tests and diagnostics).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn name(&self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            GhashKey::Wide(_) => "vpclmulqdq",
            #[cfg(target_arch = "x86_64")]
            GhashKey::Narrow(_) => "pclmulqdq",
            GhashKey::Portable(_) => "portable",
        }
    }
}
