//! Exponential back-off for link retries (design notes, "Link retries").

use core::time::Duration;

/// When to retry a link request that was refused for now (the peer socket does not exist
/// yet, or it asked to try later).
///
/// The n-th consecutive failure waits `min * 2^(n-1)`, capped at `max` (`max <= min` keeps
/// the delay constant). With a `limit`, the link gives up after that many failed attempts;
/// without one it retries for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    /// Delay after the first failure.
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Attempts after which the link gives up (`None`: never).
    pub limit: Option<u32>,
}

impl Backoff {
    /// 50 ms doubling up to 5 s, retrying for ever (the thesis's retry interval as the start).
    pub const DEFAULT: Backoff =
        Backoff { min: Duration::from_millis(50), max: Duration::from_secs(5), limit: None };

    /// How long to wait after `failures` consecutive failed attempts (at least 1).
    pub fn delay(&self, failures: u32) -> Duration {
        // 2^31 times any useful minimum is beyond any useful maximum.
        let doublings = failures.saturating_sub(1).min(31);
        self.min.saturating_mul(1u32 << doublings).min(self.max).max(self.min)
    }

    /// Whether `failures` failed attempts use up the limit.
    pub fn exhausted(&self, failures: u32) -> bool {
        self.limit.is_some_and(|limit| failures >= limit)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let b = Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(70),
            limit: Some(3),
        };
        let ms: [u64; 5] = [10, 20, 40, 70, 70];
        for (i, want) in ms.iter().enumerate() {
            assert_eq!(b.delay(i as u32 + 1), Duration::from_millis(*want));
        }
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(70));
        assert!(!b.exhausted(2) && b.exhausted(3));
        assert!(!Backoff::DEFAULT.exhausted(u32::MAX));
    }

    #[test]
    fn max_below_min_keeps_the_delay_constant() {
        let b = Backoff { min: Duration::from_millis(30), max: Duration::ZERO, limit: None };
        assert_eq!(b.delay(1), Duration::from_millis(30));
        assert_eq!(b.delay(9), Duration::from_millis(30));
    }
}
