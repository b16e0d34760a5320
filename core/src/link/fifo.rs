//! FIFO delivery per link over an unordered transport.

use alloc::collections::VecDeque;

/// Why a DATA message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FifoError {
    /// Its sequence number was already handed to the application.
    Stale,
    /// A message with this sequence number is already queued.
    Duplicate,
    /// It is further ahead of the application than the credits allow.
    BeyondWindow,
}

/// Messages of one link, handed out in sequence-number order.
///
/// DATA messages carry a per-link sequence number from 0. They may arrive in any order;
/// each is stored at its place and the application only gets the next one in sequence.
/// Credits bound how far ahead the sender can be, so the caller passes that bound to
/// [`InOrderQueue::insert`] and the queue never holds more (it does not allocate once it
/// has grown to the bound).
#[derive(Debug, Clone)]
pub struct InOrderQueue<T> {
    /// Sequence number of `slots[0]`: the next message the application gets.
    base: u64,
    slots: VecDeque<Option<T>>,
    held: usize,
}

impl<T> Default for InOrderQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> InOrderQueue<T> {
    /// An empty queue expecting sequence number 0.
    pub const fn new() -> Self {
        Self { base: 0, slots: VecDeque::new(), held: 0 }
    }

    /// Stores message `seq`, which must be less than `bound` ahead of the next one to hand
    /// out. Returns whether the next message just became available (a readable edge).
    /// On error the item comes back, so its buffer can be reused.
    #[inline]
    pub fn insert(&mut self, seq: u64, item: T, bound: u64) -> Result<bool, (FifoError, T)> {
        let Some(offset) = seq.checked_sub(self.base) else {
            return Err((FifoError::Stale, item));
        };
        if offset >= bound {
            return Err((FifoError::BeyondWindow, item));
        }
        // offset < bound, and the bound is at most the window of the link.
        let offset = offset as usize;
        if offset == self.slots.len() {
            // In order, the usual case: append.
            self.slots.push_back(Some(item));
            self.held += 1;
            return Ok(offset == 0);
        }
        if offset > self.slots.len() {
            self.slots.resize_with(offset + 1, || None);
        }
        let slot = &mut self.slots[offset];
        if slot.is_some() {
            return Err((FifoError::Duplicate, item));
        }
        *slot = Some(item);
        self.held += 1;
        Ok(offset == 0)
    }

    /// Whether the next message in sequence is here.
    #[inline]
    pub fn is_ready(&self) -> bool {
        matches!(self.slots.front(), Some(Some(_)))
    }

    /// The next message in sequence, if it is here, without removing it.
    #[inline]
    pub fn peek(&self) -> Option<&T> {
        self.slots.front().and_then(Option::as_ref)
    }

    /// The next message in sequence, if it is here, to change it in place.
    pub fn peek_mut(&mut self) -> Option<&mut T> {
        self.slots.front_mut().and_then(Option::as_mut)
    }

    /// Hands out the next sequence number without a message: the caller took its message
    /// straight from the transport (it arrived in order). `false`, and no change, if that
    /// message is already stored.
    pub fn skip(&mut self) -> bool {
        match self.slots.front() {
            Some(Some(_)) => false,
            Some(None) => {
                self.slots.pop_front();
                self.base += 1;
                true
            }
            None => {
                self.base += 1;
                true
            }
        }
    }

    /// Whether `seq` is the next sequence number to hand out and its message is not
    /// stored yet: a message arriving with it can be handed out at once.
    pub fn expects(&self, seq: u64) -> bool {
        seq == self.base && !matches!(self.slots.front(), Some(Some(_)))
    }

    /// The next message in sequence, if it is here.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if !self.is_ready() {
            return None;
        }
        let item = self.slots.pop_front().flatten();
        self.base += 1;
        self.held -= 1;
        item
    }

    /// Messages stored (ready or waiting for an earlier one).
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether no message is stored.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Sequence number of the next message to hand out (= messages handed out so far).
    pub fn next_seq(&self) -> u64 {
        self.base
    }

    /// Removes every stored message (in slot order), e.g. to recycle buffers.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.held = 0;
        self.slots.drain(..).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_in_order_whatever_the_arrival_order() {
        let mut q = InOrderQueue::new();
        assert_eq!(q.insert(2, 'c', 4), Ok(false));
        assert_eq!(q.insert(1, 'b', 4), Ok(false));
        assert_eq!(q.pop(), None);
        assert_eq!(q.insert(0, 'a', 4), Ok(true));
        assert_eq!(q.len(), 3);
        assert_eq!((q.pop(), q.pop(), q.pop(), q.pop()), (Some('a'), Some('b'), Some('c'), None));
        assert_eq!(q.next_seq(), 3);
    }

    #[test]
    fn skipping_hands_out_a_number_without_storing() {
        let mut q = InOrderQueue::new();
        assert!(q.expects(0));
        assert_eq!(q.insert(1, 'b', 4), Ok(false));
        assert!(q.skip());
        assert_eq!(q.next_seq(), 1);
        assert!(!q.expects(1) && !q.skip(), "message 1 is stored");
        *q.peek_mut().unwrap() = 'B';
        assert_eq!(q.pop(), Some('B'));
        assert!(q.skip() && q.expects(3));
        assert_eq!(q.insert(2, 'c', 4), Err((FifoError::Stale, 'c')));
        assert!(q.is_empty());
    }

    #[test]
    fn rejects_stale_duplicate_and_too_far() {
        let mut q = InOrderQueue::new();
        q.insert(0, 1, 2).unwrap();
        assert_eq!(q.insert(0, 9, 2), Err((FifoError::Duplicate, 9)));
        assert_eq!(q.insert(2, 9, 2), Err((FifoError::BeyondWindow, 9)));
        q.pop();
        assert_eq!(q.insert(0, 9, 2), Err((FifoError::Stale, 9)));
        assert_eq!(q.insert(2, 3, 2), Ok(false));
    }
}
