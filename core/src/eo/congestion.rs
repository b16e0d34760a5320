//! Congestion control of a send record: how many bytes of tokens may be in flight.
//!
//! NewReno's shape (RFC 9002 §7, as quinn-proto's `NewReno`), with CUBIC's gentler decrease
//! factor (0.7, RFC 9438) because a3m mostly meets random loss (Wi-Fi, a lossy relay) rather
//! than a queue overflowing:
//!
//! * slow start: the window grows by the bytes acknowledged until it reaches `ssthresh`;
//! * congestion avoidance: it grows by one datagram per window acknowledged;
//! * one decrease per *recovery period*: losses of tokens sent before the period began (the
//!   same burst) do not shrink it again;
//! * a loss while the RTT shows no queue (the smoothed RTT near the smallest seen) is taken
//!   for noise on the path, as TCP Veno does for wireless links: the window is left alone. A
//!   loss-based window halved (or whose slow start ends) at every random loss keeps only a
//!   few datagrams in flight at 5 % loss; a queue that fills shows in the RTT first, and its
//!   losses do shrink the window;
//! * slow start ends when the RTT shows a queue building (the idea of HyStart++, RFC 9406),
//!   not only at the first loss;
//! * persistent congestion (several probe timeouts in a row) drops it to the minimum;
//! * a recovery found to be spurious (the "lost" token was acknowledged after all: it was
//!   only reordered) is undone, so reordering costs no goodput.
//!
//! The window only grows while the sender uses it: an application-limited sender does not
//! build up a window it never tested.

/// Decrease factor on a loss event, in tenths.
const DECREASE_TENTHS: usize = 7;

/// The congestion window of one send record.
#[derive(Debug, Clone)]
pub(crate) struct Congestion {
    window: usize,
    ssthresh: usize,
    min: usize,
    datagram: usize,
    /// Bytes acknowledged towards the next increase in congestion avoidance.
    acked: usize,
    /// Transmissions numbered below this belong to the current recovery period.
    recovery_until: u64,
    /// The window before the current recovery period began (to undo a spurious one).
    before_recovery: Option<(usize, usize)>,
}

impl Congestion {
    /// A window of ten datagrams of `datagram` bytes (at least 2 × 1200 bytes).
    pub(crate) fn new(datagram: usize) -> Self {
        let datagram = datagram.max(1200);
        Self {
            window: 10 * datagram,
            ssthresh: usize::MAX,
            min: 2 * datagram,
            datagram,
            acked: 0,
            recovery_until: 0,
            before_recovery: None,
        }
    }

    /// Bytes that may be in flight.
    #[inline]
    pub(crate) fn window(&self) -> usize {
        self.window
    }

    /// `bytes` of tokens sent in transmission `seq` were acknowledged, with `in_flight` bytes
    /// (before this ACK) outstanding; `queue_building` tells whether the RTT shows a queue.
    pub(crate) fn on_ack(
        &mut self,
        seq: u64,
        bytes: usize,
        in_flight: usize,
        queue_building: bool,
    ) {
        if seq < self.recovery_until {
            // Acknowledgements of the burst that lost tokens do not grow the window.
            return;
        }
        self.before_recovery = None;
        if queue_building && self.window < self.ssthresh {
            // A queue is building: the path is full, leave slow start.
            self.ssthresh = self.window;
        }
        // Application-limited: the window was not used, so it was not tested.
        if in_flight.saturating_add(bytes) < self.window / 2 {
            return;
        }
        if self.window < self.ssthresh {
            self.window = self.window.saturating_add(bytes);
        } else {
            self.acked += bytes;
            if self.acked >= self.window {
                self.acked -= self.window;
                self.window = self.window.saturating_add(self.datagram);
            }
        }
    }

    /// A token sent in transmission `seq` was declared lost; `next_seq` numbers the next
    /// transmission; `queue_is_short` tells whether the RTT shows no queue (see the module
    /// docs).
    pub(crate) fn on_loss(&mut self, seq: u64, next_seq: u64, queue_is_short: bool) {
        if seq < self.recovery_until {
            return;
        }
        if queue_is_short {
            return;
        }
        self.before_recovery = Some((self.window, self.ssthresh));
        self.recovery_until = next_seq;
        self.window = (self.window / 10 * DECREASE_TENTHS).max(self.min);
        self.ssthresh = self.window;
        self.acked = 0;
    }

    /// The loss that began the current recovery period was spurious: restore the window.
    pub(crate) fn undo(&mut self) {
        if let Some((window, ssthresh)) = self.before_recovery.take() {
            self.window = self.window.max(window);
            self.ssthresh = ssthresh;
            self.recovery_until = 0;
        }
    }

    /// Several probe timeouts in a row: the path may have changed entirely.
    pub(crate) fn on_persistent_congestion(&mut self, next_seq: u64) {
        self.before_recovery = None;
        self.ssthresh = (self.window / 2).max(self.min);
        self.window = self.min;
        self.recovery_until = next_seq;
        self.acked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_one_decrease_per_recovery_period() {
        let mut cc = Congestion::new(1200);
        assert_eq!(cc.window(), 12_000);
        cc.on_ack(1, 6000, 12_000, false);
        assert_eq!(cc.window(), 18_000);
        cc.on_loss(2, 10, false);
        assert_eq!(cc.window(), 12_600);
        // Losses of the same burst (sent before transmission 10) change nothing more.
        cc.on_loss(5, 11, false);
        cc.on_ack(9, 1200, 12_600, false);
        assert_eq!(cc.window(), 12_600);
        // Congestion avoidance: one datagram per window acknowledged.
        for _ in 0..10 {
            cc.on_ack(10, 1260, 12_600, false);
        }
        assert_eq!(cc.window(), 13_800);
    }

    #[test]
    fn an_application_limited_sender_does_not_grow_the_window() {
        let mut cc = Congestion::new(1200);
        cc.on_ack(1, 100, 0, false);
        assert_eq!(cc.window(), 12_000);
    }

    #[test]
    fn spurious_losses_are_undone_and_persistent_congestion_resets() {
        let mut cc = Congestion::new(1200);
        cc.on_loss(1, 5, false);
        assert_eq!(cc.window(), 8400);
        cc.undo();
        assert_eq!(cc.window(), 12_000);
        cc.on_persistent_congestion(9);
        assert_eq!(cc.window(), 2400);
        cc.on_loss(3, 12, false);
        assert_eq!(cc.window(), 2400, "never below two datagrams");
    }

    #[test]
    fn a_loss_without_a_queue_changes_nothing_and_a_queue_ends_slow_start() {
        let mut cc = Congestion::new(1200);
        cc.on_loss(1, 5, true);
        assert_eq!(cc.window(), 12_000);
        cc.on_ack(6, 12_000, 12_000, false);
        assert_eq!(cc.window(), 24_000, "still in slow start");
        // The RTT shows a queue: linear growth from now on.
        cc.on_ack(7, 12_000, 24_000, true);
        cc.on_ack(7, 12_000, 24_000, true);
        assert_eq!(cc.window(), 25_200);
    }
}
