//! Conversion between the OS monotonic clock (`std::time::Instant`) and the core's
//! microsecond instants ([`a3m_core::time::Instant`]).

use a3m_core::time::Instant as CoreInstant;
use std::time::{Duration, Instant};

/// The std runtime's clock: core instants are microseconds since `epoch`, a std instant the
/// runtime picks (usually when it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    epoch: Instant,
    /// The epoch on the raw `CLOCK_MONOTONIC` scale, in nanoseconds, for [`Clock::now_coarse`].
    #[cfg(any(target_os = "linux", target_os = "android"))]
    epoch_monotonic_ns: u64,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Clock {
        Clock::with_epoch(Instant::now())
    }

    /// A clock with the given epoch.
    pub fn with_epoch(epoch: Instant) -> Clock {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // std's Instant is CLOCK_MONOTONIC on Linux: place the epoch on that scale.
            let since_epoch = Instant::now().saturating_duration_since(epoch);
            let raw = monotonic_ns(libc::CLOCK_MONOTONIC);
            let since = u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX);
            Clock { epoch, epoch_monotonic_ns: raw.saturating_sub(since) }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        Clock { epoch }
    }

    /// The current time as a core instant, read from the kernel's coarse monotonic clock.
    ///
    /// It lags [`Clock::now`] by at most one kernel tick (1 to 4 ms) but costs no clock
    /// source read, which on some virtual machines is as slow as a system call. Use it where
    /// millisecond precision is enough (queueing, protocol timers), not for RTT samples.
    /// Outside Linux it is [`Clock::now`].
    pub fn now_coarse(&self) -> CoreInstant {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let ns = monotonic_ns(libc::CLOCK_MONOTONIC_COARSE);
            CoreInstant::from_micros(ns.saturating_sub(self.epoch_monotonic_ns) / 1000)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        self.now()
    }

    /// The std instant that is [`CoreInstant::ZERO`].
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The current time as a core instant.
    pub fn now(&self) -> CoreInstant {
        self.to_core(Instant::now())
    }

    /// `at` as a core instant: whole microseconds since the epoch, rounded down (so a deadline
    /// converted by [`Clock::to_std`] has passed once `to_core(now)` reaches it). Instants
    /// before the epoch give [`CoreInstant::ZERO`]; beyond `u64` microseconds, [`CoreInstant::MAX`].
    pub fn to_core(&self, at: Instant) -> CoreInstant {
        let micros = at.saturating_duration_since(self.epoch).as_micros();
        CoreInstant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// `at` as a std instant, or `None` for [`CoreInstant::MAX`] ("never") and instants the
    /// OS clock cannot represent.
    pub fn to_std(&self, at: CoreInstant) -> Option<Instant> {
        if at == CoreInstant::MAX {
            return None;
        }
        self.epoch.checked_add(Duration::from_micros(at.as_micros()))
    }
}

/// Reads a Linux clock in nanoseconds (0 if the kernel refuses, which it does only for an
/// unknown clock id).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn monotonic_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

#[cfg(test)]
mod coarse_tests {
    use super::*;

    #[test]
    fn the_coarse_clock_follows_the_precise_one_within_a_few_ticks() {
        let clock = Clock::new();
        std::thread::sleep(Duration::from_millis(30));
        let coarse = clock.now_coarse();
        let precise = clock.now();
        assert!(coarse <= precise, "coarse {coarse:?} ahead of precise {precise:?}");
        assert!(
            precise.saturating_since(coarse) < Duration::from_secs(1),
            "coarse {coarse:?} too far behind precise {precise:?}"
        );
        // The coarse clock lags by up to one tick (4 ms at HZ=250; 10 ms at HZ=100).
        assert!(coarse >= CoreInstant::from_micros(19_000), "coarse {coarse:?} missed the sleep");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_in_microseconds() {
        let clock = Clock::new();
        let core = CoreInstant::from_micros(1_234_567);
        let std = clock.to_std(core).unwrap();
        assert_eq!(std - clock.epoch(), Duration::from_micros(1_234_567));
        assert_eq!(clock.to_core(std), core);
    }

    #[test]
    fn rounds_down_and_saturates() {
        let epoch = Instant::now();
        let clock = Clock::with_epoch(epoch + Duration::from_secs(1));
        assert_eq!(clock.to_core(epoch), CoreInstant::ZERO);
        let just_before = clock.epoch() + Duration::from_nanos(2_999);
        assert_eq!(clock.to_core(just_before), CoreInstant::from_micros(2));
        assert_eq!(clock.to_std(CoreInstant::MAX), None);
    }

    #[test]
    fn now_does_not_go_backwards() {
        let clock = Clock::default();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
