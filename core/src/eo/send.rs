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
//!
//! # Loss recovery (RFC 9002, as quinn-proto does it, with RACK's adaptive reordering window)
//!
//! Every `write` that carries tokens is one *transmission*, numbered in order (`seq`, like a
//! QUIC packet number; a retransmitted token gets the number of the transmission that carries
//! it again). The receiver's ACKs list every delivered slot (see module `recv`), so each ACK
//! tells which tokens of which transmissions arrived, and:
//!
//! * **Loss by ACK**: a token still unacknowledged when a transmission at least
//!   `packet_threshold` later was acknowledged, or sent more than `9/8 × RTT` before the
//!   newest acknowledged one, is declared lost and retransmitted at once: only the lost tokens
//!   go again, not everything in flight.
//! * **Reordering is not loss**: an ACK for a token that was sent before the newest
//!   acknowledged transmission but not declared lost shows reordering, and raises
//!   `packet_threshold` to the distance seen (up to [`MAX_PACKET_THRESHOLD`]); an ACK for a
//!   token declared lost but not yet sent again shows the declaration was spurious: the time
//!   threshold widens (up to `3 × RTT`) and the congestion window decrease is undone. A QUIC
//!   stack with a fixed threshold of 3 loses most of its goodput under reordering; this one
//!   learns the path's reordering once.
//! * **One probe timeout per record**: when nothing is acknowledged for a probe timeout
//!   (RFC 9002's: smoothed RTT + 4 variations + the peer's ACK delay, doubled per consecutive
//!   probe, at least `rto_min` and at most `rto_max`) after the last transmission, the two
//!   oldest tokens in flight are sent again as probes, outside the congestion window. Their
//!   ACK (which lists everything delivered) lets loss detection find the rest. The backoff
//!   resets on any new acknowledgement and is capped by `rto_max`, so a path that heals is
//!   probed again within `rto_max`; a change of address resets it at once.
//! * **Slot requests** lost (or their grants) are sent again after a probe timeout too: the
//!   stream stops once the envelopes run out.
//! * **Congestion window** (module `congestion`): bytes of tokens in flight are bounded, so a
//!   lossy path is not flooded with retransmissions.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use crate::time::Instant;
use crate::wire::{Ack, DatagramWriter, Record, ReqSlots, Slots, Token};

use super::Env;
use super::congestion::Congestion;
use super::rtt::Rtt;

/// Packet threshold of loss detection before any reordering was seen (RFC 9002).
const INITIAL_PACKET_THRESHOLD: u64 = 3;
/// Most transmissions a token may be overtaken by before it is declared lost.
pub(crate) const MAX_PACKET_THRESHOLD: u64 = 64;
/// Time threshold of loss detection, in eighths of an RTT: initial (RFC 9002) and most.
const INITIAL_TIME_EIGHTHS: u64 = 9;
const MAX_TIME_EIGHTHS: u64 = 24;
/// Tokens a probe timeout sends again.
const PROBES: u32 = 2;
/// Consecutive probe timeouts that count as persistent congestion.
const PERSISTENT_PTOS: u32 = 3;
/// Bytes a token record adds to its payload in flight (kind, slot, incarnation, length).
const TOKEN_COST: usize = 16;

/// A payload bound to a slot and not yet acknowledged (or, past `bound_end` in the ring, a
/// queued payload, in the state binding gives it).
#[derive(Debug)]
struct InFlight {
    payload: Vec<u8>,
    /// Transmissions so far (0: bound but not sent yet).
    sends: u32,
    last_sent: Instant,
    /// Number of the transmission that carried it last.
    seq: u64,
    /// Waiting in the transmit queue.
    queued: bool,
    /// Declared lost and not sent again yet.
    lost: bool,
    /// Its bytes count in `bytes_in_flight`.
    counted: bool,
}

impl InFlight {
    fn cost(&self) -> usize {
        self.payload.len() + TOKEN_COST
    }
}

/// The outstanding `REQSLOTS` (at most one at a time).
#[derive(Debug, Clone, Copy)]
struct Request {
    start: u64,
    count: u32,
    sends: u32,
    /// Sends made before the path last changed: the backoff counts only those after, as
    /// those before waited for a path that is gone.
    sends_before_move: u32,
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
    last_active: Instant,
    /// The transmissions of tokens, `(seq, slot)` in order; entries of tokens since
    /// acknowledged or sent again are dropped lazily.
    sent: VecDeque<(u64, u64)>,
    /// Number of the next transmission.
    next_seq: u64,
    /// The newest acknowledged transmission and when it was sent.
    largest_acked: Option<(u64, Instant)>,
    /// When the oldest token in flight not yet lost by time becomes lost.
    loss_at: Option<Instant>,
    packet_threshold: u64,
    time_eighths: u64,
    /// Consecutive probe timeouts without a new acknowledgement.
    pto_count: u32,
    /// Probe tokens that may go outside the congestion window.
    probes: u32,
    /// When a token was last sent.
    last_send: Instant,
    bytes_in_flight: usize,
    congestion: Congestion,
    /// Slots requested ahead beyond the queue: `base_slots` at first, doubled (up to a
    /// quarter of the window) each time payloads waited for a grant after the previous one
    /// was used up, so a fast stream's slots arrive before it needs them instead of a round
    /// trip late. A record that goes idle is dropped, and its successor starts over.
    ahead: u64,
}

impl SendRecord {
    /// A record starting at the node clock, above every slot this node used.
    pub(crate) fn new(env: &Env, now: Instant) -> Self {
        let start = env.clock;
        // Room for a burst; the rings grow with the traffic, up to the window.
        let window = usize::try_from(env.params.window).unwrap_or(usize::MAX).min(256);
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
            last_active: now,
            sent: VecDeque::with_capacity(window),
            next_seq: 0,
            largest_acked: None,
            loss_at: None,
            packet_threshold: INITIAL_PACKET_THRESHOLD,
            time_eighths: INITIAL_TIME_EIGHTHS,
            pto_count: 0,
            probes: 0,
            last_send: now,
            bytes_in_flight: 0,
            congestion: Congestion::new(env.params.max_datagram),
            ahead: env.params.base_slots,
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

    /// The congestion window, in bytes.
    #[cfg(test)]
    pub(crate) fn congestion_window(&self) -> usize {
        self.congestion.window()
    }

    /// Queues a payload (the caller enforced the queue limit).
    pub(crate) fn submit(&mut self, env: &mut Env, now: Instant, payload: Vec<u8>) {
        let len = payload.len();
        let alone = self.ring.len() == self.bound_len();
        self.ring.push_back(Some(InFlight {
            payload,
            sends: 0,
            last_sent: Instant::ZERO,
            seq: 0,
            queued: true,
            lost: false,
            counted: false,
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
        if envelopes >= queued + self.ahead / 2 && !(envelopes == 0 && queued > 0) {
            return;
        }
        let room = env.params.window.saturating_sub(self.granted_end - self.acked_base);
        let count =
            (queued + self.ahead).saturating_sub(envelopes).min(room).min(u64::from(u32::MAX));
        if count == 0 {
            return;
        }
        self.request = Some(Request {
            start: self.granted_end,
            count: count as u32,
            sends: 0,
            sends_before_move: 0,
            last_sent: Instant::ZERO,
            due: true,
        });
    }

    /// Forgets the transmissions in flight: their tokens are queued payloads again (or gone).
    fn reset_recovery(&mut self) {
        self.sent.clear();
        self.largest_acked = None;
        self.loss_at = None;
        self.pto_count = 0;
        self.probes = 0;
        self.bytes_in_flight = 0;
    }

    /// Moves a record that holds no bound token (its ring holds queued payloads only) to
    /// slots from `start` (above every slot the node used), with a new request.
    fn start_over_at(&mut self, env: &Env, start: u64) {
        debug_assert_eq!(self.bound_len(), 0);
        self.acked_base = start;
        self.bound_end = start;
        self.granted_end = start;
        self.reported_lowest = start;
        self.request = None;
        self.maybe_request(env);
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
            token.lost = false;
            token.counted = false;
        }
        let requested = self.request.map_or(0, |r| r.start.saturating_add(r.count.into()));
        env.advance_clock(self.granted_end.max(requested));
        let start = if keep_request { self.granted_end } else { env.clock };
        // A new incarnation starts as a new record would.
        self.ahead = env.params.base_slots;
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
        self.reset_recovery();
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
                None if self.request.is_some_and(|r| slots.start > r.start)
                    && self.bound_len() == 0
                    && slots.start <= env.leap_ceiling() =>
                {
                    // The receiver's record already went up to `start` with a previous start
                    // of this node, whose clock was ahead of ours (it restarted without it):
                    // our request is below what it may grant. Nothing of ours is bound to a
                    // slot, so starting over above loses and repeats nothing.
                    env.advance_clock(slots.start);
                    self.start_over_at(env, env.clock);
                }
                _ => env.stats.stale_records += 1,
            }
            return;
        }
        if let Some(current) = self.inc {
            if slots.incarnation < current {
                let answers = self.request.is_some_and(|r| r.start == slots.start);
                if !(answers && self.bound_len() == 0) {
                    env.stats.stale_records += 1;
                    return;
                }
                // A grant for our outstanding request under an incarnation below ours: the
                // receiver restarted with its clock behind the one that issued ours (it does
                // not persist it), and only a token of ours would tell it (its records of
                // previous starts are recognised by their tokens). We hold none: everything
                // bound was acknowledged. Ignoring the grant would stall the payloads queued
                // here for good; so ours is gone as for a higher incarnation, slots granted
                // under it and not yet bound included (the new start never granted them),
                // and the grant is taken.
                self.incarnation_lost(env, now, true);
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
        // Payloads waited for this grant, the previous one used up: ask further ahead.
        if self.inc.is_some() && self.bound_end == self.granted_end && self.queued() > 0 {
            self.ahead = (self.ahead * 2).min(env.params.window / 4).max(env.params.base_slots);
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

    /// An `ACK` record: drops the acknowledged tokens, then looks for lost ones.
    pub(crate) fn on_ack(&mut self, env: &mut Env, now: Instant, rtt: &mut Rtt, ack: &Ack<'_>) {
        if self.inc != Some(ack.incarnation) {
            env.stats.stale_records += 1;
            return;
        }
        let base = self.acked_base;
        let prior_largest = self.largest_acked.map(|(seq, _)| seq);
        let in_flight_before = self.bytes_in_flight;
        let queue_building = rtt.queue_is_building();
        // The newly acknowledged token of the newest transmission: (seq, sent, sends).
        let mut newest: Option<(u64, Instant, u32)> = None;
        let mut acked = 0usize;
        let mut spurious = false;
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
                if entry.as_ref().is_none_or(|t| t.sends == 0) {
                    continue;
                }
                let Some(token) = entry.take() else { continue };
                if token.counted {
                    self.bytes_in_flight -= token.cost();
                    self.congestion.on_ack(
                        token.seq,
                        token.cost(),
                        in_flight_before,
                        queue_building,
                    );
                }
                if token.queued {
                    self.tx_bytes = self.tx_bytes.saturating_sub(token.payload.len());
                }
                if token.lost {
                    // Declared lost, yet delivered before we sent it again: only reordered.
                    spurious = true;
                } else if prior_largest.is_some_and(|largest| token.seq < largest) {
                    let distance = prior_largest.unwrap_or(0) - token.seq + 1;
                    self.packet_threshold =
                        self.packet_threshold.max(distance).min(MAX_PACKET_THRESHOLD);
                }
                if newest.is_none_or(|(seq, _, _)| token.seq > seq) {
                    newest = Some((token.seq, token.last_sent, token.sends));
                }
                env.pool.recycle(token.payload);
                acked += 1;
            }
        }
        if acked == 0 {
            return;
        }
        self.in_flight -= acked;
        env.stats.tokens_acked += acked as u64;
        if spurious {
            env.stats.spurious_losses += 1;
            self.time_eighths = (self.time_eighths * 2).min(MAX_TIME_EIGHTHS);
            self.packet_threshold = (self.packet_threshold * 2).min(MAX_PACKET_THRESHOLD);
            self.congestion.undo();
        }
        if let Some((seq, sent, sends)) = newest {
            // Karn's rule: only a token sent once gives an RTT sample.
            if sends == 1 && prior_largest.is_none_or(|largest| seq > largest) {
                rtt.sample_micros(now.as_micros().saturating_sub(sent.as_micros()));
            }
            if prior_largest.is_none_or(|largest| seq > largest) {
                self.largest_acked = Some((seq, sent));
            }
        }
        self.pto_count = 0;
        // Drop the acknowledged tokens at the front of the ring (only an ACK makes any).
        let done = self.ring.iter().position(Option::is_some).unwrap_or(self.ring.len());
        self.ring.drain(..done);
        self.acked_base += done as u64;
        self.last_active = now;
        self.detect_lost(env, now, rtt);
        self.maybe_request(env);
    }

    /// The token of `slot` if it is bound, unacknowledged, and was last sent in `seq`.
    fn in_flight_token(&mut self, seq: u64, slot: u64) -> Option<&mut InFlight> {
        let index = usize::try_from(slot.checked_sub(self.acked_base)?).ok()?;
        if index >= self.bound_len() {
            return None;
        }
        self.ring.get_mut(index)?.as_mut().filter(|t| t.seq == seq && t.counted && !t.queued)
    }

    /// Declares lost the tokens in flight that a newer acknowledged transmission overtook by
    /// the packet or the time threshold, queueing them for retransmission.
    fn detect_lost(&mut self, env: &mut Env, now: Instant, rtt: &Rtt) {
        self.loss_at = None;
        let Some((largest, _)) = self.largest_acked else { return };
        let delay = rtt.loss_delay_micros(self.time_eighths);
        let threshold = self.packet_threshold;
        let next_seq = self.next_seq;
        let queue_is_short = rtt.queue_is_short();
        while let Some(&(seq, slot)) = self.sent.front() {
            if seq >= largest {
                break;
            }
            let Some(token) = self.in_flight_token(seq, slot) else {
                // Acknowledged, or sent again since (a newer entry stands for it).
                self.sent.pop_front();
                continue;
            };
            let lost_at = delay.map(|d| token.last_sent.as_micros().saturating_add(d));
            let by_time = lost_at.is_some_and(|at| at <= now.as_micros());
            if largest - seq < threshold && !by_time {
                self.loss_at = lost_at.map(Instant::from_micros);
                break;
            }
            token.queued = true;
            token.lost = true;
            token.counted = false;
            let (cost, len) = (token.cost(), token.payload.len());
            self.bytes_in_flight -= cost;
            self.tx_bytes += len;
            self.tx.push_back(slot);
            self.sent.pop_front();
            self.congestion.on_loss(seq, next_seq, queue_is_short);
            env.stats.tokens_lost += 1;
        }
    }

    /// Nothing was acknowledged for a probe timeout: send the oldest tokens in flight again,
    /// outside the congestion window.
    fn on_probe_timeout(&mut self, env: &mut Env) {
        self.pto_count = self.pto_count.saturating_add(1);
        env.stats.probe_timeouts += 1;
        if self.pto_count == PERSISTENT_PTOS {
            self.congestion.on_persistent_congestion(self.next_seq);
        }
        self.queue_probes();
    }

    /// Our address changed (or a link came back): what was backing off waited for a path
    /// that is gone. Probe now and resend the outstanding request, with a fresh backoff.
    pub(crate) fn on_path_change(&mut self) {
        self.pto_count = 0;
        if let Some(request) = &mut self.request {
            request.due = true;
            request.sends_before_move = request.sends;
        }
        if self.bytes_in_flight > 0 {
            self.queue_probes();
        }
    }

    /// Queues the probes of a probe timeout.
    fn queue_probes(&mut self) {
        // The oldest tokens sent and not acknowledged, whether in flight or declared lost and
        // waiting for the congestion window (a probe goes outside it).
        let mut chosen: heapless::Vec<u64, { PROBES as usize }> = heapless::Vec::new();
        let bound = self.bound_len();
        for (i, entry) in self.ring.range_mut(..bound).enumerate() {
            let Some(token) = entry else { continue };
            if token.sends == 0 {
                continue;
            }
            if !token.queued {
                token.queued = true;
                self.tx_bytes += token.payload.len();
            }
            if chosen.push(self.acked_base + i as u64).is_err() || chosen.is_full() {
                break;
            }
        }
        // Ahead of the transmit queue, oldest first (a queued one may then be in the queue
        // twice: the second entry finds it sent and is skipped).
        for &slot in chosen.iter().rev() {
            self.tx.push_front(slot);
        }
        self.probes = chosen.len() as u32;
    }

    /// True if the record has records to send.
    pub(crate) fn has_output(&self) -> bool {
        self.request.is_some_and(|r| r.due)
            || self.refresh_due
            || (self.inc.is_some() && !self.tx.is_empty() && self.may_send_token())
    }

    /// The congestion window (or a probe) lets a token go.
    #[inline]
    fn may_send_token(&self) -> bool {
        self.probes > 0 || self.bytes_in_flight < self.congestion.window()
    }

    /// Writes what is due into `w`; false if the datagram filled up first.
    pub(crate) fn write(
        &mut self,
        env: &mut Env,
        now: Instant,
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
        self.write_tokens(env, now, inc, w)
    }

    /// Writes the tokens of the transmit queue that the congestion window lets go, as one
    /// transmission; false if the datagram filled up first.
    fn write_tokens(
        &mut self,
        env: &mut Env,
        now: Instant,
        inc: u64,
        w: &mut DatagramWriter<'_>,
    ) -> bool {
        let seq = self.next_seq;
        let mut wrote = false;
        let mut complete = true;
        while let Some(&slot) = self.tx.front() {
            if !self.may_send_token() {
                break;
            }
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
                complete = false;
                break;
            }
            self.tx.pop_front();
            self.tx_bytes = self.tx_bytes.saturating_sub(token.payload.len());
            if token.sends > 0 {
                env.stats.tokens_retransmitted += 1;
            }
            token.queued = false;
            token.lost = false;
            token.sends = token.sends.saturating_add(1);
            token.last_sent = now;
            token.seq = seq;
            if !token.counted {
                token.counted = true;
                self.bytes_in_flight += token.cost();
            }
            self.probes = self.probes.saturating_sub(1);
            self.sent.push_back((seq, slot));
            wrote = true;
            env.stats.tokens_sent += 1;
        }
        if self.tx.is_empty() {
            self.tx_bytes = 0;
            // Probes whose tokens were acknowledged before they went: none left to send, and
            // a pending probe would keep the next probe timeout from being armed.
            self.probes = 0;
        }
        if wrote {
            self.next_seq += 1;
            self.last_send = now;
            self.compact_sent();
        }
        complete
    }

    /// Keeps the transmission log bounded: entries of tokens acknowledged or sent again
    /// stay until loss detection reaches them, which a token stuck in flight can delay.
    fn compact_sent(&mut self) {
        let limit = 2 * self.ring.len() + 64;
        if self.sent.len() <= limit {
            return;
        }
        let (base, bound) = (self.acked_base, self.bound_len());
        let ring = &self.ring;
        self.sent.retain(|&(seq, slot)| {
            let index = slot.wrapping_sub(base) as usize;
            index < bound
                && ring.get(index).is_some_and(|e| {
                    e.as_ref().is_some_and(|t| t.seq == seq && t.counted && !t.queued)
                })
        });
    }

    /// When a probe timeout fires: tokens are in flight and nothing was acknowledged for
    /// the RTT estimate's timeout (doubled per consecutive probe) since the last send.
    fn probe_at(&self, env: &Env, rtt: &Rtt) -> Option<Instant> {
        (self.bytes_in_flight > 0 && self.probes == 0)
            .then(|| self.last_send + rtt.probe_timeout(self.pto_count, env.params.ack_delay))
    }

    /// When the outstanding request is sent again: after a probe timeout (a lost request
    /// or grant stops the stream once the envelopes run out, and a request is small).
    fn request_at(&self, env: &Env, rtt: &Rtt) -> Option<Instant> {
        let request = self.request.filter(|r| !r.due && r.sends > r.sends_before_move)?;
        let backoff = request.sends - request.sends_before_move - 1;
        Some(request.last_sent + rtt.probe_timeout(backoff, env.params.ack_delay))
    }

    /// Loss, probe, request and idle timers.
    pub(crate) fn on_timeout(&mut self, env: &mut Env, now: Instant, rtt: &Rtt) -> SendOutcome {
        if self.loss_at.is_some_and(|t| t <= now) {
            self.detect_lost(env, now, rtt);
        }
        if self.probe_at(env, rtt).is_some_and(|t| t <= now) {
            self.on_probe_timeout(env);
        }
        if self.request_at(env, rtt).is_some_and(|t| t <= now)
            && let Some(request) = &mut self.request
        {
            request.due = true;
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
        let delay = if env.closing { Duration::ZERO } else { env.params.idle_timeout / 4 };
        (unreported && !self.refresh_due).then(|| self.last_active + delay)
    }

    /// When `on_timeout` must run next.
    pub(crate) fn deadline(&self, env: &Env, rtt: &Rtt) -> Option<Instant> {
        let idle = self.is_idle().then(|| self.last_active + env.params.idle_timeout);
        [
            self.loss_at,
            self.probe_at(env, rtt),
            self.request_at(env, rtt),
            idle,
            self.report_at(env),
        ]
        .into_iter()
        .flatten()
        .min()
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

    fn output(s: &mut SendRecord, env: &mut Env, now: Instant) -> Vec<Rec> {
        written(1400, |w| assert!(s.write(env, now, w)))
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
        assert_eq!(output(&mut s, &mut env, T0), vec![request]);
        let t1 = T0 + Duration::from_millis(20);
        s.on_slots(&mut env, t1, &mut rtt, grant(100, 7, 5));
        assert_eq!(rtt.srtt(), Some(Duration::from_millis(20)));
        assert_eq!(s.incarnation(), Some(7));
        assert_eq!(env.clock, 105);
        let tokens = output(&mut s, &mut env, t1);
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
            quiet = s.deadline(&env, &rtt).unwrap();
            s.on_timeout(&mut env, quiet, &rtt);
        }
        assert_eq!(quiet, t2 + Duration::from_millis(250));
        let refresh = Rec::ReqSlots(ReqSlots { start: 105, count: 0, lowest: 103 });
        assert_eq!(output(&mut s, &mut env, quiet), vec![refresh]);
        assert!(!s.has_output());
        assert_eq!(s.deadline(&env, &rtt), Some(t2 + Duration::from_secs(1)));
    }

    /// The `count` of the request among what `s` writes now (panics if there is none).
    fn requested(s: &mut SendRecord, env: &mut Env, now: Instant) -> u32 {
        let out = output(s, env, now);
        let mut requests = out.iter().filter_map(|r| match r {
            Rec::ReqSlots(r) => Some(r.count),
            _ => None,
        });
        requests.next().unwrap_or_else(|| panic!("expected a REQSLOTS in {out:?}"))
    }

    /// Submits a burst of `burst` payloads and grants whatever `s` then requests (at
    /// `now`); returns the requested count.
    fn burst_and_grant(
        s: &mut SendRecord,
        env: &mut Env,
        rtt: &mut Rtt,
        now: Instant,
        burst: usize,
    ) -> u32 {
        for _ in 0..burst {
            submit(s, env, b"x");
        }
        let start = s.granted_end;
        let count = requested(s, env, now);
        s.on_slots(env, now, rtt, grant(start, 7, count));
        count
    }

    /// Sends every bound token of `s` and acknowledges them all.
    fn send_and_ack_all(s: &mut SendRecord, env: &mut Env, rtt: &mut Rtt, now: Instant) {
        output(s, env, now);
        let (first, end) = (s.acked_base, s.bound_end);
        ack(s, env, rtt, now, 7, &[(first, end)]);
    }

    #[test]
    fn a_stream_that_waits_for_slots_asks_further_ahead_up_to_a_quarter_of_the_window() {
        let mut env = env(NodeConfig { window: 64, base_slots: 2, ..config() });
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        let mut now = T0;
        let (mut counts, mut aheads) = (Vec::new(), Vec::new());
        for _ in 0..6 {
            // A burst larger than the slots left: the record waits a round trip for a grant.
            now += Duration::from_millis(1);
            counts.push(burst_and_grant(&mut s, &mut env, &mut rtt, now, 10));
            aheads.push(s.ahead);
            send_and_ack_all(&mut s, &mut env, &mut rtt, now);
            assert_eq!(s.unacknowledged(), 0);
        }
        // What is asked ahead doubles with each grant that payloads waited for (not the
        // first: a new record always waits), from 2 up to 16, a quarter of the window.
        assert_eq!(aheads, vec![2, 4, 8, 16, 16, 16]);
        // Each request: the payloads of the burst left without a slot, plus that lookahead.
        // The last burst fits in what is left of the previous grant: no wait, no doubling.
        assert_eq!(counts, vec![10 + 2, 8 + 2, 8 + 4, 6 + 8, 2 + 16, 16 - 6]);
    }

    #[test]
    fn a_lost_incarnation_starts_the_lookahead_over() {
        let mut env = env(NodeConfig { window: 64, base_slots: 2, ..config() });
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        for round in 0..3 {
            burst_and_grant(&mut s, &mut env, &mut rtt, T0, 10);
            if round < 2 {
                send_and_ack_all(&mut s, &mut env, &mut rtt, T0);
            }
        }
        assert_eq!(s.ahead, 8);
        // The receiver forgot incarnation 7 (a status of a newer one, no slots).
        s.on_slots(&mut env, T0, &mut rtt, grant(0, 8, 0));
        assert_eq!(s.ahead, 2);
    }

    #[test]
    fn a_stream_that_never_waits_keeps_the_base_lookahead() {
        let mut env = env(NodeConfig { window: 64, base_slots: 8, ..config() });
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        let mut now = T0;
        for _ in 0..20 {
            // One payload at a time: a new grant is asked for before the slots run out.
            submit(&mut s, &mut env, b"x");
            now += Duration::from_millis(1);
            for r in output(&mut s, &mut env, now) {
                match r {
                    Rec::ReqSlots(r) => {
                        s.on_slots(&mut env, now, &mut rtt, grant(r.start, 7, r.count))
                    }
                    Rec::Token(slot, ..) => {
                        ack(&mut s, &mut env, &mut rtt, now, 7, &[(slot, slot + 1)])
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(s.ahead, 8);
    }

    #[test]
    fn a_path_change_restarts_the_backoff_of_an_unanswered_request() {
        let mut env = env(config());
        let rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        submit(&mut s, &mut env, b"x");
        let request = Rec::ReqSlots(ReqSlots { start: 100, count: 3, lowest: 100 });
        assert_eq!(output(&mut s, &mut env, T0), vec![request.clone()]);
        // Unanswered (the path is gone): each resend waits twice as long as the one before.
        let mut now = T0;
        let mut waits = Vec::new();
        for _ in 0..4 {
            let due = s.deadline(&env, &rtt).unwrap();
            waits.push(due - now);
            s.on_timeout(&mut env, due, &rtt);
            assert_eq!(output(&mut s, &mut env, due), vec![request.clone()]);
            now = due;
        }
        assert!(waits.windows(2).all(|w| w[1] == w[0] * 2), "{waits:?}");
        // The path changed: the request goes out at once, and if that one is lost too the
        // next resend waits as long as the first did, not the fifth.
        let moved = now + Duration::from_millis(3);
        s.on_path_change();
        assert_eq!(output(&mut s, &mut env, moved), vec![request.clone()]);
        assert_eq!(s.deadline(&env, &rtt), Some(moved + waits[0]));
    }

    #[test]
    fn an_ack_for_a_token_never_sent_is_ignored() {
        let mut env = env(config());
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        submit(&mut s, &mut env, b"x");
        output(&mut s, &mut env, T0);
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
        assert_eq!(output(&mut s, &mut env, T0), vec![request]);
        s.on_slots(&mut env, T0, &mut rtt, grant(100, 7, 8));
        assert_eq!(output(&mut s, &mut env, T0).len(), 8);
        assert!(!s.has_output(), "no room for another request");
        ack(&mut s, &mut env, &mut rtt, T0, 7, &[(100, 103)]);
        let request = Rec::ReqSlots(ReqSlots { start: 108, count: 3, lowest: 103 });
        assert_eq!(output(&mut s, &mut env, T0), vec![request]);
    }

    #[test]
    fn retransmits_with_exponential_backoff() {
        let mut env = env(config());
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        submit(&mut s, &mut env, b"x");
        output(&mut s, &mut env, T0);
        // (A separate estimator for the grant: no RTT sample for the token timers.)
        let mut scratch = self::rtt(&env);
        s.on_slots(&mut env, T0, &mut scratch, grant(100, 7, 3));
        output(&mut s, &mut env, T0);
        let mut at = T0;
        for timeout_ms in [100, 200, 400, 800, 1000, 1000] {
            let due = s.deadline(&env, &rtt).unwrap();
            assert_eq!(due, at + Duration::from_millis(timeout_ms));
            assert_eq!(
                s.on_timeout(&mut env, due - Duration::from_micros(1), &rtt),
                SendOutcome::Keep
            );
            assert!(!s.has_output());
            s.on_timeout(&mut env, due, &rtt);
            let copy = output(&mut s, &mut env, due);
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
        output(&mut s, &mut env, T0);
        s.on_slots(&mut env, T0, &mut rtt, grant(100, 7, 5));
        output(&mut s, &mut env, T0);
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
        assert_eq!(output(&mut s, &mut env, T0), vec![request]);
        s.on_slots(&mut env, T0, &mut rtt, grant(105, 9, 4));
        let tokens = output(&mut s, &mut env, T0);
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
        output(&mut s, &mut env, T0);
        s.on_slots(&mut env, T0, &mut rtt, grant(100, 7, 8));
        assert_eq!(s.queued(), 4);
        assert_eq!(s.pending_bytes(), 8);
        assert_eq!(output(&mut s, &mut env, T0).len(), 8);
        ack(&mut s, &mut env, &mut rtt, T0, 7, &[(100, 102), (103, 104)]);
        assert_eq!(s.unacknowledged(), 9);
        // 7 is gone: the five unacknowledged tokens, then the four queued payloads.
        s.on_slots(&mut env, T0, &mut rtt, grant(0, 9, 0));
        assert_eq!(env.stats.payloads_rebound, 5);
        assert_eq!((s.unacknowledged(), s.queued(), s.pending_bytes()), (9, 9, 0));
        let request = Rec::ReqSlots(ReqSlots { start: 110, count: 8, lowest: 110 });
        assert_eq!(output(&mut s, &mut env, T0), vec![request]);
        s.on_slots(&mut env, T0, &mut rtt, grant(110, 9, 8));
        assert_eq!((s.queued(), s.pending_bytes()), (1, 8));
        let tokens = output(&mut s, &mut env, T0);
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
        output(&mut s, &mut env, T0);
        s.on_slots(&mut env, T0, &mut rtt, grant(100, 7, 1));
        // Out of envelopes: the token goes with a request for more.
        let request = Rec::ReqSlots(ReqSlots { start: 101, count: 2, lowest: 100 });
        let token = Rec::Token(100, 7, b"a".to_vec());
        assert_eq!(output(&mut s, &mut env, T0), vec![request, token]);
        submit(&mut s, &mut env, b"b");
        assert_eq!(output(&mut s, &mut env, T0), vec![]);
        // The receiver forgot 7 (safely: "a" was undelivered) and answers under 9.
        s.on_slots(&mut env, T0, &mut rtt, grant(101, 9, 2));
        assert_eq!(s.incarnation(), Some(9));
        let out = output(&mut s, &mut env, T0);
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
        output(&mut s, &mut env, T0);
        let mut scratch = self::rtt(&env);
        s.on_slots(&mut env, T0, &mut scratch, grant(100, 7, 3));
        output(&mut s, &mut env, T0);
        assert_eq!(s.deadline(&env, &rtt), Some(T0 + Duration::from_millis(100)));
        ack(&mut s, &mut env, &mut rtt, T0, 7, &[(100, 101)]);
        let idle = T0 + Duration::from_secs(1);
        assert_eq!(
            s.on_timeout(&mut env, idle - Duration::from_micros(1), &rtt),
            SendOutcome::Keep
        );
        assert_eq!(s.on_timeout(&mut env, idle, &rtt), SendOutcome::Forget { lowest: 103 });
        assert_eq!(env.clock, 103);
    }

    /// A record with a grant of `n` slots from 100 under incarnation 7, an RTT sample of
    /// 20 ms, and `n` payloads of 600 bytes submitted (one fits a datagram of 1000 bytes).
    fn granted(env: &mut Env, rtt: &mut Rtt, n: u8) -> SendRecord {
        let mut s = SendRecord::new(env, T0);
        for i in 0..n {
            submit(&mut s, env, &[i; 600]);
        }
        output(&mut s, env, T0);
        s.on_slots(env, T0 + Duration::from_millis(20), rtt, grant(100, 7, u32::from(n)));
        s
    }

    fn tokens(recs: &[Rec]) -> Vec<u64> {
        recs.iter()
            .filter_map(|r| match r {
                Rec::Token(slot, _, _) => Some(*slot),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_token_overtaken_by_three_transmissions_is_sent_again_alone() {
        let mut env = env(NodeConfig { window: 64, base_slots: 0, ..config() });
        let mut rtt = rtt(&env);
        let mut s = granted(&mut env, &mut rtt, 5);
        let t = T0 + Duration::from_millis(20);
        // Five transmissions of one token each (datagrams that fit one token).
        for slot in 100..105 {
            let sent = written(1000, |w| {
                s.write(&mut env, t, w);
            });
            assert_eq!(tokens(&sent), vec![slot]);
        }
        // Slot 100 is lost; 101 arrives (one transmission later: not enough).
        let t = t + Duration::from_micros(100);
        ack(&mut s, &mut env, &mut rtt, t, 7, &[(101, 102)]);
        assert!(!s.has_output());
        // 102 and 103: transmission 3 acknowledged, three after slot 100's.
        ack(&mut s, &mut env, &mut rtt, t, 7, &[(101, 104)]);
        assert_eq!(env.stats.tokens_lost, 1);
        assert_eq!(tokens(&output(&mut s, &mut env, t)), vec![100]);
        assert_eq!(env.stats.tokens_retransmitted, 1);
    }

    #[test]
    fn reordering_raises_the_packet_threshold_and_undoes_a_spurious_loss() {
        let mut env = env(NodeConfig { window: 64, base_slots: 0, ..config() });
        let mut rtt = rtt(&env);
        let mut s = granted(&mut env, &mut rtt, 10);
        let t = T0 + Duration::from_millis(20);
        for _ in 0..10 {
            written(1000, |w| {
                s.write(&mut env, t, w);
            });
        }
        let window = s.congestion_window();
        // 103 arrives before 100..103: 100 is declared lost (3 transmissions behind)...
        ack(&mut s, &mut env, &mut rtt, t, 7, &[(103, 104)]);
        assert_eq!(env.stats.tokens_lost, 1);
        assert!(s.congestion_window() < window);
        // ... but its ACK comes before it was sent again: only reordered.
        ack(&mut s, &mut env, &mut rtt, t, 7, &[(100, 104)]);
        assert_eq!(env.stats.spurious_losses, 1);
        assert_eq!(s.congestion_window(), window, "the decrease is undone");
        // The threshold grew past 3, so slot 104 is not declared lost when 109 overtakes it
        // by five transmissions.
        ack(&mut s, &mut env, &mut rtt, t, 7, &[(109, 110)]);
        assert_eq!(env.stats.tokens_lost, 1);
        let again = written(1000, |w| {
            s.write(&mut env, t, w);
        });
        assert!(tokens(&again).is_empty(), "{again:?}");
    }

    #[test]
    fn a_probe_timeout_sends_two_tokens_not_the_whole_flight() {
        let mut env = env(NodeConfig { window: 64, base_slots: 0, ..config() });
        let mut rtt = rtt(&env);
        let mut s = granted(&mut env, &mut rtt, 8);
        let t = T0 + Duration::from_millis(20);
        let send_all = |s: &mut SendRecord, env: &mut Env, now: Instant| {
            let mut sent = Vec::new();
            while s.has_output() {
                sent.extend(tokens(&written(1000, |w| {
                    s.write(env, now, w);
                })));
            }
            sent
        };
        assert_eq!(send_all(&mut s, &mut env, t).len(), 8);
        let pto = s.deadline(&env, &rtt).unwrap();
        assert_eq!(pto, t + rtt.probe_timeout(0, env.params.ack_delay));
        s.on_timeout(&mut env, pto, &rtt);
        assert_eq!(send_all(&mut s, &mut env, pto), vec![100, 101]);
        // Their ACK (listing every delivered slot) finds the rest lost by time.
        let later = pto + Duration::from_millis(20);
        ack(&mut s, &mut env, &mut rtt, later, 7, &[(100, 102)]);
        assert_eq!(send_all(&mut s, &mut env, later), (102..108).collect::<Vec<_>>());
    }

    #[test]
    fn the_congestion_window_bounds_bytes_in_flight() {
        let mut env =
            env(NodeConfig { window: 1024, base_slots: 0, max_datagram: 1200, ..config() });
        let mut rtt = rtt(&env);
        let mut s = SendRecord::new(&env, T0);
        let payload = [7u8; 984];
        for _ in 0..20 {
            submit(&mut s, &mut env, &payload);
        }
        output(&mut s, &mut env, T0);
        s.on_slots(&mut env, T0, &mut rtt, grant(100, 7, 20));
        // 12,000 bytes of window, 1,000 per token: 12 tokens, then the window is full.
        let mut sent = 0;
        while s.has_output() {
            sent += tokens(&written(1400, |w| {
                s.write(&mut env, T0, w);
            }))
            .len();
        }
        assert_eq!(sent, 12);
        ack(&mut s, &mut env, &mut rtt, T0 + Duration::from_millis(1), 7, &[(100, 104)]);
        assert!(s.has_output());
    }

    #[test]
    fn probes_acknowledged_before_they_go_do_not_disarm_the_probe_timeout() {
        let mut env = env(NodeConfig { window: 64, base_slots: 0, ..config() });
        let mut rtt = rtt(&env);
        let mut s = granted(&mut env, &mut rtt, 3);
        let t = T0 + Duration::from_millis(20);
        for _ in 0..3 {
            written(1000, |w| {
                s.write(&mut env, t, w);
            });
        }
        let pto = s.deadline(&env, &rtt).unwrap();
        s.on_timeout(&mut env, pto, &rtt);
        // Both probes (slots 100 and 101) are acknowledged before they are sent.
        ack(&mut s, &mut env, &mut rtt, pto, 7, &[(100, 102)]);
        let sent = written(1000, |w| {
            s.write(&mut env, pto, w);
        });
        assert!(tokens(&sent).is_empty(), "{sent:?}");
        // Slot 102 is still in flight: the next probe timeout is armed.
        assert!(s.deadline(&env, &rtt).is_some_and(|d| d > pto));
        let next = s.deadline(&env, &rtt).unwrap();
        s.on_timeout(&mut env, next, &rtt);
        let again = written(1000, |w| {
            s.write(&mut env, next, w);
        });
        assert_eq!(tokens(&again), vec![102]);
    }
}
