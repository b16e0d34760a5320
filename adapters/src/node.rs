//! The std runtime of a node: a UDP socket, one reader thread, and thread-safe handles.
//!
//! The protocol lives in the sans-I/O [`a3m_core::node::Node`]; this module only moves
//! bytes and time in and out of it, as A3M's middleware thread does (thesis §4.3.8):
//!
//! * one **reader thread** per node waits on the platform reactor (socket readable, a wake-up
//!   from an application thread, the core's next deadline), feeds the core, and sends what
//!   the core wants sent, in batches (`recvmmsg`/`sendmmsg` on Linux);
//! * **application threads** call [`Node::send_to`] / [`Node::recv`] under the node lock, and
//!   wake the reader only when it has something new to send.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use a3m_core::id::NodeId;
use a3m_core::node::{Node as CoreNode, NodeConfig, NodeError, NodeStats};
use a3m_platform::reactor::{Clock, Event, Events, Interest, Reactor, ReactorWaker, Token};
use a3m_platform::udp::{RecvBatch, SendBatch, UdpConfig, UdpSocket};
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Datagrams moved per `recvmmsg`/`sendmmsg` call (the platform's maximum).
const BATCH: usize = 64;
/// Socket token of the node's UDP socket in the reactor.
const SOCKET: Token = Token(0);

/// Starts a [`Node`]: its name, its UDP address, the peers it knows, and its options.
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    id: String,
    bind: SocketAddr,
    peers: Vec<(String, SocketAddr)>,
    config: NodeConfig,
    recv_buffer: Option<usize>,
    send_buffer: Option<usize>,
    linger: Duration,
}

impl NodeBuilder {
    /// A node named `id` bound to `127.0.0.1:0` (an ephemeral port) with default options.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            peers: Vec::new(),
            config: NodeConfig::default(),
            recv_buffer: None,
            send_buffer: None,
            linger: Duration::from_secs(1),
        }
    }

    /// The UDP address to bind (port 0 picks a free port; see [`Node::local_addr`]).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Tells the node where peer `id` lives.
    pub fn peer(mut self, id: &str, addr: SocketAddr) -> Self {
        self.peers.push((id.to_string(), addr));
        self
    }

    /// Largest datagram the node sends (default 1400 bytes; up to 65507 on loopback).
    pub fn max_datagram(mut self, bytes: usize) -> Self {
        self.config.max_datagram = bytes;
        self
    }

    /// Largest message the node sends (default 1300 bytes). It is capped so that one message
    /// always fits one datagram of [`max_datagram`](Self::max_datagram) bytes.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.config.max_payload = bytes;
        self
    }

    /// Kernel receive and send buffer sizes of the UDP socket (default: the OS's).
    pub fn socket_buffers(mut self, recv: usize, send: usize) -> Self {
        self.recv_buffer = Some(recv);
        self.send_buffer = Some(send);
        self
    }

    /// How long dropping the node waits for sent messages to be acknowledged (default 1 s).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Changes any protocol option of the core (window, queue sizes, timers...).
    pub fn configure(mut self, change: impl FnOnce(&mut NodeConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Binds the socket and starts the reader thread.
    pub fn start(self) -> Result<Node> {
        let id = NodeId::new(&self.id)
            .map_err(|e| Error::InvalidArgument(format!("node id {:?}: {e}", self.id)))?;
        if self.config.max_datagram < 64 || self.config.max_datagram > 65_507 {
            return Err(Error::InvalidArgument(format!(
                "max_datagram {} is outside 64..=65507",
                self.config.max_datagram
            )));
        }
        let mut core = CoreNode::new(id.clone(), self.config.clone());
        let max_payload = core.max_payload();
        for (peer, addr) in &self.peers {
            let peer = parse_node_id(peer)?;
            core.set_peer_addr(peer, *addr).map_err(map_node_error)?;
        }
        let udp_config =
            UdpConfig { recv_buffer_size: self.recv_buffer, send_buffer_size: self.send_buffer };
        let socket = UdpSocket::bind_with(self.bind, &udp_config)?;
        let local_addr = socket.local_addr()?;
        let reactor = Reactor::new()?;
        reactor.register(&socket, SOCKET, Interest::READABLE)?;
        let shared = Arc::new(Shared {
            id,
            state: Mutex::new(State {
                core,
                local_addr,
                pending_socket: None,
                closed: false,
                delivered_waiters: 0,
                progress_waiters: 0,
            }),
            delivered: Condvar::new(),
            progress: Condvar::new(),
            flush_requested: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            waker: reactor.waker(),
            clock: Clock::new(),
            max_datagram: self.config.max_datagram,
            max_payload,
            udp_config,
        });
        let reader_shared = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name(format!("a3m-reader-{}", self.id))
            .spawn(move || Reader::new(reader_shared, reactor, socket).run())?;
        Ok(Node { shared, reader: Some(reader), linger: self.linger })
    }
}

/// A message delivered to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The node that sent it.
    pub from: NodeId,
    /// Its bytes.
    pub payload: Vec<u8>,
}

/// What [`Node::close`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReport {
    /// Messages accepted by `send` that were not acknowledged before the timeout.
    pub unacknowledged: usize,
}

/// A running node: sends and receives messages exactly once, over UDP.
///
/// `Node` is `Send + Sync`: share it between threads with `&Node` or `Arc<Node>`.
/// Dropping it closes it, waiting up to its linger time for sent messages to be acknowledged.
#[derive(Debug)]
pub struct Node {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    linger: Duration,
}

#[derive(Debug)]
struct Shared {
    id: NodeId,
    state: Mutex<State>,
    /// Signalled when new messages can be received.
    delivered: Condvar,
    /// Signalled when acknowledgements free queue space or the node closes.
    progress: Condvar,
    /// Set by application threads that queued something; cleared by the reader as it flushes.
    flush_requested: AtomicBool,
    stop: AtomicBool,
    waker: ReactorWaker,
    clock: Clock,
    max_datagram: usize,
    max_payload: usize,
    udp_config: UdpConfig,
}

#[derive(Debug)]
struct State {
    core: CoreNode,
    local_addr: SocketAddr,
    /// A socket `rebind` created, for the reader to switch to.
    pending_socket: Option<UdpSocket>,
    closed: bool,
    delivered_waiters: usize,
    progress_waiters: usize,
}

impl Node {
    /// This node's name.
    pub fn id(&self) -> &NodeId {
        &self.shared.id
    }

    /// The UDP address the node is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.state.lock().local_addr
    }

    /// Tells the node where peer `id` lives (or now lives).
    pub fn add_peer(&self, id: &str, addr: SocketAddr) -> Result<()> {
        let peer = parse_node_id(id)?;
        self.shared.state.lock().core.set_peer_addr(peer, addr).map_err(map_node_error)
    }

    /// Sends `payload` to node `peer` exactly once, blocking while the peer's queue is full.
    pub fn send_to(&self, peer: &str, payload: &[u8]) -> Result<()> {
        self.send_inner(peer, payload, None)
    }

    /// Like [`send_to`](Self::send_to), failing with [`Error::Timeout`] after `timeout`.
    pub fn send_to_timeout(&self, peer: &str, payload: &[u8], timeout: Duration) -> Result<()> {
        self.send_inner(peer, payload, Some(StdInstant::now() + timeout))
    }

    /// Like [`send_to`](Self::send_to), failing with [`Error::WouldBlock`] if the queue is full.
    pub fn try_send_to(&self, peer: &str, payload: &[u8]) -> Result<()> {
        self.send_inner(peer, payload, Some(StdInstant::now())).map_err(|e| match e {
            Error::Timeout => Error::WouldBlock,
            other => other,
        })
    }

    fn send_inner(&self, peer: &str, payload: &[u8], deadline: Option<StdInstant>) -> Result<()> {
        let peer = parse_node_id(peer)?;
        if payload.len() > self.shared.max_payload {
            return Err(Error::MessageTooLarge {
                size: payload.len(),
                max: self.shared.max_payload,
            });
        }
        let mut state = self.shared.state.lock();
        loop {
            if state.closed {
                return Err(Error::Closed);
            }
            let now = self.shared.clock.now();
            match state.core.submit(now, &peer, payload) {
                Ok(()) => break,
                Err(NodeError::QueueFull) => {
                    // The reader may not know there is work queued yet.
                    drop(state);
                    self.request_flush();
                    state = self.shared.state.lock();
                    if !wait_until(&self.shared.progress, &mut state, deadline, |s| {
                        &mut s.progress_waiters
                    }) {
                        return Err(Error::Timeout);
                    }
                }
                Err(e) => return Err(map_node_error_for(e, Some(&peer))),
            }
        }
        drop(state);
        self.request_flush();
        Ok(())
    }

    fn request_flush(&self) {
        if !self.shared.flush_requested.swap(true, Ordering::AcqRel) {
            // An I/O error of the eventfd can only mean the reader is gone; the next call sees
            // `closed`. Nothing accepted is lost: it stays queued in the core.
            let _ = self.shared.waker.wake();
        }
    }

    /// Receives the next message, blocking until one arrives.
    pub fn recv(&self) -> Result<Delivery> {
        self.recv_inner(None)
    }

    /// Receives the next message, failing with [`Error::Timeout`] after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Delivery> {
        self.recv_inner(Some(StdInstant::now() + timeout))
    }

    /// Receives a message if one is waiting, else fails with [`Error::WouldBlock`].
    pub fn try_recv(&self) -> Result<Delivery> {
        self.recv_inner(Some(StdInstant::now())).map_err(|e| match e {
            Error::Timeout => Error::WouldBlock,
            other => other,
        })
    }

    /// Receives the next message into `buf` (at least the configured maximum payload long),
    /// waiting up to `timeout` (`None`: forever). Returns the sender and the length.
    pub fn recv_into(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<(NodeId, usize)> {
        let deadline = timeout.map(|t| StdInstant::now() + t);
        let mut state = self.shared.state.lock();
        loop {
            match state.core.poll_delivery(buf).map_err(map_node_error)? {
                Some(d) => {
                    drop(state);
                    // Taking a message frees inbox room: the reader may now accept tokens.
                    self.request_flush();
                    return Ok((d.from, d.len));
                }
                None if state.closed => return Err(Error::Closed),
                None => {
                    if !wait_until(&self.shared.delivered, &mut state, deadline, |s| {
                        &mut s.delivered_waiters
                    }) {
                        return Err(Error::Timeout);
                    }
                }
            }
        }
    }

    fn recv_inner(&self, deadline: Option<StdInstant>) -> Result<Delivery> {
        let mut buf = vec![0u8; self.shared.max_payload];
        loop {
            let timeout = deadline.map(|d| d.saturating_duration_since(StdInstant::now()));
            match self.recv_into(&mut buf, timeout) {
                Ok((from, len)) => {
                    buf.truncate(len);
                    return Ok(Delivery { from, payload: buf });
                }
                // A peer configured for larger messages than ours sent one: make room.
                Err(Error::BufferTooSmall { needed }) => buf.resize(needed, 0),
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the node to a new UDP address mid-stream (a roaming device changing network).
    ///
    /// Peers learn the new address from the next datagram they receive; nothing in flight is
    /// lost or duplicated. Returns the new local address.
    pub fn rebind(&self, addr: SocketAddr) -> Result<SocketAddr> {
        let socket = UdpSocket::bind_with(addr, &self.shared.udp_config)?;
        let new_addr = socket.local_addr()?;
        {
            let mut state = self.shared.state.lock();
            if state.closed {
                return Err(Error::Closed);
            }
            state.pending_socket = Some(socket);
            state.local_addr = new_addr;
        }
        self.shared.waker.wake()?;
        Ok(new_addr)
    }

    /// Messages accepted by `send` and not yet acknowledged by their receivers.
    pub fn unacknowledged(&self) -> usize {
        self.shared.state.lock().core.unacknowledged()
    }

    /// A snapshot of the node's protocol counters.
    pub fn stats(&self) -> NodeStats {
        self.shared.state.lock().core.stats().clone()
    }

    /// Closes the node: waits up to `timeout` until every sent message is acknowledged, then
    /// stops the reader thread. Reports how many messages were still unacknowledged.
    pub fn close(mut self, timeout: Duration) -> Result<CloseReport> {
        self.shutdown(timeout)
    }

    fn shutdown(&mut self, timeout: Duration) -> Result<CloseReport> {
        let Some(reader) = self.reader.take() else {
            return Ok(CloseReport { unacknowledged: 0 });
        };
        let deadline = StdInstant::now() + timeout;
        let mut state = self.shared.state.lock();
        while state.core.unacknowledged() > 0 {
            drop(state);
            self.request_flush();
            state = self.shared.state.lock();
            if state.core.unacknowledged() == 0 {
                break;
            }
            if !wait_until(&self.shared.progress, &mut state, Some(deadline), |s| {
                &mut s.progress_waiters
            }) {
                break;
            }
        }
        let unacknowledged = state.core.unacknowledged();
        state.closed = true;
        drop(state);
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.waker.wake();
        self.shared.delivered.notify_all();
        self.shared.progress.notify_all();
        reader.join().map_err(|_| Error::Io(std::io::Error::other("reader thread panicked")))?;
        Ok(CloseReport { unacknowledged })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.shutdown(self.linger);
    }
}

/// Waits on `cv` until signalled or `deadline`; false if the deadline passed.
/// `waiters` counts sleepers so the reader signals only when someone waits.
fn wait_until(
    cv: &Condvar,
    state: &mut MutexGuard<'_, State>,
    deadline: Option<StdInstant>,
    waiters: fn(&mut State) -> &mut usize,
) -> bool {
    if let Some(d) = deadline
        && StdInstant::now() >= d
    {
        return false;
    }
    *waiters(state) += 1;
    let timed_out = match deadline {
        Some(d) => cv.wait_until(state, d).timed_out(),
        None => {
            cv.wait(state);
            false
        }
    };
    *waiters(state) -= 1;
    !timed_out || deadline.is_none()
}

fn parse_node_id(id: &str) -> Result<NodeId> {
    NodeId::new(id).map_err(|e| Error::InvalidArgument(format!("node id {id:?}: {e}")))
}

/// Maps a core error; `peer` names the node the call was about, if any.
fn map_node_error_for(e: NodeError, peer: Option<&NodeId>) -> Error {
    match e {
        NodeError::UnknownPeer => {
            Error::UnknownPeer(peer.map(|p| p.as_str().to_string()).unwrap_or_default())
        }
        NodeError::PayloadTooLarge { len, max } => Error::MessageTooLarge { size: len, max },
        NodeError::BufferTooSmall { needed } => Error::BufferTooSmall { needed },
        other => Error::InvalidArgument(other.to_string()),
    }
}

fn map_node_error(e: NodeError) -> Error {
    map_node_error_for(e, None)
}

/// The reader thread's own state: the reactor, the socket and reusable batch buffers.
struct Reader {
    shared: Arc<Shared>,
    reactor: Reactor,
    socket: UdpSocket,
    events: Events,
    recv: RecvBatch,
    send: SendBatch,
    watching_writable: bool,
}

impl Reader {
    fn new(shared: Arc<Shared>, reactor: Reactor, socket: UdpSocket) -> Self {
        let max = shared.max_datagram;
        Self {
            shared,
            reactor,
            socket,
            events: Events::with_capacity(16),
            recv: RecvBatch::new(BATCH, 65_536),
            send: SendBatch::new(BATCH, max),
            watching_writable: false,
        }
    }

    fn run(mut self) {
        while !self.shared.stop.load(Ordering::Acquire) {
            if let Err(e) = self.turn() {
                // A failing reactor or socket leaves the node unable to make progress: close it
                // so blocked callers get `Closed` instead of hanging.
                eprintln!("a3m node {}: reader stopped: {e}", self.shared.id);
                let mut state = self.shared.state.lock();
                state.closed = true;
                drop(state);
                self.shared.delivered.notify_all();
                self.shared.progress.notify_all();
                return;
            }
        }
    }

    /// One round: wait for something to do, then receive, run timers, and send.
    fn turn(&mut self) -> std::io::Result<()> {
        self.reactor.wait(&mut self.events, None)?;
        let readable = self.events.iter().any(|e| matches!(e, Event::Readable(_)));
        self.switch_socket_if_rebound()?;
        if readable {
            self.receive()?;
        }
        self.run_timers_and_send()
    }

    fn switch_socket_if_rebound(&mut self) -> std::io::Result<()> {
        let pending = self.shared.state.lock().pending_socket.take();
        if let Some(socket) = pending {
            self.reactor.deregister(&self.socket)?;
            self.reactor.register(&socket, SOCKET, Interest::READABLE)?;
            self.socket = socket;
            self.watching_writable = false;
            // Datagrams still queued for the old socket go out through the new one; peers are
            // told the new address at once instead of waiting for our next datagram.
            let now = self.shared.clock.now();
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
            let now = self.shared.clock.now();
            let mut state = self.shared.state.lock();
            let before = state.core.unacknowledged();
            for datagram in self.recv.iter() {
                // A truncated datagram cannot parse; the core counts it as malformed.
                state.core.handle_datagram(now, datagram.from, datagram.data);
            }
            let acked = state.core.unacknowledged() < before;
            self.notify(&mut state, acked);
            drop(state);
            if n < self.recv.capacity() {
                return Ok(());
            }
        }
    }

    /// Runs due timers and sends everything the core has to send, batch by batch.
    fn run_timers_and_send(&mut self) -> std::io::Result<()> {
        self.shared.flush_requested.store(false, Ordering::Release);
        loop {
            if !self.flush_blocked_batch()? {
                // The kernel buffer is full: wait for writability before asking for more.
                return Ok(());
            }
            let now = self.shared.clock.now();
            let mut state = self.shared.state.lock();
            if state.core.poll_timeout().is_some_and(|t| t <= now) {
                state.core.handle_timeout(now);
            }
            while let Some(slot) = self.send.next_slot() {
                match state.core.poll_transmit(now, slot) {
                    Some((to, len)) => self.send.commit(to, len),
                    None => break,
                }
            }
            let batch_full = self.send.is_full();
            let deadline = state.core.poll_timeout();
            let progress = state.core.unacknowledged() == 0;
            self.notify(&mut state, progress);
            drop(state);
            if !self.flush_blocked_batch()? {
                return Ok(());
            }
            if !batch_full {
                let deadline = deadline.and_then(|d| self.shared.clock.to_std(d));
                return self.reactor.set_deadline(deadline);
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

    /// Wakes receivers if messages wait, and senders/closers if acks freed room.
    fn notify(&self, state: &mut MutexGuard<'_, State>, progress: bool) {
        if state.delivered_waiters > 0 && state.core.has_delivery() {
            self.shared.delivered.notify_all();
        }
        if state.progress_waiters > 0 && progress {
            self.shared.progress.notify_all();
        }
    }
}
