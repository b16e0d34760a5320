//! The send record: one half-connection seen from the sender.
//!
//! Slot ids of the record, under the receiver incarnation `inc`, are laid out as
//!
//! ```text
//! acked_base        bound_end           granted_end        (request: granted_end..+count)
//!     | tokens in flight |    envelopes     |
//! ```
//!
//! Tokens are payloads bound to a slot, kept until acknowledged (the ring holds `None` for the
//! acknowledged ones until the oldest is); envelopes are granted slots not yet used. Queued
//! payloads wait for an envelope. `granted_end - acked_base` never exceeds the window.
//!
//! The queued payloads follow the tokens in the same ring, in order (as if their slots were
//! `bound_end..`): binding one to an envelope only moves `bound_end`, so a payload is never
//! moved from a queue to the ring.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::time::Instant;
use crate::wire::{Ack, DatagramWriter, Record, ReqSlots, Slots, Token};

use super::Env;
use super::rtt::Rtt;

/// A payload bound to a slot and not yet acknowledged (or, past `bound_end` in the ring, a
/// queued payload, in the state binding gives it).
#[derive(Debug)]
struct InFlight {
    payload: Vec<u8>,
    /// Transmissions so far (0: bound but not sent yet).
    sends: u32,
    last_sent: Instant,
    /// Waiting in the transmit queue.
    queued: bool,
}

/// The outstanding `REQSLOTS` (at most one at a time).
#[derive(Debug, Clone, Copy)]
struct Request {
    start: u64,
    count: u32,
    sends: u32,
    last_sent: Instant,
    /// Must be (re)transmitted.
    due: bool,
}

/// What the node must do with a send record after a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendOutcome {
    /// Keep it.
    Keep,
    /// Drop it and tell the receiver to forget every slot below `lowest`.
    Forget {
        /// The `l` of the final `REQSLOTS(0, l)`.
        lowest: u64,
    },
}

/// The sender's state for one receiver.
#[derive(Debug)]
pub(crate) struct SendRecord {
    inc: Option<u64>,
    acked_base: u64,
    bound_end: u64,
    granted_end: u64,
    /// The slots `acked_base..bound_end`, then the queued payloads.
    ring: VecDeque<Option<InFlight>>,
    in_flight: usize,
    /// Slots whose token must be (re)transmitted, each at most once.
    tx: VecDeque<u64>,
    tx_bytes: usize,
    request: Option<Request>,
    /// Send a `REQSLOTS(n = 0)` to refresh the receiver's view of `l`.
    refresh_due: bool,
    /// The highest `l` sent to the receiver.
    reported_lowest: u64,
    /// Earliest retransmission deadline (may be early; a scan recomputes it).
    timer_at: Option<Instant>,
    last_active: Instant,
}

impl SendRecord {
    /// A record starting at the node clock, above every slot this node used.
    pub(crate) fn new(env: &Env, now: Instant) -> Self {
        let start = env.clock;
        let window = usize::try_from(env.params.window).unwrap_or(usize::MAX);
        Self {
            inc: None,
            acked_base: start,
            bound_end: start,
            granted_end: start,
            ring: VecDeque::with_capacity(window),
            in_flight: 0,
            tx: VecDeque::with_capacity(window),
            tx_bytes: 0,
            request: None,
            refresh_due: false,
            reported_lowest: start,
            timer_at: None,
            last_active: now,
        }
    }

    /// Payloads accepted and not yet acknowledged.
    pub(crate) fn unacknowledged(&self) -> usize {
        self.queued() + self.in_flight
    }

    /// Payloads waiting for a slot.
    pub(crate) fn queued(&self) -> usize {
        self.ring.len() - self.bound_len()
    }

    /// Entries of the ring that are slots (`acked_base..bound_end`), not queued payloads.
    #[inline]
    fn bound_len(&self) -> usize {
        (self.bound_end - self.acked_base) as usize
    }

    /// Bytes of tokens waiting for transmission.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.tx_bytes
    }

    /// The receiver incarnation the record talks to, once it has one.
    #[cfg(test)]
    pub(crate) fn incarnation(&self) -> Option<u64> {
        self.inc
    }

    /// Queues a payload (the caller enforced the queue limit).
    pub(crate) fn submit(&mut self, env: &mut Env, now: Instant, payload: Vec<u8>) {
        let len = payload.len();
        let alone = self.ring.len() == self.bound_len();
        self.ring.push_back(Some(InFlight {
            payload,
            sends: 0,
            last_sent: Instant::ZERO,
            queued: true,
        }));
        if self.bound_end < self.granted_end {
            if alone {
                // The only queued payload: what `bind` does, for one.
                self.tx_bytes += len;
                self.tx.push_back(self.bound_end);
                self.bound_end += 1;
                self.in_flight += 1;
            } else {
                self.bind();
            }
        }
        self.last_active = now;
        self.maybe_request(env);
    }

    fn is_idle(&self) -> bool {
        self.ring.len() == self.bound_len() && self.in_flight == 0
    }

    /// Binds queued payloads to envelopes (in queue order, to consecutive slots).
    fn bind(&mut self) {
        let bound = self.bound_len();
        let envelopes = self.granted_end - self.bound_end;
        let n = usize::try_from(envelopes).unwrap_or(usize::MAX).min(self.ring.len() - bound);
        if n == 0 {
            return;
        }
        for entry in self.ring.range(bound..bound + n) {
            self.tx_bytes += entry.as_ref().map_or(0, |t| t.payload.len());
        }
        let start = self.bound_end;
        let end = start + n as u64;
        self.tx.extend(start..end);
        self.bound_end = end;
        self.in_flight += n;
    }

    /// Starts a request for more slots when a busy record runs low on envelopes, or grows
    /// the request not sent yet to cover payloads queued since.
    fn maybe_request(&mut self, env: &Env) {
        let unsent = self.request.is_some_and(|r| r.sends == 0);
        if (self.request.is_some() && !unsent) || self.is_idle() {
            return;
        }
        if unsent {
            self.request = None;
        }
        let envelopes = self.granted_end - self.bound_end;
        let queued = self.queued() as u64;
        let base = env.params.base_slots;
        if envelopes >= queued + base / 2 && !(envelopes == 0 && queued > 0) {
            return;
        }
        let room = env.params.window.saturating_sub(self.granted_end - self.acked_base);
        let count = (queued + base).saturating_sub(envelopes).min(room).min(u64::from(u32::MAX));
        if count == 0 {
            return;
        }
        self.request = Some(Request {
            start: self.granted_end,
            count: count as u32,
            sends: 0,
            last_sent: Instant::ZERO,
            due: true,
        });
    }

    /// The receiver incarnation `inc` is gone for good: it forgot its record while every
    /// token we hold for it was still undelivered (see the module docs of `eo`), so the
    /// payloads go back to the queue, in order, to be bound to slots of a new incarnation.
    ///
    /// With `keep_request`, the outstanding request stays: its grant, under an incarnation
    /// we never used, is about to be accepted. Otherwise the record starts over at the clock.
    fn incarnation_lost(&mut self, env: &mut Env, now: Instant, keep_request: bool) {
        // Acknowledged slots go; tokens become queued payloads again, ahead of the queue.
        let bound = self.bound_len();
        let rebound = self.ring.range(..bound).filter(|e| e.is_some()).count() as u64;
        self.ring.retain(Option::is_some);
        for token in self.ring.iter_mut().flatten() {
            token.sends = 0;
            token.last_sent = Instant::ZERO;
            token.queued = true;
        }
        let requested = self.request.map_or(0, |r| r.start.saturating_add(r.count.into()));
        env.advance_clock(self.granted_end.max(requested));
        let start = if keep_request { self.granted_end } else { env.clock };
        self.inc = None;
        self.acked_base = start;
        self.bound_end = start;
        self.granted_end = start;
        self.reported_lowest = start;
        self.in_flight = 0;
        self.tx.clear();
        self.tx_bytes = 0;
        if !keep_request {
            self.request = None;
        }
        self.refresh_due = false;
        self.timer_at = None;
        self.last_active = now;
        env.stats.incarnations_lost += 1;
        env.stats.payloads_rebound += rebound;
        self.maybe_request(env);
    }

    /// A `SLOTS` record from the receiver: a grant, or a status if `count == 0`.
    pub(crate) fn on_slots(&mut self, env: &mut Env, now: Instant, rtt: &mut Rtt, slots: Slots) {
        if slots.count == 0 {
            match self.inc {
                Some(current) if slots.incarnation > current => {
                    self.incarnation_lost(env, now, false)
                }
                Some(current) if slots.incarnation == current => match &mut self.request {
                    Some(request) => request.due = true,
                    None => self.refresh_due = true,
                },
                _ => env.stats.stale_records += 1,
            }
            return;
        }
        if let Some(current) = self.inc {
            if slots.incarnation < current {
                env.stats.stale_records += 1;
                return;
            }
            if slots.incarnation > current {
                // A grant under a newer incarnation: ours is gone. If the grant answers the
                // outstanding request, take it (we never used that incarnation).
                let answers = self.request.is_some_and(|r| r.start == slots.start);
                self.incarnation_lost(env, now, answers);
                if !answers {
                    return;
                }
            }
        }
        let Some(request) = self.request.filter(|r| r.start == slots.start) else {
            env.stats.stale_records += 1;
            return;
        };
        let count = slots.count.min(request.count);
        if request.sends == 1 {
            rtt.sample(now.saturating_since(request.last_sent));
        }
        self.request = None;
        self.inc = Some(slots.incarnation);
        self.granted_end = request.start.saturating_add(count.into());
        env.advance_clock(self.granted_end);
        env.stats.slots_received += u64::from(count);
        self.last_active = now;
        self.bind();
        self.maybe_request(env);
    }

    /// An `ACK` record: drops the acknowledged tokens.
    pub(crate) fn on_ack(&mut self, env: &mut Env, now: Instant, rtt: &mut Rtt, ack: &Ack<'_>) {
        if self.inc != Some(ack.incarnation) {
            env.stats.stale_records += 1;
            return;
        }
        let base = self.acked_base;
        let now_us = now.as_micros();
        let mut acked = 0usize;
        for range in ack.ranges() {
            // Only the slots we hold: an ACK of any size costs at most the window.
            let from = range.start.max(base);
            let to = range.end.min(self.bound_end);
            if from >= to {
                continue;
            }
            // The ring holds the slots `base..bound_end`, so these offsets are in it.
            let (from, to) = ((from - base) as usize, (to - base) as usize);
            for entry in self.ring.range_mut(from..to) {
                // A token never sent cannot have been acknowledged (a forged or corrupt ACK).
                if entry.as_ref().is_some_and(|t| t.sends > 0)
                    && let Some(token) = entry.take()
                {
                    if token.sends == 1 {
                        rtt.sample_micros(now_us.saturating_sub(token.last_sent.as_micros()));
                    }
                    env.pool.recycle(token.payload);
                    acked += 1;
                }
            }
        }
        if acked == 0 {
            return;
        }
        self.in_flight -= acked;
        env.stats.tokens_acked += acked as u64;
        // Drop the acknowledged tokens at the front of the ring (only an ACK makes any).
        let done = self.ring.iter().position(Option::is_some).unwrap_or(self.ring.len());
        self.ring.drain(..done);
        self.acked_base += done as u64;
        self.last_active = now;
        self.maybe_request(env);
    }

    /// True if the record has records to send.
    pub(crate) fn has_output(&self) -> bool {
        self.request.is_some_and(|r| r.due)
            || self.refresh_due
            || (self.inc.is_some() && !self.tx.is_empty())
    }

    fn arm(&mut self, at: Instant) {
        self.timer_at = Some(self.timer_at.map_or(at, |t| t.min(at)));
    }

    /// Writes what is due into `w`; false if the datagram filled up first.
    pub(crate) fn write(
        &mut self,
        env: &mut Env,
        now: Instant,
        rtt: &Rtt,
        w: &mut DatagramWriter<'_>,
    ) -> bool {
        let lowest = self.acked_base;
        if let Some(mut request) = self.request.filter(|r| r.due) {
            let record =
                Record::ReqSlots(ReqSlots { start: request.start, count: request.count, lowest });
            if w.push(&record).is_err() {
                return false;
            }
            request.due = false;
            request.sends += 1;
            request.last_sent = now;
            self.request = Some(request);
            self.refresh_due = false;
            self.reported_lowest = lowest;
            self.arm(now + rtt.timeout(request.sends));
            env.stats.reqslots_sent += 1;
        } else if self.refresh_due || lowest > self.reported_lowest {
            let record = Record::ReqSlots(ReqSlots { start: self.granted_end, count: 0, lowest });
            if w.push(&record).is_err() {
                return false;
            }
            self.refresh_due = false;
            self.reported_lowest = lowest;
            env.stats.reqslots_sent += 1;
        }
        let Some(inc) = self.inc else { return true };
        // Every token sent now gets the deadline `now + rtt.timeout(sends)`; the timeout grows
        // with `sends`, so the timer is armed once, for the fewest sends.
        let mut fewest_sends = u32::MAX;
        let complete = self.write_tokens(env, now, inc, w, &mut fewest_sends);
        if fewest_sends != u32::MAX {
            let timeout = rtt.timeout_micros(fewest_sends);
            self.arm(Instant::from_micros(now.as_micros().saturating_add(timeout)));
        }
        complete
    }

    /// Writes the tokens of the transmit queue; false if the datagram filled up first.
    fn write_tokens(
        &mut self,
        env: &mut Env,
        now: Instant,
        inc: u64,
        w: &mut DatagramWriter<'_>,
        fewest_sends: &mut u32,
    ) -> bool {
        while let Some(&slot) = self.tx.front() {
            let index = slot.wrapping_sub(self.acked_base);
            let token = match self.ring.get_mut(usize::try_from(index).unwrap_or(usize::MAX)) {
                Some(Some(token)) if slot >= self.acked_base && token.queued => token,
                _ => {
                    // Acknowledged while waiting.
                    self.tx.pop_front();
                    continue;
                }
            };
            let record = Record::Token(Token { slot, incarnation: inc, payload: &token.payload });
            if w.push(&record).is_err() {
                return false;
            }
            self.tx.pop_front();
            self.tx_bytes = self.tx_bytes.saturating_sub(token.payload.len());
            if token.sends > 0 {
                env.stats.tokens_retransmitted += 1;
            }
            token.queued = false;
            token.sends = token.sends.saturating_add(1);
            token.last_sent = now;
            *fewest_sends = (*fewest_sends).min(token.sends);
            env.stats.tokens_sent += 1;
        }
        self.tx_bytes = 0;
        true
    }

    /// Retransmission and idle timers.
    pub(crate) fn on_timeout(&mut self, env: &mut Env, now: Instant, rtt: &Rtt) -> SendOutcome {
        if self.timer_at.is_some_and(|t| t <= now) {
            self.timer_at = None;
            let mut next: Option<Instant> = None;
            let bound = self.bound_len();
            for (i, entry) in self.ring.range_mut(..bound).enumerate() {
                let Some(token) = entry else { continue };
                if token.queued || token.sends == 0 {
                    continue;
                }
                let due = token.last_sent + rtt.timeout(token.sends);
                if due <= now {
                    token.queued = true;
                    self.tx_bytes += token.payload.len();
                    self.tx.push_back(self.acked_base + i as u64);
                } else {
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
            if let Some(request) = &mut self.request
                && !request.due
                && request.sends > 0
            {
                let due = request.last_sent + rtt.timeout(request.sends);
                if due <= now {
                    request.due = true;
                } else {
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
            self.timer_at = next;
        }
        if let Some(at) = self.report_at(env)
            && now >= at
        {
            self.refresh_due = true;
        }
        if self.is_idle() && now >= self.last_active + env.params.idle_timeout {
            let requested = self.request.map_or(0, |r| r.start.saturating_add(r.count.into()));
            env.advance_clock(self.granted_end.max(requested));
            return SendOutcome::Forget { lowest: env.clock };
        }
        SendOutcome::Keep
    }

    /// When a quiet record tells the receiver its new `l` (a new `l` otherwise rides along
    /// with other records): everything is acknowledged, so the receiver may forget its record
    /// safely if we vanish. Not at once, so that request-reply traffic pays no extra datagram.
    fn report_at(&self, env: &Env) -> Option<Instant> {
        let unreported = self.in_flight == 0 && self.acked_base > self.reported_lowest;
        (unreported && !self.refresh_due).then(|| self.last_active + env.params.idle_timeout / 4)
    }

    /// When `on_timeout` must run next.
    pub(crate) fn deadline(&self, env: &Env) -> Option<Instant> {
        let idle = self.is_idle().then(|| self.last_active + env.params.idle_timeout);
        [self.timer_at, idle, self.report_at(env)].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;
    use core::time::Duration;

    use super::*;
    use crate::eo::test_support::{Rec, env, written};
    use crate::node::NodeConfig;
    use crate::wire::SlotRange;

    const T0: Instant = Instant::from_micros(1_000_000);

    fn config() -> NodeConfig {
        NodeConfig {
            window: 8,
            base_slots: 2,
            rto_initial: Duration::from_millis(100),
            rto_min: Duration::from_millis(10),
            rto_max: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            ..NodeConfig::default()
        }
    }

    fn rtt(env: &Env) -> Rtt {
        Rtt::new(env.params.rto_initial, env.params.rto_min, env.params.rto_max)
    }

    fn output(s: &mut SendRecord, env: &mut Env, rtt: &Rtt, now: Instant) -> Vec<Rec> {
        written(1400, |w| assert!(s.write(env, now, rtt, w)))
    }

    fn submit(s: &mut SendRecord, env: &mut Env, payload: &[u8]) {
        let copy = env.pool.copy_of(payload);
        s.submit(env, T0, copy);
    }

    fn grant(start: u64, incarnation: u64, count: u32) -> Slots {
        Slots { start, incarnation, count }
    }

    fn ack(
        s: &mut SendRecord,
        env: &mut Env,
        rtt: &mut Rtt,
        now: Instant,
        inc: u64,
        r: &[(u64, u64)],
    ) {
        let ranges: Vec<SlotRange> =
            r.iter().map(|&(start, end)| SlotRange { start, end }).collect();
        s.on_ack(env, now, rtt, &Ack::new(inc, &ranges));
    }

    #[test]
    fn requests_slots_binds_tokens_and_releases_them_on_ack() {
        let mut env = env(config());
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        for p in [b"a", b"b", b"c"] {
            submit(&mut s, &mut env, p);
        }
        // 3 queued + 2 ahead.
        let request = Rec::ReqSlots(ReqSlots { start: 100, count: 5, lowest: 100 });
        assert_eq!(output(&mut s, &mut env, &rtt, T0), vec![request]);
        let t1 = T0 + Duration::from_millis(20);
        s.on_slots(&mut env, t1, &mut rtt, grant(100, 7, 5));
        assert_eq!(rtt.srtt(), Some(Duration::from_millis(20)));
        assert_eq!(s.incarnation(), Some(7));
        assert_eq!(env.clock, 105);
        let tokens = output(&mut s, &mut env, &rtt, t1);
        assert_eq!(
            tokens,
            vec![
                Rec::Token(100, 7, b"a".to_vec()),
                Rec::Token(101, 7, b"b".to_vec()),
                Rec::Token(102, 7, b"c".to_vec())
            ]
        );
        assert_eq!(s.unacknowledged(), 3);
        let t2 = t1 + Duration::from_millis(20);
        ack(&mut s, &mut env, &mut rtt, t2, 7, &[(0, 101), (102, 103)]);
        assert_eq!(s.unacknowledged(), 1);
        assert_eq!(env.stats.tokens_acked, 2);
        // An ACK of another incarnation changes nothing.
        ack(&mut s, &mut env, &mut rtt, t2, 6, &[(101, 102)]);
        assert_eq!(s.unacknowledged(), 1);
        ack(&mut s, &mut env, &mut rtt, t2, 7, &[(101, 102)]);
        assert_eq!(s.unacknowledged(), 0);
        // Everything acknowledged: after a quiet moment the receiver hears the new lowest
        // slot (so it may forget its record safely).
        assert!(!s.has_output());
        let mut quiet = t2;
        while !s.has_output() {
            // (The first deadline may be the stale retransmission timer.)
            quiet = s.deadline(&env).unwrap();
            s.on_timeout(&mut env, quiet, &rtt);
        }
        assert_eq!(quiet, t2 + Duration::from_millis(250));
        let refresh = Rec::ReqSlots(ReqSlots { start: 105, count: 0, lowest: 103 });
        assert_eq!(output(&mut s, &mut env, &rtt, quiet), vec![refresh]);
        assert!(!s.has_output());
        assert_eq!(s.deadline(&env), Some(t2 + Duration::from_secs(1)));
    }

    #[test]
    fn an_ack_for_a_token_never_sent_is_ignored() {
        let mut env = env(config());
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        submit(&mut s, &mut env, b"x");
        output(&mut s, &mut env, &rtt, T0);
        s.on_slots(&mut env, T0, &mut rtt, grant(100, 7, 3));
        ack(&mut s, &mut env, &mut rtt, T0, 7, &[(0, u64::MAX)]);
        assert_eq!(s.unacknowledged(), 1);
    }

    #[test]
    fn the_window_bounds_slots_in_flight() {
        let mut env = env(config());
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        for i in 0..20u8 {
            submit(&mut s, &mut env, &[i]);
        }
        let request = Rec::ReqSlots(ReqSlots { start: 100, count: 8, lowest: 100 });
        assert_eq!(output(&mut s, &mut env, &rtt, T0), vec![request]);
        s.on_slots(&mut env, T0, &mut rtt, grant(100, 7, 8));
        assert_eq!(output(&mut s, &mut env, &rtt, T0).len(), 8);
        assert!(!s.has_output(), "no room for another request");
        ack(&mut s, &mut env, &mut rtt, T0, 7, &[(100, 103)]);
        let request = Rec::ReqSlots(ReqSlots { start: 108, count: 3, lowest: 103 });
        assert_eq!(output(&mut s, &mut env, &rtt, T0), vec![request]);
    }

    #[test]
    fn retransmits_with_exponential_backoff() {
        let mut env = env(config());
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        submit(&mut s, &mut env, b"x");
        output(&mut s, &mut env, &rtt, T0);
        // (A separate estimator for the grant: no RTT sample for the token timers.)
        let mut scratch = self::rtt(&env);
        s.on_slots(&mut env, T0, &mut scratch, grant(100, 7, 3));
        output(&mut s, &mut env, &rtt, T0);
        let mut at = T0;
        for timeout_ms in [100, 200, 400, 800, 1000, 1000] {
            let due = s.deadline(&env).unwrap();
            assert_eq!(due, at + Duration::from_millis(timeout_ms));
            assert_eq!(
                s.on_timeout(&mut env, due - Duration::from_micros(1), &rtt),
                SendOutcome::Keep
            );
            assert!(!s.has_output());
            s.on_timeout(&mut env, due, &rtt);
            let copy = output(&mut s, &mut env, &rtt, due);
            assert_eq!(copy, vec![Rec::Token(100, 7, b"x".to_vec())]);
            at = due;
        }
        assert_eq!(env.stats.tokens_retransmitted, 6);
        // Karn: an ACK after retransmissions gives no RTT sample.
        ack(&mut s, &mut env, &mut rtt, at, 7, &[(100, 101)]);
        assert_eq!(rtt.srtt(), None);
    }

    #[test]
    fn a_gone_incarnation_sends_its_payloads_back_to_the_queue_in_order() {
        let mut env = env(config());
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        for p in [b"a", b"b", b"c"] {
            submit(&mut s, &mut env, p);
        }
        output(&mut s, &mut env, &rtt, T0);
        s.on_slots(&mut env, T0, &mut rtt, grant(100, 7, 5));
        output(&mut s, &mut env, &rtt, T0);
        ack(&mut s, &mut env, &mut rtt, T0, 7, &[(101, 102)]);
        // A stale status (older incarnation) and one for our incarnation change nothing.
        s.on_slots(&mut env, T0, &mut rtt, grant(0, 6, 0));
        assert_eq!(s.incarnation(), Some(7));
        s.on_slots(&mut env, T0, &mut rtt, grant(105, 7, 0));
        assert_eq!(s.incarnation(), Some(7));
        // The receiver's current incarnation is 9: 7 is gone, "a" and "c" are rebound.
        s.on_slots(&mut env, T0, &mut rtt, grant(0, 9, 0));
        assert_eq!(s.incarnation(), None);
        assert_eq!(env.stats.payloads_rebound, 2);
        assert_eq!(s.unacknowledged(), 2);
        let request = Rec::ReqSlots(ReqSlots { start: 105, count: 4, lowest: 105 });
        assert_eq!(output(&mut s, &mut env, &rtt, T0), vec![request]);
        s.on_slots(&mut env, T0, &mut rtt, grant(105, 9, 4));
        let tokens = output(&mut s, &mut env, &rtt, T0);
        assert_eq!(
            tokens,
            vec![Rec::Token(105, 9, b"a".to_vec()), Rec::Token(106, 9, b"c".to_vec())]
        );
    }

    #[test]
    fn a_gone_incarnation_puts_its_tokens_ahead_of_the_queue() {
        let mut env = env(config());
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        for i in 0..12u8 {
            submit(&mut s, &mut env, &[i]);
        }
        output(&mut s, &mut env, &rtt, T0);
        s.on_slots(&mut env, T0, &mut rtt, grant(100, 7, 8));
        assert_eq!(s.queued(), 4);
        assert_eq!(s.pending_bytes(), 8);
        assert_eq!(output(&mut s, &mut env, &rtt, T0).len(), 8);
        ack(&mut s, &mut env, &mut rtt, T0, 7, &[(100, 102), (103, 104)]);
        assert_eq!(s.unacknowledged(), 9);
        // 7 is gone: the five unacknowledged tokens, then the four queued payloads.
        s.on_slots(&mut env, T0, &mut rtt, grant(0, 9, 0));
        assert_eq!(env.stats.payloads_rebound, 5);
        assert_eq!((s.unacknowledged(), s.queued(), s.pending_bytes()), (9, 9, 0));
        let request = Rec::ReqSlots(ReqSlots { start: 110, count: 8, lowest: 110 });
        assert_eq!(output(&mut s, &mut env, &rtt, T0), vec![request]);
        s.on_slots(&mut env, T0, &mut rtt, grant(110, 9, 8));
        assert_eq!((s.queued(), s.pending_bytes()), (1, 8));
        let tokens = output(&mut s, &mut env, &rtt, T0);
        let expected: Vec<Rec> = [2u8, 4, 5, 6, 7, 8, 9, 10]
            .iter()
            .zip(110..)
            .map(|(&p, slot)| Rec::Token(slot, 9, vec![p]))
            .collect();
        assert_eq!(tokens, expected);
        ack(&mut s, &mut env, &mut rtt, T0, 9, &[(110, 118)]);
        assert_eq!((s.unacknowledged(), s.queued()), (1, 1));
    }

    #[test]
    fn a_grant_under_a_newer_incarnation_answers_the_request() {
        let mut env = env(config());
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        submit(&mut s, &mut env, b"a");
        output(&mut s, &mut env, &rtt, T0);
        s.on_slots(&mut env, T0, &mut rtt, grant(100, 7, 1));
        // Out of envelopes: the token goes with a request for more.
        let request = Rec::ReqSlots(ReqSlots { start: 101, count: 2, lowest: 100 });
        let token = Rec::Token(100, 7, b"a".to_vec());
        assert_eq!(output(&mut s, &mut env, &rtt, T0), vec![request, token]);
        submit(&mut s, &mut env, b"b");
        assert_eq!(output(&mut s, &mut env, &rtt, T0), vec![]);
        // The receiver forgot 7 (safely: "a" was undelivered) and answers under 9.
        s.on_slots(&mut env, T0, &mut rtt, grant(101, 9, 2));
        assert_eq!(s.incarnation(), Some(9));
        let out = output(&mut s, &mut env, &rtt, T0);
        assert_eq!(
            &out[1..],
            [Rec::Token(101, 9, b"a".to_vec()), Rec::Token(102, 9, b"b".to_vec())]
        );
    }

    #[test]
    fn an_idle_record_is_forgotten_above_every_slot_it_used() {
        let mut env = env(config());
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        submit(&mut s, &mut env, b"a");
        output(&mut s, &mut env, &rtt, T0);
        let mut scratch = self::rtt(&env);
        s.on_slots(&mut env, T0, &mut scratch, grant(100, 7, 3));
        output(&mut s, &mut env, &rtt, T0);
        assert_eq!(s.deadline(&env), Some(T0 + Duration::from_millis(100)));
        ack(&mut s, &mut env, &mut rtt, T0, 7, &[(100, 101)]);
        let idle = T0 + Duration::from_secs(1);
        assert_eq!(
            s.on_timeout(&mut env, idle - Duration::from_micros(1), &rtt),
            SendOutcome::Keep
        );
        assert_eq!(s.on_timeout(&mut env, idle, &rtt), SendOutcome::Forget { lowest: 103 });
        assert_eq!(env.clock, 103);
    }
}
