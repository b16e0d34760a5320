//! What the simulator needs from a node: exactly the sans-I/O calls of the core `Node`
//! (DESIGN.md), plus submit/poll_delivery and a little introspection.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use a3m_core::id::NodeId;
use a3m_core::time::Instant;

/// Why a node refused a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    /// The node has no room now (e.g. its queue to that peer is full): retry later. This is
    /// backpressure, not loss.
    Backpressure,
    /// The node will never accept this payload (unknown peer, too large, ...).
    Rejected(String),
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Backpressure => f.write_str("backpressure"),
            SubmitError::Rejected(why) => write!(f, "rejected: {why}"),
        }
    }
}

/// A node the simulator can drive. Everything happens through these calls and in virtual
/// time: the node never reads a clock nor touches a socket.
pub trait SimNode {
    /// Largest datagram the node writes (the simulator's transmit buffers have this length).
    fn max_datagram(&self) -> usize;
    /// Largest payload the node accepts (the simulator's delivery buffer has this length).
    fn max_payload(&self) -> usize;
    /// Tells the node where a peer lives.
    fn set_peer_addr(&mut self, peer: &NodeId, addr: SocketAddr) -> Result<(), String>;
    /// Hands a payload to the node for exactly-once delivery to `to`.
    fn submit(&mut self, now: Instant, to: &NodeId, payload: &[u8]) -> Result<(), SubmitError>;
    /// A datagram from `from` arrived.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    /// The deadline returned by [`SimNode::poll_timeout`] passed.
    fn handle_timeout(&mut self, now: Instant);
    /// Writes the next datagram into `buf` and says where it goes and how long it is.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)>;
    /// When [`SimNode::handle_timeout`] must next be called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next delivered payload, copied into `out`: who sent it and its length.
    fn poll_delivery(&mut self, out: &mut [u8]) -> Result<Option<(NodeId, usize)>, String>;
    /// Payloads accepted by submit and not yet acknowledged by their receiver.
    fn unacknowledged(&self) -> usize;
    /// Protocol records the node still keeps for its peers (for the core node: send and
    /// receive records). A run with [`super::SimConfig::quiesce`] finishes only once every
    /// node is down to zero: every close was acknowledged. The default is 0.
    fn open_records(&self) -> usize {
        0
    }
    /// The timers and limits the completion bound may assume of this node (see
    /// [`super::liveness`]).
    fn liveness_hints(&self) -> LivenessHints {
        LivenessHints::default()
    }
    /// A one-line summary of what the node is waiting for (records, unacknowledged payloads per
    /// peer, counters), printed for runs that fail. The default is empty.
    fn describe_state(&self) -> String {
        String::new()
    }
    /// The node's own address just changed and its runtime noticed (only called for
    /// [`super::AddressChange`]s with `announce` set; a NAT rebinding goes unnoticed). The
    /// default does nothing.
    fn address_changed(&mut self, now: Instant) {
        let _ = now;
    }
    /// A one-line description of a datagram this kind of node sends, for the simulator's
    /// event log. The default gives its length only.
    fn describe_datagram(&self, bytes: &[u8]) -> String {
        format!("{} bytes", bytes.len())
    }
}

/// What a node tells the simulator about its timers and limits, so that the completion bound
/// (module [`super::liveness`]) follows the node's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessHints {
    /// Longest the node waits before it retransmits something unacknowledged (its RTO
    /// ceiling): one round of recovery takes at most this plus a round trip.
    pub retransmit_max: Duration,
    /// Most messages in flight to one peer (the sender's window).
    pub window: u64,
    /// Most delivered messages the node holds for the application.
    pub inbox: u64,
    /// Longest the node stays silent toward a peer it still holds a record for while that
    /// peer is silent too (for the core node: the receiver's probe interval ceiling); `None`
    /// if it never speaks first. Bounds how long a lost close takes to be repaired.
    pub silent_max: Option<Duration>,
    /// Idle time after which the node closes a record whose work is done (for the core node:
    /// `idle_timeout`, after which a send record reports its last slot and is dropped).
    pub close_after: Duration,
}

impl Default for LivenessHints {
    /// A 1 s retransmission ceiling, no window or inbox limit, never speaks first, closes at once.
    fn default() -> Self {
        LivenessHints {
            retransmit_max: Duration::from_secs(1),
            window: u64::MAX,
            inbox: u64::MAX,
            silent_max: None,
            close_after: Duration::ZERO,
        }
    }
}
