//! Sealing a datagram: a3m's AES-256-GCM (`a3m_core::seal::Cipher`, with the carry-less
//! multiplication GHASH on x86-64) beside the `aes-gcm` crate it replaced, and
//! ChaCha20-Poly1305, at 1400 B (a path MTU) and 64 KiB (a loopback datagram).
//!
//! `cargo bench -p a3m-bench --bench seal`; throughput in bytes.

use std::hint::black_box;
use std::time::Duration;

use a3m_core::seal::{Aead, Cipher};
use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Bytes of header authenticated with each datagram (about an a3m header and seal prefix).
const AAD: usize = 48;
const TAG: usize = 16;

fn seal(c: &mut Criterion) {
    let key = [7u8; 32];
    for (name, size) in [("1400B", 1400usize), ("64KiB", 65_000)] {
        let mut group = c.benchmark_group(format!("seal_{name}"));
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x5a_u8; size + TAG];
        for (label, aead) in
            [("a3m_aes256gcm", Aead::Aes256Gcm), ("a3m_chacha20poly1305", Aead::ChaCha20Poly1305)]
        {
            let cipher = Cipher::new(aead, &key);
            let mut counter = 0u64;
            group.bench_function(label, |b| {
                b.iter(|| {
                    counter += 1;
                    cipher.seal(counter, black_box(&mut buf), AAD, size).expect("seals")
                })
            });
        }
        let crate_gcm = aes_gcm::Aes256Gcm::new(&key.into());
        group.bench_function("aes_gcm_crate", |b| {
            b.iter(|| {
                let (aad, body) = buf[..size].split_at_mut(AAD);
                crate_gcm
                    .encrypt_inout_detached(&[0u8; 12].into(), aad, black_box(body).into())
                    .expect("seals")
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = seal
}
criterion_main!(benches);
