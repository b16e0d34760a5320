//! Epoch probes: letting a peer back in whose epoch went back.
//!
//! A node's sealing epoch must grow from one start to the next (see
//! [`crate::seal::SealConfig::epoch`]). The std adapters take the wall clock, which can go
//! back: a board without a battery-backed clock boots in 1970 until NTP answers, an operator
//! corrects the time. The peers of such a node hold its new epoch for stale, the mark of a
//! capture replayed from an earlier start, and would refuse it until its clock caught up.
//!
//! Neither the epoch nor the seal tells a live start from a capture; a fresh challenge does.
//! When a peer that has been silent at its known epoch for [`PROBE_SILENCE`] sends an
//! authentic datagram of a stale epoch, the node sends it a `PATH_CHALLENGE` sealed for that
//! epoch (as its destination epoch), so that only a start of the peer at that epoch opens
//! it. A `PATH_RESPONSE` echoing the challenge's bytes, sealed at that epoch, proves the
//! epoch live: the node adopts it, with a replay window that starts above the response
//! (everything the peer sealed before it is refused), and keeps the highest epoch it ever
//! authenticated from the peer as a ceiling, so that captures from the dead epochs below
//! it stay stale.
//!
//! A replayer gets little from this. While the peer is heard from at its epoch, stale
//! datagrams start nothing (and are not opened); otherwise a new probe takes a token of a
//! node-wide bucket, one probe per (peer, epoch) runs at a time, a probe opens only
//! datagrams newer than the newest it opened, its challenges go where the newest datagram
//! it opened came from (a replay from elsewhere that started it cannot keep them: the
//! start's own next datagram is newer than any capture), and it ends after
//! [`PROBE_ATTEMPTS`] of them.

use core::net::SocketAddr;
use core::time::Duration;

use crate::id::NodeId;
use crate::time::Instant;
use crate::wire::PATH_DATA_LEN;

/// How long a peer must have been silent at its known epoch before a datagram of a stale
/// epoch may start a probe. Shorter than a restart takes in practice; long enough that the
/// late datagrams of a peer's previous start, arriving after its next start's first ones,
/// start none.
pub(crate) const PROBE_SILENCE: Duration = Duration::from_millis(250);

/// Probes running at once, at most (a new one replaces the one started longest ago).
pub(crate) const MAX_PROBES: usize = 8;

/// Challenges a probe sends, at most: at 0, 100, 300, 700 and 1500 ms.
pub(crate) const PROBE_ATTEMPTS: u32 = 5;

/// Time to the first retransmission of a probe's challenge, doubling after each.
const PROBE_RETRY: Duration = Duration::from_millis(100);

/// A challenge to a peer's claimed epoch, waiting for its response.
#[derive(Debug, Clone)]
pub(crate) struct EpochProbe {
    /// The peer.
    pub(crate) peer: NodeId,
    /// The epoch it claims, below the ceiling of what the node authenticated from it.
    pub(crate) epoch: u64,
    /// Where its challenges go: where the newest datagram opened for it came from.
    pub(crate) addr: SocketAddr,
    /// The bytes the response must echo.
    pub(crate) data: [u8; PATH_DATA_LEN],
    /// The newest counter of that epoch opened for this probe: older ones are not opened.
    pub(crate) newest: u64,
    /// Challenges sent so far.
    attempts: u32,
    /// When the next challenge is due.
    next_at: Instant,
    /// When the probe started (the oldest gives way to a new one).
    started: Instant,
}

impl EpochProbe {
    /// Sends the probe's challenges to `addr` from now on, the next one at once (with its
    /// attempts counted afresh).
    pub(crate) fn redirect(&mut self, now: Instant, addr: SocketAddr) {
        self.addr = addr;
        self.attempts = 0;
        self.next_at = now;
    }
}

/// What a probe's challenge needs to go out: (peer, address, epoch, bytes).
pub(crate) type ProbeChallenge = (NodeId, SocketAddr, u64, [u8; PATH_DATA_LEN]);

/// The probes running, in a fixed table.
#[derive(Debug, Default)]
pub(crate) struct EpochProbes {
    probes: heapless::Vec<EpochProbe, MAX_PROBES>,
}

impl EpochProbes {
    /// No probe.
    pub(crate) fn new() -> Self {
        Self { probes: heapless::Vec::new() }
    }

    /// The probe of `peer`'s `epoch`, if one runs.
    pub(crate) fn find_mut(&mut self, peer: &NodeId, epoch: u64) -> Option<&mut EpochProbe> {
        self.probes.iter_mut().find(|p| p.epoch == epoch && &p.peer == peer)
    }

    /// Ends the probe of `peer`'s `epoch`.
    pub(crate) fn remove(&mut self, peer: &NodeId, epoch: u64) {
        self.probes.retain(|p| !(p.epoch == epoch && &p.peer == peer));
    }

    /// Starts a probe of `peer`'s `epoch`, whose authentic datagram of counter `counter`
    /// came from `addr`; its first challenge is due at once ([`EpochProbes::due`]).
    pub(crate) fn start(
        &mut self,
        now: Instant,
        peer: NodeId,
        epoch: u64,
        addr: SocketAddr,
        data: [u8; PATH_DATA_LEN],
        counter: u64,
    ) {
        let probe = EpochProbe {
            peer,
            epoch,
            addr,
            data,
            newest: counter,
            attempts: 0,
            next_at: now,
            started: now,
        };
        if self.probes.is_full()
            && let Some(oldest) =
                self.probes.iter().enumerate().min_by_key(|(_, p)| p.started).map(|(i, _)| i)
        {
            self.probes.swap_remove(oldest);
        }
        let _ = self.probes.push(probe);
    }

    /// The challenges due at `now` (calls `send` with each); probes that sent their last
    /// and waited for it in vain end.
    pub(crate) fn due(&mut self, now: Instant, mut send: impl FnMut(ProbeChallenge)) {
        self.probes.retain_mut(|p| {
            if now < p.next_at {
                return true;
            }
            if p.attempts == PROBE_ATTEMPTS {
                return false;
            }
            send((p.peer.clone(), p.addr, p.epoch, p.data));
            p.next_at = now + PROBE_RETRY * (1 << p.attempts);
            p.attempts += 1;
            true
        });
    }

    /// When [`EpochProbes::due`] has something to do next.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.probes.iter().map(|p| p.next_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn challenges_until(probes: &mut EpochProbes, end: Instant) -> alloc::vec::Vec<u64> {
        let mut sent = alloc::vec::Vec::new();
        let mut now = Instant::ZERO;
        while now <= end {
            probes.due(now, |_| sent.push(now.as_micros() / 1000));
            now += Duration::from_millis(1);
        }
        sent
    }

    #[test]
    fn a_probe_sends_its_challenge_five_times_with_backoff_then_ends() {
        let mut probes = EpochProbes::new();
        let addr = "10.0.0.1:1".parse().unwrap();
        probes.start(Instant::ZERO, peer("a"), 7, addr, [1; PATH_DATA_LEN], 3);
        assert_eq!(probes.deadline(), Some(Instant::ZERO));
        let sent = challenges_until(&mut probes, Instant::ZERO + Duration::from_secs(10));
        assert_eq!(sent, [0, 100, 300, 700, 1500]);
        assert_eq!(probes.deadline(), None, "ended");
        assert!(probes.find_mut(&peer("a"), 7).is_none());
    }

    #[test]
    fn a_full_table_gives_up_the_probe_started_longest_ago() {
        let mut probes = EpochProbes::new();
        let addr = "10.0.0.1:1".parse().unwrap();
        for i in 0..=MAX_PROBES as u64 {
            let at = Instant::ZERO + Duration::from_millis(i);
            probes.start(at, peer("a"), i, addr, [1; PATH_DATA_LEN], 0);
        }
        assert!(probes.find_mut(&peer("a"), 0).is_none());
        assert!((1..=MAX_PROBES as u64).all(|e| probes.find_mut(&peer("a"), e).is_some()));
        probes.remove(&peer("a"), 3);
        assert!(probes.find_mut(&peer("a"), 3).is_none());
        assert!(probes.find_mut(&peer("b"), 4).is_none());
    }
}
