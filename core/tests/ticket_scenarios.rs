//! Scenarios of the credit ledger and coordinator: notify-if-none, link removal,
//! reservations, unfair stealing, capacity cuts, and blocking and async waits.

use a3m_core::ticket::{
    Admission, CreditCoordinator, CreditError, CreditWait, Fairness, Ledger, RequestKey,
    RequestState, Target,
};
use a3m_core::time::Instant;
use a3m_core::wait::{SleepOutcome, Sleeper};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::vec::Vec;

type TestLedger = Ledger<u8, u32, 4, 8>;

fn queued<K: std::fmt::Debug>(admission: Result<Admission<K>, CreditError>) -> RequestKey {
    match admission {
        Ok(Admission::Queued(key)) => key,
        other => panic!("expected a queued request, got {other:?}"),
    }
}

fn signalled(ledger: &mut TestLedger) -> Vec<u32> {
    let mut ids = Vec::new();
    ledger.drain_signals(|&id| ids.push(id));
    ids.sort_unstable();
    ids
}

fn state(ledger: &TestLedger, key: RequestKey) -> RequestState<u8> {
    ledger.request_info(key).expect("request is live").state
}

#[test]
fn notify_if_none_fails_general_waits_when_no_link_is_left() {
    let mut ledger = TestLedger::new(Fairness::FairIsh);
    assert_eq!(ledger.request(Target::Any, true, 0), Err(CreditError::NoLinks));
    assert_eq!(ledger.try_reserve(Target::Any, false), Err(CreditError::WouldBlock));
    ledger.add_link(1, 0).unwrap();
    let notifying = queued(ledger.request(Target::Any, true, 1));
    let patient = queued(ledger.request(Target::Any, false, 2));
    let on_link = queued(ledger.request(Target::Link(1), true, 3));
    ledger.remove_link(1).unwrap();
    assert_eq!(signalled(&mut ledger), [1, 3]);
    assert_eq!(ledger.poll(notifying), Poll::Ready(Err(CreditError::NoLinks)));
    assert_eq!(ledger.poll(on_link), Poll::Ready(Err(CreditError::LinkClosed)));
    // Without the flag the wait goes on, and the next link serves it.
    assert_eq!(ledger.poll(patient), Poll::Pending);
    ledger.add_link(2, 1).unwrap();
    assert_eq!(signalled(&mut ledger), [2]);
    assert_eq!(ledger.poll(patient), Poll::Ready(Ok(2)));
    assert_eq!(ledger.poll(patient), Poll::Ready(Err(CreditError::StaleRequest)));
}

#[test]
fn removed_link_hands_its_general_waiters_to_other_links() {
    let mut ledger = TestLedger::new(Fairness::FairIsh);
    ledger.add_link(1, 0).unwrap();
    ledger.add_link(2, 0).unwrap();
    let general = queued(ledger.request(Target::Any, false, 0));
    ledger.add_credits(1, 1).unwrap();
    assert_eq!(signalled(&mut ledger), [0]);
    assert_eq!(state(&ledger, general), RequestState::Unsettled(1));
    ledger.add_credits(2, 1).unwrap();
    let removed = ledger.remove_link(1).unwrap();
    assert_eq!((removed.balance, removed.unsettled), (1, 0));
    // Re-earmarked on link 2: woken again only if the first wake was already delivered.
    assert_eq!(state(&ledger, general), RequestState::Unsettled(2));
    assert_eq!(signalled(&mut ledger), [0]);
    assert_eq!(ledger.poll(general), Poll::Ready(Ok(2)));
}

#[test]
fn reservations_cannot_be_farmed() {
    let mut ledger = TestLedger::new(Fairness::FairIsh);
    ledger.add_link(1, 1).unwrap();
    assert_eq!(ledger.release(1), Err(CreditError::NoReservation));
    assert_eq!(ledger.acquire(1), Err(CreditError::NoReservation));
    assert_eq!(ledger.release(9), Err(CreditError::UnknownLink));
    assert_eq!(ledger.try_reserve(Target::Link(1), false), Ok(1));
    let waiter = queued(ledger.request(Target::Link(1), false, 7));
    // Releasing the reservation gives the credit to the waiter, once.
    assert_eq!(ledger.release(1), Ok(()));
    assert_eq!(ledger.release(1), Err(CreditError::NoReservation));
    assert_eq!(signalled(&mut ledger), [7]);
    assert_eq!(ledger.poll(waiter), Poll::Ready(Ok(1)));
    assert_eq!(ledger.acquire(1), Ok(()));
    assert_eq!(ledger.acquire(1), Err(CreditError::NoReservation));
    let link = ledger.link(1).unwrap();
    assert_eq!((link.balance, link.reserved), (0, 0));
}

#[test]
fn fair_ish_newcomers_queue_behind_woken_waiters_and_unfair_ones_steal() {
    for fairness in [Fairness::FairIsh, Fairness::Unfair] {
        let mut ledger = TestLedger::new(fairness);
        ledger.add_link(1, 0).unwrap();
        let first = queued(ledger.request(Target::Link(1), false, 0));
        ledger.add_credits(1, 1).unwrap();
        assert_eq!(signalled(&mut ledger), [0]);
        let newcomer = ledger.request(Target::Any, false, 1);
        match fairness {
            Fairness::FairIsh => {
                let newcomer = queued(newcomer);
                assert_eq!(ledger.poll(first), Poll::Ready(Ok(1)));
                assert_eq!(ledger.poll(newcomer), Poll::Pending);
            }
            Fairness::Unfair => {
                assert_eq!(newcomer, Ok(Admission::Granted(1)));
                // The woken waiter finds its request waiting again.
                assert_eq!(ledger.poll(first), Poll::Pending);
                assert_eq!(ledger.link(1).unwrap().unsettled, 0);
            }
        }
    }
}

#[test]
fn unfair_mode_alternates_link_and_general_waiters() {
    let mut ledger = TestLedger::new(Fairness::Unfair);
    ledger.add_link(1, 0).unwrap();
    // Tickets: general 0, 1, 2, then link-specific 3, 4.
    for id in 0..3 {
        queued(ledger.request(Target::Any, false, id));
    }
    for id in 3..5 {
        queued(ledger.request(Target::Link(1), false, id));
    }
    let mut order = Vec::new();
    for _ in 0..4 {
        ledger.add_credits(1, 1).unwrap();
        order.extend(signalled(&mut ledger));
    }
    assert_eq!(order, [3, 0, 4, 1]);
}

#[test]
fn capacity_cut_returns_the_youngest_woken_waiters_to_waiting() {
    let mut ledger = TestLedger::new(Fairness::FairIsh);
    ledger.add_link(1, 0).unwrap();
    let keys: Vec<_> =
        (0..3).map(|id| queued(ledger.request(Target::Link(1), false, id))).collect();
    ledger.add_credits(1, 3).unwrap();
    assert_eq!(ledger.add_credits(1, -2), Ok(1));
    // Woken in the same step, so the two cancelled wakes are never delivered.
    assert_eq!(signalled(&mut ledger), [0]);
    assert_eq!(state(&ledger, keys[0]), RequestState::Unsettled(1));
    assert_eq!(state(&ledger, keys[1]), RequestState::New);
    assert_eq!(state(&ledger, keys[2]), RequestState::New);
    assert_eq!(ledger.add_credits(1, -3), Ok(-2));
    assert_eq!(state(&ledger, keys[0]), RequestState::New);
    assert_eq!(ledger.add_credits(1, 4), Ok(2));
    assert_eq!(signalled(&mut ledger), [0, 1]);
}

#[test]
fn cancelling_a_woken_request_passes_its_credit_on() {
    let mut ledger = TestLedger::new(Fairness::FairIsh);
    ledger.add_link(1, 0).unwrap();
    let first = queued(ledger.request(Target::Any, false, 0));
    let second = queued(ledger.request(Target::Any, false, 1));
    ledger.add_credits(1, 1).unwrap();
    assert_eq!(signalled(&mut ledger), [0]);
    assert!(ledger.cancel(first));
    assert!(!ledger.cancel(first));
    assert_eq!(signalled(&mut ledger), [1]);
    assert_eq!(ledger.link(1).unwrap().balance, 1);
    assert_eq!(ledger.poll(second), Poll::Ready(Ok(1)));
}

#[test]
fn limits_and_close_are_reported() {
    let mut ledger: Ledger<u8, (), 1, 1> = Ledger::new(Fairness::FairIsh);
    ledger.add_link(1, 0).unwrap();
    assert_eq!(ledger.add_link(1, 0), Err(CreditError::DuplicateLink));
    assert_eq!(ledger.add_link(2, 0), Err(CreditError::LinksFull));
    assert_eq!(ledger.request(Target::Link(2), false, ()), Err(CreditError::UnknownLink));
    let waiting = match ledger.request(Target::Link(1), false, ()) {
        Ok(Admission::Queued(key)) => key,
        other => panic!("expected a queued request, got {other:?}"),
    };
    assert_eq!(ledger.request(Target::Any, false, ()), Err(CreditError::WaitersFull));
    ledger.close();
    assert!(ledger.is_closed());
    assert!(ledger.has_signals());
    assert_eq!(ledger.poll(waiting), Poll::Ready(Err(CreditError::Closed)));
    assert_eq!(ledger.request(Target::Any, false, ()), Err(CreditError::Closed));
}

/// A thread parker for the blocking tests; counts how often its thread was woken.
struct TestParker {
    unpark: Arc<Unpark>,
    epoch: std::time::Instant,
    wakeups: AtomicUsize,
}

struct Unpark {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

impl TestParker {
    fn new(epoch: std::time::Instant) -> Self {
        let unpark = Arc::new(Unpark { thread: thread::current(), woken: AtomicBool::new(false) });
        Self { unpark, epoch, wakeups: AtomicUsize::new(0) }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }
}

impl Sleeper for TestParker {
    fn waker(&self) -> Waker {
        Waker::from(Arc::clone(&self.unpark))
    }

    fn sleep_until(&self, deadline: Option<Instant>) -> SleepOutcome {
        loop {
            if self.unpark.woken.swap(false, Ordering::Acquire) {
                self.wakeups.fetch_add(1, Ordering::Relaxed);
                return SleepOutcome::Woken;
            }
            match deadline {
                Some(deadline) => {
                    let now = self.now();
                    if now >= deadline {
                        return SleepOutcome::TimedOut;
                    }
                    let left = deadline.saturating_since(now);
                    thread::park_timeout(left);
                }
                None => thread::park(),
            }
        }
    }
}

type Coordinator = CreditCoordinator<u8, 4, 16>;

fn wait_for_waiters(coordinator: &Coordinator, n: usize) {
    while coordinator.inspect(|ledger| ledger.requests().count()) < n {
        thread::yield_now();
    }
}

#[test]
fn each_credit_wakes_exactly_one_blocked_waiter() {
    let coordinator = Coordinator::new(Fairness::FairIsh);
    coordinator.add_link(0, 0).unwrap();
    coordinator.add_link(1, 0).unwrap();
    let epoch = std::time::Instant::now();
    let wakeups = AtomicUsize::new(0);
    const WAITERS: usize = 6;
    thread::scope(|s| {
        for i in 0..WAITERS {
            let (coordinator, wakeups) = (&coordinator, &wakeups);
            s.spawn(move || {
                let parker = TestParker::new(epoch);
                let target = if i % 2 == 0 { Target::Any } else { Target::Link(1) };
                let link = coordinator.wait(target, CreditWait::forever(), &parker).unwrap();
                coordinator.acquire(link).unwrap();
                wakeups.fetch_add(parker.wakeups.load(Ordering::Relaxed), Ordering::Relaxed);
            });
        }
        wait_for_waiters(&coordinator, WAITERS);
        for _ in 0..WAITERS {
            coordinator.add_credits(1, 1).unwrap();
        }
    });
    assert_eq!(wakeups.load(Ordering::Relaxed), WAITERS);
    let link = coordinator.inspect(|ledger| ledger.link(1)).unwrap();
    assert_eq!((link.balance, link.reserved, link.unsettled), (0, 0, 0));
}

#[test]
fn a_timed_out_wait_consumes_no_credit() {
    let coordinator = Coordinator::new(Fairness::FairIsh);
    coordinator.add_link(0, 0).unwrap();
    let parker = TestParker::new(std::time::Instant::now());
    let wait = CreditWait::until(parker.now());
    assert_eq!(coordinator.wait_for_link(0, wait, &parker), Err(CreditError::TimedOut));
    assert_eq!(coordinator.wait_for_any(wait, &parker), Err(CreditError::TimedOut));
    coordinator.inspect(|ledger| {
        assert_eq!(ledger.requests().count(), 0);
        assert_eq!(ledger.link(0).unwrap().balance, 0);
    });
    // With a credit the deadline does not matter.
    coordinator.add_credits(0, 1).unwrap();
    assert_eq!(coordinator.wait_for_any(wait, &parker), Ok(0));
    assert_eq!(coordinator.release(0), Ok(()));
    assert_eq!(coordinator.try_reserve(Target::Link(0), false), Ok(0));
    assert_eq!(coordinator.try_reserve(Target::Link(0), false), Err(CreditError::WouldBlock));
}

#[test]
fn blocked_waiters_learn_of_removed_links_and_close() {
    let coordinator = Coordinator::new(Fairness::Unfair);
    coordinator.add_link(0, 0).unwrap();
    let epoch = std::time::Instant::now();
    thread::scope(|s| {
        let on_link = s
            .spawn(|| coordinator.wait_for_link(0, CreditWait::forever(), &TestParker::new(epoch)));
        let notifying = s.spawn(|| {
            let wait = CreditWait::forever().notify_if_none(true);
            coordinator.wait_for_any(wait, &TestParker::new(epoch))
        });
        let patient =
            s.spawn(|| coordinator.wait_for_any(CreditWait::forever(), &TestParker::new(epoch)));
        wait_for_waiters(&coordinator, 3);
        coordinator.remove_link(0).unwrap();
        assert_eq!(on_link.join().unwrap(), Err(CreditError::LinkClosed));
        assert_eq!(notifying.join().unwrap(), Err(CreditError::NoLinks));
        coordinator.close();
        assert_eq!(patient.join().unwrap(), Err(CreditError::Closed));
    });
}

#[test]
fn async_waits_complete_and_dropped_ones_pass_their_credit_on() {
    let coordinator = Coordinator::new(Fairness::FairIsh);
    coordinator.add_link(3, 0).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut second = pin!(coordinator.wait_async(Target::Any, false));
    {
        let mut first = pin!(coordinator.wait_async(Target::Link(3), false));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        coordinator.add_credits(3, 1).unwrap();
        // `first` is woken with the credit but dropped unpolled.
    }
    assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(3)));
    assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(Err(CreditError::StaleRequest)));
    coordinator.inspect(|ledger| {
        let link = ledger.link(3).unwrap();
        assert_eq!((link.balance, link.reserved), (0, 1));
        assert_eq!(ledger.requests().count(), 0);
    });
}
