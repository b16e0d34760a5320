//! loom models of the credit coordinator: every interleaving of waiters, a producer and
//! timeouts, with the real lock (`a3m_core::sync` is loom's under `cfg(loom)`).
//!
//! * one credit is never granted twice;
//! * a wait that times out consumes no credit (one woken as its deadline passes keeps the
//!   credit earmarked for it and succeeds);
//! * a withdrawn wait (a dropped future) or a released reservation passes its credit to the
//!   other waiter; loom reports a deadlock if a waiter is stranded.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p a3m-core --features std --release --test loom_ticket`
#![cfg(loom)]

use a3m_core::ticket::{CreditCoordinator, CreditError, CreditWait, Fairness, Target};
use a3m_core::time::Instant;
use a3m_core::wait::{SleepOutcome, Sleeper};
use loom::sync::Notify;
use loom::thread;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

type Coordinator = CreditCoordinator<u8, 2, 4>;

/// Wakes a loom thread: `loom::sync::Notify` is loom's own park/unpark, which keeps a
/// notification that comes before the wait.
struct Wakeup(Notify);

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.0.notify();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify();
    }
}

/// Sleeps on a `Notify`. With `times_out`, a wait with a deadline times out whenever it
/// would have to sleep: loom then tries that timeout against every step of the producer.
struct LoomSleeper {
    wakeup: Arc<Wakeup>,
    times_out: bool,
}

impl LoomSleeper {
    fn new(times_out: bool) -> Self {
        Self { wakeup: Arc::new(Wakeup(Notify::new())), times_out }
    }
}

impl Sleeper for LoomSleeper {
    fn waker(&self) -> Waker {
        Waker::from(Arc::clone(&self.wakeup))
    }

    fn sleep_until(&self, deadline: Option<Instant>) -> SleepOutcome {
        if self.times_out && deadline.is_some() {
            return SleepOutcome::TimedOut;
        }
        // May also return spuriously, which the `Sleeper` contract allows.
        self.wakeup.0.wait();
        SleepOutcome::Woken
    }
}

/// Two waiters, one for the link and one for any link, and two credits added one at a
/// time: each waiter gets exactly one and no credit is left or handed out twice.
#[test]
fn one_credit_is_never_granted_twice() {
    loom::model(|| {
        let coordinator = Arc::new(Coordinator::new(Fairness::FairIsh));
        coordinator.add_link(0, 0).unwrap();
        let waiters: Vec<_> = [Target::Link(0), Target::Any]
            .into_iter()
            .map(|target| {
                let coordinator = Arc::clone(&coordinator);
                thread::spawn(move || {
                    let sleeper = LoomSleeper::new(false);
                    coordinator.wait(target, CreditWait::forever(), &sleeper)
                })
            })
            .collect();
        coordinator.add_credits(0, 1).unwrap();
        coordinator.add_credits(0, 1).unwrap();
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Ok(0));
        }
        let link = coordinator.inspect(|ledger| ledger.link(0)).unwrap();
        assert_eq!((link.balance, link.reserved, link.unsettled), (0, 2, 0));
    });
}

/// A waiter that times out races the producer and a waiter without deadline. The credit
/// goes to exactly one of them; if the timed-out waiter lost it, the other one gets it.
#[test]
fn a_timed_out_waiter_never_consumes_a_credit() {
    for fairness in [Fairness::FairIsh, Fairness::Unfair] {
        loom::model(move || {
            let coordinator = Arc::new(Coordinator::new(fairness));
            coordinator.add_link(0, 0).unwrap();
            let timing_out = {
                let coordinator = Arc::clone(&coordinator);
                thread::spawn(move || {
                    let wait = CreditWait::until(Instant::ZERO);
                    coordinator.wait_for_any(wait, &LoomSleeper::new(true))
                })
            };
            let patient = {
                let coordinator = Arc::clone(&coordinator);
                thread::spawn(move || {
                    coordinator.wait_for_link(0, CreditWait::forever(), &LoomSleeper::new(false))
                })
            };
            coordinator.add_credits(0, 1).unwrap();
            let timed_out = match timing_out.join().unwrap() {
                Ok(link) => {
                    assert_eq!(link, 0);
                    // It took the credit: the patient waiter needs another one.
                    coordinator.add_credits(0, 1).unwrap();
                    false
                }
                Err(error) => {
                    assert_eq!(error, CreditError::TimedOut);
                    true
                }
            };
            assert_eq!(patient.join().unwrap(), Ok(()));
            let link = coordinator.inspect(|ledger| ledger.link(0)).unwrap();
            let expected_reserved = if timed_out { 1 } else { 2 };
            assert_eq!((link.balance, link.reserved, link.unsettled), (0, expected_reserved, 0));
            assert_eq!(coordinator.inspect(|ledger| ledger.requests().count()), 0);
        });
    }
}

/// A task withdraws its wait (drops the future) or releases the credit it got, racing the
/// producer: the credit still reaches the other waiter, exactly once.
#[test]
fn a_withdrawn_wait_passes_its_credit_on() {
    loom::model(|| {
        let coordinator = Arc::new(Coordinator::new(Fairness::FairIsh));
        coordinator.add_link(0, 0).unwrap();
        let withdrawing = {
            let coordinator = Arc::clone(&coordinator);
            thread::spawn(move || {
                let mut cx = Context::from_waker(Waker::noop());
                let mut wait = pin!(coordinator.wait_async(Target::Any, false));
                if let Poll::Ready(got) = wait.as_mut().poll(&mut cx) {
                    // The credit came first: give it back instead.
                    assert_eq!(got, Ok(0));
                    coordinator.release(0).unwrap();
                }
            })
        };
        let patient = {
            let coordinator = Arc::clone(&coordinator);
            thread::spawn(move || {
                coordinator.wait_for_link(0, CreditWait::forever(), &LoomSleeper::new(false))
            })
        };
        coordinator.add_credits(0, 1).unwrap();
        withdrawing.join().unwrap();
        assert_eq!(patient.join().unwrap(), Ok(()));
        let link = coordinator.inspect(|ledger| ledger.link(0)).unwrap();
        assert_eq!((link.balance, link.reserved, link.unsettled), (0, 1, 0));
    });
}
