//! The node's configuration, errors, counters and delivery descriptor.

use core::fmt;
use core::time::Duration;

use crate::id::NodeId;
use crate::wire::MAX_DATAGRAM_LEN;

/// Smallest `max_datagram` a node uses (smaller values are raised to it).
pub const MIN_DATAGRAM: usize = 128;
/// Bytes a datagram needs besides one token's payload, in the worst case: the header with two
/// 32-byte node ids (70) and the token's kind, slot, incarnation and length fields (24).
pub const TOKEN_OVERHEAD: usize = 94;

/// Limits and timers of a node. [`Default`] gives the documented defaults; [`crate::node::Node::new`]
/// raises or lowers out-of-range values to the nearest valid one (see [`crate::node::Node::config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Largest datagram sent, in bytes (default 1400; from [`MIN_DATAGRAM`] to 65 507).
    pub max_datagram: usize,
    /// How long pending records may wait for more to share a datagram (default 0: a
    /// datagram goes out as soon as `poll_transmit` is called).
    pub coalesce_delay: Duration,
    /// Most slots a sender keeps between its oldest unacknowledged payload and its newest
    /// grant, per peer (default 8192, at least 1). Bounds the memory of in-flight payloads,
    /// and the throughput of a path: at most one window per round trip, less while a lost
    /// token holds the window's start (so several round trips' worth keeps a lossy path
    /// busy). A receive record keeps a bitmap of 2 × `window` slots, rounded up to a power
    /// of two of 64-bit words (a window just above a power of two nearly doubles it).
    pub window: u32,
    /// Slots a busy sender requests ahead beyond its queued payloads, at first (default 64):
    /// a send record doubles its lookahead each time its payloads had to wait for a grant,
    /// up to a quarter of `window`, so that a fast stream's slots come before it needs them
    /// (0: no lookahead, and no growth).
    pub base_slots: u32,
    /// Most payloads queued per peer while waiting for a slot (default 4096, at least 1);
    /// `submit` fails with [`NodeError::QueueFull`] beyond.
    pub max_queued: usize,
    /// Largest payload `submit` accepts (default 1300; lowered so that one token fits in a
    /// datagram: at most `max_datagram` − [`TOKEN_OVERHEAD`]).
    pub max_payload: usize,
    /// Most delivered payloads waiting for `poll_delivery` (default 4096, at least 1); while
    /// the inbox is full, tokens are neither accepted nor acknowledged.
    pub max_inbox: usize,
    /// Most peers the node keeps state for (default 1024, at least 1).
    pub max_peers: usize,
    /// Lower bound of the retransmission timeout (default 10 ms).
    pub rto_min: Duration,
    /// Upper bound of the retransmission timeout and of its backoff (default 1 s).
    pub rto_max: Duration,
    /// Retransmission timeout before the first RTT sample (default 100 ms).
    pub rto_initial: Duration,
    /// Inactivity after which an idle send record (nothing queued or unacknowledged) is
    /// dropped; receivers probe a silent sender after twice this (default 5 s, at least 1 ms).
    pub idle_timeout: Duration,
    /// Inactivity after which a receive record is dropped, if that is safe (default 10 min,
    /// at least `idle_timeout` and 4 × `rto_max`). A record whose sender may still hold tokens
    /// for delivered slots is never dropped, so this only bounds memory. The floor keeps a
    /// freshly granted record alive for longer than its tokens can take to arrive: dropping it
    /// sooner would answer every token with "incarnation gone" and stall delivery for ever.
    pub receive_idle_timeout: Duration,
    /// How long a receiver may hold back the acknowledgement of a payload, hoping that a
    /// datagram of its own (a reply) carries it (default 0: acknowledge at once; at most
    /// `rto_min` / 2, so it never causes a retransmission). ACKs still go at once when a
    /// quarter of the window is owed or a duplicate arrives. A request/reply exchange then
    /// costs two datagrams instead of four.
    pub ack_delay: Duration,
    /// Initial value of the node clock (default 1). A node that restarts must start above
    /// the clock it reached before (see [`crate::node::Node::clock`]), e.g. from a wall clock.
    pub initial_clock: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            max_datagram: 1400,
            coalesce_delay: Duration::ZERO,
            window: 8192,
            base_slots: 64,
            max_queued: 4096,
            max_payload: 1300,
            max_inbox: 4096,
            max_peers: 1024,
            rto_min: Duration::from_millis(10),
            rto_max: Duration::from_secs(1),
            rto_initial: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(5),
            receive_idle_timeout: Duration::from_secs(600),
            ack_delay: Duration::ZERO,
            initial_clock: 1,
        }
    }
}

impl NodeConfig {
    /// The configuration with every value brought into its valid range.
    pub fn validated(&self) -> Self {
        let max_datagram = self.max_datagram.clamp(MIN_DATAGRAM, MAX_DATAGRAM_LEN);
        let rto_min = self.rto_min.max(Duration::from_micros(1));
        let rto_max = self.rto_max.max(rto_min);
        let idle_timeout = self.idle_timeout.max(Duration::from_millis(1));
        let window = self.window.clamp(1, 1 << 20);
        Self {
            max_datagram,
            coalesce_delay: self.coalesce_delay,
            window,
            base_slots: self.base_slots.min(window),
            max_queued: self.max_queued.max(1),
            max_payload: self.max_payload.min(max_datagram - TOKEN_OVERHEAD),
            max_inbox: self.max_inbox.max(1),
            max_peers: self.max_peers.max(1),
            rto_min,
            rto_max,
            rto_initial: self.rto_initial.clamp(rto_min, rto_max),
            idle_timeout,
            receive_idle_timeout: self.receive_idle_timeout.max(idle_timeout).max(rto_max * 4),
            ack_delay: self.ack_delay.min(rto_min / 2),
            initial_clock: self.initial_clock,
        }
    }
}

/// Why a node call failed. Nothing is dropped silently: a failed `submit` took nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// The destination has no known address (see [`crate::node::Node::set_peer_addr`]).
    UnknownPeer,
    /// The destination's queue holds `max_queued` payloads already; retry later.
    QueueFull,
    /// The payload is longer than the node's maximum payload.
    PayloadTooLarge {
        /// Length given.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// The peer table is full of peers that cannot be dropped.
    PeerTableFull,
    /// The output buffer is shorter than the next delivered payload, which stays queued.
    BufferTooSmall {
        /// Length of the payload.
        needed: usize,
    },
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::UnknownPeer => f.write_str("no address is known for the peer"),
            NodeError::QueueFull => f.write_str("the peer's send queue is full"),
            NodeError::PayloadTooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the maximum of {max}")
            }
            NodeError::PeerTableFull => f.write_str("the peer table is full"),
            NodeError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the payload has {needed} bytes")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for NodeError {}

/// A payload handed to the application by [`crate::node::Node::poll_delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The node that submitted it.
    pub from: NodeId,
    /// Its length; the bytes are at the start of the caller's buffer.
    pub len: usize,
}

/// Counters of a node (all only grow).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Datagrams given to `handle_datagram`.
    pub datagrams_received: u64,
    /// Bytes given to `handle_datagram`.
    pub bytes_received: u64,
    /// Datagrams returned by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Bytes returned by `poll_transmit`.
    pub bytes_sent: u64,
    /// Datagrams dropped because they do not parse (or claim to come from this node).
    pub malformed_dropped: u64,
    /// Datagrams dropped because they are addressed to another node id.
    pub wrong_destination_dropped: u64,
    /// Datagrams dropped because they are longer than any valid datagram.
    pub oversized_dropped: u64,
    /// Datagrams dropped because they come from a new peer and the peer table is full.
    pub peer_limit_dropped: u64,
    /// Times a peer's address changed because a datagram came from a new address.
    pub address_changes: u64,
    /// Records ignored because they belong to another incarnation or an unknown slot.
    pub stale_records: u64,
    /// `TOKEN` records sent, retransmissions included.
    pub tokens_sent: u64,
    /// `TOKEN` records sent again after a timeout.
    pub tokens_retransmitted: u64,
    /// Tokens acknowledged (payloads the sender could release).
    pub tokens_acked: u64,
    /// Payloads received from the network and put in the inbox.
    pub payloads_delivered: u64,
    /// Payloads a node sent to itself and put in the inbox.
    pub self_delivered: u64,
    /// Tokens received again for a slot already delivered.
    pub duplicates: u64,
    /// Tokens left unaccepted (and unacknowledged) because the inbox was full.
    pub inbox_full_deferrals: u64,
    /// `REQSLOTS` records sent.
    pub reqslots_sent: u64,
    /// Slots granted to senders.
    pub slots_granted: u64,
    /// Slots received from receivers.
    pub slots_received: u64,
    /// Requests for slots that did not fit in the receive window.
    pub window_full: u64,
    /// `ACK` records sent.
    pub acks_sent: u64,
    /// Status records (`SLOTS` with no slot) sent: probes and answers to stale tokens.
    pub status_sent: u64,
    /// Receiver incarnations a send record learned were gone.
    pub incarnations_lost: u64,
    /// Payloads moved back to a queue because their incarnation was gone (never delivered).
    pub payloads_rebound: u64,
    /// Tokens declared lost by acknowledgements (a later transmission arrived first) and
    /// queued again.
    pub tokens_lost: u64,
    /// Loss declarations found wrong (the token was only reordered): they widen the
    /// reordering tolerance.
    pub spurious_losses: u64,
    /// Probe timeouts: nothing acknowledged for a while, the oldest tokens sent again.
    pub probe_timeouts: u64,
    /// Idle send records dropped.
    pub send_records_collected: u64,
    /// Receive records dropped.
    pub receive_records_collected: u64,
    /// Sealed datagrams dropped because this node has no key (see [`Refusal`]).
    pub sealed_refused: u64,
    /// Plaintext datagrams dropped because this node has a key and accepts only sealed ones.
    pub plaintext_refused: u64,
    /// Sealed datagrams dropped because their seal fields are cut short or name an unknown
    /// algorithm.
    pub sealed_malformed: u64,
    /// Sealed datagrams dropped because they name a key this node does not have (a peer with
    /// another key, or a rotation this node has not made or has finished).
    pub sealed_unknown_key: u64,
    /// Sealed datagrams dropped because their tag did not verify: forged, altered or
    /// truncated in transit, or sealed under another key with the same id.
    pub sealed_bad_tag: u64,
    /// Sealed datagrams dropped because their counter was seen already (replays, duplicates).
    pub replayed: u64,
    /// Sealed datagrams dropped because their counter is too far behind the newest one seen
    /// (more than [`crate::seal::WINDOW`]): possible replays.
    pub replay_too_old: u64,
    /// Sealed datagrams dropped because they come from an epoch of the peer older than the
    /// newest one authenticated (a previous start of the peer; replays).
    pub stale_epoch: u64,
    /// Sealed datagrams dropped before they were opened because they name another epoch of
    /// this node as their destination's: sealed for a previous start of this node (replays of
    /// captures from before it restarted, or a peer's traffic sent before it learned of the
    /// restart). See [`crate::seal`].
    pub stale_dst_epoch: u64,
    /// Sealed notices sent in answer to authentic datagrams counted in `stale_dst_epoch`,
    /// telling their sender this node's current epoch (at most 64 at once and 100 a second).
    pub epoch_notices_sent: u64,
    /// Sealed datagrams opened and accepted.
    pub sealed_opened: u64,
    /// `PATH_CHALLENGE`s sent to a new address a peer's datagrams came from, retransmissions
    /// included.
    pub path_challenges_sent: u64,
    /// `PATH_CHALLENGE`s not sent because of their rate limit: at most 8 new ones at once
    /// and 4 a second per peer, and at most 64 at once and 100 a second for the whole node,
    /// retransmissions included (a retransmission not sent still counts as an attempt).
    /// Datagrams from unproven addresses of a peer, forged or real, beyond that start no
    /// challenge: a forger rotating addresses cannot make the node a reflector.
    pub path_challenges_limited: u64,
    /// `PATH_RESPONSE`s sent (echoes of a peer's challenges).
    pub path_responses_sent: u64,
    /// Plaintext datagrams whose records were dropped because they came from an address of
    /// the peer not (yet) proven by a path challenge.
    pub path_unverified: u64,
    /// Address changes proven by a path challenge and its response.
    pub path_validated: u64,
    /// Challenges sent to a stale epoch of a silent peer (its clock may have gone back),
    /// retransmissions included (see `node::probe`).
    pub epoch_probes_sent: u64,
    /// Stale epochs of peers proven live by a probe's response, and adopted.
    pub epoch_probes_proven: u64,
    /// `SEAL_MISMATCH` notices received (a peer refusing our datagrams said why).
    pub seal_mismatch_received: u64,
    /// `SEAL_MISMATCH` notices sent (at most ten a second).
    pub seal_mismatch_sent: u64,
}

/// Why a node refused a peer's datagrams for a configuration mismatch: the last such
/// refusal ([`crate::node::Node::last_refusal`]) tells the application why a link does not
/// come up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What was wrong.
    pub reason: RefusalReason,
    /// The node id the datagram claimed.
    pub peer: NodeId,
    /// Where it came from.
    pub addr: core::net::SocketAddr,
}

/// What a [`Refusal`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The peer sends sealed datagrams but this node has no key.
    SealedWithoutKey,
    /// The peer sends plaintext datagrams but this node has a key.
    PlaintextWithKey,
    /// The peer seals with a key this node does not have.
    UnknownKey,
    /// The peer says it has no key and refuses this node's sealed datagrams.
    PeerHasNoKey,
    /// The peer says it has a key and refuses this node's plaintext datagrams.
    PeerRequiresKey,
    /// The peer says it has a key, but not the one this node seals with.
    PeerHasOtherKey,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.reason {
            RefusalReason::SealedWithoutKey => {
                "sends sealed datagrams but this node has no key (give it the same key file)"
            }
            RefusalReason::PlaintextWithKey => {
                "sends plaintext datagrams but this node has a key and refuses them \
                 (give the peer the same key file)"
            }
            RefusalReason::UnknownKey => "seals with a key this node does not have",
            RefusalReason::PeerHasNoKey => {
                "has no key and refuses this node's sealed datagrams (give it the same key file)"
            }
            RefusalReason::PeerRequiresKey => {
                "has a key and refuses this node's plaintext datagrams (give this node the \
                 same key file)"
            }
            RefusalReason::PeerHasOtherKey => {
                "has another key and refuses this node's sealed datagrams (give both nodes the \
                 same key file)"
            }
        };
        write!(f, "peer {} at {} {what}", self.peer, self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receive_record_outlives_the_longest_retransmission_timeout() {
        let config = NodeConfig {
            idle_timeout: Duration::from_millis(1),
            receive_idle_timeout: Duration::from_millis(1),
            ..NodeConfig::default()
        }
        .validated();
        assert!(config.receive_idle_timeout >= config.rto_max * 4);
    }
}
