//! Per-link credit flow control (thesis §4.7).
//!
//! A DATA message needs one credit of its link; control messages (LINK, LINKREPLY, UNLINK,
//! FLOW and custom kinds) never do. A socket message larger than one DATA is several DATA
//! messages (fragments), each with its credit; the receiver owes a fragment's credit back
//! as soon as it joins the message being reassembled, and the last one's when the
//! application takes the message (see [`crate::link`]). The two ends keep separate state:
//!
//! * the sender's [`SendCredits`]: a signed balance, starting at the capacity the receiver
//!   announced when linking (LINK / LINKREPLY carry it). One credit leaves per DATA sent.
//! * the receiver's [`RecvCredits`]: the link's capacity and the credits it owes back. A
//!   credit is owed when the application *takes* a message, not when it arrives, so the
//!   receive queue never holds more than the capacity. Owed credits go back in batches
//!   (a FLOW message) once they reach a threshold, a configurable percentage of the
//!   capacity ([`BatchPercent`]).
//!
//! # Capacity changes commute
//!
//! The transport delivers FLOW messages exactly once but in any order, so a FLOW never says
//! "the capacity is now N": it carries *relative* numbers ([`FlowUpdate`]: credits returned
//! plus a signed capacity change). Addition commutes, so the sender's balance converges to
//! the same value whatever order the FLOWs arrive in. A decrease may drive the balance
//! negative; the sender then waits until enough credits come back.
//!
//! # What the receiver can hold
//!
//! With a constant capacity `C`, the sender can never be more than `C` messages ahead of
//! the application: `balance + in flight + queued + owed == C` at all times. After capacity
//! decreases, FLOWs applied out of order can let a sender briefly use credits that a later
//! decrease takes back, so the bound the receiver enforces is
//! [`RecvCredits::window_bound`]: the capacity plus every decrease it has announced.

use core::fmt;

/// Credits one FLOW message carries: a batch of returned credits and a capacity change.
///
/// The sender adds both to its balance; the result does not depend on the order in which
/// several updates are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowUpdate {
    /// Credits returned: messages the receiving application took since the last return.
    pub credits: u32,
    /// Change of the receiver's capacity (negative: fewer messages may be outstanding).
    pub capacity_delta: i32,
}

impl FlowUpdate {
    /// What the update does to the sender's balance.
    pub fn net(self) -> i64 {
        i64::from(self.credits) + i64::from(self.capacity_delta)
    }
}

/// The sender's side of a link: how many DATA messages it may still send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SendCredits {
    balance: i64,
}

impl SendCredits {
    /// A balance of `initial` credits: the capacity the receiver announced when linking.
    pub const fn new(initial: u32) -> Self {
        Self { balance: initial as i64 }
    }

    /// The current balance; negative after a capacity decrease overtook sends.
    pub const fn balance(&self) -> i64 {
        self.balance
    }

    /// Whether a DATA message may be sent now.
    pub const fn can_send(&self) -> bool {
        self.balance > 0
    }

    /// Takes one credit for a DATA message; `false` (and no change) when there is none.
    pub fn try_consume(&mut self) -> bool {
        if self.balance > 0 {
            self.balance -= 1;
            true
        } else {
            false
        }
    }

    /// Applies a FLOW message. Returns `true` when the link just became able to send (the
    /// balance went from zero or less to positive): the one moment a writable edge is due.
    pub fn apply(&mut self, update: FlowUpdate) -> bool {
        let was_blocked = self.balance <= 0;
        self.balance = self.balance.saturating_add(update.net());
        was_blocked && self.balance > 0
    }
}

/// A batch threshold as a percentage of the capacity, 1 to 100 (thesis option
/// "batchSizePercentage", default 25%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchPercent(u8);

impl BatchPercent {
    /// The default: credits go back in batches of a quarter of the capacity.
    pub const DEFAULT: BatchPercent = BatchPercent(25);

    /// `percent` if it is between 1 and 100.
    pub const fn new(percent: u8) -> Option<Self> {
        if percent >= 1 && percent <= 100 { Some(BatchPercent(percent)) } else { None }
    }

    /// The percentage.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The batch size for `capacity`: the percentage rounded up, at least 1 and at most
    /// the capacity (when it is positive), so owed credits always go back eventually.
    pub fn threshold(self, capacity: u32) -> u32 {
        let t = (u64::from(capacity) * u64::from(self.0)).div_ceil(100);
        (t as u32).max(1)
    }
}

impl Default for BatchPercent {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for BatchPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// The receiver's side of a link: its capacity and the credits it owes the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecvCredits {
    capacity: u32,
    owed: u32,
    decreases: u64,
    batch: BatchPercent,
}

impl RecvCredits {
    /// A receiver that announced `capacity` and returns credits in batches of `batch`.
    pub const fn new(capacity: u32, batch: BatchPercent) -> Self {
        Self { capacity, owed: 0, decreases: 0, batch }
    }

    /// The link's capacity now.
    pub const fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Credits taken by the application and not yet returned.
    pub const fn owed(&self) -> u32 {
        self.owed
    }

    /// The batch percentage.
    pub const fn batch(&self) -> BatchPercent {
        self.batch
    }

    /// How many owed credits trigger a FLOW.
    pub fn threshold(&self) -> u32 {
        self.batch.threshold(self.capacity)
    }

    /// The most messages the sender can ever have sent beyond what the application took:
    /// the capacity plus every decrease announced (see the module docs). A DATA message
    /// further ahead is a protocol violation.
    pub fn window_bound(&self) -> u64 {
        u64::from(self.capacity) + self.decreases
    }

    /// Changes the batch percentage; returns the FLOW due if owed credits now reach it.
    pub fn set_batch(&mut self, batch: BatchPercent) -> Option<FlowUpdate> {
        self.batch = batch;
        self.due()
    }

    /// The application took one message: one more credit is owed. Returns the FLOW to send
    /// when the batch is full.
    pub fn on_taken(&mut self) -> Option<FlowUpdate> {
        self.owed = self.owed.saturating_add(1);
        self.due()
    }

    /// Sets the capacity; returns the FLOW announcing the change (with any owed credits).
    pub fn set_capacity(&mut self, capacity: u32) -> Option<FlowUpdate> {
        let delta = i64::from(capacity) - i64::from(self.capacity);
        // Steps of at most an i32 each; a change that large is applied in several FLOWs
        // in practice never, so clamp to what one FLOW carries.
        let delta = delta.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        self.adjust_capacity(delta)
    }

    /// Changes the capacity by `delta` (clamped so it stays within `0..=u32::MAX`); returns
    /// the FLOW announcing the change, or `None` if the capacity did not change.
    pub fn adjust_capacity(&mut self, delta: i32) -> Option<FlowUpdate> {
        let target = (i64::from(self.capacity) + i64::from(delta)).clamp(0, i64::from(u32::MAX));
        let delta = (target - i64::from(self.capacity)) as i32;
        if delta == 0 {
            return None;
        }
        if delta < 0 {
            self.decreases = self.decreases.saturating_add(u64::from(delta.unsigned_abs()));
        }
        self.capacity = target as u32;
        let credits = core::mem::take(&mut self.owed);
        Some(FlowUpdate { credits, capacity_delta: delta })
    }

    /// Returns every owed credit now (if any), whatever the batch.
    pub fn flush(&mut self) -> Option<FlowUpdate> {
        if self.owed == 0 {
            return None;
        }
        Some(FlowUpdate { credits: core::mem::take(&mut self.owed), capacity_delta: 0 })
    }

    fn due(&mut self) -> Option<FlowUpdate> {
        if self.owed >= self.threshold() { self.flush() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_rounds_up_and_is_never_zero() {
        let b = BatchPercent::DEFAULT;
        assert_eq!(b.threshold(100), 25);
        assert_eq!(b.threshold(10), 3);
        assert_eq!(b.threshold(1), 1);
        assert_eq!(b.threshold(0), 1);
        assert_eq!(BatchPercent::new(100).unwrap().threshold(7), 7);
        assert!(BatchPercent::new(0).is_none() && BatchPercent::new(101).is_none());
    }

    #[test]
    fn credits_return_in_batches() {
        let mut rx = RecvCredits::new(8, BatchPercent::new(50).unwrap());
        assert_eq!(rx.on_taken(), None);
        assert_eq!(rx.on_taken(), None);
        assert_eq!(rx.on_taken(), None);
        assert_eq!(rx.on_taken(), Some(FlowUpdate { credits: 4, capacity_delta: 0 }));
        assert_eq!(rx.owed(), 0);
    }

    #[test]
    fn capacity_changes_carry_owed_credits_and_track_decreases() {
        let mut rx = RecvCredits::new(10, BatchPercent::DEFAULT);
        rx.on_taken();
        assert_eq!(rx.set_capacity(4), Some(FlowUpdate { credits: 1, capacity_delta: -6 }));
        assert_eq!(rx.window_bound(), 10);
        assert_eq!(rx.adjust_capacity(-10), Some(FlowUpdate { credits: 0, capacity_delta: -4 }));
        assert_eq!(rx.capacity(), 0);
        assert_eq!(rx.adjust_capacity(-1), None);
    }

    #[test]
    fn sender_reports_the_writable_edge_once() {
        let mut tx = SendCredits::new(1);
        assert!(tx.try_consume());
        assert!(!tx.try_consume());
        assert!(!tx.apply(FlowUpdate { credits: 0, capacity_delta: -2 }));
        assert!(!tx.apply(FlowUpdate { credits: 2, capacity_delta: 0 }));
        assert!(tx.apply(FlowUpdate { credits: 1, capacity_delta: 0 }));
        assert!(!tx.apply(FlowUpdate { credits: 1, capacity_delta: 0 }));
        assert_eq!(tx.balance(), 2);
    }
}
