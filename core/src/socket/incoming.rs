//! Messages from the transport: routing each to its socket and link (through the route
//! cache for DATA), the traffic of established links (DATA, FLOW, UNLINK, custom control),
//! and the answer to a LINK for a missing socket.

use crate::flow::FlowUpdate;
use crate::id::{LinkIncarnation, NodeId, SocketId, TagId};
use crate::time::Instant;
use crate::wire::DecodeError;
use crate::wire::message::{self, Body, ErrorCode, Message};

use super::route::RouteCache;
use super::shared::{Shared, Sink};
use super::sockets::Socket;
use super::{LinkView, SocketKey, SocketLayer};

impl Socket {
    /// DATA, FLOW, UNLINK and custom control (`body`, sent on the peer's incarnation
    /// `their_link` of it): only for the current link with the peer.
    pub(super) fn handle_traffic(
        &mut self,
        key: SocketKey,
        existing: Option<LinkIncarnation>,
        their_link: LinkIncarnation,
        body: &Body<'_>,
        shared: &mut Shared,
    ) {
        let Some((inc, link)) = existing.and_then(|inc| Some((inc, self.links.get_mut(&inc)?)))
        else {
            shared.stats.stale += 1;
            return;
        };
        let mut sink = Sink { tag: &self.id.tag, shared };
        if !link.admits(their_link, &mut sink) {
            sink.shared.stats.stale += 1;
            return;
        }
        let mut ready = false;
        match *body {
            Body::Unlink { sent } => link.on_unlink(sent, &mut sink),
            Body::Flow { credits, capacity_delta } => {
                let update = FlowUpdate { credits, capacity_delta };
                let before = link.credits();
                // Fragments of a message in progress may take the credits at once.
                ready = link.on_flow(update, &mut sink);
                let delta = link.credits() - before;
                shared.credit(key, inc, delta);
            }
            Body::Data { seq, payload } | Body::DataMore { seq, payload } => {
                let more = matches!(body, Body::DataMore { .. });
                match link.on_data(seq, payload, more, &mut sink) {
                    Ok(edge) => ready = edge,
                    Err(_) => shared.stats.violations += 1,
                }
            }
            Body::Custom { kind, body } => {
                self.protocol.on_control(LinkView::new(link), kind, body, &mut shared.control);
                // The protocol's readiness may depend on its control messages (a refused
                // subscription makes a subscriber readable).
                ready = true;
            }
            _ => {}
        }
        if ready {
            self.mark_ready(key, shared);
        }
    }
}

impl SocketLayer {
    /// Handles a socket message that arrived from node `from`.
    pub fn handle_message(&mut self, now: Instant, from: &NodeId, msg: &Message<'_>) {
        self.shared.stats.messages_in += 1;
        let data = matches!(msg.body, Body::Data { .. } | Body::DataMore { .. });
        if data
            && let Some((i, ())) = self.shared.routes.find(|r| r.matches(from, msg).then_some(()))
            && let Some(route) = self.shared.routes.get(i)
        {
            let (key, link) = (route.key, route.link);
            if let Some((s, shared)) = self.parts(key) {
                s.handle_traffic(key, Some(link), msg.link, &msg.body, shared);
                if shared.is_quiet() {
                    return;
                }
            }
            self.after(key);
            return;
        }
        let (Ok(dst), Ok(src)) = (TagId::new(msg.dst_tag), TagId::new(msg.src_tag)) else {
            self.shared.stats.malformed += 1;
            return;
        };
        let Some(&key) = self.by_tag.get(&dst) else {
            self.reply_not_found(from, msg);
            return;
        };
        let peer = SocketId::new(from.clone(), src);
        if let Some((s, shared)) = self.parts(key) {
            if data && let Some(&link) = s.by_peer.get(&peer) {
                shared.routes.insert(RouteCache::new(from, msg, key, link));
            }
            s.handle(now, key, peer, msg, shared);
        }
        self.after(key);
    }

    /// Decodes a transport payload and handles it.
    pub fn handle_payload(
        &mut self,
        now: Instant,
        from: &NodeId,
        bytes: &[u8],
    ) -> Result<(), DecodeError> {
        // The DATA of a recent stream: its header is the cached prefix, so neither tag needs
        // decoding (nor UTF-8 checking) again.
        if let Some((i, rest)) = self.shared.routes.find(|r| r.tail(from, bytes))
            && let Some((seq, payload)) = message::decode_data_tail(rest)
        {
            self.handle_routed(i, &Body::Data { seq, payload });
            return Ok(());
        }
        // A fragment of such a stream (its kind differs in one bit).
        if let Some((i, body)) = self.shared.routes.find(|r| r.fragment(from, bytes)) {
            self.handle_routed(i, &body);
            return Ok(());
        }
        if message::is_fanout(bytes) {
            return self.handle_fanout(now, from, bytes);
        }
        match message::decode(bytes) {
            Ok(msg) => {
                self.handle_message(now, from, &msg);
                Ok(())
            }
            Err(e) => {
                self.shared.stats.malformed += 1;
                Err(e)
            }
        }
    }

    /// Handles a DATA_FANOUT as the DATA messages it stands for, one per destination.
    fn handle_fanout(
        &mut self,
        now: Instant,
        from: &NodeId,
        bytes: &[u8],
    ) -> Result<(), DecodeError> {
        let fanout =
            message::decode_fanout(bytes).inspect_err(|_| self.shared.stats.malformed += 1)?;
        for d in fanout.destinations() {
            let msg = Message {
                src_tag: fanout.src_tag,
                dst_tag: d.dst_tag,
                link: d.link,
                body: Body::Data { seq: d.seq, payload: fanout.payload },
            };
            self.handle_message(now, from, &msg);
        }
        Ok(())
    }

    /// Handles DATA or DATA_MORE of the cached route `i` ([`Shared::routes`]).
    #[inline(always)]
    fn handle_routed(&mut self, i: usize, body: &Body<'_>) {
        let Some(route) = self.shared.routes.get(i) else { return };
        let (key, link, their_link) = (route.key, route.link, route.their_link);
        self.shared.stats.messages_in += 1;
        if let Some((s, shared)) = self.parts(key) {
            s.handle_traffic(key, Some(link), their_link, body, shared);
            if shared.is_quiet() {
                return;
            }
        }
        self.after(key);
    }

    /// Answers a LINK for a missing socket with ERROR socket-not-found, as if that socket
    /// replied (echoing the requester's incarnation); drops anything else.
    fn reply_not_found(&mut self, from: &NodeId, msg: &Message<'_>) {
        self.shared.stats.not_found += 1;
        if let Body::Link { .. } = msg.body {
            let reply = Message {
                src_tag: msg.dst_tag,
                dst_tag: msg.src_tag,
                link: msg.link,
                body: Body::Error { code: ErrorCode::SocketNotFound, detail: b"" },
            };
            if self.shared.out.push(from, &reply) {
                self.shared.stats.messages_out += 1;
            }
        }
    }
}
