//! Conversion between the OS monotonic clock (`std::time::Instant`) and the core's
//! microsecond instants ([`a3m_core::time::Instant`]).

use a3m_core::time::Instant as CoreInstant;
use std::time::{Duration, Instant};

/// The std runtime's clock: core instants are microseconds since `epoch`, a std instant the
/// runtime picks (usually when it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Clock {
        Clock { epoch: Instant::now() }
    }

    /// A clock with the given epoch.
    pub fn with_epoch(epoch: Instant) -> Clock {
        Clock { epoch }
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

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
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
