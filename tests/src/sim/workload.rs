//! The workload: which node sends how many messages to whom, and when.
//!
//! Messages are spread over `bursts` instants evenly spaced across `spread`, so traffic flows
//! before, during and after the partitions and address changes of a run, and each burst gives
//! the nodes several messages to batch.

use core::time::Duration;

use a3m_core::time::Instant;

/// What the nodes of a run send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Messages in the whole run, shared as evenly as possible among the senders.
    pub messages: u64,
    /// Indexes of the nodes that send; empty means every node.
    pub senders: Vec<usize>,
    /// Bytes per payload (at least [`super::checker::PAYLOAD_HEADER_LEN`]).
    pub payload_len: usize,
    /// When the first burst is submitted.
    pub start: Instant,
    /// Time from the first burst to the last.
    pub spread: Duration,
    /// Number of bursts (at least 1).
    pub bursts: u32,
}

impl Default for Workload {
    /// 1000 messages from every node, 16-byte payloads, in 40 bursts over 20 s.
    fn default() -> Self {
        Workload {
            messages: 1000,
            senders: Vec::new(),
            payload_len: super::checker::PAYLOAD_HEADER_LEN,
            start: Instant::ZERO,
            spread: Duration::from_secs(20),
            bursts: 40,
        }
    }
}

/// A workload laid out for `nodes` nodes.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Messages each node sends (0 for non-senders).
    pub per_sender: Vec<u32>,
    /// Per node, the other nodes, in the order it cycles through them as destinations.
    destinations: Vec<Vec<usize>>,
    bursts: u32,
    start: Instant,
    spread: Duration,
}

impl Plan {
    /// Lays out `workload` over `nodes` nodes (callers validated the sender indexes).
    pub fn new(workload: &Workload, nodes: usize) -> Self {
        let senders: Vec<usize> = if workload.senders.is_empty() {
            (0..nodes).collect()
        } else {
            workload.senders.clone()
        };
        let mut per_sender = vec![0u32; nodes];
        let count = senders.len() as u64;
        for (k, &s) in senders.iter().enumerate() {
            let share =
                workload.messages / count + u64::from((k as u64) < workload.messages % count);
            per_sender[s] = u32::try_from(share).unwrap_or(u32::MAX);
        }
        // Node i starts its cycle at the node after itself, so destinations spread evenly.
        let destinations =
            (0..nodes).map(|i| (1..nodes).map(|d| (i + d) % nodes).collect()).collect();
        Plan {
            per_sender,
            destinations,
            bursts: workload.bursts.max(1),
            start: workload.start,
            spread: workload.spread,
        }
    }

    /// Destination of message `seq` of `sender`.
    pub fn destination(&self, sender: usize, seq: u32) -> usize {
        let others = &self.destinations[sender];
        others[seq as usize % others.len()]
    }

    /// Number of bursts.
    pub fn bursts(&self) -> u32 {
        self.bursts
    }

    /// When burst `b` is submitted.
    pub fn burst_time(&self, b: u32) -> Instant {
        let offset = if self.bursts <= 1 {
            Duration::ZERO
        } else {
            self.spread.mul_f64(f64::from(b) / f64::from(self.bursts - 1))
        };
        self.start + offset
    }

    /// How many of `sender`'s messages are due once burst `b` has been issued.
    pub fn due_after(&self, sender: usize, b: u32) -> u32 {
        let total = u64::from(self.per_sender[sender]);
        let bursts = u64::from(self.bursts);
        let due = ((u64::from(b) + 1) * total).div_ceil(bursts);
        due.min(total) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_shared_and_scheduled_completely() {
        let w = Workload { messages: 10, senders: vec![0, 2], bursts: 3, ..Workload::default() };
        let plan = Plan::new(&w, 3);
        assert_eq!(plan.per_sender, vec![5, 0, 5]);
        assert_eq!(plan.due_after(0, 0), 2);
        assert_eq!(plan.due_after(0, 1), 4);
        assert_eq!(plan.due_after(0, 2), 5);
        assert_eq!(plan.due_after(1, 2), 0);
        assert_eq!(plan.burst_time(0), Instant::ZERO);
        assert_eq!(plan.burst_time(2), Instant::ZERO + Duration::from_secs(20));
        assert_eq!(plan.destination(0, 0), 1);
        assert_eq!(plan.destination(0, 1), 2);
        assert_eq!(plan.destination(2, 0), 0);
        assert_eq!(plan.destination(2, 1), 1);
    }
}
