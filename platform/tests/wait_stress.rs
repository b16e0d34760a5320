//! Stress: 8 threads pass tokens round a ring of wait queues, 100 000 rounds each, sleeping
//! on the real thread parker. A lost wake-up leaves a thread asleep next to a token; the
//! watchdog then fails the test with the progress made instead of hanging.

use a3m_core::wait::{WaitError, WaitOptions, WaitQueue, wait_until};
use a3m_platform::parker::{Parker, StdClock};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const THREADS: usize = 8;
const ROUNDS: usize = 100_000;
const TOKENS: usize = 3;
/// Generous: the run takes seconds; this only turns a hang into a failure.
const WATCHDOG: Duration = Duration::from_secs(60);

/// One slot of the ring: tokens waiting for its thread, and the thread's wait queue.
struct Slot {
    tokens: AtomicUsize,
    queue: WaitQueue<1>,
}

impl Slot {
    fn take(&self) -> Option<()> {
        self.tokens.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).ok()?;
        Some(())
    }

    fn give(&self) {
        self.tokens.fetch_add(1, Ordering::AcqRel);
        self.queue.wake_one();
    }
}

#[test]
fn ring_of_waiters_never_loses_a_wake_up() {
    let ring: Arc<Vec<Slot>> = Arc::new(
        (0..THREADS)
            .map(|i| Slot {
                tokens: AtomicUsize::new(usize::from(i < TOKENS)),
                queue: WaitQueue::new(),
            })
            .collect(),
    );
    let progress: Arc<Vec<AtomicUsize>> =
        Arc::new((0..THREADS).map(|_| AtomicUsize::new(0)).collect());
    let timeouts = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    for me in 0..THREADS {
        let (ring, progress, timeouts) = (ring.clone(), progress.clone(), timeouts.clone());
        let done_tx = done_tx.clone();
        thread::spawn(move || {
            let parker = Parker::current();
            let clock = StdClock::process();
            let next = (me + 1) % THREADS;
            for round in 0..ROUNDS {
                // Odd threads wait with short deadlines, so time-outs race wake-ups.
                loop {
                    let deadline =
                        (me % 2 == 1).then(|| clock.deadline_after(Duration::from_micros(50)));
                    let options = WaitOptions::exclusive().deadline(deadline);
                    match wait_until(&ring[me].queue, &parker, options, || ring[me].take()) {
                        Ok(()) => break,
                        Err(WaitError::TimedOut) => {
                            timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("thread {me}: wait failed: {e}"),
                    }
                }
                ring[next].give();
                progress[me].store(round + 1, Ordering::Relaxed);
            }
            done_tx.send(me).expect("watchdog gone");
        });
    }
    drop(done_tx);
    for _ in 0..THREADS {
        if done_rx.recv_timeout(WATCHDOG).is_err() {
            let rounds: Vec<usize> = progress.iter().map(|p| p.load(Ordering::Relaxed)).collect();
            let tokens: Vec<usize> =
                ring.iter().map(|s| s.tokens.load(Ordering::Relaxed)).collect();
            panic!(
                "no thread finished for {WATCHDOG:?}: a wake-up was probably lost \
                 (rounds done per thread {rounds:?}, tokens per slot {tokens:?})"
            );
        }
    }
    let tokens: usize = ring.iter().map(|s| s.tokens.load(Ordering::Relaxed)).sum();
    assert_eq!(tokens, TOKENS, "tokens were created or lost");
    assert!(ring.iter().all(|s| s.queue.is_empty()), "a waiter left its entry behind");
    eprintln!("wait_stress: {} time-outs raced wake-ups", timeouts.load(Ordering::Relaxed));
}
