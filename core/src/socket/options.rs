//! Socket options and the socket layer's own configuration.

use core::time::Duration;

use crate::flow::BatchPercent;
use crate::link::Backoff;

/// Per-socket options (thesis §4.3.4 "Options and Configuration"). Link options apply to
/// links created after they are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketOptions {
    /// Messages each link may have queued for the application: the credits the peer gets.
    /// Default 100. A socket whose protocol does not receive announces 0.
    pub capacity: u32,
    /// Credits go back to the sender in batches of this share of the capacity. Default 25%.
    pub batch: BatchPercent,
    /// Retries of refused-for-now link requests. Default: 50 ms doubling to 5 s, no limit.
    pub retry: Backoff,
    /// How long `close` waits for links to unlink before dropping them (and any message
    /// not yet taken). `None` (the default) waits for ever, as in the thesis.
    pub linger: Option<Duration>,
    /// Default for blocking operations: give up with "no links" when the socket has no
    /// link at all (the thesis's notify-if-none / throwIfNone). Default `false`. The core
    /// reports [`crate::socket::SocketError::NoLinks`] either way; blocking layers use this.
    pub notify_if_none: bool,
    /// Most links (in any state) at once. Further requests are refused for now. Default
    /// 1024.
    pub max_links: usize,
    /// Whether peers may ask for links. Default `true`.
    pub accept_incoming: bool,
}

impl SocketOptions {
    /// The defaults listed on each field.
    pub const DEFAULT: SocketOptions = SocketOptions {
        capacity: 100,
        batch: BatchPercent::DEFAULT,
        retry: Backoff::DEFAULT,
        linger: None,
        notify_if_none: false,
        max_links: 1024,
        accept_incoming: true,
    };
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Limits of a [`crate::socket::SocketLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LayerConfig {
    /// Largest message `send` accepts, in bytes, and the largest a link reassembles (the
    /// fragments of a larger one are dropped and counted,
    /// [`crate::socket::LayerStats::oversized`]: configure both ends alike). Default 16 MiB.
    ///
    /// A receiving link holds at most one message of this size being reassembled or
    /// waiting to be taken, plus its capacity's worth of DATA messages of at most
    /// [`LayerConfig::max_fragment`] bytes each (see [`crate::link::Link::on_data`]).
    pub max_payload: usize,
    /// Largest payload of one DATA message, in bytes: a message up to this size is one
    /// DATA (one credit), a longer one is split into fragments of this size. It must leave
    /// room for the message header within the transport's payload limit (the header adds
    /// at most 82 bytes: [`crate::wire::message::DATA_PREFIX_MAX`] plus a sequence number).
    /// Also the longest metadata a socket protocol may have. Default 1200.
    pub max_fragment: usize,
    /// Most sockets at once. Default 1024.
    pub max_sockets: usize,
    /// Most undrained [`crate::socket::SocketEvent`]s; later ones are dropped and counted.
    /// Default 4096.
    pub max_events: usize,
    /// Whether to report every change of a link's send credits as
    /// [`crate::socket::SocketEvent::Credits`] (to mirror them in a credit coordinator).
    /// Default `false`.
    pub credit_events: bool,
    /// Message buffers kept for reuse. Default 1024.
    pub pooled_buffers: usize,
}

impl LayerConfig {
    /// The defaults listed on each field.
    pub const DEFAULT: LayerConfig = LayerConfig {
        max_payload: 16 << 20,
        max_fragment: 1200,
        max_sockets: 1024,
        max_events: 4096,
        credit_events: false,
        pooled_buffers: 1024,
    };
}

impl Default for LayerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}
