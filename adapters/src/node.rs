//! A node: one a3m instance with its UDP socket, its reader thread and its sockets.
//!
//! The protocol lives in the sans-I/O core ([`a3m_core::node::Node`], the exactly-once
//! transport, and [`a3m_core::socket::SocketLayer`], the sockets on top of it); this module
//! starts the runtime around them ([`crate::runtime`], the reader thread) and hands out
//! [`Socket`]s.
//!
//! Below the sockets, a node also offers the transport itself: a raw **datagram service**
//! between nodes ([`Node::send_to`], [`Node::recv`]) that delivers each payload exactly once,
//! in no particular order, without links or flow control. It is the layer the sockets stand
//! on, kept for tools that measure or test the transport.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as StdInstant};

use a3m_core::id::{NodeId, SocketId};
use a3m_core::node::{Node as CoreNode, NodeConfig, NodeError, NodeStats, Refusal};
use a3m_core::seal::{Aead, Psk, SealConfig};
use a3m_core::socket::{LayerConfig, LayerStats, Protocol, Pull, Push, SocketError, SocketLayer};
use a3m_platform::parker::StdClock;
use a3m_platform::reactor::{Clock, Interest, Reactor};
use a3m_platform::udp::{UdpConfig, UdpSocket};
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::options::SocketOptions;
use crate::reader::{Reader, SOCKET};
use crate::runtime::{MESSAGE_OVERHEAD, RAW_DATAGRAM, Shared, State};
use crate::socket::{Lifecycle, Socket, check_supported, parse_node_id, parse_tag};

/// Starts a [`Node`]: its name, its UDP address, the peers it knows, and its options.
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    id: String,
    bind: SocketAddr,
    peers: Vec<(String, SocketAddr)>,
    config: NodeConfig,
    layer: LayerConfig,
    recv_buffer: Option<usize>,
    send_buffer: Option<usize>,
    linger: Duration,
    spin: Duration,
    psk: Option<Psk>,
    aead: Option<Aead>,
    epoch: Option<u64>,
}

/// How long a std node holds an acknowledgement back for a reply to carry it.
const DEFAULT_ACK_DELAY: Duration = Duration::from_micros(500);
/// Largest datagram for which the node's socket uses UDP GSO/GRO (Linux).
const OFFLOAD_MAX_DATAGRAM: usize = 16 * 1024;

/// How long the reader and blocking socket calls spin before they block, by default.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// The longest spin [`NodeBuilder::spin`] accepts.
const MAX_SPIN: Duration = Duration::from_millis(10);

impl NodeBuilder {
    /// A node named `id` bound to `127.0.0.1:0` (an ephemeral port) with default options.
    /// The transport's options are [`NodeConfig`]'s defaults except
    /// [`NodeConfig::ack_delay`], 500 µs here, so that a reply carries the acknowledgement of
    /// its request (change it with [`NodeBuilder::configure`]).
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            peers: Vec::new(),
            // Replies carry the acknowledgements of requests (see `NodeConfig::ack_delay`).
            config: NodeConfig { ack_delay: DEFAULT_ACK_DELAY, ..NodeConfig::default() },
            layer: LayerConfig { max_payload: usize::MAX, ..LayerConfig::DEFAULT },
            recv_buffer: None,
            send_buffer: None,
            linger: Duration::from_secs(1),
            spin: DEFAULT_SPIN,
            psk: None,
            aead: None,
            epoch: None,
        }
    }

    /// Seals every datagram with this 32-byte pre-shared key (the same on every node of
    /// the system) and refuses plaintext ones: authenticated encryption, replay protection,
    /// and address changes only from authenticated peers (see [`a3m_core::seal`]). Nodes
    /// without it, or with another key, cannot talk to this one: their datagrams are counted
    /// ([`NodeStats::plaintext_refused`], [`NodeStats::sealed_unknown_key`]...) and the last
    /// refusal is in [`Node::last_refusal`] and on standard error. Sealing costs
    /// [`a3m_core::wire::SEAL_OVERHEAD`] bytes per datagram.
    pub fn psk(mut self, key: [u8; 32]) -> Self {
        self.psk = Some(Psk::new(key));
        self
    }

    /// [`NodeBuilder::psk`] with the key read from a key file (see [`crate::keyfile`]: 64
    /// hex digits or base64; refused if group or others may read it).
    pub fn psk_file(self, path: impl AsRef<std::path::Path>) -> Result<Self> {
        let key = crate::keyfile::read_key_file(path.as_ref())?;
        Ok(self.psk(key))
    }

    /// The AEAD this node seals with (default: AES-256-GCM on x86-64 processors with AES-NI
    /// and PCLMULQDQ, else ChaCha20-Poly1305). Receivers open either, whatever they seal
    /// with themselves.
    pub fn aead(mut self, aead: Aead) -> Self {
        self.aead = Some(aead);
        self
    }

    /// The sealing epoch of this start (default: the wall clock in microseconds). It should
    /// grow from one start of a node to the next: peers hold an older one for a replayed
    /// capture until a challenge proves it live, about 250 ms and a round trip after the
    /// node's previous start fell silent (see [`a3m_core::seal::SealConfig::epoch`]). A boot
    /// counter kept on disk is a good epoch for a machine whose clock may go back.
    pub fn seal_epoch(mut self, epoch: u64) -> Self {
        self.epoch = Some(epoch);
        self
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

    /// Largest socket message, in bytes (default 16 MiB; at least 1): larger sends fail
    /// with [`Error::MessageTooLarge`], and a socket drops (and counts,
    /// [`LayerStats::oversized`]) a larger message arriving from a peer that allows more,
    /// so give the nodes of a system the same limit. [`Socket::max_message`] tells it.
    ///
    /// A message need not fit a datagram: one longer than the transport payload less the
    /// 82-byte message header (1,218 bytes with the default
    /// [`max_datagram`](Self::max_datagram)) travels as several DATA messages on its link,
    /// one credit each, and is handed to the receiver whole, once, or not at all (see
    /// [`Socket::send`]). A receiving link holds at most one message of this size being
    /// reassembled or waiting, plus its capacity's worth of datagram-sized fragments. Raw
    /// datagrams ([`Node::send_to`]) still fit one transport payload
    /// ([`Node::max_datagram_payload`]).
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.layer.max_payload = bytes;
        self
    }

    /// Kernel receive and send buffer sizes of the UDP socket (default: the OS's).
    pub fn socket_buffers(mut self, recv: usize, send: usize) -> Self {
        self.recv_buffer = Some(recv);
        self.send_buffer = Some(send);
        self
    }

    /// How long dropping the node waits for its sockets to finish unlinking and for sent
    /// messages to be acknowledged (default 1 s).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The longest the node's reader thread and its blocking socket calls keep polling
    /// before they block (default [`DEFAULT_SPIN`], 50 µs; at most 10 ms). They poll at most
    /// 20 times, yielding the processor in between, so on an idle processor the spin ends
    /// after 20 polls (about 10–20 µs) whatever this says; it bounds the spin when other
    /// threads take the processor meanwhile. In a stream or a request/reply exchange the
    /// next datagram, credit or message is usually that close, and finding it so saves a
    /// sleep and a wake-up on both sides (`ci/bench.sh` on a 2-core machine: loopback round
    /// trips 80 → 22 µs, RPC round trips ×3). `Duration::ZERO` blocks at once, for the
    /// least processor use when traffic is sparse.
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Changes any option of the exactly-once transport (window, queue sizes, timers...).
    pub fn configure(mut self, change: impl FnOnce(&mut NodeConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Changes the socket layer's limits (sockets per node, buffered events...). Its
    /// `max_payload` is capped to what the transport can carry.
    pub fn configure_sockets(mut self, change: impl FnOnce(&mut LayerConfig)) -> Self {
        change(&mut self.layer);
        self
    }

    /// Binds the socket and starts the reader thread.
    pub fn start(self) -> Result<Node> {
        let id = parse_node_id(&self.id)?;
        if self.config.max_datagram < 64 || self.config.max_datagram > 65_507 {
            return Err(Error::InvalidArgument(format!(
                "max_datagram {} is outside 64..=65507",
                self.config.max_datagram
            )));
        }
        if self.spin > MAX_SPIN {
            return Err(Error::InvalidArgument(format!(
                "spin {:?} is longer than {MAX_SPIN:?}",
                self.spin
            )));
        }
        let mut config = self.config.clone();
        if config.initial_clock == NodeConfig::default().initial_clock {
            config.initial_clock = initial_clock()?;
        }
        let mut core = CoreNode::new(id.clone(), config);
        let mut secret = [0u8; 32];
        crate::keyfile::os_random(&mut secret)?;
        core.set_path_secret(secret);
        if let Some(psk) = &self.psk {
            let epoch = self.epoch.unwrap_or_else(wall_clock_micros);
            let aead = self.aead.unwrap_or_else(default_aead);
            core.set_seal(SealConfig { psk: psk.clone(), epoch, aead });
        }
        let max_payload = core.max_payload();
        let Some(max_fragment) = max_payload.checked_sub(MESSAGE_OVERHEAD).filter(|&m| m > 0)
        else {
            return Err(Error::InvalidArgument(format!(
                "the transport payload of {max_payload} bytes leaves no room for the \
                 {MESSAGE_OVERHEAD}-byte socket message header"
            )));
        };
        // `usize::MAX`, what `new` starts with, stands for the default.
        let max_message = match self.layer.max_payload {
            usize::MAX => LayerConfig::DEFAULT.max_payload,
            0 => return Err(Error::InvalidArgument("max_message 0 is below 1 byte".into())),
            bytes => bytes,
        };
        // Fragments as large as one transport payload allows.
        let layer_config = LayerConfig { max_payload: max_message, max_fragment, ..self.layer };
        for (peer, addr) in &self.peers {
            let peer = parse_node_id(peer)?;
            core.set_peer_addr(peer, *addr).map_err(map_node_error)?;
        }
        let udp_config = UdpConfig {
            recv_buffer_size: self.recv_buffer,
            send_buffer_size: self.send_buffer,
            // Segmentation offload is for path-MTU-sized datagrams (see `UdpConfig`).
            no_offload: self.config.max_datagram > OFFLOAD_MAX_DATAGRAM,
        };
        let socket = Arc::new(UdpSocket::bind_with(self.bind, &udp_config)?);
        let local_addr = socket.local_addr()?;
        let reactor = Reactor::new()?;
        reactor.register(&socket, SOCKET, Interest::READABLE)?;
        let layer = SocketLayer::new(id.clone(), layer_config);
        // The process clock's epoch: deadlines of blocking calls (taken by the thread
        // parker on that clock) and of the core are on one scale.
        let clock = Clock::with_epoch(StdClock::process().epoch());
        let state = State::new(core, layer, local_addr, Arc::clone(&socket), clock);
        let shared = Arc::new(Shared {
            id,
            state: Mutex::new(state),
            delivered: Condvar::new(),
            progress: Condvar::new(),
            flush_requested: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            waker: reactor.waker(),
            clock,
            latest_micros: AtomicU64::new(0),
            max_datagram: self.config.max_datagram,
            spin: self.spin,
            max_raw: max_payload - 1,
            udp_config,
        });
        let reader_shared = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name(format!("a3m-reader-{}", self.id))
            .spawn(move || Reader::new(reader_shared, reactor, socket).run())?;
        Ok(Node { shared, reader: Some(reader), linger: self.linger })
    }
}

/// A raw datagram delivered to this node ([`Node::recv`]).
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
    /// Messages (socket messages and raw datagrams) accepted and not acknowledged by their
    /// receivers before the timeout.
    pub unacknowledged: usize,
    /// Sockets whose links had not all finished unlinking before the timeout.
    pub sockets_open: usize,
}

/// A running node: its sockets exchange messages exactly once, over UDP.
///
/// ```
/// use std::time::Duration;
/// let b = a3m::NodeBuilder::new("B").start()?;
/// let a = a3m::NodeBuilder::new("A").peer("B", b.local_addr()).start()?;
/// let sink = b.pull("sink")?;
/// let source = a.push("source")?;
/// source.link("B/sink")?;
/// source.send(b"hello")?;
/// assert_eq!(sink.recv_timeout(Duration::from_secs(5))?, b"hello");
/// # Ok::<(), a3m::Error>(())
/// ```
///
/// `Node` is `Send + Sync`: share it between threads with `&Node` or `Arc<Node>`. Dropping
/// it closes it (see [`Node::close`]), waiting up to its linger time.
#[derive(Debug)]
pub struct Node {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    linger: Duration,
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

    /// Tells the node where peer `id` lives (or now lives). Peers that contact this node
    /// first are learned from their datagrams.
    pub fn add_peer(&self, id: &str, addr: SocketAddr) -> Result<()> {
        let peer = parse_node_id(id)?;
        self.shared.state.lock().core.set_peer_addr(peer, addr).map_err(map_node_error)
    }

    // ----- sockets -----

    /// Creates a socket of any type (a built-in one such as [`crate::Push`], or one of
    /// yours implementing [`Protocol`]) with default options. `tag` names it on this node:
    /// peers link to `"node/tag"`.
    pub fn socket(&self, tag: &str, protocol: impl Protocol + 'static) -> Result<Socket> {
        self.socket_with(tag, Box::new(protocol), SocketOptions::new())
    }

    /// Creates a socket with the given options. Fails with [`Error::Unsupported`] if they
    /// set an option the socket's type does not use (see the table in the crate docs).
    pub fn socket_with(
        &self,
        tag: &str,
        protocol: Box<dyn Protocol>,
        options: SocketOptions,
    ) -> Result<Socket> {
        let tag = parse_tag(tag)?;
        let options = options.to_core()?;
        check_supported(&*protocol, &a3m_core::socket::SocketOptions::DEFAULT, &options)?;
        let mut state = self.lock_open()?;
        let max = state.layer.config().max_payload;
        if protocol.metadata().len() > max {
            return Err(Error::InvalidArgument(format!(
                "the {} protocol's metadata ({} bytes) exceeds {max} bytes",
                protocol.name(),
                protocol.metadata().len()
            )));
        }
        let key =
            state.layer.create_socket_with(tag.clone(), protocol, options).map_err(
                |e| match e {
                    SocketError::TagInUse => {
                        Error::InvalidArgument(format!("a socket with tag {tag} exists"))
                    }
                    SocketError::TooManySockets => Error::LimitReached(format!(
                        "{} sockets on node {}",
                        state.layer.config().max_sockets,
                        self.id()
                    )),
                    other => Error::InvalidArgument(other.to_string()),
                },
            )?;
        let cell = state.add_socket(key, SocketId::new(self.id().clone(), tag));
        drop(state);
        Ok(Socket::new(Arc::clone(&self.shared), cell))
    }

    /// Creates a push socket: it sends each message to one of its links in turn (those
    /// with a credit), never receives; it links with pull sockets.
    pub fn push(&self, tag: &str) -> Result<Socket> {
        self.socket(tag, Push::new())
    }

    /// Creates a pull socket: it receives from its links in turn, each link in order,
    /// never sends; it links with push sockets.
    pub fn pull(&self, tag: &str) -> Result<Socket> {
        self.socket(tag, Pull::new())
    }

    /// Another handle of this node's open socket tagged `tag`, or `None` if there is none
    /// (or it is closing). The socket closes when its last handle is dropped.
    pub fn socket_by_tag(&self, tag: &str) -> Result<Option<Socket>> {
        let tag = parse_tag(tag)?;
        let state = self.lock_open()?;
        let cell = state.layer.socket_by_tag(&tag).and_then(|key| state.socket_cell(key));
        drop(state);
        Ok(cell.map(|cell| Socket::new(Arc::clone(&self.shared), cell)))
    }

    /// Whether the node is open, closing ([`Node::close`] or a drop is under way) or
    /// closed (also when its reader thread stopped on an I/O error).
    pub fn state(&self) -> Lifecycle {
        let state = self.shared.state.lock();
        if state.closed {
            Lifecycle::Closed
        } else if state.closing {
            Lifecycle::Closing
        } else {
            Lifecycle::Open
        }
    }

    /// Socket messages the transport refused for good and that were dropped: their peer
    /// node's address was unknown (or forgotten), or a control message was too large. Not
    /// zero means a link may never finish its handshake or unlinking.
    pub fn undeliverable_messages(&self) -> u64 {
        self.shared.state.lock().dropped_outgoing
    }

    /// A snapshot of the socket layer's counters.
    pub fn socket_stats(&self) -> LayerStats {
        *self.shared.state.lock().layer.stats()
    }

    fn lock_open(&self) -> Result<MutexGuard<'_, State>> {
        let state = self.shared.state.lock();
        if state.closed { Err(Error::Closed) } else { Ok(state) }
    }

    // ----- the raw datagram service -----

    /// Largest payload of [`Node::send_to`].
    pub fn max_datagram_payload(&self) -> usize {
        self.shared.max_raw
    }

    /// Sends a raw datagram to node `peer`, delivered exactly once (in no particular order
    /// relative to others), blocking while the peer's queue is full. This is the transport
    /// under the sockets; applications normally use [`Socket`]s.
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
        if payload.len() > self.shared.max_raw {
            return Err(Error::MessageTooLarge { size: payload.len(), max: self.shared.max_raw });
        }
        let mut state = self.shared.state.lock();
        loop {
            if state.closed {
                return Err(Error::Closed);
            }
            let now = self.shared.now();
            let result = {
                let s = &mut *state;
                s.raw_out.clear();
                s.raw_out.push(RAW_DATAGRAM);
                s.raw_out.extend_from_slice(payload);
                s.core.submit(now, &peer, &s.raw_out)
            };
            match result {
                Ok(()) => break,
                Err(NodeError::QueueFull) => {}
                Err(e) => return Err(map_node_error_for(e, Some(&peer))),
            }
            // The reader may not know there is work queued yet.
            drop(state);
            self.shared.request_flush();
            state = self.shared.state.lock();
            if !wait_until(&self.shared.progress, &mut state, deadline, |s| &mut s.progress_waiters)
            {
                return Err(Error::Timeout);
            }
        }
        drop(state);
        self.shared.request_flush();
        Ok(())
    }

    /// Receives the next raw datagram, blocking until one arrives.
    pub fn recv(&self) -> Result<Delivery> {
        self.recv_inner(None)
    }

    /// Receives the next raw datagram, failing with [`Error::Timeout`] after `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Delivery> {
        self.recv_inner(Some(StdInstant::now() + timeout))
    }

    /// Receives a raw datagram if one is waiting, else fails with [`Error::WouldBlock`].
    pub fn try_recv(&self) -> Result<Delivery> {
        self.recv_inner(Some(StdInstant::now())).map_err(|e| match e {
            Error::Timeout => Error::WouldBlock,
            other => other,
        })
    }

    /// Receives the next raw datagram into `buf` (at least
    /// [`max_datagram_payload`](Self::max_datagram_payload) long), waiting up to `timeout`
    /// (`None`: forever). Returns the sender and the length.
    pub fn recv_into(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<(NodeId, usize)> {
        let deadline = timeout.map(|t| StdInstant::now() + t);
        let mut state = self.shared.state.lock();
        loop {
            match state.take_raw_into(buf) {
                Ok(Some((from, len))) => {
                    // The raw inbox had been full: the reader may now take more deliveries.
                    let more = state.deliveries_waiting();
                    drop(state);
                    if more {
                        self.shared.request_flush();
                    }
                    return Ok((from, len));
                }
                Err(needed) => return Err(Error::BufferTooSmall { needed }),
                Ok(None) if state.closed => return Err(Error::Closed),
                Ok(None) => {
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
        let mut buf = vec![0u8; self.shared.max_raw];
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

    // ----- the node as a whole -----

    /// Moves the node to a new UDP address mid-stream (a roaming device changing network).
    ///
    /// Peers learn the new address from the next datagram they receive; nothing in flight is
    /// lost or duplicated. Returns the new local address.
    pub fn rebind(&self, addr: SocketAddr) -> Result<SocketAddr> {
        let socket = UdpSocket::bind_with(addr, &self.shared.udp_config)?;
        let new_addr = socket.local_addr()?;
        {
            let mut state = self.lock_open()?;
            state.pending_socket = Some(socket);
            state.local_addr = new_addr;
        }
        self.shared.waker.wake()?;
        Ok(new_addr)
    }

    /// Messages (socket messages and raw datagrams) accepted and not yet acknowledged by
    /// their receivers.
    pub fn unacknowledged(&self) -> usize {
        self.shared.state.lock().unacknowledged()
    }

    /// A snapshot of the transport's counters.
    pub fn stats(&self) -> NodeStats {
        self.shared.state.lock().core.stats().clone()
    }

    /// True if this node seals its datagrams ([`NodeBuilder::psk`]).
    pub fn is_sealed(&self) -> bool {
        self.shared.state.lock().core.is_sealed()
    }

    /// The last datagram refused because this node and a peer disagree on sealing (one has
    /// a key and the other not, or their keys differ). When a link does not come up, this
    /// says why; the reader thread also prints each new refusal on standard error.
    pub fn last_refusal(&self) -> Option<Refusal> {
        self.shared.state.lock().core.last_refusal().cloned()
    }

    /// Switches to a new pre-shared key ([`NodeBuilder::psk`]): datagrams are sealed with
    /// `key` from now on, and ones sealed with the previous key are still accepted for
    /// `grace`. Rotate every node within that time; what a node sends to one that has not
    /// rotated yet is held and retransmitted, not lost. Fails on a node without a key, or
    /// if the new key has the same one-byte id as the current one (1 key in 256: draw another).
    pub fn rotate_psk(&self, key: [u8; 32], grace: Duration) -> Result<()> {
        let now = self.shared.now();
        let mut state = self.lock_open()?;
        if !state.core.is_sealed() {
            return Err(Error::InvalidArgument("this node has no key to rotate".into()));
        }
        if !state.core.rotate_psk(now, &Psk::new(key), grace) {
            return Err(Error::InvalidArgument(
                "the new key has the same id as the current one; draw another".into(),
            ));
        }
        Ok(())
    }

    /// Closes the node: closes every socket still open (their links unlink once what was
    /// sent on them has been received) and waits, up to `timeout` in all, for the sockets to
    /// finish and for every sent message to be acknowledged; then stops the reader thread.
    /// Socket handles still around fail with [`Error::Closed`] from then on.
    pub fn close(mut self, timeout: Duration) -> Result<CloseReport> {
        self.shutdown(timeout)
    }

    fn shutdown(&mut self, timeout: Duration) -> Result<CloseReport> {
        let Some(reader) = self.reader.take() else {
            return Ok(CloseReport { unacknowledged: 0, sockets_open: 0 });
        };
        let deadline = StdInstant::now() + timeout;
        let mut state = self.shared.state.lock();
        state.closing = true;
        let now = self.shared.now();
        // From now on acknowledge at once, and make sure peers got our last ACKs: they must
        // not retransmit to us after we are gone.
        state.core.begin_close(now);
        for key in state.socket_keys() {
            if !state.layer.is_closing(key) {
                // Cannot fail: the socket is open.
                let _ = state.layer.close(now, key);
            }
        }
        self.shared.settle(&mut state, now);
        let done = |s: &State| {
            s.socket_count() == 0 && s.unacknowledged() == 0 && s.core.receives_settled()
        };
        while !done(&state) {
            drop(state);
            self.shared.request_flush();
            state = self.shared.state.lock();
            if done(&state) {
                break;
            }
            if !wait_until(&self.shared.progress, &mut state, Some(deadline), |s| {
                &mut s.progress_waiters
            }) {
                break;
            }
        }
        let report = CloseReport {
            unacknowledged: state.unacknowledged(),
            sockets_open: state.socket_count(),
        };
        // The last ACKs (for what arrived while waiting) leave before the reader stops.
        let now = self.shared.precise_now();
        let mut buf = vec![0u8; self.shared.max_datagram];
        while let Some((to, len)) = state.core.poll_transmit(now, &mut buf) {
            let _ = state.tx_socket.send_to(&buf[..len], to);
        }
        state.close_all();
        drop(state);
        self.shared.stop.store(true, std::sync::atomic::Ordering::Release);
        let _ = self.shared.waker.wake();
        self.shared.delivered.notify_all();
        self.shared.progress.notify_all();
        reader.join().map_err(|_| Error::Io(std::io::Error::other("reader thread panicked")))?;
        Ok(report)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.shutdown(self.linger);
    }
}

/// Exactly-once clock values per microsecond of wall-clock time (see [`initial_clock`]).
const CLOCK_PER_MICROSECOND: u64 = 64;
/// 2026-01-01T00:00:00Z in seconds since the Unix epoch: where [`initial_clock`] counts from.
const CLOCK_EPOCH_SECS: u64 = 1_767_225_600;

/// The exactly-once clock of a start that does not persist it: 64 per microsecond of wall
/// clock since 2026, so that every start begins above every value its previous starts used.
///
/// The exactly-once layer relies on that (`a3m_core::eo`, "Restarts"): a start whose clock is
/// below its previous start's can be taken for it by a peer, and a late datagram of the dead
/// start (a request, a grant, a status still in flight) can then stall the new one or make
/// its peer repeat what it delivered. A node moves its clock by the slots it asks for (one
/// per payload it sends, and a look-ahead of up to a quarter of the window per request) and
/// by the records it opens: far below 64 million a second. (A peer's record can push it
/// further, by up to 2^40 in plaintext, where anyone can forge one; that start's successor
/// is then a set-back start.) A wall clock before 2026 (a board without a battery-backed
/// clock, before NTP answers) gives a random value in `2^21..2^28` instead: persist the
/// clock there (`NodeConfig::initial_clock`). The values take 8 bytes on the wire where a
/// random one took 4; a run of consecutive tokens in a datagram names them once.
fn initial_clock() -> Result<u64> {
    let since = std::time::UNIX_EPOCH + Duration::from_secs(CLOCK_EPOCH_SECS);
    if let Ok(elapsed) = std::time::SystemTime::now().duration_since(since) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let clock = micros.saturating_mul(CLOCK_PER_MICROSECOND);
        if clock >= 1 << 28 {
            return Ok(clock);
        }
    }
    let mut bytes = [0u8; 8];
    crate::keyfile::os_random(&mut bytes)?;
    Ok((1 << 21) + u64::from_le_bytes(bytes) % ((1 << 28) - (1 << 21)))
}

/// Microseconds since the Unix epoch: a sealing epoch that grows from one start to the next.
fn wall_clock_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}

/// AES-256-GCM where the processor has the instructions that make it fast and constant
/// time, ChaCha20-Poly1305 elsewhere.
fn default_aead() -> Aead {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
    {
        return Aead::Aes256Gcm;
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull")
    {
        return Aead::Aes256Gcm;
    }
    Aead::ChaCha20Poly1305
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
