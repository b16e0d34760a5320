//! The real node, [`a3m_core::node::Node`], as a [`SimNode`].

use core::net::SocketAddr;
use core::time::Duration;

use a3m_core::id::NodeId;
use a3m_core::node::{Node, NodeError};
use a3m_core::time::Instant;
use a3m_core::wire::{Record, decode_datagram};

use super::endpoint::{LivenessHints, SimNode, SubmitError};
use super::network::MAX_NODES;

/// The receiver's probe interval ceiling in multiples of `idle_timeout` (`MAX_PROBE_BACKOFF`
/// in `a3m_core::eo::recv`, which is private).
const PROBE_BACKOFF_CEILING: u32 = 16;

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

    fn open_records(&self) -> usize {
        self.send_records() + self.receive_records()
    }

    fn liveness_hints(&self) -> LivenessHints {
        let c = self.config();
        LivenessHints {
            retransmit_max: c.rto_max,
            window: u64::from(c.window),
            inbox: c.max_inbox as u64,
            silent_max: Some(c.idle_timeout * PROBE_BACKOFF_CEILING),
            close_after: c.idle_timeout,
        }
    }

    fn describe_state(&self) -> String {
        let s = self.stats();
        let mut text = format!(
            "{}: send_records={} receive_records={} next_deadline={}",
            self.id(),
            self.send_records(),
            self.receive_records(),
            self.poll_timeout()
                .map_or("none".into(), |t| format!("{:.3}s", t.as_micros() as f64 / 1e6)),
        );
        for i in 0..MAX_NODES {
            let peer = super::node_id(i);
            let Some(addr) = self.peer_addr(&peer) else { continue };
            let rtt = self.peer_rtt(&peer).unwrap_or(Duration::ZERO);
            text += &format!(
                " | to {peer}@{addr} unacked={} srtt={:.1}ms",
                self.unacknowledged_to(&peer),
                rtt.as_secs_f64() * 1e3
            );
        }
        text += &format!(
            " | tokens sent={} retx={} acked={} dup_recv={} delivered={} acks_sent={} \
             reqslots={} granted={} slots_recv={} window_full={} status_sent={} \
             incarnations_lost={} rebound={} addr_changes={} inbox_full={}",
            s.tokens_sent,
            s.tokens_retransmitted,
            s.tokens_acked,
            s.duplicates,
            s.payloads_delivered,
            s.acks_sent,
            s.reqslots_sent,
            s.slots_granted,
            s.slots_received,
            s.window_full,
            s.status_sent,
            s.incarnations_lost,
            s.payloads_rebound,
            s.address_changes,
            s.inbox_full_deferrals,
        );
        text
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
                        Record::PathChallenge(d) => {
                            text.push_str(&format!(" PATH_CHALLENGE[{d:02x?}]"))
                        }
                        Record::PathResponse(d) => {
                            text.push_str(&format!(" PATH_RESPONSE[{d:02x?}]"))
                        }
                        Record::SealMismatch(r) => text.push_str(&format!(" SEAL_MISMATCH[{r}]")),
                        Record::Token(_) => {}
                    }
                }
            }
        }
        flush(&mut text, &mut tokens);
        text
    }
}
