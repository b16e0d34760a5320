//! Encoded messages waiting for the transport, and the buffers they reuse.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::id::NodeId;
use crate::wire::message::{self, Message};

use super::SocketLayer;

/// One encoded socket message for the exactly-once transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The destination node.
    pub to: NodeId,
    /// The encoded message ([`crate::wire::message`]).
    pub bytes: Vec<u8>,
}

/// Spare byte buffers, so messages in steady state do not allocate.
#[derive(Debug)]
pub(crate) struct BufferPool {
    free: Vec<Vec<u8>>,
    max: usize,
}

/// Buffers larger than this are not kept (one jumbo message should not pin memory).
const MAX_POOLED_CAPACITY: usize = 64 * 1024;

impl BufferPool {
    pub(crate) fn new(max: usize) -> Self {
        Self { free: Vec::new(), max }
    }

    /// A buffer holding a copy of `bytes`.
    #[inline]
    pub(crate) fn copy_of(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        buf
    }

    /// A buffer of `len` bytes of unspecified content, to be overwritten. Pooled buffers
    /// keep their old length, so only bytes beyond it are zeroed.
    pub(crate) fn take_len(&mut self, len: usize) -> Vec<u8> {
        let mut buf = self.free.pop().unwrap_or_default();
        buf.resize(len, 0);
        buf
    }

    /// Keeps `buf` for reuse if there is room.
    pub(crate) fn give(&mut self, buf: Vec<u8>) {
        if self.free.len() < self.max && buf.capacity() <= MAX_POOLED_CAPACITY {
            self.free.push(buf);
        }
    }
}

/// Messages encoded and waiting for the transport.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) queue: VecDeque<Outgoing>,
    pub(crate) pool: BufferPool,
}

impl Outbox {
    pub(crate) fn new(pooled: usize) -> Self {
        Self { queue: VecDeque::new(), pool: BufferPool::new(pooled) }
    }

    /// Encodes `msg` for `to`; `false` if it cannot be encoded (a bad custom kind).
    pub(crate) fn push(&mut self, to: &NodeId, msg: &Message<'_>) -> bool {
        let Ok(len) = msg.encoded_len() else { return false };
        let mut buf = self.pool.take_len(len);
        match message::encode(msg, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                self.queue.push_back(Outgoing { to: to.clone(), bytes: buf });
                true
            }
            Err(_) => {
                self.pool.give(buf);
                false
            }
        }
    }
}

impl SocketLayer {
    /// The next encoded message for the transport. Give its buffer back with
    /// [`SocketLayer::recycle`] once submitted.
    pub fn poll_outgoing(&mut self) -> Option<Outgoing> {
        self.shared.out.queue.pop_front()
    }

    /// The next message for the transport, left queued (submit it, then
    /// [`SocketLayer::pop_outgoing`]; if the transport is full, try again later).
    pub fn peek_outgoing(&self) -> Option<(&NodeId, &[u8])> {
        self.shared.out.queue.front().map(|o| (&o.to, o.bytes.as_slice()))
    }

    /// Drops the message [`SocketLayer::peek_outgoing`] showed (reusing its buffer).
    pub fn pop_outgoing(&mut self) -> bool {
        match self.shared.out.queue.pop_front() {
            Some(o) => {
                self.shared.out.pool.give(o.bytes);
                true
            }
            None => false,
        }
    }

    /// Messages waiting for the transport.
    pub fn outgoing_len(&self) -> usize {
        self.shared.out.queue.len()
    }
}
