//! Shared by the loom models: a `Sleeper` that parks a loom thread.

use a3m_core::sync::Ordering;
use a3m_core::time::Instant;
use a3m_core::wait::{SleepOutcome, Sleeper};
use loom::sync::atomic::AtomicBool;
use loom::thread;
use std::sync::Arc;
use std::task::{Wake, Waker};

/// Parks a loom thread; a deadline "fires" at once, so a timed wait races every wake.
pub struct LoomSleeper {
    unparker: Arc<LoomUnparker>,
}

struct LoomUnparker {
    thread: thread::Thread,
    notified: AtomicBool,
}

impl Wake for LoomUnparker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A swap, not a store: loom 0.7 can order a plain store between the read and the
        // write of the sleeper's concurrent swap (tokio-rs/loom#254) and lose it.
        self.notified.swap(true, Ordering::Release);
        self.thread.unpark();
    }
}

impl LoomSleeper {
    /// A sleeper for the current loom thread.
    pub fn new() -> Self {
        let unparker =
            Arc::new(LoomUnparker { thread: thread::current(), notified: AtomicBool::new(false) });
        Self { unparker }
    }
}

impl Sleeper for LoomSleeper {
    fn waker(&self) -> Waker {
        Waker::from(Arc::clone(&self.unparker))
    }

    fn sleep_until(&self, deadline: Option<Instant>) -> SleepOutcome {
        loop {
            if self.unparker.notified.swap(false, Ordering::Acquire) {
                return SleepOutcome::Woken;
            }
            if deadline.is_some() {
                return SleepOutcome::TimedOut;
            }
            thread::park();
        }
    }
}
