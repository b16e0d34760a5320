//! The reader thread: the one thread per node that moves datagrams and time in and out of
//! the core (thesis §4.3.8, the middleware thread).
//!
//! It waits on the platform reactor (the UDP socket readable, a wake-up from an
//! application thread, the earlier of the transport's and the socket layer's deadlines),
//! feeds received datagrams to the exactly-once node and settles the node (deliveries go to
//! the socket layer, the layer's messages to the transport), runs both timers, and sends
//! what the transport wants sent, in batches (`recvmmsg`/`sendmmsg` on Linux).

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use a3m_core::node::{DeferredSeal, Refusal, Transmit};
use a3m_platform::netwatch::NetWatch;
use a3m_platform::reactor::{Event, Events, Interest, Reactor, Token};
use a3m_platform::udp::{RecvBatch, SendBatch, UdpSocket};
use parking_lot::MutexGuard;

use crate::runtime::{Shared, State};
use crate::socket::INLINE_BELOW_UNACKNOWLEDGED;
use crate::spin::spin;

/// Datagrams moved per `sendmmsg` call at most (the platform's maximum).
const BATCH: usize = 64;
/// Bytes of the send batch at most (it is resident from the start): with datagrams of up to
/// 64 KiB, 16 of them per `sendmmsg`, each already a GSO train of many packets.
const SEND_BATCH_BYTES: usize = 1 << 20;
/// Datagrams taken per `recvmmsg` call. Each slot holds 64 KiB (a GRO buffer), so 16
/// slots still take up to 1 MiB per call, and stream throughput measured the same as with
/// 64 (5.86 vs 5.78 M msgs/s of 100 B, pinned, medians of 5). Fewer slots bound the pages
/// a flood of small datagrams can fault in: with 64 a million forgeries grew a receiver's
/// peak RSS by 5–6 % (one page per slot never touched by the stream); with 16, by ±3 %.
const RECV_BATCH: usize = 16;
/// Bytes of datagrams the reader encodes, or handles, per hold of the node lock.
const HOLD_BYTES: usize = 64 * 1024;

/// Socket token of the node's UDP socket in the reactor.
pub(crate) const SOCKET: Token = Token(0);
/// Token of the watch on the host's addresses and links.
pub(crate) const NETWATCH: Token = Token(1);

/// The reader thread's own state: the reactor, the socket and reusable batch buffers.
pub(crate) struct Reader {
    shared: Arc<Shared>,
    reactor: Reactor,
    socket: Arc<UdpSocket>,
    events: Events,
    recv: RecvBatch,
    send: SendBatch,
    /// Datagrams queued in `send` whose sealing is left for after the lock is released:
    /// their index in the queue, and the sealing.
    unsealed: Vec<(usize, DeferredSeal)>,
    watching_writable: bool,
    /// Enough payloads were unacknowledged at the end of the last send that application
    /// threads leave sending to this reader ([`INLINE_BELOW_UNACKNOWLEDGED`]): a stream.
    streaming: bool,
    /// Address and link changes (None where the system offers no such events).
    netwatch: Option<NetWatch>,
    /// The last sealing mismatch reported on standard error.
    reported_refusal: Option<Refusal>,
    /// When it was reported (at most one report a second: a flood of mismatched datagrams
    /// must not flood standard error).
    reported_at: Option<std::time::Instant>,
}

impl Reader {
    pub(crate) fn new(shared: Arc<Shared>, reactor: Reactor, socket: Arc<UdpSocket>) -> Self {
        let max = shared.max_datagram;
        // Without a watch, peers still learn a move from our next datagram, only later.
        let netwatch = NetWatch::new()
            .ok()
            .filter(|w| reactor.register(w, NETWATCH, Interest::READABLE).is_ok());
        Self {
            shared,
            reactor,
            socket,
            events: Events::with_capacity(16),
            recv: RecvBatch::new(RECV_BATCH, 65_536),
            send: SendBatch::new((SEND_BATCH_BYTES / max.max(1)).clamp(1, BATCH), max),
            unsealed: Vec::with_capacity(BATCH),
            watching_writable: false,
            streaming: false,
            netwatch,
            reported_refusal: None,
            reported_at: None,
        }
    }

    pub(crate) fn run(mut self) {
        while !self.shared.stop.load(Ordering::Acquire) {
            if let Err(e) = self.turn() {
                // A failing reactor or socket leaves the node unable to make progress: close it
                // so blocked callers get `Closed` instead of hanging.
                eprintln!("a3m node {}: reader stopped: {e}", self.shared.id);
                self.shared.state.lock().close_all();
                self.shared.delivered.notify_all();
                self.shared.progress.notify_all();
                return;
            }
        }
    }

    /// One round: wait for something to do, then receive, run timers, and send.
    fn turn(&mut self) -> std::io::Result<()> {
        self.wait()?;
        let readable = self.events.iter().any(|e| matches!(e, Event::Readable(SOCKET)));
        if self.events.iter().any(|e| matches!(e, Event::Readable(NETWATCH))) {
            self.announce_if_moved();
        }
        self.switch_socket_if_rebound()?;
        if readable {
            self.receive()?;
        }
        self.run_timers_and_send()
    }

    /// Waits for an event, polling without blocking first ([`spin`]): in a stream the next
    /// datagram or flush request is a few microseconds away.
    fn wait(&mut self) -> std::io::Result<()> {
        let (reactor, events) = (&mut self.reactor, &mut self.events);
        let found = spin(self.shared.spin, || match reactor.wait(events, Some(Duration::ZERO)) {
            Ok(()) if events.is_empty() => None,
            result => Some(result),
        });
        match found {
            Some(result) => result,
            None => self.reactor.wait(&mut self.events, None),
        }
    }

    /// An address or a link changed: the kernel may now pick another source address for our
    /// datagrams (a socket bound to a wildcard address), or a path that was down is back.
    /// Peers are told at once where we are (a status each, repeated until answered), instead
    /// of when our next datagram happens to go: a peer waiting for us would wait forever.
    fn announce_if_moved(&mut self) {
        let Some(watch) = &self.netwatch else { return };
        match watch.changed() {
            Ok(false) => {}
            Ok(true) => {
                let now = self.shared.precise_now();
                self.shared.state.lock().core.announce(now);
            }
            // The watch only speeds things up: without it, peers learn a move later.
            Err(_) => {
                let _ = self.reactor.deregister(watch);
                self.netwatch = None;
            }
        }
    }

    fn switch_socket_if_rebound(&mut self) -> std::io::Result<()> {
        let pending = self.shared.state.lock().pending_socket.take();
        if let Some(socket) = pending {
            self.reactor.deregister(&self.socket)?;
            self.reactor.register(&socket, SOCKET, Interest::READABLE)?;
            let socket = Arc::new(socket);
            self.shared.state.lock().tx_socket = Arc::clone(&socket);
            self.socket = socket;
            self.watching_writable = false;
            // Datagrams still queued for the old socket go out through the new one; peers are
            // told the new address at once instead of waiting for our next datagram.
            let now = self.shared.precise_now();
            self.shared.state.lock().core.announce(now);
        }
        Ok(())
    }

    /// Drains the socket in batches, feeding every datagram to the core.
    fn receive(&mut self) -> std::io::Result<()> {
        loop {
            let n = match self.socket.recv_batch(&mut self.recv) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                // ICMP errors (port unreachable) surface here on Linux; the exactly-once layer
                // retransmits, so they are not fatal.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            };
            let now = self.shared.precise_now();
            let mut datagrams = self.recv.iter().peekable();
            while datagrams.peek().is_some() {
                // Take the lock for about HOLD_BYTES of datagrams at a time, so that the
                // application threads can take the messages of the first ones (and return
                // their credits) while the rest are being handled.
                let mut state = self.shared.state.lock();
                let before = state.core.unacknowledged();
                let mut budget = HOLD_BYTES;
                while budget > 0
                    && let Some(datagram) = datagrams.next()
                {
                    // A truncated datagram cannot parse; the core counts it as malformed.
                    state.core.handle_datagram(now, datagram.from, datagram.data);
                    budget = budget.saturating_sub(datagram.data.len().max(1));
                }
                if state.core.last_refusal() != self.reported_refusal.as_ref()
                    && self.reported_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                {
                    self.reported_at = Some(std::time::Instant::now());
                    // A sealing mismatch: a link with that peer cannot come up; say why.
                    self.reported_refusal = state.core.last_refusal().cloned();
                    if let Some(r) = &self.reported_refusal {
                        eprintln!("a3m node {}: sealing mismatch: {r}", self.shared.id);
                    }
                }
                // (A closing node also waits for its peers to confirm its ACKs.)
                let acked = state.core.unacknowledged() < before
                    || (state.progress_waiters > 0 && state.core.receives_settled());
                // What the application threads queued meanwhile is sent by this turn anyway.
                self.shared.settle(&mut state, now);
                let more = state.deliveries_pending();
                self.notify_progress(&state, acked);
                drop(state);
                if more {
                    // Messages to ourselves keep coming back: take them in another turn.
                    self.shared.request_flush();
                }
            }
            if n < self.recv.capacity() {
                return Ok(());
            }
        }
    }

    /// Runs due timers and sends everything the core has to send, batch by batch.
    fn run_timers_and_send(&mut self) -> std::io::Result<()> {
        if self.streaming && self.shared.spin.is_zero() {
            // A stream is in flight and this thread blocks instead of spinning: each wake-up
            // (an ACK, a flush request) would send what little was queued since the last, as
            // a datagram of its own (sealed, each costs its own AEAD setup). Let an
            // application thread on this processor queue more first; a spinning reader
            // yields in its spin anyway (see `wait`).
            std::thread::yield_now();
        }
        self.shared.flush_requested.store(false, Ordering::Release);
        loop {
            if !self.flush_blocked_batch()? {
                // The kernel buffer is full: wait for writability before asking for more.
                return Ok(());
            }
            let now = self.shared.precise_now();
            let mut state = self.shared.state.lock();
            if state.core.poll_timeout().is_some_and(|t| t <= now) {
                state.core.handle_timeout(now);
            }
            if state.layer.poll_timeout().is_some_and(|t| t <= now) {
                state.note_expiring_lingers(now);
                state.layer.handle_timeout(now);
            }
            self.shared.settle(&mut state, now);
            if state.deliveries_pending() {
                self.shared.request_flush();
            }
            // Encode at most HOLD_BYTES under one hold of the lock: application threads
            // queueing messages meanwhile would otherwise spin and yield for the whole batch.
            let mut budget = HOLD_BYTES;
            let mut more = false;
            while let Some(slot) = self.send.next_slot() {
                match state.core.poll_transmit_deferred(now, slot) {
                    Some(Transmit { to, len, seal }) => {
                        if let Some(seal) = seal {
                            self.unsealed.push((self.send.len(), seal));
                        }
                        self.send.commit(to, len);
                        budget = budget.saturating_sub(len);
                        if budget == 0 {
                            more = true;
                            break;
                        }
                    }
                    None => break,
                }
            }
            let batch_full = more || self.send.is_full();
            let deadline = match (state.core.poll_timeout(), state.layer.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            state.armed_deadline = deadline;
            let idle = !state.unacknowledged_reach(1);
            self.streaming = state.unacknowledged_reach(INLINE_BELOW_UNACKNOWLEDGED);
            self.notify_progress(&state, idle);
            drop(state);
            self.seal_queued();
            if !self.flush_blocked_batch()? {
                return Ok(());
            }
            if !batch_full {
                let deadline = deadline.and_then(|d| self.shared.clock.to_std(d));
                return self.reactor.set_deadline(deadline);
            }
        }
    }

    /// Seals the datagrams just queued, outside the node's lock: application threads keep
    /// queueing messages meanwhile instead of waiting microseconds per datagram.
    fn seal_queued(&mut self) {
        for (index, seal) in self.unsealed.drain(..) {
            let Some(slot) = self.send.queued_mut(index) else { continue };
            if seal.apply(slot).is_err() {
                // Cannot happen (the core left room for the tag); never let the records out
                // in the clear: a zeroed datagram is dropped by its receiver as malformed, and
                // the exactly-once layer retransmits what it carried.
                debug_assert!(false, "sealing a queued datagram failed");
                slot.fill(0);
            }
        }
    }

    /// Sends what the batch holds. Returns false if the socket would block (writability is
    /// then watched and the rest stays in the batch for the next turn).
    fn flush_blocked_batch(&mut self) -> std::io::Result<bool> {
        while !self.send.is_empty() {
            match self.socket.send_batch(&mut self.send) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !self.watching_writable {
                        self.reactor.reregister(
                            &self.socket,
                            SOCKET,
                            Interest::READABLE_WRITABLE,
                        )?;
                        self.watching_writable = true;
                    }
                    return Ok(false);
                }
                // The front datagram was dropped from the batch; the exactly-once layer
                // retransmits whatever it carried, so a per-datagram error is not fatal.
                Err(_) => {}
            }
        }
        if self.watching_writable {
            self.reactor.reregister(&self.socket, SOCKET, Interest::READABLE)?;
            self.watching_writable = false;
        }
        Ok(true)
    }

    /// Wakes raw senders and closers blocked on acknowledgements.
    fn notify_progress(&self, state: &MutexGuard<'_, State>, progress: bool) {
        if state.progress_waiters > 0 && progress {
            self.shared.progress.notify_all();
        }
    }
}
