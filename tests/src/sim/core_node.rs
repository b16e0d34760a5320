//! The real node, [`a3m_core::node::Node`], as a [`SimNode`].

use core::net::SocketAddr;

use a3m_core::id::NodeId;
use a3m_core::node::{Node, NodeError};
use a3m_core::time::Instant;
use a3m_core::wire::{Record, decode_datagram};

use super::endpoint::{SimNode, SubmitError};

impl SimNode for Node {
    fn max_datagram(&self) -> usize {
        self.config().max_datagram
    }

    fn max_payload(&self) -> usize {
        Node::max_payload(self)
    }

    fn set_peer_addr(&mut self, peer: &NodeId, addr: SocketAddr) -> Result<(), String> {
        Node::set_peer_addr(self, peer.clone(), addr).map_err(|e| e.to_string())
    }

    fn submit(&mut self, now: Instant, to: &NodeId, payload: &[u8]) -> Result<(), SubmitError> {
        Node::submit(self, now, to, payload).map_err(|e| match e {
            NodeError::QueueFull => SubmitError::Backpressure,
            other => SubmitError::Rejected(other.to_string()),
        })
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Node::handle_datagram(self, now, from, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Node::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        Node::poll_transmit(self, now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Node::poll_timeout(self)
    }

    fn poll_delivery(&mut self, out: &mut [u8]) -> Result<Option<(NodeId, usize)>, String> {
        match Node::poll_delivery(self, out) {
            Ok(Some(d)) => Ok(Some((d.from, d.len))),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn unacknowledged(&self) -> usize {
        Node::unacknowledged(self)
    }

    fn address_changed(&mut self, now: Instant) {
        self.announce(now);
    }

    fn describe_datagram(&self, bytes: &[u8]) -> String {
        let datagram = match decode_datagram(bytes) {
            Ok(d) => d,
            Err(e) => return format!("{} bytes, undecodable: {e:?}", bytes.len()),
        };
        let mut text =
            format!("{}B {}->{}:", bytes.len(), datagram.header.src, datagram.header.dst);
        let mut tokens: Option<(u64, u64, u64, usize)> = None; // incarnation, first, last, count
        let flush = |text: &mut String, tokens: &mut Option<(u64, u64, u64, usize)>| {
            if let Some((r, first, last, n)) = tokens.take() {
                text.push_str(&format!(" TOKEN[r={r} {first}..={last} x{n}]"));
            }
        };
        for record in datagram.records() {
            match record {
                Record::Token(t) => match &mut tokens {
                    Some((r, _, last, n)) if *r == t.incarnation => {
                        *last = t.slot;
                        *n += 1;
                    }
                    _ => {
                        flush(&mut text, &mut tokens);
                        tokens = Some((t.incarnation, t.slot, t.slot, 1));
                    }
                },
                other => {
                    flush(&mut text, &mut tokens);
                    match other {
                        Record::ReqSlots(q) => text.push_str(&format!(
                            " REQSLOTS[s={} n={} l={}]",
                            q.start, q.count, q.lowest
                        )),
                        Record::Slots(g) => text.push_str(&format!(
                            " SLOTS[s={} r={} n={}]",
                            g.start, g.incarnation, g.count
                        )),
                        Record::Ack(a) => {
                            let ranges: Vec<String> =
                                a.ranges().map(|x| format!("{}..{}", x.start, x.end)).collect();
                            text.push_str(&format!(
                                " ACK[r={} {}]",
                                a.incarnation,
                                ranges.join(",")
                            ));
                        }
                        Record::Token(_) => {}
                    }
                }
            }
        }
        flush(&mut text, &mut tokens);
        text
    }
}
