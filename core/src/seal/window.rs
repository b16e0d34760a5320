//! The anti-replay window: which counters of a peer's epoch were already accepted.

/// 64-bit words in the bitmap. One word is slack (RFC 6479): the window proper is
/// [`WINDOW`] counters.
const WORDS: usize = 64;
/// Counters behind the newest that are still accepted once: 4032.
pub const WINDOW: u64 = ((WORDS - 1) * 64) as u64;

/// What [`ReplayWindow::check`] says of a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen, and newer than every counter seen so far.
    Newest,
    /// Never seen, within the window behind the newest (a reordered datagram).
    Fresh,
    /// Seen already: a replay or a duplicate.
    Replayed,
    /// Too far behind the newest counter to tell: dropped as a possible replay.
    TooOld,
}

impl Verdict {
    /// True for [`Verdict::Newest`] and [`Verdict::Fresh`].
    pub fn accepted(self) -> bool {
        matches!(self, Verdict::Newest | Verdict::Fresh)
    }
}

/// A sliding bitmap over 64-bit counters, the shape of RFC 6479 (and WireGuard's): a ring
/// of words indexed by `counter / 64`; moving the window forward clears the words it skips,
/// at most all of them, so a jump far ahead costs no more than a short one.
///
/// [`ReplayWindow::check`] never changes anything: a datagram is checked before it is
/// authenticated and [`ReplayWindow::commit`]ted only after, so that a forgery cannot move
/// the window.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest counter committed (meaningless while `empty`).
    newest: u64,
    empty: bool,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow").field("newest", &self.newest()).finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// A window that has seen nothing.
    pub const fn new() -> Self {
        Self { newest: 0, empty: true, bits: [0; WORDS] }
    }

    /// A window that has seen every counter up to `newest` (one remembered from an earlier
    /// window of the same epoch, of which only the newest counter was kept): those are all
    /// refused, anything above is accepted once.
    pub fn seen_through(newest: u64) -> Self {
        let mut bits = [u64::MAX; WORDS];
        let (word, _) = Self::position(newest);
        // Within the newest's word, only the counters up to it.
        let shift = newest % 64;
        bits[word] = if shift == 63 { u64::MAX } else { (1u64 << (shift + 1)) - 1 };
        Self { newest, empty: false, bits }
    }

    /// The highest counter committed, if any.
    pub fn newest(&self) -> Option<u64> {
        (!self.empty).then_some(self.newest)
    }

    /// What accepting `counter` would mean; changes nothing.
    pub fn check(&self, counter: u64) -> Verdict {
        if self.empty || counter > self.newest {
            return Verdict::Newest;
        }
        if self.newest - counter >= WINDOW {
            return Verdict::TooOld;
        }
        let (word, bit) = Self::position(counter);
        if self.bits[word] & bit != 0 { Verdict::Replayed } else { Verdict::Fresh }
    }

    /// Checks `counter` and, if it is accepted, records it. Returns the verdict.
    pub fn commit(&mut self, counter: u64) -> Verdict {
        let verdict = self.check(counter);
        match verdict {
            Verdict::Newest => {
                if self.empty {
                    self.bits = [0; WORDS];
                } else {
                    // Clear the words between the old newest's word and the new one's.
                    let old = self.newest / 64;
                    let new = counter / 64;
                    let skipped = (new - old).min(WORDS as u64);
                    for i in 1..=skipped {
                        self.bits[((old + i) % WORDS as u64) as usize] = 0;
                    }
                }
                self.empty = false;
                self.newest = counter;
            }
            Verdict::Fresh => {}
            Verdict::Replayed | Verdict::TooOld => return verdict,
        }
        let (word, bit) = Self::position(counter);
        self.bits[word] |= bit;
        verdict
    }

    fn position(counter: u64) -> (usize, u64) {
        (((counter / 64) % WORDS as u64) as usize, 1u64 << (counter % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_reordered_replayed_and_too_old() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.commit(5), Verdict::Newest);
        assert_eq!(w.commit(5), Verdict::Replayed);
        assert_eq!(w.commit(3), Verdict::Fresh);
        assert_eq!(w.commit(3), Verdict::Replayed);
        assert_eq!(w.commit(6), Verdict::Newest);
        assert_eq!(w.commit(6 + WINDOW + 10), Verdict::Newest);
        assert_eq!(w.check(6), Verdict::TooOld);
        assert_eq!(w.check(4), Verdict::TooOld);
        assert_eq!(w.check(16), Verdict::TooOld);
        assert_eq!(w.commit(17), Verdict::Fresh);
        assert_eq!(w.commit(17), Verdict::Replayed);
    }

    #[test]
    fn a_window_seen_through_a_counter_refuses_it_and_below_and_takes_above_once() {
        for newest in [0u64, 5, 63, 64, 100, 127, 5_000, 1 << 40] {
            let mut w = ReplayWindow::seen_through(newest);
            for back in [0u64, 1, 2, 63, 64, 65, 4_000, 4_031] {
                if let Some(c) = newest.checked_sub(back) {
                    assert!(!w.check(c).accepted(), "{c} of {newest}");
                }
            }
            // Counters above, even in the same word and out of order: once each.
            for c in [newest + 3, newest + 1, newest + 2, newest + 70] {
                assert!(w.commit(c).accepted(), "{c} of {newest}");
                assert_eq!(w.commit(c), Verdict::Replayed);
            }
            assert!(!w.check(newest).accepted());
        }
    }

    #[test]
    fn a_far_jump_clears_the_whole_ring() {
        let mut w = ReplayWindow::new();
        for c in 0..2000 {
            w.commit(c);
        }
        let far = 1u64 << 40;
        assert_eq!(w.commit(far), Verdict::Newest);
        for c in far - WINDOW + 1..far {
            assert_eq!(w.check(c), Verdict::Fresh, "{c}");
        }
        assert_eq!(w.check(far - WINDOW), Verdict::TooOld);
        assert_eq!(w.check(u64::MAX), Verdict::Newest);
        assert_eq!(w.commit(u64::MAX), Verdict::Newest);
        assert_eq!(w.commit(u64::MAX), Verdict::Replayed);
    }
}
