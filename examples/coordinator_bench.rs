//! Compares the ticketed credit coordinator with the design the notes reject: one condition
//! variable per link plus one general one, `notify_all` on both for every new credit.
//!
//! A producer thread adds credits one at a time, round robin over the links, keeping at
//! most `--window` credits unconsumed (the receiver's capacity). Consumer threads wait for a
//! credit (even-numbered ones for any link, odd-numbered ones for one link each) and
//! consume it. A wake-up is one return of a waiting thread from sleep; a futile wake-up is
//! one after which the thread had to sleep again.
//!
//! `cargo run --release --example coordinator_bench [-- --credits 50000 --window 1
//! --repeat 3 --waiters 1,4,16]`

use a3m_core::ticket::{CreditCoordinator, CreditError, CreditWait, Fairness, Target};
use a3m_core::time::Instant;
use a3m_core::wait::{SleepOutcome, Sleeper};
use a3m_examples::Args;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

const LINKS: usize = 4;
const MAX_WAITERS: usize = 32;

type Coordinator = CreditCoordinator<u16, LINKS, MAX_WAITERS>;

/// What a consumer waits for.
fn target_of(consumer: usize) -> Option<usize> {
    (consumer % 2 == 1).then_some((consumer / 2) % LINKS)
}

/// Totals of one run.
#[derive(Debug, Default)]
struct Tally {
    wakeups: AtomicU64,
    futile: AtomicU64,
    consumed: AtomicU64,
}

impl Tally {
    /// Records one wait that slept `wakeups` times; `served` if it ended with a credit (the
    /// last wake-up of a wait ended by shutdown is not counted).
    fn record(&self, wakeups: u64, served: bool) {
        let counted = if served { wakeups } else { wakeups.saturating_sub(1) };
        let futile = if served { wakeups.saturating_sub(1) } else { counted };
        self.wakeups.fetch_add(counted, Ordering::Relaxed);
        self.futile.fetch_add(futile, Ordering::Relaxed);
    }
}

/// The two designs under test, as the producer and consumers see them.
trait Design: Sync {
    fn add_credit(&self, link: usize);
    /// Waits for a credit and consumes it; false once the run is over. Returns the number
    /// of wake-ups of this wait through `tally`.
    fn consume(&self, target: Option<usize>, tally: &Tally) -> bool;
    fn shut_down(&self);
}

// ---- The ticketed coordinator, with a small counting thread parker -----------------------

struct Unpark {
    thread: Thread,
    notified: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

/// Parks the thread that made it; counts its returns from sleep. No deadlines are used here.
struct CountingParker {
    unpark: Arc<Unpark>,
    wakeups: Cell<u64>,
}

impl CountingParker {
    fn new() -> Self {
        let unpark =
            Arc::new(Unpark { thread: thread::current(), notified: AtomicBool::new(false) });
        Self { unpark, wakeups: Cell::new(0) }
    }
}

impl Sleeper for CountingParker {
    fn waker(&self) -> Waker {
        Waker::from(Arc::clone(&self.unpark))
    }

    fn sleep_until(&self, _deadline: Option<Instant>) -> SleepOutcome {
        while !self.unpark.notified.swap(false, Ordering::Acquire) {
            thread::park();
        }
        self.wakeups.set(self.wakeups.get() + 1);
        SleepOutcome::Woken
    }
}

struct Ticketed {
    coordinator: Coordinator,
}

thread_local! {
    static PARKER: CountingParker = CountingParker::new();
}

impl Ticketed {
    fn new(fairness: Fairness) -> Self {
        let coordinator = Coordinator::new(fairness);
        for link in 0..LINKS as u16 {
            coordinator.add_link(link, 0).expect("room for the bench links");
        }
        Self { coordinator }
    }
}

impl Design for Ticketed {
    fn add_credit(&self, link: usize) {
        self.coordinator.add_credits(link as u16, 1).expect("bench link exists");
    }

    fn consume(&self, target: Option<usize>, tally: &Tally) -> bool {
        PARKER.with(|parker| {
            let target = target.map_or(Target::Any, |link| Target::Link(link as u16));
            let before = parker.wakeups.get();
            let result = self.coordinator.wait(target, CreditWait::forever(), parker);
            let wakeups = parker.wakeups.get() - before;
            match result {
                Ok(link) => {
                    self.coordinator.acquire(link).expect("the wait reserved a credit");
                    tally.record(wakeups, true);
                    true
                }
                Err(CreditError::Closed) => {
                    tally.record(wakeups, false);
                    false
                }
                Err(error) => panic!("unexpected wait error: {error}"),
            }
        })
    }

    fn shut_down(&self) {
        self.coordinator.close();
    }
}

// ---- The rejected design: condition variables and notify_all ----------------------------

struct Basic {
    credits: Mutex<BasicState>,
    per_link: [Condvar; LINKS],
    general: Condvar,
}

struct BasicState {
    balance: [u64; LINKS],
    next_any: usize,
    stopped: bool,
}

impl Basic {
    fn new() -> Self {
        let state = BasicState { balance: [0; LINKS], next_any: 0, stopped: false };
        Self {
            credits: Mutex::new(state),
            per_link: std::array::from_fn(|_| Condvar::new()),
            general: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BasicState> {
        self.credits.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Design for Basic {
    fn add_credit(&self, link: usize) {
        self.lock().balance[link] += 1;
        self.per_link[link].notify_all();
        self.general.notify_all();
    }

    fn consume(&self, target: Option<usize>, tally: &Tally) -> bool {
        let mut state = self.lock();
        let mut wakeups = 0;
        loop {
            if state.stopped {
                tally.record(wakeups, false);
                return false;
            }
            let link = match target {
                Some(link) => (state.balance[link] > 0).then_some(link),
                None => (0..LINKS)
                    .map(|offset| (state.next_any + offset) % LINKS)
                    .find(|&link| state.balance[link] > 0),
            };
            if let Some(link) = link {
                state.balance[link] -= 1;
                if target.is_none() {
                    state.next_any = (link + 1) % LINKS;
                }
                tally.record(wakeups, true);
                return true;
            }
            let condvar = target.map_or(&self.general, |link| &self.per_link[link]);
            state = condvar.wait(state).unwrap_or_else(|e| e.into_inner());
            wakeups += 1;
        }
    }

    fn shut_down(&self) {
        self.lock().stopped = true;
        for condvar in self.per_link.iter().chain([&self.general]) {
            condvar.notify_all();
        }
    }
}

// ---- The run ------------------------------------------------------------------------------

struct Row {
    design: &'static str,
    threads: usize,
    credits: u64,
    wakeups: u64,
    futile: u64,
    elapsed: Duration,
}

fn run(design: &impl Design, name: &'static str, threads: usize, credits: u64, window: u64) -> Row {
    let tally = Tally::default();
    let start = std::time::Instant::now();
    thread::scope(|s| {
        for consumer in 0..threads {
            let tally = &tally;
            s.spawn(move || {
                let target = target_of(consumer);
                while design.consume(target, tally) {
                    tally.consumed.fetch_add(1, Ordering::Release);
                }
            });
        }
        for added in 0..credits {
            while added - tally.consumed.load(Ordering::Acquire) >= window {
                thread::yield_now();
            }
            design.add_credit(added as usize % LINKS);
        }
        while tally.consumed.load(Ordering::Acquire) < credits {
            thread::yield_now();
        }
        design.shut_down();
    });
    Row {
        design: name,
        threads,
        credits,
        wakeups: tally.wakeups.load(Ordering::Relaxed),
        futile: tally.futile.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}

fn main() {
    let args = Args::from_env();
    args.reject_unknown(&["credits", "window", "repeat", "waiters"]);
    let credits: u64 = args.get_or("credits", 50_000);
    let window: u64 = args.get_or("window", 1).max(1);
    let repeat: usize = args.get_or("repeat", 3).max(1);
    let waiters: String = args.get_or("waiters", "1,4,16".to_string());
    let thread_counts: Vec<usize> = waiters
        .split(',')
        .map(|n| n.trim().parse().unwrap_or_else(|e| panic!("--waiters {waiters}: {e}")))
        .filter(|&n| n > 0 && n <= MAX_WAITERS)
        .collect();
    println!(
        "{LINKS} links, {credits} credits per run, at most {window} unconsumed; \
         consumers: even = wait for any link, odd = wait for one link; \
         median of {repeat} runs"
    );
    // Untimed warm-up: thread start-up, page faults, CPU frequency.
    run(&Ticketed::new(Fairness::FairIsh), "warm-up", 4, credits / 4, window);
    run(&Basic::new(), "warm-up", 4, credits / 4, window);
    println!();
    println!(
        "{:<22} {:>7} {:>16} {:>14} {:>12}",
        "design", "waiters", "wake-ups/credit", "futile/credit", "credits/s"
    );
    for threads in thread_counts {
        let median = |make: &dyn Fn() -> Row| {
            let mut rows: Vec<Row> = (0..repeat).map(|_| make()).collect();
            rows.sort_by_key(|row| row.elapsed);
            rows.swap_remove(repeat / 2)
        };
        let rows = [
            median(&|| {
                let design = Ticketed::new(Fairness::FairIsh);
                run(&design, "ticketed (fair-ish)", threads, credits, window)
            }),
            median(&|| {
                let design = Ticketed::new(Fairness::Unfair);
                run(&design, "ticketed (unfair)", threads, credits, window)
            }),
            median(&|| run(&Basic::new(), "condvar + notify_all", threads, credits, window)),
        ];
        for row in rows {
            let per_credit = |n: u64| n as f64 / row.credits as f64;
            println!(
                "{:<22} {:>7} {:>16.3} {:>14.3} {:>12.0}",
                row.design,
                row.threads,
                per_credit(row.wakeups),
                per_credit(row.futile),
                row.credits as f64 / row.elapsed.as_secs_f64(),
            );
        }
    }
}
