//! Encoded messages waiting for the transport (in order per destination, held back while
//! the transport cannot take them), and the buffers they reuse.

use alloc::collections::{BTreeMap, VecDeque};
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

/// What the transport did with a message [`SocketLayer::retry_held`] offered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offer {
    /// The transport took it.
    Taken,
    /// The transport is full for this destination: keep it (and the ones after it).
    Full,
    /// The transport can never take it (unknown peer, too large): drop it.
    Refused,
}

/// Messages encoded and waiting for the transport.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) queue: VecDeque<Outgoing>,
    /// Messages the transport could not take yet, per destination, in order: every later
    /// message for a destination waits behind them.
    held: BTreeMap<NodeId, VecDeque<Vec<u8>>>,
    /// Messages in `held`.
    held_len: usize,
    pub(crate) pool: BufferPool,
}

impl Outbox {
    pub(crate) fn new(pooled: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            held: BTreeMap::new(),
            held_len: 0,
            pool: BufferPool::new(pooled),
        }
    }

    /// Moves the first queued message behind the held ones of its destination.
    fn hold_front(&mut self) -> bool {
        let Some(out) = self.queue.pop_front() else { return false };
        self.held.entry(out.to).or_default().push_back(out.bytes);
        self.held_len += 1;
        true
    }

    /// Holds queued messages whose destination has held ones, until the first that has
    /// none (keeping each destination's order).
    #[inline]
    fn skip_held(&mut self) {
        if self.held_len != 0 {
            self.skip_held_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn skip_held_slow(&mut self) {
        while let Some(out) = self.queue.front()
            && self.held.contains_key(&out.to)
        {
            self.hold_front();
        }
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

impl Outbox {
    /// Queues a DATA_FANOUT for `to` (see [`message::encode_fanout`]); false if it cannot be
    /// encoded.
    pub(crate) fn push_fanout(
        &mut self,
        to: &NodeId,
        src_tag: &str,
        destinations: &[message::FanoutDestination<'_>],
        payload: &[u8],
    ) -> bool {
        let len = message::fanout_len(src_tag, destinations, payload);
        let mut buf = self.pool.take_len(len);
        match message::encode_fanout(src_tag, destinations, payload, &mut buf) {
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
    /// [`SocketLayer::recycle`] once submitted. Messages for a destination with held ones
    /// ([`SocketLayer::hold_outgoing`]) are held behind them instead.
    pub fn poll_outgoing(&mut self) -> Option<Outgoing> {
        self.shared.out.skip_held();
        self.shared.out.queue.pop_front()
    }

    /// The next message for the transport, left queued: submit it, then
    /// [`SocketLayer::pop_outgoing`]; if the transport is full for its destination,
    /// [`SocketLayer::hold_outgoing`]. Messages for a destination with held ones are held
    /// behind them on the way.
    pub fn peek_outgoing(&mut self) -> Option<(&NodeId, &[u8])> {
        self.shared.out.skip_held();
        self.shared.out.queue.front().map(|o| (&o.to, o.bytes.as_slice()))
    }

    /// Holds the message [`SocketLayer::peek_outgoing`] showed: the transport cannot take
    /// it now. It and every later message for the same destination wait, in order, until
    /// [`SocketLayer::retry_held`] gets them through.
    pub fn hold_outgoing(&mut self) -> bool {
        self.shared.out.hold_front()
    }

    /// Offers the held messages to the transport, each destination's in order, until
    /// `submit` answers [`Offer::Full`] for that destination; drops those it answers
    /// [`Offer::Refused`]. Returns whether it took any.
    pub fn retry_held(&mut self, mut submit: impl FnMut(&NodeId, &[u8]) -> Offer) -> bool {
        let out = &mut self.shared.out;
        if out.held_len == 0 {
            return false;
        }
        let mut taken = false;
        for (to, queue) in out.held.iter_mut() {
            while let Some(front) = queue.front() {
                let offer = submit(to, front);
                if offer == Offer::Full {
                    break;
                }
                taken |= offer == Offer::Taken;
                if let Some(buf) = queue.pop_front() {
                    out.pool.give(buf);
                }
                out.held_len -= 1;
            }
        }
        out.held.retain(|_, queue| !queue.is_empty());
        taken
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

    /// Messages waiting for the transport, held ones included.
    pub fn outgoing_len(&self) -> usize {
        self.shared.out.queue.len() + self.shared.out.held_len
    }
}
