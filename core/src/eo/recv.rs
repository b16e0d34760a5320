//! The receive record: one half-connection seen from the receiver.
//!
//! It holds the record's incarnation, `next` (one past the highest slot ever granted), the
//! highest `l` the sender reported (it no longer cares about slots below), and a sliding bitmap
//! of the open slots (granted, no token delivered yet) over the window `[lo, next)`, where `lo`
//! is the lowest open slot.
//!
//! # Acknowledgements carry the whole state
//!
//! Every slot the sender may still hold a token for (at or above its `l`) that is not open was
//! delivered. So an `ACK` does not list what arrived since the last one: it lists every
//! delivered slot from `l` up (`[l, lo)` as one range, then the runs between open slots), as
//! QUIC's ACK frames repeat their ranges. A lost ACK is repaired by the next one, whatever the
//! number of tokens it covered, and the sender can tell a hole (an open slot below a delivered
//! one) from a late ACK. The cost is a few ranges per ACK: one per run of open slots.
//! ACKs are sent when tokens arrive (at once for a duplicate, which says the sender missed an
//! ACK), held back at most `ack_delay` for a datagram of ours to carry them.

use core::time::Duration;

use crate::id::NodeId;
use crate::time::Instant;
use crate::wire::{Ack, DatagramWriter, MAX_ACK_RANGES, Record, ReqSlots, SlotRange, Slots, Token};

use super::Env;

/// Least time between two statuses answering requests a record cannot grant from.
const STALE_REQUEST_STATUS: Duration = Duration::from_millis(100);
use super::slots::SlotBitmap;

/// ACK records one acknowledgement may take (each up to [`MAX_ACK_RANGES`] ranges): past
/// that, the runs of delivered slots nearest `next` wait for the next ACK.
const ACK_RECORDS: usize = 4;
/// Probe interval ceiling, in multiples of the idle timeout.
const MAX_PROBE_BACKOFF: u32 = 16;

/// What the node must do with a receive record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvOutcome {
    /// Keep it.
    Keep,
    /// Drop it: its incarnation is over.
    Forget,
}

/// The receiver's state for one sender.
#[derive(Debug)]
pub(crate) struct RecvRecord {
    inc: u64,
    /// The first slot of the record: nothing below it was ever granted.
    first: u64,
    next: u64,
    lowest: u64,
    open: SlotBitmap,
    open_count: u64,
    /// Tokens (delivered or duplicate) that arrived since the last ACK went out.
    ack_owed: u64,
    /// When the oldest of those arrived (the delayed-ACK clock).
    ack_since: Option<Instant>,
    /// The owed ACK must go now: enough tokens, a duplicate, or the delay is over.
    /// Until then it only rides along with other records to the sender.
    ack_due: bool,
    grant: Option<Slots>,
    status_due: bool,
    /// When a request this record could not grant from last got a status.
    stale_status_at: Option<Instant>,
    last_heard: Instant,
    probe_at: Instant,
    probe_interval: Duration,
    /// The probe timer is as `heard(last_heard)` left it (no probe since): hearing again at
    /// the same instant (the other records of a datagram) changes nothing.
    probe_fresh: bool,
}

impl RecvRecord {
    /// A record with a fresh incarnation whose slots start at `start`.
    pub(crate) fn new(env: &mut Env, now: Instant, start: u64) -> Self {
        let mut open = SlotBitmap::new(env.params.receive_window);
        open.slide_to(start);
        let idle = env.params.idle_timeout;
        Self {
            inc: env.issue_incarnation(),
            first: start,
            next: start,
            lowest: 0,
            open,
            open_count: 0,
            ack_owed: 0,
            ack_since: None,
            ack_due: false,
            grant: None,
            status_due: false,
            stale_status_at: None,
            last_heard: now,
            probe_at: now + idle * 2,
            probe_interval: idle,
            probe_fresh: true,
        }
    }

    /// The record's incarnation.
    #[cfg(test)]
    pub(crate) fn incarnation(&self) -> u64 {
        self.inc
    }

    /// False if `token` must come from a previous start of this node: it names an
    /// incarnation above the record's, or the record's but a slot below any it granted.
    pub(crate) fn could_be_ours(&self, token: &Token<'_>) -> bool {
        token.incarnation < self.inc || (token.incarnation == self.inc && token.slot >= self.first)
    }

    /// True if no token was delivered from this record (every slot granted is still open).
    pub(crate) fn delivered_nothing(&self) -> bool {
        self.open_count == self.next - self.first
    }

    #[inline]
    fn heard(&mut self, env: &Env, now: Instant) {
        if self.probe_fresh && self.last_heard == now {
            return;
        }
        self.probe_fresh = true;
        self.last_heard = now;
        self.probe_interval = env.params.idle_timeout;
        self.probe_at = now + env.params.idle_timeout * 2;
    }

    /// True if forgetting the record loses nothing: every slot the sender may still hold a
    /// token for (at or above its reported `l`) is open, i.e. undelivered.
    pub(crate) fn safe_to_forget(&self) -> bool {
        self.lowest >= self.next
            || (self.lowest >= self.open.lo() && self.open_count == self.next - self.lowest)
    }

    /// Moves the window start to the lowest slot still open.
    fn advance_lo(&mut self) {
        let lo = self.open.lo();
        let first_open = if self.open_count > 0 { self.open.next_set(lo, self.next) } else { None };
        self.open.slide_to(first_open.unwrap_or(self.next));
    }

    /// The sender no longer cares about slots below `lowest`: cancel them.
    fn cancel_below(&mut self, lowest: u64) {
        let to = lowest.min(self.next);
        if to > self.open.lo() {
            self.open_count -= self.open.clear_range(self.open.lo(), to);
        }
        // Slots below `lowest` that were never granted can never be granted now.
        self.next = self.next.max(lowest);
        self.advance_lo();
    }

    /// A `REQSLOTS` record.
    pub(crate) fn on_reqslots(
        &mut self,
        env: &mut Env,
        now: Instant,
        req: ReqSlots,
    ) -> RecvOutcome {
        self.heard(env, now);
        self.lowest = self.lowest.max(req.lowest);
        self.cancel_below(self.lowest);
        if req.count == 0 {
            return if self.lowest >= self.next { RecvOutcome::Forget } else { RecvOutcome::Keep };
        }
        let wanted_end = req.start.saturating_add(req.count.into());
        if req.start >= self.next {
            // Fresh slots, as many as the window holds.
            let end = wanted_end.min(self.open.hi());
            if end > req.start {
                self.open.set_range(req.start, end);
                self.open_count += end - req.start;
                self.next = end;
                let count = (end - req.start) as u32;
                self.grant = Some(Slots { start: req.start, incarnation: self.inc, count });
                env.stats.slots_granted += u64::from(count);
            } else {
                env.stats.window_full += 1;
            }
        } else {
            // A repeated request: grant again the open slots from its start.
            let limit = wanted_end.min(self.next);
            let end = if self.open.get(req.start) {
                self.open.next_clear(req.start, limit).unwrap_or(limit)
            } else {
                req.start
            };
            if end > req.start {
                let count = (end - req.start) as u32;
                self.grant = Some(Slots { start: req.start, incarnation: self.inc, count });
            } else {
                // Nothing left to grant from there: a late copy of a request, or a sender
                // that restarted with its clock behind the slots its previous start used.
                // A status tells it where this record stands (`SendRecord::on_slots`); at
                // most one per interval, or replayed requests would each get one (and each
                // status makes a live sender repeat its request).
                if self.stale_status_at.is_none_or(|at| now >= at + STALE_REQUEST_STATUS) {
                    self.stale_status_at = Some(now);
                    self.status_due = true;
                }
                env.stats.stale_records += 1;
            }
        }
        RecvOutcome::Keep
    }

    /// A `TOKEN` record: deliver it if its slot is open and the inbox has room.
    pub(crate) fn on_token(
        &mut self,
        env: &mut Env,
        now: Instant,
        from: &NodeId,
        token: Token<'_>,
    ) {
        self.heard(env, now);
        if token.incarnation != self.inc {
            // A token of a forgotten incarnation: tell the sender it is gone.
            self.status_due = true;
            env.stats.stale_records += 1;
            return;
        }
        let slot = token.slot;
        if slot >= self.next {
            env.stats.stale_records += 1;
            return;
        }
        if slot < self.first {
            // Never granted by this record, so not a duplicate of what it delivered: a
            // previous start of this node issued the same incarnation number (it restarted
            // without its clock). Acknowledging it would lose it.
            self.status_due = true;
            env.stats.stale_records += 1;
            return;
        }
        // (One bitmap operation when the inbox has room: clearing tells whether it was open.)
        if !env.inbox.is_full() && self.open.clear(slot) {
            self.open_count -= 1;
            let payload = env.pool.copy_of(token.payload);
            env.inbox.push(from.clone(), payload);
            env.stats.payloads_delivered += 1;
        } else if self.open.get(slot) {
            // Open, but the inbox is full: neither delivered nor acknowledged (the sender
            // retransmits later).
            env.stats.inbox_full_deferrals += 1;
            return;
        } else {
            env.stats.duplicates += 1;
            // The sender retransmitted: it missed an ACK, do not make it wait for this one.
            self.ack_due = true;
        }
        self.owe_ack(env, now);
    }

    fn owe_ack(&mut self, env: &Env, now: Instant) {
        self.ack_owed += 1;
        self.ack_since.get_or_insert(now);
        if env.params.ack_delay.is_zero() || self.ack_owed >= env.params.ack_eager {
            self.ack_due = true;
        }
    }

    /// Asks for a status record to be sent (`SLOTS(next, inc, 0)`).
    pub(crate) fn request_status(&mut self) {
        self.status_due = true;
    }

    /// True if the sender confirmed every delivery: no delivered slot at or above the `l`
    /// it reported, so it holds no token whose ACK it may still be waiting for.
    pub(crate) fn settled(&self) -> bool {
        self.delivered_run(self.lowest.max(self.first)).is_none()
    }

    /// Makes the record send a status and an ACK of everything delivered now: the sender
    /// answers with its `l` (and stops waiting for an ACK that was lost).
    pub(crate) fn probe_settlement(&mut self) {
        self.status_due = true;
        self.ack_owed = self.ack_owed.max(1);
        self.ack_due = true;
    }

    /// Makes the ACKs held back due now.
    pub(crate) fn acknowledge_now(&mut self) {
        self.ack_due = true;
    }

    /// True if the record has records to send.
    pub(crate) fn has_output(&self) -> bool {
        self.status_due || self.grant.is_some() || (self.ack_due && self.ack_owed > 0)
    }

    /// Writes what is due into `w`; false if the datagram filled up first.
    pub(crate) fn write(&mut self, env: &mut Env, w: &mut DatagramWriter<'_>) -> bool {
        let complete = self.write_inner(env, w);
        self.advance_lo();
        complete
    }

    fn write_inner(&mut self, env: &mut Env, w: &mut DatagramWriter<'_>) -> bool {
        // The grant before the status: a sender without an incarnation yet would take a
        // status whose `next` is above its request for a previous start's record
        // (`SendRecord::on_slots`), and then ignore the grant.
        if let Some(grant) = self.grant {
            if w.push(&Record::Slots(grant)).is_err() {
                return false;
            }
            self.grant = None;
        }
        if self.status_due {
            let status = Slots { start: self.next, incarnation: self.inc, count: 0 };
            if w.push(&Record::Slots(status)).is_err() {
                return false;
            }
            self.status_due = false;
            env.stats.status_sent += 1;
        }
        if self.ack_owed > 0 && !self.write_ack(env, w) {
            return false;
        }
        // Everything owed went (with whatever else this datagram carries).
        self.ack_owed = 0;
        self.ack_since = None;
        self.ack_due = false;
        true
    }

    /// Writes the delivered slots from the sender's `l` up, as ACK records of at most
    /// [`MAX_ACK_RANGES`] ranges each; false if not even one fitted. When there are more runs
    /// than [`ACK_RECORDS`] records hold, the lowest runs go (they free the sender's window)
    /// and the newest (they drive its loss detection); the runs between wait for a later ACK.
    fn write_ack(&mut self, env: &mut Env, w: &mut DatagramWriter<'_>) -> bool {
        const LOW: usize = (ACK_RECORDS - 1) * MAX_ACK_RANGES;
        let empty = SlotRange { start: 0, end: 0 };
        let mut low = [empty; LOW];
        let mut high = [empty; MAX_ACK_RANGES];
        let (mut n_low, mut n_high) = (0, 0usize);
        let mut pos = self.lowest.max(self.first);
        while let Some((start, end)) = self.delivered_run(pos) {
            if n_low < LOW {
                low[n_low] = SlotRange { start, end };
                n_low += 1;
            } else {
                high[n_high % MAX_ACK_RANGES] = SlotRange { start, end };
                n_high += 1;
            }
            pos = end;
        }
        // The newest runs in ascending order (the ring's oldest entry first).
        high.rotate_left(if n_high > MAX_ACK_RANGES { n_high % MAX_ACK_RANGES } else { 0 });
        let high = &high[..n_high.min(MAX_ACK_RANGES)];
        let mut written = 0;
        for chunk in low[..n_low].chunks(MAX_ACK_RANGES).chain(core::iter::once(high)) {
            if chunk.is_empty() {
                continue;
            }
            // Fewer ranges if the datagram is nearly full (the rest waits for the next ACK).
            let mut n = chunk.len();
            while w.push(&Record::Ack(Ack::new(self.inc, &chunk[..n]))).is_err() {
                if n == 1 {
                    return written > 0;
                }
                n /= 2;
            }
            env.stats.acks_sent += 1;
            written += 1;
        }
        true
    }

    /// The first run `[start, end)` of delivered (granted, not open) slots at or above
    /// `from`, below `next`.
    fn delivered_run(&self, from: u64) -> Option<(u64, u64)> {
        let lo = self.open.lo();
        let start = if from < lo { from } else { self.open.next_clear(from, self.next)? };
        if start >= self.next {
            return None;
        }
        let end = self.open.next_set(start.max(lo), self.next).unwrap_or(self.next);
        Some((start, end))
    }

    /// Probe and garbage-collection timers.
    pub(crate) fn on_timeout(&mut self, env: &mut Env, now: Instant) -> RecvOutcome {
        if self.ack_since.is_some_and(|since| now >= since + env.params.ack_delay) {
            self.ack_due = true;
        }
        if now >= self.last_heard + env.params.receive_idle_timeout && self.safe_to_forget() {
            return RecvOutcome::Forget;
        }
        if now >= self.probe_at {
            // A silent sender may have dropped its record and lost its final REQSLOTS:
            // a status makes it answer with REQSLOTS(0, l) (or refresh its `l`).
            self.status_due = true;
            let ceiling = env.params.idle_timeout * MAX_PROBE_BACKOFF;
            self.probe_interval = (self.probe_interval * 2).min(ceiling);
            self.probe_at = now + self.probe_interval;
            self.probe_fresh = false;
        }
        RecvOutcome::Keep
    }

    /// When `on_timeout` must run next.
    pub(crate) fn deadline(&self, env: &Env) -> Instant {
        let timers = if self.safe_to_forget() {
            self.probe_at.min(self.last_heard + env.params.receive_idle_timeout)
        } else {
            self.probe_at
        };
        match self.ack_since {
            Some(since) if self.ack_owed > 0 && !self.ack_due => {
                timers.min(since + env.params.ack_delay)
            }
            _ => timers,
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::eo::test_support::{Rec, env, written};
    use crate::node::NodeConfig;

    const T0: Instant = Instant::from_micros(1_000_000);

    fn req(start: u64, count: u32, lowest: u64) -> ReqSlots {
        ReqSlots { start, count, lowest }
    }

    fn token(slot: u64, incarnation: u64) -> Token<'static> {
        Token { slot, incarnation, payload: b"p" }
    }

    fn config() -> NodeConfig {
        NodeConfig { window: 64, max_inbox: 2, ..NodeConfig::default() }
    }

    fn output(r: &mut RecvRecord, env: &mut Env) -> alloc::vec::Vec<Rec> {
        written(1400, |w| assert!(r.write(env, w)))
    }

    #[test]
    fn grants_fresh_slots_then_repeats_the_same_grant() {
        let mut env = env(config());
        let mut r = RecvRecord::new(&mut env, T0, 10);
        let inc = r.incarnation();
        assert_eq!(inc, 100);
        assert_eq!(env.clock, 101);
        assert_eq!(r.on_reqslots(&mut env, T0, req(10, 5, 10)), RecvOutcome::Keep);
        let grant = Rec::Slots(Slots { start: 10, incarnation: inc, count: 5 });
        assert_eq!(output(&mut r, &mut env), vec![grant.clone()]);
        // The request was repeated (its grant was lost): same answer, no new slot.
        r.on_reqslots(&mut env, T0, req(10, 5, 10));
        assert_eq!(output(&mut r, &mut env), vec![grant]);
        r.on_reqslots(&mut env, T0, req(15, 3, 10));
        let next = Rec::Slots(Slots { start: 15, incarnation: inc, count: 3 });
        assert_eq!(output(&mut r, &mut env), vec![next]);
        assert_eq!(env.stats.slots_granted, 8);
    }

    #[test]
    fn grants_never_exceed_the_window() {
        let mut env = env(config());
        let mut r = RecvRecord::new(&mut env, T0, 0);
        r.on_reqslots(&mut env, T0, req(0, u32::MAX, 0));
        let cap = env.params.receive_window as u32;
        let grant = Rec::Slots(Slots { start: 0, incarnation: r.incarnation(), count: cap });
        assert_eq!(output(&mut r, &mut env), vec![grant]);
        // Nothing more fits until slots are used or cancelled.
        r.on_reqslots(&mut env, T0, req(u64::from(cap), 10, 0));
        assert_eq!(output(&mut r, &mut env), vec![]);
        assert_eq!(env.stats.window_full, 1);
        r.on_reqslots(&mut env, T0, req(u64::from(cap), 10, 5));
        let grant =
            Rec::Slots(Slots { start: u64::from(cap), incarnation: r.incarnation(), count: 5 });
        assert_eq!(output(&mut r, &mut env), vec![grant]);
    }

    #[test]
    fn a_token_is_delivered_once_and_every_copy_acknowledged() {
        let mut env = env(config());
        let from = NodeId::new("a").unwrap();
        let mut r = RecvRecord::new(&mut env, T0, 0);
        let inc = r.incarnation();
        r.on_reqslots(&mut env, T0, req(0, 8, 0));
        output(&mut r, &mut env);
        r.on_token(&mut env, T0, &from, token(3, inc));
        r.on_token(&mut env, T0, &from, token(4, inc));
        r.on_token(&mut env, T0, &from, token(3, inc));
        assert_eq!(env.inbox.len(), 2);
        assert_eq!(env.stats.duplicates, 1);
        assert_eq!(output(&mut r, &mut env), vec![Rec::Ack(inc, vec![(3, 5)])]);
        // A copy arriving after the ACK went out is acknowledged again (with every slot
        // delivered so far), not delivered.
        r.on_token(&mut env, T0, &from, token(4, inc));
        r.on_token(&mut env, T0, &from, token(6, inc));
        assert_eq!(output(&mut r, &mut env), vec![Rec::Ack(inc, vec![(3, 5)])]);
        assert_eq!(env.stats.inbox_full_deferrals, 1, "slot 6 waits for inbox room");
        // Slots never granted are ignored.
        r.on_token(&mut env, T0, &from, token(8, inc));
        assert!(!r.has_output());
    }

    #[test]
    fn a_full_inbox_neither_delivers_nor_acknowledges() {
        let mut env = env(config());
        let from = NodeId::new("a").unwrap();
        let mut r = RecvRecord::new(&mut env, T0, 0);
        let inc = r.incarnation();
        r.on_reqslots(&mut env, T0, req(0, 8, 0));
        output(&mut r, &mut env);
        for slot in 0..3 {
            r.on_token(&mut env, T0, &from, token(slot, inc));
        }
        assert_eq!(env.inbox.len(), 2);
        assert_eq!(output(&mut r, &mut env), vec![Rec::Ack(inc, vec![(0, 2)])]);
        env.inbox.pop();
        r.on_token(&mut env, T0, &from, token(2, inc));
        assert_eq!(output(&mut r, &mut env), vec![Rec::Ack(inc, vec![(0, 3)])]);
        assert_eq!(env.stats.payloads_delivered, 3);
    }

    #[test]
    fn tokens_of_another_incarnation_get_a_status() {
        let mut env = env(config());
        let from = NodeId::new("a").unwrap();
        let mut r = RecvRecord::new(&mut env, T0, 0);
        let inc = r.incarnation();
        r.on_reqslots(&mut env, T0, req(0, 8, 0));
        output(&mut r, &mut env);
        r.on_token(&mut env, T0, &from, token(1, inc - 1));
        assert_eq!(env.inbox.len(), 0);
        let status = Rec::Slots(Slots { start: 8, incarnation: inc, count: 0 });
        assert_eq!(output(&mut r, &mut env), vec![status]);
    }

    #[test]
    fn forgets_only_what_the_sender_gave_up() {
        let mut env = env(config());
        let from = NodeId::new("a").unwrap();
        let mut r = RecvRecord::new(&mut env, T0, 0);
        let inc = r.incarnation();
        r.on_reqslots(&mut env, T0, req(0, 8, 0));
        output(&mut r, &mut env);
        assert!(r.safe_to_forget(), "only open slots");
        r.on_token(&mut env, T0, &from, token(2, inc));
        assert!(!r.safe_to_forget(), "slot 2 delivered, maybe unacknowledged");
        // The sender no longer cares below 3: slots 0 and 1 are cancelled.
        assert_eq!(r.on_reqslots(&mut env, T0, req(8, 0, 3)), RecvOutcome::Keep);
        assert!(r.safe_to_forget());
        r.on_token(&mut env, T0, &from, token(1, inc));
        assert_eq!(env.inbox.len(), 1, "a cancelled slot delivers nothing");
        assert_eq!(r.on_reqslots(&mut env, T0, req(8, 0, 8)), RecvOutcome::Forget);
    }

    #[test]
    fn idle_records_are_probed_then_forgotten_if_safe() {
        let mut env = env(NodeConfig {
            idle_timeout: core::time::Duration::from_secs(1),
            receive_idle_timeout: core::time::Duration::from_secs(10),
            ..config()
        });
        let from = NodeId::new("a").unwrap();
        let mut r = RecvRecord::new(&mut env, T0, 0);
        let inc = r.incarnation();
        r.on_reqslots(&mut env, T0, req(0, 8, 0));
        output(&mut r, &mut env);
        r.on_token(&mut env, T0, &from, token(0, inc));
        output(&mut r, &mut env);
        let probe = r.deadline(&env);
        assert_eq!(probe, T0 + core::time::Duration::from_secs(2));
        assert_eq!(r.on_timeout(&mut env, probe), RecvOutcome::Keep);
        let status = Rec::Slots(Slots { start: 8, incarnation: inc, count: 0 });
        assert_eq!(output(&mut r, &mut env), vec![status]);
        // Unsafe (slot 0 may be unacknowledged): kept however long the silence.
        let late = T0 + core::time::Duration::from_secs(3600);
        assert_eq!(r.on_timeout(&mut env, late), RecvOutcome::Keep);
        assert!(r.deadline(&env) > late);
        // The sender reports slot 0 acknowledged; after the idle timeout the record goes.
        r.on_reqslots(&mut env, late, req(8, 0, 1));
        let gc = late + core::time::Duration::from_secs(10);
        assert!(r.deadline(&env) <= gc);
        assert_eq!(r.on_timeout(&mut env, gc), RecvOutcome::Forget);
    }

    #[test]
    fn old_duplicates_below_the_window_are_acknowledged() {
        let mut env = env(config());
        let from = NodeId::new("a").unwrap();
        let mut r = RecvRecord::new(&mut env, T0, 0);
        let inc = r.incarnation();
        r.on_reqslots(&mut env, T0, req(0, 4, 0));
        output(&mut r, &mut env);
        for slot in 0..2 {
            r.on_token(&mut env, T0, &from, token(slot, inc));
        }
        env.inbox.pop();
        env.inbox.pop();
        output(&mut r, &mut env);
        for slot in [1, 0, 1] {
            r.on_token(&mut env, T0, &from, token(slot, inc));
        }
        assert_eq!(output(&mut r, &mut env), vec![Rec::Ack(inc, vec![(0, 2)])]);
        assert_eq!(env.stats.duplicates, 3);
    }

    #[test]
    fn every_ack_repeats_what_was_delivered_so_a_lost_ack_is_repaired() {
        let mut env = env(NodeConfig { max_inbox: 64, ..config() });
        let from = NodeId::new("a").unwrap();
        let mut r = RecvRecord::new(&mut env, T0, 10);
        let inc = r.incarnation();
        r.on_reqslots(&mut env, T0, req(10, 20, 10));
        output(&mut r, &mut env);
        for slot in (10..20).filter(|s| *s != 13 && *s != 16) {
            r.on_token(&mut env, T0, &from, token(slot, inc));
        }
        // This ACK is lost on the way.
        assert_eq!(
            output(&mut r, &mut env),
            vec![Rec::Ack(inc, vec![(10, 13), (14, 16), (17, 20)])]
        );
        // The next token's ACK carries everything again, holes included.
        r.on_token(&mut env, T0, &from, token(13, inc));
        assert_eq!(output(&mut r, &mut env), vec![Rec::Ack(inc, vec![(10, 16), (17, 20)])]);
        // The sender reports it no longer cares below 16: the ACK starts there.
        r.on_reqslots(&mut env, T0, req(30, 0, 16));
        r.on_token(&mut env, T0, &from, token(16, inc));
        assert_eq!(output(&mut r, &mut env), vec![Rec::Ack(inc, vec![(16, 20)])]);
    }

    #[test]
    fn many_holes_take_several_ack_records() {
        let mut env = env(NodeConfig { window: 256, max_inbox: 512, ..config() });
        let from = NodeId::new("a").unwrap();
        let mut r = RecvRecord::new(&mut env, T0, 0);
        let inc = r.incarnation();
        r.on_reqslots(&mut env, T0, req(0, 300, 0));
        output(&mut r, &mut env);
        for slot in (0..300).step_by(2) {
            r.on_token(&mut env, T0, &from, token(slot, inc));
        }
        let acks = output(&mut r, &mut env);
        let ranges: Vec<(u64, u64)> = acks
            .iter()
            .flat_map(|a| match a {
                Rec::Ack(i, ranges) if *i == inc => ranges.clone(),
                other => panic!("not an ACK: {other:?}"),
            })
            .collect();
        let expected: Vec<(u64, u64)> = (0..150).map(|i| (2 * i, 2 * i + 1)).collect();
        assert_eq!(ranges, expected);
        assert_eq!(acks.len(), 3);
    }
}
