//! The credit coordinator's hot paths: an uncontended reservation (what every send costs
//! when a credit is free) and a wait/wake round trip between two threads (what a send costs
//! when it has to wait for the receiver's credits).

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use a3m_core::ticket::{CreditCoordinator, CreditWait, Fairness, Target};
use a3m_platform::parker::Parker;
use criterion::{Criterion, criterion_group, criterion_main};

type Coordinator = CreditCoordinator<u16, 8, 32>;

fn uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("credit_uncontended");
    for fairness in [Fairness::FairIsh, Fairness::Unfair] {
        let coordinator = Coordinator::new(fairness);
        for link in 0..4 {
            coordinator.add_link(link, i64::MAX / 8).expect("room for the link");
        }
        let name = format!("{fairness:?}");
        group.bench_function(format!("{name}/reserve_link_acquire"), |b| {
            b.iter(|| {
                let link = coordinator.try_reserve(black_box(Target::Link(2)), false)?;
                coordinator.acquire(link)
            })
        });
        group.bench_function(format!("{name}/reserve_any_acquire"), |b| {
            b.iter(|| {
                let link = coordinator.try_reserve(black_box(Target::Any), false)?;
                coordinator.acquire(link)
            })
        });
        group.bench_function(format!("{name}/blocking_wait_granted_at_once"), |b| {
            let parker = Parker::current();
            b.iter(|| {
                let link = coordinator.wait(Target::Any, CreditWait::forever(), &parker)?;
                coordinator.acquire(link)
            })
        });
    }
    group.finish();
}

/// Ping-pong between two threads over two links with no spare credit: each side waits for
/// a credit of its own link, consumes it and grants one on the other side's link. One
/// iteration is one full round trip, so two sleeps and two wake-ups.
fn wait_wake_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("credit_wait_wake");
    group.bench_function("round_trip", |b| {
        b.iter_custom(|iters| {
            let coordinator = Arc::new(Coordinator::new(Fairness::FairIsh));
            coordinator.add_link(0, 0).expect("room for link 0");
            coordinator.add_link(1, 0).expect("room for link 1");
            let echo = {
                let coordinator = Arc::clone(&coordinator);
                thread::spawn(move || {
                    let parker = Parker::current();
                    for _ in 0..iters {
                        coordinator.wait_for_link(1, CreditWait::forever(), &parker)?;
                        coordinator.acquire(1)?;
                        coordinator.add_credits(0, 1)?;
                    }
                    Ok::<(), a3m_core::ticket::CreditError>(())
                })
            };
            let parker = Parker::current();
            let start = Instant::now();
            for _ in 0..iters {
                coordinator.add_credits(1, 1).expect("link 1 exists");
                coordinator
                    .wait_for_link(0, CreditWait::forever(), &parker)
                    .expect("the echo thread grants a credit");
                coordinator.acquire(0).expect("the wait reserved a credit");
            }
            let elapsed = start.elapsed();
            echo.join().expect("echo thread").expect("echo thread's credit calls");
            elapsed
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the whole suite stays within a few minutes on a 2-core machine.
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = uncontended, wait_wake_round_trip
}
criterion_main!(benches);
