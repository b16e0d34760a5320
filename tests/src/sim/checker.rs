//! The exactly-once checker: every payload names its sender, sequence number and destination,
//! so the checker can tell, for each message accepted by `submit`, whether it was delivered
//! once, never (lost), or more than once (duplicated), and spot corrupt or misrouted ones.

use a3m_core::id::NodeId;

/// Bytes of a payload taken by its header (sender, sequence number, destination, check word).
pub const PAYLOAD_HEADER_LEN: usize = 16;

/// What a simulated message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageTag {
    /// Index of the sending node.
    pub sender: u32,
    /// Sequence number among that sender's messages, from 0.
    pub seq: u32,
    /// Index of the node it is meant for.
    pub dest: u32,
}

fn check_word(tag: MessageTag, len: usize) -> u32 {
    fn fmix(mut h: u64) -> u64 {
        h = (h ^ (h >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h = (h ^ (h >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        h ^ (h >> 33)
    }
    let h = fmix(u64::from(tag.sender) << 32 | u64::from(tag.seq));
    fmix(h ^ (u64::from(tag.dest) << 32 | len as u64 & 0xFFFF_FFFF)) as u32
}

fn filler_byte(check: u32, i: usize) -> u8 {
    (check >> ((i % 4) * 8)) as u8 ^ i as u8
}

/// Writes the payload of `tag` into all of `out`, which must be at least
/// [`PAYLOAD_HEADER_LEN`] long (the rest is filler derived from the tag, so that corruption
/// anywhere in the payload is detected).
pub fn encode_payload(tag: MessageTag, out: &mut [u8]) {
    assert!(out.len() >= PAYLOAD_HEADER_LEN, "payload shorter than its header");
    let check = check_word(tag, out.len());
    out[0..4].copy_from_slice(&tag.sender.to_le_bytes());
    out[4..8].copy_from_slice(&tag.seq.to_le_bytes());
    out[8..12].copy_from_slice(&tag.dest.to_le_bytes());
    out[12..16].copy_from_slice(&check.to_le_bytes());
    for (i, b) in out[PAYLOAD_HEADER_LEN..].iter_mut().enumerate() {
        *b = filler_byte(check, i);
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads the tag of a payload written by [`encode_payload`]; `None` if it is corrupt.
pub fn decode_payload(bytes: &[u8]) -> Option<MessageTag> {
    if bytes.len() < PAYLOAD_HEADER_LEN {
        return None;
    }
    let tag =
        MessageTag { sender: u32_at(bytes, 0), seq: u32_at(bytes, 4), dest: u32_at(bytes, 8) };
    let check = u32_at(bytes, 12);
    let intact = check == check_word(tag, bytes.len())
        && bytes[PAYLOAD_HEADER_LEN..].iter().enumerate().all(|(i, b)| *b == filler_byte(check, i));
    intact.then_some(tag)
}

/// How the checker judged one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// First delivery of an accepted message, to the right node, from the right sender.
    First(MessageTag),
    /// The message had already been delivered.
    Duplicate(MessageTag),
    /// Delivered to a node it was not sent to, or reported as coming from another node.
    Misrouted(MessageTag),
    /// The payload does not decode, or names a message that was never accepted.
    Corrupt,
}

/// Totals of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// Messages the workload meant to send.
    pub planned: u64,
    /// Messages accepted by `submit`.
    pub accepted: u64,
    /// Distinct messages delivered (each counted once, however often it arrived).
    pub delivered: u64,
    /// Planned messages never delivered (`planned - delivered`; includes any never accepted).
    pub lost: u64,
    /// Deliveries beyond the first of a message.
    pub duplicated: u64,
    /// Deliveries to the wrong node or with the wrong sender.
    pub misrouted: u64,
    /// Deliveries whose payload is damaged or names a message never accepted.
    pub corrupt: u64,
}

impl CheckReport {
    /// True if every planned message was delivered exactly once and nothing else was delivered.
    pub fn exactly_once(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.misrouted == 0 && self.corrupt == 0
    }

    /// Adds another report's totals to this one.
    pub fn add(&mut self, other: &CheckReport) {
        self.planned += other.planned;
        self.accepted += other.accepted;
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.misrouted += other.misrouted;
        self.corrupt += other.corrupt;
    }
}

/// Counts, per message, how often it was delivered.
#[derive(Debug, Clone)]
pub struct ExactlyOnceChecker {
    ids: Vec<NodeId>,
    /// `deliveries[sender][seq]`: how many times that message was delivered.
    deliveries: Vec<Vec<u32>>,
    /// `accepted[sender][seq]`: `submit` accepted that message.
    accepted: Vec<Vec<bool>>,
    planned: u64,
    delivered: u64,
    duplicated: u64,
    misrouted: u64,
    corrupt: u64,
}

impl ExactlyOnceChecker {
    /// A checker for nodes named `ids` where node `i` plans to send `planned[i]` messages
    /// (missing entries mean 0).
    pub fn new(ids: Vec<NodeId>, planned: &[u32]) -> Self {
        let per_sender = |i: usize| planned.get(i).copied().unwrap_or(0) as usize;
        ExactlyOnceChecker {
            deliveries: (0..ids.len()).map(|i| vec![0; per_sender(i)]).collect(),
            accepted: (0..ids.len()).map(|i| vec![false; per_sender(i)]).collect(),
            ids,
            planned: planned.iter().map(|&p| u64::from(p)).sum(),
            delivered: 0,
            duplicated: 0,
            misrouted: 0,
            corrupt: 0,
        }
    }

    /// Records that `submit` accepted message `seq` of `sender`.
    ///
    /// # Panics
    /// If that message was not planned (a bug in the workload, not in the node).
    pub fn record_accepted(&mut self, sender: usize, seq: u32) {
        self.accepted[sender][seq as usize] = true;
    }

    /// Records that node `receiver` delivered `payload`, reported as coming from `from`.
    pub fn record_delivery(&mut self, receiver: usize, from: &NodeId, payload: &[u8]) -> Verdict {
        let Some(tag) = decode_payload(payload) else {
            self.corrupt += 1;
            return Verdict::Corrupt;
        };
        let sender = tag.sender as usize;
        let accepted = self.accepted.get(sender).and_then(|a| a.get(tag.seq as usize));
        if accepted != Some(&true) {
            self.corrupt += 1;
            return Verdict::Corrupt;
        }
        if tag.dest as usize != receiver || self.ids[sender] != *from {
            self.misrouted += 1;
            return Verdict::Misrouted(tag);
        }
        let count = &mut self.deliveries[sender][tag.seq as usize];
        *count += 1;
        if *count == 1 {
            self.delivered += 1;
            Verdict::First(tag)
        } else {
            self.duplicated += 1;
            Verdict::Duplicate(tag)
        }
    }

    /// True once every planned message has been delivered at least once.
    pub fn all_delivered(&self) -> bool {
        self.delivered == self.planned
    }

    /// The messages accepted but not delivered so far, as (sender, seq), at most `limit` of them.
    pub fn missing(&self, limit: usize) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        for (sender, counts) in self.deliveries.iter().enumerate() {
            for (seq, &n) in counts.iter().enumerate() {
                if n == 0 && self.accepted[sender][seq] && out.len() < limit {
                    out.push((sender, seq as u32));
                }
            }
        }
        out
    }

    /// The totals so far.
    pub fn report(&self) -> CheckReport {
        CheckReport {
            planned: self.planned,
            accepted: self.accepted.iter().flatten().filter(|&&a| a).count() as u64,
            delivered: self.delivered,
            lost: self.planned - self.delivered,
            duplicated: self.duplicated,
            misrouted: self.misrouted,
            corrupt: self.corrupt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_detects_damage() {
        let tag = MessageTag { sender: 3, seq: 77, dest: 1 };
        for len in [16, 17, 64] {
            let mut buf = vec![0; len];
            encode_payload(tag, &mut buf);
            assert_eq!(decode_payload(&buf), Some(tag));
            for i in 0..len {
                let mut bad = buf.clone();
                bad[i] ^= 0x40;
                assert_eq!(decode_payload(&bad), None, "flip at {i} of {len}");
            }
            assert_eq!(decode_payload(&buf[..len - 1]), None);
        }
    }
}
