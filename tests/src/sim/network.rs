//! The simulated network: what happens to a datagram on each path (loss, burst loss,
//! duplication, reordering, delay, jitter), partitions in time, and nodes changing address.
//!
//! Every datagram goes through [`Network::fate`], whatever records it carries and whichever
//! way it goes, so loss hits every record kind in both directions and in every phase of a run
//! (submission, recovery after the faults, and the close phase that follows delivery).

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use a3m_core::time::Instant;

use super::rng::{Probability, Rng};

/// Most nodes a simulation can hold (partition sides are bit masks over node indexes).
pub const MAX_NODES: usize = 64;

/// Conditions on one directed path between two nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathConditions {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram that is not lost arrives twice (the copy has its own delay).
    pub duplicate: f64,
    /// Probability that a datagram gets an extra delay of up to `reorder_delay`, so it
    /// overtakes or is overtaken by others.
    pub reorder: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra uniform random delay in `0..=jitter` added to every datagram.
    pub jitter: Duration,
    /// Largest extra delay of a reordered datagram (uniform in `0..=reorder_delay`).
    pub reorder_delay: Duration,
    /// Gilbert-Elliott burst loss: the long-run fraction of this path's datagrams that fall
    /// in a *bad* state that drops every datagram (on top of `loss`, which applies in the good
    /// state). 0 disables it.
    pub burst_loss: f64,
    /// Mean length of a bad state, in datagrams sent on this path (at least 1). The state
    /// changes only when the path carries a datagram, so on a quiet path a burst lasts until
    /// that many datagrams (for instance retransmissions) have been dropped.
    pub burst_len: f64,
}

impl Default for PathConditions {
    /// A perfect path with 10 ms delay; reordered datagrams (none by default) wait up to 50 ms more.
    fn default() -> Self {
        PathConditions {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            reorder_delay: Duration::from_millis(50),
            burst_loss: 0.0,
            burst_len: 1.0,
        }
    }
}

impl PathConditions {
    /// The longest a datagram can spend on this path.
    pub fn max_transit(&self) -> Duration {
        self.delay + self.jitter + self.reorder_delay
    }

    /// The long-run probability that a datagram on this path is lost, by `loss` or in a burst.
    pub fn effective_loss(&self) -> f64 {
        let bad = self.burst_loss.clamp(0.0, 1.0);
        let good = self.loss.clamp(0.0, 1.0);
        bad + (1.0 - bad) * good
    }

    /// The (good to bad, bad to good) transition probabilities per datagram of the burst
    /// model: bad to good is `1 / burst_len`, and good to bad is chosen so that the long-run
    /// share of the bad state is `burst_loss`.
    pub fn burst_transitions(&self) -> (f64, f64) {
        if self.burst_loss <= 0.0 {
            return (0.0, 1.0);
        }
        let leave = 1.0 / self.burst_len.max(1.0);
        let bad = self.burst_loss.min(1.0);
        if bad >= 1.0 {
            return (1.0, 0.0);
        }
        ((leave * bad / (1.0 - bad)).min(1.0), leave)
    }
}

/// A window during which no datagram crosses between two groups of nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// First instant of the partition.
    pub start: Instant,
    /// First instant after the partition.
    pub end: Instant,
    /// Bit `i` set: node `i` is on side A; the others are on side B.
    pub side_a: u64,
}

impl Partition {
    /// True if this partition cuts `a` from `b` at `at`.
    pub fn separates(&self, a: usize, b: usize, at: Instant) -> bool {
        at >= self.start && at < self.end && ((self.side_a >> a) & 1) != ((self.side_a >> b) & 1)
    }
}

/// A node taking a new UDP address at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressChange {
    /// Index of the node that moves.
    pub node: usize,
    /// When it moves: datagrams to its old address arriving from then on are lost, and what it
    /// sends from then on carries the new source address.
    pub at: Instant,
    /// Its new address.
    pub new_addr: SocketAddr,
    /// True if the node's runtime notices the change (the simulator then calls
    /// [`super::SimNode::address_changed`]); false for a change it cannot see, like a NAT
    /// rebinding, where peers learn the address only from the node's next datagrams.
    pub announce: bool,
}

/// The address node `index` has after moving `moves` times: `10.moves.hi.lo:(4000 + moves)`.
pub fn node_addr(index: usize, moves: u8) -> SocketAddr {
    let ip = Ipv4Addr::new(10, moves, (index >> 8) as u8, index as u8);
    SocketAddr::new(IpAddr::V4(ip), 4000 + u16::from(moves))
}

/// A path's conditions prepared for the hot path (integer thresholds and microseconds).
#[derive(Debug, Clone, Copy)]
struct CompiledPath {
    loss: Probability,
    /// Burst model: chance to enter the bad state (`NEVER` when burst loss is off) and to leave it.
    enter_bad: Probability,
    leave_bad: Probability,
    duplicate: Probability,
    reorder: Probability,
    delay_us: u64,
    jitter_us: u64,
    reorder_us: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl From<&PathConditions> for CompiledPath {
    fn from(c: &PathConditions) -> Self {
        let (enter, leave) = c.burst_transitions();
        CompiledPath {
            loss: Probability::new(c.loss),
            enter_bad: Probability::new(enter),
            leave_bad: Probability::new(leave),
            duplicate: Probability::new(c.duplicate),
            reorder: Probability::new(c.reorder),
            delay_us: micros(c.delay),
            jitter_us: micros(c.jitter),
            reorder_us: micros(c.reorder_delay),
        }
    }
}

/// What the network does with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Lost at random.
    Lost,
    /// Lost in a burst (the path is in the bad state of the burst model).
    BurstLost,
    /// Dropped by a partition.
    Partitioned,
    /// Arrives after `first` microseconds, and a copy after `copy` microseconds if any.
    Arrives {
        /// Transit time of the datagram.
        first: u64,
        /// Transit time of its duplicate, if the network duplicated it.
        copy: Option<u64>,
        /// True if either got the reordering delay.
        reordered: bool,
    },
}

/// All paths and partitions between `n` nodes.
#[derive(Debug, Clone)]
pub struct Network {
    nodes: usize,
    paths: Vec<CompiledPath>,
    partitions: Vec<Partition>,
    max_transit_us: u64,
    /// Per path: in the bad state of the burst model.
    bad: Vec<bool>,
}

impl Network {
    /// A network of `nodes` nodes where every path has `default` conditions except the
    /// `(from, to)` pairs in `overrides`.
    pub fn new(
        nodes: usize,
        default: &PathConditions,
        overrides: &[(usize, usize, PathConditions)],
        partitions: Vec<Partition>,
    ) -> Self {
        let mut paths = vec![CompiledPath::from(default); nodes * nodes];
        let mut max_transit = default.max_transit();
        for (from, to, c) in overrides {
            if *from < nodes && *to < nodes {
                paths[from * nodes + to] = CompiledPath::from(c);
                max_transit = max_transit.max(c.max_transit());
            }
        }
        let bad = vec![false; nodes * nodes];
        Network { nodes, paths, partitions, max_transit_us: micros(max_transit), bad }
    }

    /// The longest any datagram can spend in transit, in microseconds.
    pub fn max_transit_us(&self) -> u64 {
        self.max_transit_us
    }

    /// True if a partition separates `a` from `b` at `at`.
    pub fn partitioned(&self, a: usize, b: usize, at: Instant) -> bool {
        self.partitions.iter().any(|p| p.separates(a, b, at))
    }

    /// Decides what happens to a datagram sent from `from` to `to` at `now`. Draws no random
    /// number for the burst model when it is off, so runs without bursts are as before.
    pub fn fate(&mut self, rng: &mut Rng, from: usize, to: usize, now: Instant) -> Fate {
        if self.partitioned(from, to, now) {
            return Fate::Partitioned;
        }
        let index = from * self.nodes + to;
        let path = &self.paths[index];
        if !path.enter_bad.is_never() {
            let bad = &mut self.bad[index];
            *bad = if *bad { !rng.chance(path.leave_bad) } else { rng.chance(path.enter_bad) };
            if *bad {
                return Fate::BurstLost;
            }
        }
        if rng.chance(path.loss) {
            return Fate::Lost;
        }
        let mut reordered = false;
        let mut transit = |rng: &mut Rng| {
            let mut t = path.delay_us + rng.between(0, path.jitter_us);
            if rng.chance(path.reorder) {
                reordered = true;
                t += rng.between(0, path.reorder_us);
            }
            t
        };
        let first = transit(rng);
        let copy = if rng.chance(path.duplicate) { Some(transit(rng)) } else { None };
        Fate::Arrives { first, copy, reordered }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_cuts_only_across_sides_and_only_in_its_window() {
        let p = Partition {
            start: Instant::from_micros(10),
            end: Instant::from_micros(20),
            side_a: 0b001,
        };
        assert!(p.separates(0, 1, Instant::from_micros(10)));
        assert!(p.separates(2, 0, Instant::from_micros(19)));
        assert!(!p.separates(1, 2, Instant::from_micros(15)));
        assert!(!p.separates(0, 1, Instant::from_micros(9)));
        assert!(!p.separates(0, 1, Instant::from_micros(20)));
    }

    #[test]
    fn fates_follow_path_conditions() {
        let lossy = PathConditions { loss: 1.0, ..PathConditions::default() };
        let mut net = Network::new(2, &PathConditions::default(), &[(0, 1, lossy)], vec![]);
        let mut rng = Rng::new(1);
        assert_eq!(net.fate(&mut rng, 0, 1, Instant::ZERO), Fate::Lost);
        assert_eq!(
            net.fate(&mut rng, 1, 0, Instant::ZERO),
            Fate::Arrives { first: 10_000, copy: None, reordered: false }
        );
        let dup = PathConditions { duplicate: 1.0, reorder: 1.0, ..PathConditions::default() };
        let mut net = Network::new(2, &dup, &[], vec![]);
        match net.fate(&mut rng, 0, 1, Instant::ZERO) {
            Fate::Arrives { first, copy: Some(copy), reordered: true } => {
                assert!((10_000..=60_000).contains(&first));
                assert!((10_000..=60_000).contains(&copy));
            }
            other => panic!("unexpected fate {other:?}"),
        }
        assert_eq!(net.max_transit_us(), 60_000);
    }

    #[test]
    fn bursts_have_the_configured_share_and_mean_length() {
        let c = PathConditions { burst_loss: 0.2, burst_len: 8.0, ..PathConditions::default() };
        assert!((c.effective_loss() - 0.2).abs() < 1e-12);
        let mut net = Network::new(2, &c, &[], vec![]);
        let mut rng = Rng::new(5);
        let (mut lost, mut bursts, mut previous) = (0u32, 0u32, false);
        let total = 400_000;
        for _ in 0..total {
            let now_lost = net.fate(&mut rng, 0, 1, Instant::ZERO) == Fate::BurstLost;
            lost += u32::from(now_lost);
            bursts += u32::from(now_lost && !previous);
            previous = now_lost;
        }
        let share = f64::from(lost) / f64::from(total);
        let mean = f64::from(lost) / f64::from(bursts);
        assert!((0.18..0.22).contains(&share), "share {share}");
        assert!((7.0..9.0).contains(&mean), "mean burst {mean}");
        // The other direction has its own state and saw no datagram: never bad.
        assert!(!net.bad[2]);
    }

    #[test]
    fn addresses_differ_per_node_and_per_move() {
        assert_ne!(node_addr(1, 0), node_addr(2, 0));
        assert_ne!(node_addr(1, 0), node_addr(1, 1));
        assert_ne!(node_addr(1, 0), node_addr(257, 0));
    }
}
