//! A sliding bitmap over slot ids: fixed memory, whatever the slot numbers.
//!
//! The receiver of a half-connection must remember which of the slots it granted are still
//! open (and which it owes an acknowledgement). Slot ids only grow, and everything below the
//! lowest interesting slot can be forgotten, so a ring of bits that covers the window
//! `[lo, lo + capacity)` is enough: sliding the window forward clears the bits it leaves.

use alloc::vec;
use alloc::vec::Vec;

/// A fixed-capacity set of slot ids inside the window `[lo, lo + capacity)`.
///
/// The ring of words is a power of two long (at least the capacity), so that a slot's
/// position is a mask, not a division; only the `capacity` slots from `lo` are ever set, so
/// the spare words (if any) stay clear.
#[derive(Debug, Clone)]
pub(crate) struct SlotBitmap {
    words: Vec<u64>,
    lo: u64,
    /// `lo + capacity`, saturating.
    hi: u64,
    /// Slots the window covers (a multiple of 64).
    capacity: u64,
    /// Ring length in bits, minus one.
    mask: u64,
}

impl SlotBitmap {
    /// A bitmap covering at least `slots` slots (rounded up to a multiple of 64), window at 0.
    pub(crate) fn new(slots: usize) -> Self {
        let words = slots.div_ceil(64).max(1);
        let ring = words.next_power_of_two();
        let capacity = words as u64 * 64;
        Self { words: vec![0; ring], lo: 0, hi: capacity, capacity, mask: ring as u64 * 64 - 1 }
    }

    /// Number of slots the window covers.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// First slot of the window.
    #[inline]
    pub(crate) fn lo(&self) -> u64 {
        self.lo
    }

    /// One past the last slot the window covers (saturating at `u64::MAX`).
    #[inline]
    pub(crate) fn hi(&self) -> u64 {
        self.hi
    }

    #[inline]
    fn position(&self, slot: u64) -> (usize, u64) {
        let i = slot & self.mask;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    #[inline]
    fn in_window(&self, slot: u64) -> bool {
        slot >= self.lo && slot < self.hi
    }

    /// True if `slot` is in the window and set.
    #[inline]
    pub(crate) fn get(&self, slot: u64) -> bool {
        if !self.in_window(slot) {
            return false;
        }
        let (w, bit) = self.position(slot);
        self.words[w] & bit != 0
    }

    /// Sets `slot`; returns false (and does nothing) if it is outside the window.
    #[cfg(test)]
    pub(crate) fn set(&mut self, slot: u64) -> bool {
        if !self.in_window(slot) {
            return false;
        }
        let (w, bit) = self.position(slot);
        self.words[w] |= bit;
        true
    }

    /// Sets `slot` if it is in the window and clear; returns whether it did.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, slot: u64) -> bool {
        if !self.in_window(slot) {
            return false;
        }
        let (w, bit) = self.position(slot);
        let word = &mut self.words[w];
        let was_clear = *word & bit == 0;
        *word |= bit;
        was_clear
    }

    /// Clears `slot`; returns whether it was set.
    #[inline]
    pub(crate) fn clear(&mut self, slot: u64) -> bool {
        if !self.in_window(slot) {
            return false;
        }
        let (w, bit) = self.position(slot);
        let word = &mut self.words[w];
        let was_set = *word & bit != 0;
        *word &= !bit;
        was_set
    }

    /// Applies `f` to the word-aligned pieces of `[from, to)` clipped to the window:
    /// `f(word index, mask of the piece's bits)`.
    fn for_each_piece(&mut self, from: u64, to: u64, mut f: impl FnMut(&mut u64, u64)) {
        let mut from = from.max(self.lo);
        let to = to.min(self.hi);
        while from < to {
            let offset = from % 64;
            let bits = (64 - offset).min(to - from);
            let mask = if bits == 64 { u64::MAX } else { ((1u64 << bits) - 1) << offset };
            let (w, _) = self.position(from);
            f(&mut self.words[w], mask);
            from += bits;
        }
    }

    /// Sets every slot of `[from, to)` inside the window.
    pub(crate) fn set_range(&mut self, from: u64, to: u64) {
        self.for_each_piece(from, to, |word, mask| *word |= mask);
    }

    /// Clears every slot of `[from, to)` inside the window; returns how many were set.
    pub(crate) fn clear_range(&mut self, from: u64, to: u64) -> u64 {
        let mut cleared = 0;
        self.for_each_piece(from, to, |word, mask| {
            cleared += u64::from((*word & mask).count_ones());
            *word &= !mask;
        });
        cleared
    }

    /// Moves the window start forward to `lo`, clearing the slots it leaves behind.
    pub(crate) fn slide_to(&mut self, lo: u64) {
        if lo <= self.lo {
            return;
        }
        if lo - self.lo >= self.capacity {
            self.words.iter_mut().for_each(|w| *w = 0);
        } else {
            self.clear_range(self.lo, lo);
        }
        self.lo = lo;
        self.hi = lo.saturating_add(self.capacity);
    }

    /// First slot in `[from, to)` whose bit equals `value`, if any (searching the window).
    fn find(&self, from: u64, to: u64, value: bool) -> Option<u64> {
        let mut from = from.max(self.lo);
        let to = to.min(self.hi);
        while from < to {
            let offset = from % 64;
            let (w, _) = self.position(from);
            let word = if value { self.words[w] } else { !self.words[w] };
            let candidates = word >> offset;
            if candidates != 0 {
                let slot = from + u64::from(candidates.trailing_zeros());
                return (slot < to).then_some(slot);
            }
            from += 64 - offset;
        }
        None
    }

    /// First set slot in `[from, to)`.
    pub(crate) fn next_set(&self, from: u64, to: u64) -> Option<u64> {
        self.find(from, to, true)
    }

    /// First clear slot in `[from, to)` (slots beyond the window count as clear).
    pub(crate) fn next_clear(&self, from: u64, to: u64) -> Option<u64> {
        match self.find(from, to, false) {
            Some(slot) => Some(slot),
            None => {
                let beyond = from.max(self.hi);
                (beyond < to).then_some(beyond)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear_inside_the_window_only() {
        let mut b = SlotBitmap::new(100);
        assert_eq!(b.capacity(), 128);
        assert!(b.set(0));
        assert!(b.set(127));
        assert!(!b.set(128));
        assert!(b.get(0) && b.get(127) && !b.get(1) && !b.get(128));
        assert!(b.clear(127));
        assert!(!b.clear(127));
    }

    #[test]
    fn sliding_clears_what_it_leaves_and_reuses_the_ring() {
        let mut b = SlotBitmap::new(64);
        b.set_range(0, 64);
        b.slide_to(10);
        assert_eq!(b.lo(), 10);
        assert!(!b.get(9) && b.get(10) && b.get(63));
        // Slots 64..74 reuse the ring positions of 0..10, which the slide cleared.
        for s in 64..74 {
            assert!(!b.get(s));
        }
        assert!(b.set(73));
        b.slide_to(1_000_000);
        assert_eq!(b.next_set(0, u64::MAX), None);
        assert!(b.set(1_000_000) && b.get(1_000_000));
    }

    #[test]
    fn find_ranges_across_words() {
        let mut b = SlotBitmap::new(256);
        b.slide_to(30);
        b.set_range(40, 170);
        assert_eq!(b.next_set(30, 300), Some(40));
        assert_eq!(b.next_clear(40, 300), Some(170));
        assert_eq!(b.next_set(170, 300), None);
        assert_eq!(b.next_set(41, 42), Some(41));
        assert_eq!(b.next_set(0, 40), None);
        assert_eq!(b.clear_range(100, 500), 70);
        assert_eq!(b.next_clear(40, 100), None);
        assert_eq!(b.next_clear(40, 101), Some(100));
        // Beyond the window everything is clear.
        b.set_range(30, 286);
        assert_eq!(b.next_clear(30, 400), Some(286));
    }

    #[test]
    fn insert_and_clear_report_changes() {
        let mut b = SlotBitmap::new(192);
        assert_eq!(b.capacity(), 192);
        assert_eq!(b.hi(), 192);
        assert!(b.insert(5));
        assert!(!b.insert(5));
        assert!(!b.insert(192), "outside the window");
        assert!(b.get(5));
        assert!(b.clear(5));
        assert!(!b.clear(5));
        assert!(!b.clear(192));
        b.slide_to(100);
        assert_eq!(b.hi(), 292);
        assert!(b.insert(291) && !b.insert(292));
    }

    #[test]
    fn matches_a_reference_set() {
        // A small deterministic random walk against BTreeSet, with a ring of a power of two
        // words and one with spare words (3 words of window in a ring of 4).
        use alloc::collections::BTreeSet;
        for cap in [128u64, 192] {
            let mut b = SlotBitmap::new(cap as usize);
            let mut reference = BTreeSet::new();
            let mut x = 0x2545_f491_4f6c_dd1du64;
            let mut lo = 0u64;
            for _ in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let slot = lo + x % cap;
                match (x >> 20) % 7 {
                    0 | 1 => {
                        assert!(b.set(slot));
                        reference.insert(slot);
                    }
                    2 => assert_eq!(b.clear(slot), reference.remove(&slot)),
                    3 => assert_eq!(b.insert(slot), reference.insert(slot)),
                    4 => {
                        lo += (x >> 30) % 40;
                        b.slide_to(lo);
                        reference.retain(|&s| s >= lo);
                    }
                    5 => {
                        let from = lo + (x >> 33) % cap;
                        let to = from + (x >> 40) % cap;
                        let expect = reference.range(from..to.min(lo + cap)).count() as u64;
                        assert_eq!(b.clear_range(from, to), expect);
                        reference.retain(|&s| s < from || s >= to);
                    }
                    _ => {
                        let from = lo + (x >> 33) % cap;
                        let expect = reference.range(from..lo + cap).next().copied();
                        assert_eq!(b.next_set(from, lo + cap), expect);
                    }
                }
                assert_eq!(b.get(slot), reference.contains(&slot));
            }
        }
    }
}
