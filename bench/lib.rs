//! Fixtures shared by the criterion benchmarks in `benches/`: full datagrams of `TOKEN`
//! records and a pair of in-process sans-I/O nodes joined by a perfect network.
//!
//! They live here, not in the bench files, so that `cargo test` checks that what the
//! benchmarks time is the work they claim to time (a full datagram really is full, a message
//! really is delivered and acknowledged).
//!
//! ```text
//! cargo bench --manifest-path bench/Cargo.toml            # all benchmarks
//! cargo bench --manifest-path bench/Cargo.toml --bench nodes
//! ```
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use a3m_core::id::{LinkIncarnation, NodeId};
use a3m_core::node::{Node, NodeConfig};
use a3m_core::time::Instant;
use a3m_core::wire::message::{self, Body, Message};
use a3m_core::wire::{DatagramWriter, EncodeError, Header, Record, Token};

/// The node ids the fixtures use, as in a small deployment.
pub const SENDER: &str = "sender-node";
/// See [`SENDER`].
pub const RECEIVER: &str = "receiver-node";

/// One DATA socket message carrying `payload`, encoded as a `TOKEN` record carries it.
pub fn data_message(payload: &[u8], seq: u64) -> Vec<u8> {
    let msg = Message {
        src_tag: "src",
        dst_tag: "sink",
        link: LinkIncarnation(7),
        body: Body::Data { seq, payload },
    };
    let mut buf = vec![0u8; payload.len() + 64];
    let len = message::encode(&msg, &mut buf).expect("a DATA message fits its buffer");
    buf.truncate(len);
    buf
}

/// Writes as many `TOKEN` records carrying `token_payload` as fit in `buf` (a datagram of
/// `buf.len()` bytes), with consecutive slots from `first_slot`. Returns the datagram's
/// length and record count.
pub fn fill_tokens(
    buf: &mut [u8],
    token_payload: &[u8],
    first_slot: u64,
) -> Result<(usize, usize), EncodeError> {
    let header = Header { src: SENDER, dst: RECEIVER, flags: 0 };
    let mut writer = DatagramWriter::new(buf, &header)?;
    let mut slot = first_slot;
    loop {
        let token = Token { slot, incarnation: 3, payload: token_payload };
        match writer.push(&Record::Token(token)) {
            Ok(()) => slot += 1,
            Err(EncodeError::BufferTooSmall) => break,
            Err(e) => return Err(e),
        }
    }
    let written = writer.finish();
    Ok((written.len, written.records))
}

/// Two sans-I/O nodes and a perfect, instantaneous network between them.
#[derive(Debug)]
pub struct NodePair {
    /// The node that submits.
    pub sender: Node,
    /// The node that delivers.
    pub receiver: Node,
    receiver_id: NodeId,
    sender_addr: SocketAddr,
    receiver_addr: SocketAddr,
    datagram: Vec<u8>,
    delivery: Vec<u8>,
    now: u64,
}

impl NodePair {
    /// Two nodes with `config`, each knowing the other's address.
    pub fn new(config: NodeConfig) -> Self {
        let sender_id = NodeId::new(SENDER).expect("valid node id");
        let receiver_id = NodeId::new(RECEIVER).expect("valid node id");
        let sender_addr: SocketAddr = "127.0.0.1:7001".parse().expect("valid address");
        let receiver_addr: SocketAddr = "127.0.0.1:7002".parse().expect("valid address");
        let mut sender = Node::new(sender_id.clone(), config.clone());
        let mut receiver = Node::new(receiver_id.clone(), config);
        sender.set_peer_addr(receiver_id.clone(), receiver_addr).expect("room for a peer");
        receiver.set_peer_addr(sender_id, sender_addr).expect("room for a peer");
        let datagram = vec![0u8; sender.config().max_datagram];
        let delivery = vec![0u8; sender.max_payload()];
        Self {
            sender,
            receiver,
            receiver_id,
            sender_addr,
            receiver_addr,
            datagram,
            delivery,
            now: 1,
        }
    }

    /// The current time of the pair's clock; each [`NodePair::transfer`] advances it by 1 µs
    /// so timers behave as in a real run where time moves on.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.now)
    }

    /// Submits `count` copies of `payload`, moves datagrams both ways until both nodes are
    /// quiet, and drains the receiver's deliveries. Returns the number delivered.
    pub fn transfer(&mut self, payload: &[u8], count: usize) -> usize {
        self.now += 1;
        let now = self.now();
        for _ in 0..count {
            self.sender.submit(now, &self.receiver_id, payload).expect("queue has room");
        }
        let mut delivered = 0;
        loop {
            let mut moved = false;
            while let Some((_, len)) = self.sender.poll_transmit(now, &mut self.datagram) {
                self.receiver.handle_datagram(now, self.sender_addr, &self.datagram[..len]);
                moved = true;
            }
            while let Some(d) =
                self.receiver.poll_delivery(&mut self.delivery).expect("buffer holds a payload")
            {
                debug_assert_eq!(d.len, payload.len());
                delivered += 1;
            }
            while let Some((_, len)) = self.receiver.poll_transmit(now, &mut self.datagram) {
                self.sender.handle_datagram(now, self.receiver_addr, &self.datagram[..len]);
                moved = true;
            }
            if !moved {
                return delivered;
            }
        }
    }

    /// Payloads the sender still waits an acknowledgement for.
    pub fn unacknowledged(&self) -> usize {
        self.sender.unacknowledged_to(&self.receiver_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use a3m_core::wire::{self, MAX_DATAGRAM_LEN};

    #[test]
    fn full_datagrams_are_full_and_decode_to_every_token() {
        let token = data_message(&[b'x'; 100], 1);
        for size in [1400, MAX_DATAGRAM_LEN] {
            let mut buf = vec![0u8; size];
            let (len, records) = fill_tokens(&mut buf, &token, 1000).unwrap();
            assert!(size - len < token.len() + 8, "room for another token in {size}");
            let datagram = wire::decode_datagram(&buf[..len]).unwrap();
            assert_eq!(datagram.record_count(), records);
            let slots: Vec<u64> = datagram
                .records()
                .map(|r| match r {
                    Record::Token(t) => {
                        assert_eq!(message::decode(t.payload).unwrap().dst_tag, "sink");
                        t.slot
                    }
                    other => panic!("unexpected record {other:?}"),
                })
                .collect();
            assert_eq!(slots, (1000..1000 + records as u64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_pair_delivers_and_acknowledges_every_message() {
        let mut pair = NodePair::new(NodeConfig::default());
        assert_eq!(pair.transfer(b"first", 1), 1);
        assert_eq!(pair.unacknowledged(), 0);
        assert_eq!(pair.transfer(&[7u8; 100], 1000), 1000);
        assert_eq!(pair.unacknowledged(), 0);
        assert_eq!(pair.receiver.stats().datagrams_received, pair.sender.stats().datagrams_sent);
    }
}
