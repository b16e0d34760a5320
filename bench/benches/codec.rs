//! The wire codec's hot paths: encoding and decoding a full datagram of `TOKEN` records
//! (1400 B, the default path MTU budget, and 64 KiB, the largest UDP payload), and decoding
//! one DATA socket message, as every delivered token needs.

use std::hint::black_box;
use std::time::Duration;

use a3m_bench::{data_message, fill_tokens};
use a3m_core::wire::{self, MAX_DATAGRAM_LEN, Record, message};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Socket payload carried by each token, in bytes.
const PAYLOAD: usize = 100;

fn datagrams(c: &mut Criterion) {
    let token = data_message(&[b'x'; PAYLOAD], 42);
    for (name, size) in [("1400B", 1400), ("64KiB", MAX_DATAGRAM_LEN)] {
        let mut buf = vec![0u8; size];
        let (len, records) = fill_tokens(&mut buf, &token, 1 << 20).expect("encodes");
        let mut group = c.benchmark_group(format!("datagram_{name}"));
        group.throughput(Throughput::Elements(records as u64));
        group.bench_function("encode", |b| {
            let mut out = vec![0u8; size];
            b.iter(|| fill_tokens(black_box(&mut out), black_box(&token), 1 << 20))
        });
        let bytes = &buf[..len];
        group.bench_function("decode", |b| {
            b.iter(|| {
                let datagram = wire::decode_datagram(black_box(bytes)).expect("decodes");
                // Iterating is part of the receive path: the node visits every record.
                datagram
                    .records()
                    .map(|r| match r {
                        Record::Token(t) => t.payload.len(),
                        _ => 0,
                    })
                    .sum::<usize>()
            })
        });
        group.bench_function("decode_with_messages", |b| {
            b.iter(|| {
                let datagram = wire::decode_datagram(black_box(bytes)).expect("decodes");
                datagram
                    .records()
                    .filter_map(|r| match r {
                        Record::Token(t) => message::decode(t.payload).ok(),
                        _ => None,
                    })
                    .count()
            })
        });
        group.finish();
    }
}

fn messages(c: &mut Criterion) {
    let encoded = data_message(&[b'x'; PAYLOAD], 42);
    let mut group = c.benchmark_group("message");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_data", |b| b.iter(|| message::decode(black_box(&encoded))));
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the whole suite stays within a few minutes on a 2-core machine.
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = datagrams, messages
}
criterion_main!(benches);
