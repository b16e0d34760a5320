//! One message, and a batch of 1000, through two in-process sans-I/O nodes: submit, the
//! sender's `poll_transmit`, the receiver's `handle_datagram` and `poll_delivery`, and the
//! acknowledgement back, until both nodes are quiet. No sockets and no clock reads: this is
//! the protocol's own cost per message.

use std::hint::black_box;
use std::time::Duration;

use a3m_bench::NodePair;
use a3m_core::node::NodeConfig;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Socket payload of each message, in bytes.
const PAYLOAD: usize = 100;

fn transfers(c: &mut Criterion) {
    let payload = [b'x'; PAYLOAD];
    let mut group = c.benchmark_group("two_nodes");
    for (name, config) in [
        ("1400B", NodeConfig::default()),
        ("64KiB", NodeConfig { max_datagram: 65_507, ..NodeConfig::default() }),
    ] {
        let mut pair = NodePair::new(config);
        // The first transfer sets up the session (slot request and grant); time the steady state.
        pair.transfer(&payload, 1);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{name}/one_message"), |b| {
            b.iter(|| pair.transfer(black_box(&payload), 1))
        });
        group.throughput(Throughput::Elements(1000));
        group.bench_function(format!("{name}/batch_1000"), |b| {
            b.iter(|| pair.transfer(black_box(&payload), 1000))
        });
        assert_eq!(pair.unacknowledged(), 0, "every message was acknowledged");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the whole suite stays within a few minutes on a 2-core machine.
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = transfers
}
criterion_main!(benches);
