//! A fixed memory of the newest sealed datagram seen from a few senders, for when there is
//! no peer entry to keep it: the replay window of a peer whose entry was evicted, and the
//! highest datagram an epoch notice answered (see [`crate::seal`]).
//!
//! A sender's (epoch, counter) only grows: its epoch at every start, its counter at every
//! datagram. So a datagram at or below the newest remembered from its sender is a replay
//! (or a late copy), and a genuine sender's next datagram is always above every capture of
//! its past ones.

use crate::id::NodeId;

/// The newest (epoch, counter) seen from up to `N` senders; the sender used longest ago
/// gives way to a new one.
#[derive(Debug)]
pub(crate) struct NewestSeen<const N: usize> {
    /// (sender, epoch, counter, last use).
    entries: [Option<(NodeId, u64, u64, u64)>; N],
    /// Records made so far: the order of last use.
    uses: u64,
}

impl<const N: usize> NewestSeen<N> {
    /// An empty memory.
    pub(crate) fn new() -> Self {
        Self { entries: [const { None }; N], uses: 0 }
    }

    /// True if `src`'s datagram of `epoch` and `counter` is newer than the newest
    /// remembered from it (or nothing is remembered from it).
    pub(crate) fn is_new(&self, src: &NodeId, epoch: u64, counter: u64) -> bool {
        self.entries
            .iter()
            .flatten()
            .find(|(id, ..)| id == src)
            .is_none_or(|(_, e, c, _)| (epoch, counter) > (*e, *c))
    }

    /// The newest (epoch, counter) remembered from `src`.
    pub(crate) fn newest(&self, src: &NodeId) -> Option<(u64, u64)> {
        self.entries.iter().flatten().find(|(id, ..)| id == src).map(|(_, e, c, _)| (*e, *c))
    }

    /// Remembers `src`'s datagram of `epoch` and `counter` (if newer than what is
    /// remembered from it).
    pub(crate) fn record(&mut self, src: &NodeId, epoch: u64, counter: u64) {
        self.uses += 1;
        let slot =
            match self.entries.iter().position(|e| e.as_ref().is_some_and(|(id, ..)| id == src)) {
                Some(i) => i,
                None => self
                    .entries
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.as_ref().map(|(.., used)| *used))
                    .map_or(0, |(i, _)| i),
            };
        let newest = match &self.entries[slot] {
            Some((id, e, c, _)) if id == src => (epoch, counter).max((*e, *c)),
            _ => (epoch, counter),
        };
        self.entries[slot] = Some((src.clone(), newest.0, newest.1, self.uses));
    }

    /// Forgets `src` and returns the newest (epoch, counter) remembered from it (a peer
    /// entry keeps its window again).
    pub(crate) fn take(&mut self, src: &NodeId) -> Option<(u64, u64)> {
        let entry =
            self.entries.iter_mut().find(|e| e.as_ref().is_some_and(|(id, ..)| id == src))?;
        entry.take().map(|(_, epoch, counter, _)| (epoch, counter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_datagrams_above_the_newest_remembered_are_new() {
        let a = NodeId::new("a").unwrap();
        let mut m = NewestSeen::<4>::new();
        assert!(m.is_new(&a, 7, 5));
        m.record(&a, 7, 5);
        assert!(!m.is_new(&a, 7, 5));
        assert!(!m.is_new(&a, 7, 3));
        assert!(!m.is_new(&a, 6, 1_000), "an older start of a");
        assert!(m.is_new(&a, 7, 6));
        assert!(m.is_new(&a, 8, 0), "a newer start of a");
        assert_eq!(m.newest(&a), Some((7, 5)));
        m.record(&a, 7, 2);
        assert!(!m.is_new(&a, 7, 5), "recording an older one keeps the newest");
        assert_eq!(m.take(&a), Some((7, 5)));
        assert!(m.is_new(&a, 7, 5));
        assert_eq!(m.take(&a), None);
    }

    #[test]
    fn a_new_sender_pushes_out_the_one_used_longest_ago() {
        let id = |i: u64| NodeId::new(&alloc::format!("n{i}")).unwrap();
        let mut m = NewestSeen::<4>::new();
        for i in 0..4 {
            m.record(&id(i), 1, 9);
        }
        m.record(&id(0), 1, 10);
        m.record(&id(9), 1, 1);
        assert!(!m.is_new(&id(0), 1, 9), "n0 was used last of the first four");
        assert!(m.is_new(&id(1), 1, 9), "n1, used longest ago, gave way");
        assert!(!m.is_new(&id(2), 1, 9));
    }
}
