//! Payload buffers: a recycling pool, and the bounded inbox of delivered payloads.
//!
//! Every payload the node holds (queued, in flight, or delivered and waiting) lives in a
//! `Vec<u8>` taken from the pool and given back once the payload is acknowledged or read, so
//! in steady state no message allocates.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::id::NodeId;

/// Recycled payload buffers.
#[derive(Debug)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
    max_buffers: usize,
    max_capacity: usize,
}

impl BufPool {
    /// A pool keeping at most `max_buffers` idle buffers of at most `max_capacity` bytes.
    pub(crate) fn new(max_buffers: usize, max_capacity: usize) -> Self {
        Self { free: Vec::new(), max_buffers, max_capacity }
    }

    /// A buffer holding a copy of `bytes`.
    pub(crate) fn copy_of(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        buf
    }

    /// Returns a buffer for reuse (dropped if the pool is full or the buffer is oversized).
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if self.free.len() < self.max_buffers && buf.capacity() <= self.max_capacity {
            self.free.push(buf);
        }
    }
}

/// Payloads delivered by the exactly-once layer, waiting for the application.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: VecDeque<(NodeId, Vec<u8>)>,
    capacity: usize,
}

impl Inbox {
    /// An inbox that holds at most `capacity` payloads.
    pub(crate) fn new(capacity: usize) -> Self {
        Self { queue: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// True if no further payload may be delivered until the application reads one.
    pub(crate) fn is_full(&self) -> bool {
        self.queue.len() >= self.capacity
    }

    /// Number of payloads waiting.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Appends a payload; the caller checked [`Inbox::is_full`].
    pub(crate) fn push(&mut self, from: NodeId, payload: Vec<u8>) {
        self.queue.push_back((from, payload));
    }

    /// The oldest payload, without removing it.
    pub(crate) fn front(&self) -> Option<&(NodeId, Vec<u8>)> {
        self.queue.front()
    }

    /// Removes the oldest payload.
    pub(crate) fn pop(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_buffers_up_to_its_bounds() {
        let mut pool = BufPool::new(1, 16);
        let a = pool.copy_of(b"hello");
        let ptr = a.as_ptr();
        pool.recycle(a);
        let b = pool.copy_of(b"hi");
        assert_eq!(b, b"hi");
        assert_eq!(b.as_ptr(), ptr);
        pool.recycle(b);
        pool.recycle(alloc::vec![0; 4]);
        assert_eq!(pool.free.len(), 1);
        let mut big = pool.copy_of(&[1; 64]);
        big.shrink_to_fit();
        pool.free.clear();
        pool.recycle(big);
        assert!(pool.free.is_empty());
    }

    #[test]
    fn inbox_is_bounded_and_fifo() {
        let mut inbox = Inbox::new(2);
        let a = NodeId::new("a").unwrap();
        inbox.push(a.clone(), alloc::vec![1]);
        assert!(!inbox.is_full());
        inbox.push(a.clone(), alloc::vec![2]);
        assert!(inbox.is_full());
        assert_eq!(inbox.pop().map(|(_, p)| p), Some(alloc::vec![1]));
        assert_eq!(inbox.front().map(|(_, p)| p.clone()), Some(alloc::vec![2]));
        assert_eq!(inbox.len(), 1);
    }
}
