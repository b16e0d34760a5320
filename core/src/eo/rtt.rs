//! Round-trip time estimate and retransmission timeout (RFC 6298 style).

use core::time::Duration;

/// Smoothed RTT and its variation, giving the retransmission timeout of a peer.
///
/// Samples come only from records sent exactly once (Karn's rule: an answer to a retransmitted
/// record could belong to any of its copies). The timeout is clamped to `[min, max]` and
/// doubled for every retransmission of the same record, up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Rtt {
    srtt: Option<u64>,
    /// The latest sample.
    latest: u64,
    /// The smallest sample: the path's delay without queueing (as far as we saw).
    min_rtt: Option<u64>,
    rttvar: u64,
    rto: u64,
    min: u64,
    max: u64,
}

/// Timer granularity of loss detection: a token is never declared lost by time less than
/// this after it was sent (RFC 9002's `kGranularity`).
pub(crate) const LOSS_GRANULARITY_MICROS: u64 = 1_000;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Rtt {
    /// An estimator with no sample yet, whose timeout is `initial` clamped to `[min, max]`.
    pub(crate) fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        let (min, max) = (micros(min).max(1), micros(max).max(1));
        let max = max.max(min);
        Self {
            srtt: None,
            latest: 0,
            min_rtt: None,
            rttvar: 0,
            rto: micros(initial).clamp(min, max),
            min,
            max,
        }
    }

    /// Adds one round-trip sample.
    pub(crate) fn sample(&mut self, rtt: Duration) {
        self.sample_micros(micros(rtt));
    }

    /// Adds one round-trip sample of `r` microseconds.
    pub(crate) fn sample_micros(&mut self, r: u64) {
        self.latest = r;
        self.min_rtt = Some(self.min_rtt.map_or(r, |m| m.min(r)));
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R|;  SRTT <- 7/8 SRTT + 1/8 R.
                self.rttvar = (self.rttvar / 4) * 3 + srtt.abs_diff(r) / 4;
                self.srtt = Some(srtt - srtt / 8 + r / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.rto = srtt.saturating_add(self.rttvar.saturating_mul(4)).clamp(self.min, self.max);
    }

    /// The smoothed round-trip time, if there was a sample.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration::from_micros)
    }

    /// True if the path shows no queue building up: the smoothed RTT is within a quarter
    /// of the smallest one (at least 2 ms). A loss then is more likely noise on the path
    /// (radio, a lossy hop) than a full queue (TCP Veno's distinction).
    pub(crate) fn queue_is_short(&self) -> bool {
        self.queueing().is_some_and(|building| !building)
    }

    /// True if the samples show a queue building up (the opposite of
    /// [`Rtt::queue_is_short`]; false while there is no sample).
    pub(crate) fn queue_is_building(&self) -> bool {
        self.queueing().unwrap_or(false)
    }

    /// Whether the smoothed RTT is more than a quarter (at least 2 ms) above the smallest;
    /// `None` before the first sample.
    fn queueing(&self) -> Option<bool> {
        let (srtt, min) = (self.srtt?, self.min_rtt?);
        Some(srtt.saturating_sub(min) > (min / 4).max(2 * LOSS_GRANULARITY_MICROS))
    }

    /// The probe timeout before probe number `probes + 1` (RFC 9002 §6.2.1): the smoothed
    /// RTT, plus four variations (at least [`LOSS_GRANULARITY_MICROS`]), plus the time the
    /// peer may hold an ACK back, doubled for every probe already sent, within the minimum and
    /// the maximum timeout. (Without the minimum, a stream on a sub-millisecond path wakes
    /// its timer thread every millisecond or so for nothing: 10-20 % of loopback throughput.)
    /// Before the first sample, [`Rtt::timeout`].
    pub(crate) fn probe_timeout(&self, probes: u32, ack_delay: Duration) -> Duration {
        let Some(srtt) = self.srtt else { return self.timeout(probes.saturating_add(1)) };
        let base = srtt
            .saturating_add(self.rttvar.saturating_mul(4).max(LOSS_GRANULARITY_MICROS))
            .saturating_add(micros(ack_delay));
        let doublings = probes.min(32);
        Duration::from_micros(base.saturating_mul(1u64 << doublings).clamp(self.min, self.max))
    }

    /// How long after a token was sent, once a later transmission was acknowledged, it is
    /// declared lost (RFC 9002 §6.1.2): `eighths / 8` of the larger of the smoothed and the
    /// latest RTT, at least [`LOSS_GRANULARITY_MICROS`]. `None` before the first sample.
    pub(crate) fn loss_delay_micros(&self, eighths: u64) -> Option<u64> {
        let srtt = self.srtt?;
        let base = srtt.max(self.latest);
        Some((base.saturating_mul(eighths) / 8).max(LOSS_GRANULARITY_MICROS))
    }

    /// Timeout before the copy number `sends` (1 = the first transmission) is retransmitted:
    /// the base timeout doubled for every earlier retransmission, at most the maximum.
    pub(crate) fn timeout(&self, sends: u32) -> Duration {
        Duration::from_micros(self.timeout_micros(sends))
    }

    /// [`Rtt::timeout`] in microseconds.
    #[inline]
    pub(crate) fn timeout_micros(&self, sends: u32) -> u64 {
        let doublings = sends.saturating_sub(1).min(32);
        self.rto.saturating_mul(1u64 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_sample_sets_srtt_and_variance() {
        let mut r = Rtt::new(ms(100), ms(1), ms(1000));
        assert_eq!(r.timeout(1), ms(100));
        r.sample(ms(20));
        assert_eq!(r.srtt(), Some(ms(20)));
        // 20 + 4 * 10
        assert_eq!(r.timeout(1), ms(60));
    }

    #[test]
    fn timeout_is_clamped_and_backs_off() {
        let mut r = Rtt::new(ms(100), ms(50), ms(400));
        for _ in 0..50 {
            r.sample(ms(1));
        }
        assert_eq!(r.timeout(1), ms(50));
        assert_eq!(r.timeout(2), ms(100));
        assert_eq!(r.timeout(3), ms(200));
        assert_eq!(r.timeout(4), ms(400));
        assert_eq!(r.timeout(40), ms(400));
        r.sample(ms(10_000));
        assert_eq!(r.timeout(1), ms(400));
    }

    #[test]
    fn converges_towards_steady_samples() {
        let mut r = Rtt::new(ms(100), ms(1), ms(10_000));
        for _ in 0..200 {
            r.sample(ms(30));
        }
        let srtt = r.srtt().unwrap();
        assert!(srtt >= ms(29) && srtt <= ms(31), "{srtt:?}");
    }
}
