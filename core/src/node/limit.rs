//! Rate limits of the datagrams a node sends in answer to datagrams it did not accept.
//!
//! A path challenge goes to an address nobody has proven yet, and an epoch notice answers a
//! datagram that was dropped: an attacker who can write datagrams (a plaintext forger who
//! spoofs source addresses, or a replayer) could otherwise make a node send one of them per
//! datagram it forges, to addresses of its choice (a reflector). Token buckets bound them.

use core::time::Duration;

use crate::id::NodeId;
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

/// Senders whose stale datagrams (sealed for another start of this node) an epoch notice
/// may answer, at most: the highest counter answered for each of that many (sender, epoch).
pub(crate) const STALE_SENDERS: usize = 32;

/// The highest counter answered with an epoch notice, per sender and epoch (the
/// [`STALE_SENDERS`] used last). A genuine sender's counter only grows, so its next
/// retransmission is always above every capture of its past datagrams: a replayed capture
/// is answered at most once (and not at all once the genuine sender was answered), so
/// replays cannot keep the node's notice budget empty while the genuine sender waits for
/// its notice. (To wear the memory out, a replayer needs captures from more than
/// `STALE_SENDERS` different starts of senders.)
#[derive(Debug)]
pub(crate) struct StaleAnswers {
    /// (sender, its epoch, highest counter answered, last use).
    entries: [Option<(NodeId, u64, u64, Instant)>; STALE_SENDERS],
}

impl StaleAnswers {
    /// An empty memory.
    pub(crate) fn new() -> Self {
        Self { entries: [const { None }; STALE_SENDERS] }
    }

    /// True if `counter` of `src` in `epoch` is above every counter answered so far.
    pub(crate) fn is_new(&self, src: &NodeId, epoch: u64, counter: u64) -> bool {
        self.entries
            .iter()
            .flatten()
            .find(|(id, e, _, _)| id == src && *e == epoch)
            .is_none_or(|(_, _, highest, _)| counter > *highest)
    }

    /// Records that `counter` of `src` in `epoch` was answered at `now` (the entry used
    /// longest ago gives way to a new sender).
    pub(crate) fn answered(&mut self, now: Instant, src: &NodeId, epoch: u64, counter: u64) {
        let slot = match self
            .entries
            .iter()
            .position(|e| e.as_ref().is_some_and(|(id, ep, _, _)| id == src && *ep == epoch))
        {
            Some(i) => i,
            None => self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.as_ref().map(|(_, _, _, used)| *used))
                .map_or(0, |(i, _)| i),
        };
        let highest = match &self.entries[slot] {
            Some((id, ep, h, _)) if id == src && *ep == epoch => counter.max(*h),
            _ => counter,
        };
        self.entries[slot] = Some((src.clone(), epoch, highest, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_sender_is_answered_only_above_its_highest_answered_counter() {
        let t = Instant::from_micros(1_000);
        let a = NodeId::new("a").unwrap();
        let mut m = StaleAnswers::new();
        assert!(m.is_new(&a, 7, 5));
        m.answered(t, &a, 7, 5);
        assert!(!m.is_new(&a, 7, 5));
        assert!(!m.is_new(&a, 7, 3));
        assert!(m.is_new(&a, 7, 6));
        // Another epoch of the same sender is another sender.
        assert!(m.is_new(&a, 8, 1));
        // Many other senders push out the one used longest ago, not the newest.
        for i in 0..STALE_SENDERS as u64 - 1 {
            let id = NodeId::new(&alloc::format!("n{i}")).unwrap();
            m.answered(t + Duration::from_micros(i + 1), &id, 1, 1);
        }
        assert!(!m.is_new(&a, 7, 5), "a is still remembered");
        m.answered(t + Duration::from_secs(1), &NodeId::new("late").unwrap(), 1, 1);
        assert!(m.is_new(&a, 7, 5), "a, used longest ago, gave way");
    }

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
