//! Socket options (thesis §4.3.4 "Options and Configuration").

use std::time::Duration;

use a3m_core::flow::BatchPercent;
use a3m_core::link::Backoff;
use a3m_core::socket::SocketOptions as CoreOptions;

use crate::error::{Error, Result};

/// The options of a socket, given to [`crate::Node::socket_with`] or
/// [`crate::Socket::set_options`].
///
/// Every field has a chainable setter of the same name:
///
/// ```
/// use std::time::Duration;
/// let options = a3m::SocketOptions::new()
///     .capacity(1000)
///     .credit_batch_percent(10)
///     .linger(Some(Duration::from_secs(5)))
///     .notify_if_none(true);
/// assert_eq!(options.capacity, 1000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketOptions {
    /// Messages each link may have waiting here for the application: the credits the peer
    /// gets. Default 100. Changing it on a socket also changes its established links. 0
    /// pauses every sender without unlinking (see [`crate::Socket::set_capacity`]). Only
    /// for sockets that receive.
    ///
    /// A message larger than a datagram counts once per datagram-sized fragment on its way,
    /// and as one message once whole; whatever the capacity (even 1), a link takes messages
    /// up to [`crate::Socket::max_message`]. A link then holds at most one such message
    /// being received or waiting to be taken, plus the capacity's worth of fragments.
    ///
    /// On a pull socket with a capacity of 64 or more, a receive also takes up to an eighth
    /// of it (at most 32) more messages off the links, so that the receives after it need
    /// not take the node lock: the socket then holds at most the capacity per link plus that
    /// many messages (those are not counted in [`crate::LinkInfo::queued`]). `close` waits
    /// for them to be received too, and reports those left at its timeout as dropped.
    pub capacity: u32,
    /// Credits go back to the sender in batches of this percentage of the capacity, 1 to
    /// 100. Default 25. Only for sockets that receive.
    pub credit_batch_percent: u8,
    /// Retries of link requests refused for now (the peer socket does not exist yet, or it
    /// is busy): exponential back-off. Default 50 ms doubling to 5 s, for ever.
    pub link_retry: Backoff,
    /// How long a socket that is dropped keeps unlinking (so that what was sent still gets
    /// delivered) before dropping its links. `None` (the default): until its links have
    /// closed, as long as the node runs. [`crate::Socket::close`] takes its own timeout.
    pub linger: Option<Duration>,
    /// Notify-if-none: every blocking call (send, receive, [`crate::Socket::wait_for_link`],
    /// [`crate::Socket::poll`]) fails with [`Error::NoLinks`] as soon as the socket has no
    /// link at all (a link still being made counts), instead of waiting for one; pollers
    /// see [`crate::Events::ERR`] then. Receivers use it to see the end of a stream.
    /// Default `false`.
    pub notify_if_none: bool,
    /// Most links at once (in any state); further requests are refused for now. Default 1024.
    pub max_links: usize,
    /// Whether peers may link to this socket. Default `true`.
    pub accept_incoming: bool,
}

impl SocketOptions {
    /// The defaults listed on each field.
    pub fn new() -> Self {
        Self::from_core(&CoreOptions::DEFAULT)
    }

    /// Sets [`SocketOptions::capacity`].
    pub fn capacity(mut self, messages: u32) -> Self {
        self.capacity = messages;
        self
    }

    /// Sets [`SocketOptions::credit_batch_percent`].
    pub fn credit_batch_percent(mut self, percent: u8) -> Self {
        self.credit_batch_percent = percent;
        self
    }

    /// Sets [`SocketOptions::link_retry`]: the first retry after `min`, doubling up to `max`,
    /// giving up after `limit` failed attempts (`None`: never).
    pub fn link_retry(mut self, min: Duration, max: Duration, limit: Option<u32>) -> Self {
        self.link_retry = Backoff { min, max, limit };
        self
    }

    /// Sets [`SocketOptions::linger`].
    pub fn linger(mut self, linger: Option<Duration>) -> Self {
        self.linger = linger;
        self
    }

    /// Sets [`SocketOptions::notify_if_none`].
    pub fn notify_if_none(mut self, on: bool) -> Self {
        self.notify_if_none = on;
        self
    }

    /// Sets [`SocketOptions::max_links`].
    pub fn max_links(mut self, links: usize) -> Self {
        self.max_links = links;
        self
    }

    /// Sets [`SocketOptions::accept_incoming`].
    pub fn accept_incoming(mut self, on: bool) -> Self {
        self.accept_incoming = on;
        self
    }

    pub(crate) fn from_core(core: &CoreOptions) -> Self {
        Self {
            capacity: core.capacity,
            credit_batch_percent: core.batch.get(),
            link_retry: core.retry,
            linger: core.linger,
            notify_if_none: core.notify_if_none,
            max_links: core.max_links,
            accept_incoming: core.accept_incoming,
        }
    }

    /// The core's options, or why these are invalid.
    pub(crate) fn to_core(self) -> Result<CoreOptions> {
        let batch = BatchPercent::new(self.credit_batch_percent).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "credit batch percentage {} is outside 1..=100",
                self.credit_batch_percent
            ))
        })?;
        if self.max_links == 0 {
            return Err(Error::InvalidArgument("max_links must be at least 1".into()));
        }
        if self.link_retry.min.is_zero() {
            return Err(Error::InvalidArgument(
                "the first link retry delay must be above 0".into(),
            ));
        }
        Ok(CoreOptions {
            capacity: self.capacity,
            batch,
            retry: self.link_retry,
            linger: self.linger,
            notify_if_none: self.notify_if_none,
            max_links: self.max_links,
            accept_incoming: self.accept_incoming,
        })
    }
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_bad_values_are_refused() {
        let options = SocketOptions::new();
        assert_eq!(options.to_core().unwrap(), CoreOptions::DEFAULT);
        assert!(options.credit_batch_percent(0).to_core().is_err());
        assert!(options.credit_batch_percent(101).to_core().is_err());
        assert_eq!(options.capacity(0).to_core().unwrap().capacity, 0);
        assert!(options.max_links(0).to_core().is_err());
        let retry = options.link_retry(Duration::ZERO, Duration::from_secs(1), None);
        assert!(retry.to_core().is_err());
        assert_eq!(options.capacity(7).to_core().unwrap().capacity, 7);
    }
}
