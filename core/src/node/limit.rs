//! Rate limits of the datagrams a node sends in answer to datagrams it did not accept.
//!
//! A path challenge goes to an address nobody has proven yet, and an epoch notice answers a
//! datagram that was dropped: an attacker who can write datagrams (a plaintext forger who
//! spoofs source addresses, or a replayer) could otherwise make a node send one of them per
//! datagram it forges, to addresses of its choice (a reflector). Token buckets bound them.

use core::time::Duration;

use crate::time::Instant;

/// A token bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Tokens a full bucket holds: how many may go at once.
    pub(crate) burst: u32,
    /// Time to earn one token back.
    pub(crate) interval: Duration,
}

/// New path challenges towards one peer's addresses: 8 at once, then 4 a second.
///
/// A peer that really moves needs one challenge for its new address (a NAT rebinding too);
/// a peer with several paths, at most four addresses at once (`MAX_CHALLENGES`);
/// and a challenge is sent again (on the peer's traffic) at most once per retransmission
/// timeout per address. Eight covers two rounds of four addresses, so real moves are never
/// limited; an attacker forging that peer's id gets 4 a second once those are used up, and
/// the first genuine move after the forgery stops gets a challenge within 250 ms.
pub(crate) const PEER_CHALLENGES: Rate = Rate { burst: 8, interval: Duration::from_millis(250) };

/// Answers a node sends to unproven senders, all peers together, for each of its two kinds
/// (new path challenges and their retransmissions; epoch notices): 64 at once (the size of
/// the challenge queue), then 100 a second. A node in which a whole table of peers moved
/// at once (a NAT in front of them rebinding) validates them at that pace; an attacker
/// claiming every peer id it knows gets at most that much reflected, about 5 kB/s of small
/// datagrams.
pub(crate) const NODE_ANSWERS: Rate = Rate { burst: 64, interval: Duration::from_millis(10) };

/// A token bucket, kept as a single instant (the generic cell rate algorithm): the time at
/// which the bucket would be full again. Taking a token pushes it one interval later; a
/// token is there while it is at most `burst` intervals ahead of now. No heap, no division.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TokenBucket {
    full_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) const fn new() -> Self {
        Self { full_at: Instant::ZERO }
    }

    /// The instant the bucket would be full again after one more token.
    fn after_one(&self, now: Instant, rate: Rate) -> Instant {
        self.full_at.max(now) + rate.interval
    }

    /// True if a token is there at `now` (takes nothing).
    pub(crate) fn has_token(&self, now: Instant, rate: Rate) -> bool {
        self.after_one(now, rate) <= now + rate.interval * rate.burst
    }

    /// Takes a token if one is there at `now`.
    pub(crate) fn take(&mut self, now: Instant, rate: Rate) -> bool {
        if !self.has_token(now, rate) {
            return false;
        }
        self.full_at = self.after_one(now, rate);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_one_token_per_interval() {
        let rate = Rate { burst: 8, interval: Duration::from_millis(250) };
        let mut b = TokenBucket::new();
        let t0 = Instant::from_micros(5_000_000);
        assert_eq!((0..100).filter(|_| b.take(t0, rate)).count(), 8);
        assert!(!b.has_token(t0 + Duration::from_millis(249), rate));
        assert!(b.take(t0 + Duration::from_millis(250), rate));
        assert!(!b.take(t0 + Duration::from_millis(250), rate));
        // Ten seconds of quiet refill it, but never beyond the burst.
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..100).filter(|_| b.take(later, rate)).count(), 8);
        // Over any span, at most burst + span / interval tokens.
        let mut b = TokenBucket::new();
        let mut taken = 0;
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            taken += (0..3).filter(|_| b.take(now, rate)).count();
        }
        assert!(taken <= 8 + 10_000 / 250, "{taken}");
        assert!(taken >= 10_000 / 250, "{taken}");
    }

    #[test]
    fn a_bucket_is_full_at_time_zero() {
        let rate = Rate { burst: 2, interval: Duration::from_millis(10) };
        let mut b = TokenBucket::new();
        assert!(b.take(Instant::ZERO, rate));
        assert!(b.take(Instant::ZERO, rate));
        assert!(!b.take(Instant::ZERO, rate));
    }
}
