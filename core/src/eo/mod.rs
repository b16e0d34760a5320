//! The exactly-once transport between nodes (the Exon algorithm, with batching).
//!
//! For every ordered pair of nodes there are two *half-connections*: the sender keeps a
//! *send record* (module `send`), the receiver a *receive record* (module `recv`). Both are
//! created on demand and garbage-collected when idle; there is no connect or close. The
//! records talk through four records of the [wire format](crate::wire):
//!
//! * `REQSLOTS(s, n, l)`: the sender asks for `n` slots from `s`; it no longer cares about any
//!   slot below `l`. With `n = 0` it only reports `l`.
//! * `SLOTS(s, r, n)`: the receiver grants `s..s+n` under its incarnation `r`. A `SLOTS` with
//!   `n = 0` is a *status*: "my current incarnation for you is `r`" (see below).
//! * `TOKEN(s, r, payload)`: a payload bound to slot `s` of incarnation `r`.
//! * `ACK(r, ranges)`: tokens in these slots of `r` were delivered (or were duplicates).
//!
//! # Why nothing is delivered twice
//!
//! * Every receive record gets a fresh *incarnation* from the node clock, a counter that only
//!   grows, and a node holds at most one receive record per peer. A token is delivered only if
//!   it names the current incarnation and an *open* slot of it, which delivery closes. Slots
//!   are opened only above every slot the record ever opened (`next` only grows), so a slot
//!   of an incarnation is opened at most once and delivers at most once.
//! * The sender binds each payload to exactly one slot and never binds two payloads to the same
//!   slot: slot ids only grow within a send record, and a new send record (or a send record
//!   that starts over) starts at the node clock, which is above every slot the node used.
//!
//! # Why nothing is lost
//!
//! The sender retransmits a token until it is acknowledged: at once when acknowledgements show
//! it lost (a later transmission arrived), or as a probe when nothing is acknowledged for a
//! probe timeout (from the RTT estimate, doubled per consecutive probe up to `rto_max`); ACKs
//! repeat every delivered slot, so one that arrives repairs any that were lost. Module `send`
//! says which rules of QUIC's loss recovery (RFC 9002) it takes and why. A token whose
//! incarnation is gone can never be acknowledged, so the sender must rebind it to a new slot —
//! but only if its payload was certainly not delivered. That is the delicate part:
//!
//! * The receiver forgets a record in three cases only: (1) the sender's `REQSLOTS(n = 0, l)`
//!   with `l` at or above every slot it granted (the sender no longer cares about any slot:
//!   it has no token left); (2) after `receive_idle_timeout` without traffic; (3) to make room
//!   in a full peer table. In cases 2 and 3 it forgets only a record that is *safe to
//!   forget*: every slot from the sender's last reported `l` up to `next` is still open. Slots
//!   below `l` are acknowledged (the sender said so); slots at or above it are open, i.e. not
//!   delivered. So when a record is forgotten, every token the sender still holds for it was
//!   certainly not delivered. A record with delivered but possibly unacknowledged slots is
//!   kept, however long the partition (memory stays bounded by `max_peers`).
//! * To keep records safe to forget, the sender reports `l` often: in every request, with any
//!   other record once it has advanced, and alone when the record has been quiet for a
//!   quarter of `idle_timeout` with everything acknowledged. So a partition of any length,
//!   longer than every idle timeout included, ends in one of two ways: the receiver kept its
//!   record and the retransmitted tokens are recognised as duplicates and acknowledged, or it
//!   forgot a safe record and the sender rebinds its tokens (next point).
//! * Once forgotten, an incarnation never comes back. The receiver tells the sender: a token
//!   for another incarnation (or for a peer without a record) is answered with a status
//!   `SLOTS(next, x, 0)`, where `x` is the current incarnation, or the node clock if there is
//!   no record. Because incarnations are issued in increasing order and one record exists at a
//!   time, `x > r` proves that `r` is gone; a status with `x < r` is a stale one and ignored.
//!   A grant under an incarnation above `r` proves the same. The sender then moves every
//!   unacknowledged payload of `r` back to its queue (in order) and requests new slots.
//! * `REQSLOTS` and `SLOTS` are retransmitted on timers; a repeated request is answered with
//!   the same grant (grants are idempotent: `s` ties a grant to its request). A sender with no
//!   send record answers a stray grant or status with `REQSLOTS(n = 0, l = clock)`.
//! * An idle sender (nothing queued, everything acknowledged) sends `REQSLOTS(0, clock)` and
//!   drops its record. If that request is lost, the receiver notices the silence and probes
//!   with a status (backing off); the sender, without a record, answers with the same request.
//!   A stale `REQSLOTS(0, l)` of an earlier send record cannot harm a newer one: the newer one
//!   starts at or above `l`, so it is neither cancelled nor forgotten.
//!
//! # Restarts
//!
//! The thesis' model assumes the clock is persisted. What it needs is weaker: every start of
//! a node begins above every clock value its previous starts used. The std adapters take the
//! initial clock from the wall clock (64 per microsecond since 2026; a node moves its clock
//! by the slots it asks for and the records it opens, far slower), which gives that without
//! persisting anything. Then a restart looks to the peers like a node whose records went:
//! they rebind and resume (`core/tests/eo_restart_faults.rs`: restarts of a sender, a
//! receiver or both mid-stream, with loss, duplication, reordering and datagrams of the dead
//! start still in flight). It does not hold if the clock was pushed further by a peer's
//! record (a plaintext one can be forged: by up to 2^40 each), nor if the wall clock goes
//! back.
//!
//! A start whose clock is set back below its previous start's (no wall clock, before NTP
//! answers) is found out by its peers' records, and its clock is moved above them (by up to
//! 2^40, about 4.8 hours of wall clock, in plaintext; by up to 2^58, any set-back, where
//! every datagram is authenticated):
//!
//! * A restarted receiver gets tokens of an incarnation its previous start issued: at or
//!   above its clock, above its new record's, or its new record's number but for a slot below
//!   any that record granted. It moves its clock above that incarnation, drops a record made
//!   meanwhile if it delivered nothing, and answers with a status whose incarnation is above
//!   the sender's: the sender rebinds its tokens as for any forgotten incarnation. A token
//!   for a slot below the first a record granted is never acknowledged as a duplicate.
//! * A sender that holds no unacknowledged token takes a grant for its outstanding request
//!   even under an incarnation below the one it knew (the receiver restarted behind it, and
//!   none of its tokens is left to tell it so): it gives up that incarnation, slots granted
//!   under it and not yet bound included, as for a higher one.
//! * A restarted sender asks for slots below what the receiver's record already granted (its
//!   previous start's); the receiver answers a request it cannot grant from with a status
//!   `SLOTS(next, r, 0)`, and a sender holding no bound token moves its clock and its
//!   request to `next`.
//!
//! That recovers a receiver set back within those bounds, on a faulty network too (the
//! second test of `eo_restart_faults`). It does not make a set-back start safe against
//! datagrams of its dead start that arrive late: its peer cannot tell them from the new
//! start's, and a late request of a dead sender can move the receiver's record past the new
//! start's slots (a stall), or a late status of a dead receiver can make its peer give up
//! the new start's incarnation and send again what it delivered (a repeat). Persist the
//! clock where the wall clock can go back.
//!
//! What no restart recovers is what only the lost state knew: tokens a restarted receiver
//! delivered but did not acknowledge are delivered again by its new start; payloads it
//! delivered and acknowledged but its application had not taken yet (in the inbox, or a
//! socket's queue above it) are gone with it; and payloads a sender held when it stopped are
//! gone with it.
//!
//! # Performance and memory
//!
//! * Slots are requested ahead (the queue plus a lookahead: `base_slots`, doubled each time
//!   payloads had to wait for a grant, up to a quarter of the window), so in steady state a
//!   payload costs one `TOKEN` and a share of one `ACK`, and a fast stream does not wait a
//!   round trip for its slots; records of any kind are packed into datagrams up to
//!   `max_datagram`, and an `ACK` carries up to 64 ranges.
//! * The sender keeps at most `window` slots between its oldest unacknowledged token and its
//!   newest grant, and at most `max_queued` payloads waiting for a slot; the receiver's open
//!   and to-acknowledge slot sets are sliding bitmaps (module `slots`) of twice the window.
//! * Payload buffers are recycled (module `buffers`): no allocation per message in steady state.
//! * A congestion window per send record (module `congestion`) bounds the bytes in flight, so a
//!   lossy path is not flooded with retransmissions.

pub(crate) mod buffers;
pub(crate) mod congestion;
pub(crate) mod recv;
pub(crate) mod rtt;
pub(crate) mod send;
pub(crate) mod slots;

use core::time::Duration;

use buffers::{BufPool, Inbox};

use crate::node::{NodeConfig, NodeStats};

/// Tokens that arrive before a receiver sends its ACK at once, at most (fewer with a small
/// window: a quarter of it): the sender's loss detection and congestion window run on ACKs.
const MAX_ACK_EAGER: u64 = 128;

/// How far ahead of our clock a peer's record may push it (a grant, a status, a token of an
/// incarnation above it) when datagrams are plaintext: anyone can forge those, and each
/// push is one forged record (`2^24` of them bring the clock to its end).
pub(crate) const CLOCK_LEAP_LIMIT: u64 = 1 << 40;

/// The same bound when every datagram is authenticated (the node seals): only our peers push
/// the clock, with values a previous start of ours issued. A start whose clock was set back
/// (`a3m` falls back to `2^21..2^28` without a wall clock) must be able to jump to its
/// previous start's values, which come from the wall clock (`2^51` in 2026, `2^56` in the
/// 2060s); a plaintext node recovers from set-backs up to [`CLOCK_LEAP_LIMIT`] only.
pub(crate) const SEALED_CLOCK_LEAP_LIMIT: u64 = 1 << 58;

/// Limits and timers of the exactly-once layer, validated from the node configuration.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// Most slots between a sender's oldest unacknowledged token and its newest grant.
    pub(crate) window: u64,
    /// Envelopes a busy sender keeps in reserve beyond its queued payloads.
    pub(crate) base_slots: u64,
    /// Slots a receive record's bitmaps cover.
    pub(crate) receive_window: usize,
    /// First retransmission timeout, before any RTT sample.
    pub(crate) rto_initial: Duration,
    /// Lower bound of the retransmission timeout.
    pub(crate) rto_min: Duration,
    /// Upper bound of the retransmission timeout (also of its backoff).
    pub(crate) rto_max: Duration,
    /// Inactivity after which an idle send record is dropped; receivers probe after twice it.
    pub(crate) idle_timeout: Duration,
    /// Inactivity after which a receive record that is safe to forget is dropped.
    pub(crate) receive_idle_timeout: Duration,
    /// How long a receiver may hold an ACK back for a datagram of its own to carry it.
    pub(crate) ack_delay: Duration,
    /// Owed ACKs that make a receiver send them at once.
    pub(crate) ack_eager: u64,
    /// Largest datagram sent (the congestion window counts in these).
    pub(crate) max_datagram: usize,
}

impl Params {
    /// The parameters of a validated node configuration.
    pub(crate) fn new(config: &NodeConfig) -> Self {
        Self {
            window: u64::from(config.window),
            base_slots: u64::from(config.base_slots),
            receive_window: config.window as usize * 2,
            rto_initial: config.rto_initial,
            rto_min: config.rto_min,
            rto_max: config.rto_max,
            idle_timeout: config.idle_timeout,
            receive_idle_timeout: config.receive_idle_timeout,
            ack_delay: config.ack_delay,
            ack_eager: (u64::from(config.window) / 4).clamp(1, MAX_ACK_EAGER),
            max_datagram: config.max_datagram,
        }
    }
}

/// State shared by all the records of a node.
#[derive(Debug)]
pub(crate) struct Env {
    /// Validated limits and timers.
    pub(crate) params: Params,
    /// The node clock: above every incarnation issued and every slot used as a sender.
    pub(crate) clock: u64,
    /// Recycled payload buffers.
    pub(crate) pool: BufPool,
    /// Delivered payloads waiting for the application.
    pub(crate) inbox: Inbox,
    /// Counters.
    pub(crate) stats: NodeStats,
    /// The node is closing: send records report their `l` as soon as everything is
    /// acknowledged, so that the peer's receive record settles before we go.
    pub(crate) closing: bool,
    /// Every datagram is authenticated (the node seals): see [`SEALED_CLOCK_LEAP_LIMIT`].
    pub(crate) sealed: bool,
}

impl Env {
    /// Moves the clock up to at least `value`.
    pub(crate) fn advance_clock(&mut self, value: u64) {
        self.clock = self.clock.max(value);
    }

    /// The highest value a peer's record may move the clock to.
    pub(crate) fn leap_ceiling(&self) -> u64 {
        let limit = if self.sealed { SEALED_CLOCK_LEAP_LIMIT } else { CLOCK_LEAP_LIMIT };
        self.clock.saturating_add(limit)
    }

    /// A fresh incarnation for a new receive record.
    pub(crate) fn issue_incarnation(&mut self) -> u64 {
        let incarnation = self.clock;
        self.clock = self.clock.saturating_add(1);
        incarnation
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! An environment and a record decoder for the unit tests of the records.

    use alloc::vec::Vec;

    use super::buffers::{BufPool, Inbox};
    use super::{Env, Params};
    use crate::node::{NodeConfig, NodeStats};
    use crate::wire::{self, DatagramWriter, Header, Record, ReqSlots, SlotRange, Slots};

    /// An environment for `config` (validated), with the clock at 100.
    pub(crate) fn env(config: NodeConfig) -> Env {
        let config = config.validated();
        Env {
            params: Params::new(&config),
            clock: 100,
            pool: BufPool::new(16, 2048),
            inbox: Inbox::new(config.max_inbox),
            stats: NodeStats::default(),
            closing: false,
            sealed: false,
        }
    }

    /// A record decoded into owned values.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Rec {
        ReqSlots(ReqSlots),
        Slots(Slots),
        Token(u64, u64, Vec<u8>),
        Ack(u64, Vec<(u64, u64)>),
    }

    /// The records `write` puts into one datagram of `size` bytes.
    pub(crate) fn written(size: usize, write: impl FnOnce(&mut DatagramWriter<'_>)) -> Vec<Rec> {
        let mut buf = alloc::vec![0u8; size];
        let header = Header { src: "a", dst: "b", flags: 0 };
        let mut w = DatagramWriter::new(&mut buf, &header).unwrap();
        write(&mut w);
        let done = w.finish();
        if done.records == 0 {
            return Vec::new();
        }
        let d = wire::decode_datagram(&buf[..done.len]).unwrap();
        d.records()
            .map(|r| match r {
                Record::ReqSlots(q) => Rec::ReqSlots(q),
                Record::Slots(s) => Rec::Slots(s),
                Record::Token(t) => Rec::Token(t.slot, t.incarnation, t.payload.to_vec()),
                Record::Ack(a) => Rec::Ack(
                    a.incarnation,
                    a.ranges().map(|r: SlotRange| (r.start, r.end)).collect(),
                ),
                Record::PathChallenge(_) | Record::PathResponse(_) | Record::SealMismatch(_) => {
                    unreachable!("records never write path records")
                }
            })
            .collect()
    }
}
