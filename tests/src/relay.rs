//! A UDP fault relay: sits between a client and a server endpoint and loses, duplicates,
//! reorders, delays and blacks out datagrams in both directions.
//!
//! This kernel has no `netem`, so real-process fault tests put this relay between the two
//! nodes (see `DESIGN.md`, "Safety and liveness"). It binds `listen`; every datagram that
//! arrives there comes from the *client*, and the most recent source address is the client's
//! address (so a client that moves is followed). Client datagrams go out of a second socket,
//! bound to an ephemeral port on the listen IP, to `to`; datagrams that arrive on that second
//! socket from `to` go back, out of the listen socket, to the client's latest address.
//!
//! Every fault is drawn from a seeded generator per direction, so given the seed and the order
//! in which datagrams arrive in a direction, the relay makes the same decisions:
//!
//! - `loss`: each datagram is dropped with this probability; with `burst = Some(L)` the same
//!   long-run rate comes in bursts (a two-state Gilbert-Elliott chain: in the bad state
//!   everything is dropped, a burst lasts `L` datagrams on average).
//! - `dup`: a datagram is sent twice.
//! - `reorder`: a datagram is held back and released after the next 1 to 3 datagrams of its
//!   direction, or after [`REORDER_HOLD`], whichever comes first.
//! - `delay` plus a uniform draw in `0..=jitter`, per copy (a timer heap: with jitter a later
//!   datagram may overtake an earlier one).
//! - `blackouts`: windows, measured from the start of the relay, in which everything is
//!   dropped in both directions (also datagrams delayed into the window).
//!
//! ```no_run
//! use a3m_tests::relay::{Faults, Relay, RelayConfig};
//! let config = RelayConfig {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     to: "127.0.0.1:7001".parse().unwrap(),
//!     faults: Faults { loss: 0.05, dup: 0.02, reorder: 0.05, ..Faults::none() },
//!     seed: 1,
//! };
//! let relay = Relay::bind(config).unwrap().spawn().unwrap();
//! println!("clients send to {}", relay.local_addr());
//! // ... run the endpoints ...
//! let counters = relay.stop();
//! println!("{counters}");
//! ```
//!
//! Datagrams the kernel drops before the relay reads them (full receive buffers) are not
//! seen, so not counted.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest datagram the relay carries, in bytes.
pub const MAX_DATAGRAM: usize = 65_535;

/// Longest a reordered datagram is held back when fewer than its 1 to 3 successors arrive.
pub const REORDER_HOLD: Duration = Duration::from_millis(5);

/// Longest a thread blocks before it checks whether to stop. Only the stop check: delayed and
/// held datagrams are released by the timer thread, which waits on a condition variable (a
/// futex, precise to the timer slack, ~50 µs), not by the readers' socket timeouts (which
/// Linux rounds up to whole jiffies, up to 10 ms).
const POLL: Duration = Duration::from_millis(5);

/// Parses a duration: a number with the suffix `us`, `ms` or `s` (`1.5s`, `300us`), or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if text == "0" {
        (text, 1.0)
    } else {
        return Err(format!("{text:?}: expected a number with us, ms or s"));
    };
    let value: f64 = number.parse().map_err(|_| format!("{text:?}: not a duration"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?}: not a duration"));
    }
    Duration::try_from_secs_f64(value * unit).map_err(|e| format!("{text:?}: {e}"))
}

/// A window in which the relay drops every datagram, in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackout {
    /// When the window opens, measured from the start of the relay.
    pub start: Duration,
    /// How long it lasts.
    pub duration: Duration,
}

impl Blackout {
    /// True if `elapsed` (time since the relay started) falls in the window.
    pub fn contains(&self, elapsed: Duration) -> bool {
        elapsed >= self.start && elapsed < self.start.saturating_add(self.duration)
    }

    /// When the window closes, measured from the start of the relay.
    pub fn end(&self) -> Duration {
        self.start.saturating_add(self.duration)
    }
}

impl FromStr for Blackout {
    type Err = String;

    /// Parses `DURATION@START`, e.g. `10s@3s`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (duration, start) = text
            .split_once('@')
            .ok_or_else(|| format!("blackout {text:?}: expected DURATION@START"))?;
        Ok(Blackout { start: parse_duration(start)?, duration: parse_duration(duration)? })
    }
}

impl fmt::Display for Blackout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}@{:?}", self.duration, self.start)
    }
}

/// The faults a relay injects, the same in both directions.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Probability that a datagram is dropped (0 to 1); the long-run rate when `burst` is set.
    pub loss: f64,
    /// Probability that a datagram is sent twice.
    pub dup: f64,
    /// Probability that a datagram is held back behind the next 1 to 3 of its direction.
    pub reorder: f64,
    /// Fixed delay added to every datagram.
    pub delay: Duration,
    /// Upper bound of a uniform random delay added to each copy on top of `delay`.
    pub jitter: Duration,
    /// Mean length, in datagrams, of a loss burst: `loss` is then applied by a two-state
    /// Gilbert-Elliott chain (the bad state drops everything) instead of independently.
    pub burst: Option<f64>,
    /// Windows in which everything is dropped.
    pub blackouts: Vec<Blackout>,
}

impl Faults {
    /// No faults: the relay forwards everything at once.
    pub fn none() -> Self {
        Faults {
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            burst: None,
            blackouts: Vec::new(),
        }
    }

    /// Checks that the probabilities are in `0..=1` and a burst length is at least 1.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [("loss", self.loss), ("dup", self.dup), ("reorder", self.reorder)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} {p}: expected a probability from 0 to 1"));
            }
        }
        match self.burst {
            Some(len) if !(len >= 1.0 && len.is_finite()) => {
                Err(format!("burst {len}: expected a mean burst length of at least 1"))
            }
            _ => Ok(()),
        }
    }

    /// True if `elapsed` (time since the relay started) falls in a blackout window.
    pub fn blacked_out(&self, elapsed: Duration) -> bool {
        self.blackouts.iter().any(|b| b.contains(elapsed))
    }
}

impl Default for Faults {
    fn default() -> Self {
        Self::none()
    }
}

/// Where the relay listens, where it forwards to, what it does to the traffic.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Address the client sends to (port 0: any free port, see [`Relay::local_addr`]).
    pub listen: SocketAddr,
    /// The server: where client datagrams are forwarded.
    pub to: SocketAddr,
    /// The faults, in both directions.
    pub faults: Faults,
    /// Seed of the fault decisions.
    pub seed: u64,
}

/// A direction through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (arriving at `listen`) to the server (`to`).
    Upstream,
    /// From the server back to the client.
    Downstream,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::Upstream => 0,
            Direction::Downstream => 1,
        }
    }
}

/// What happened to the datagrams of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    /// Datagrams accepted from the sender of this direction.
    pub received: u64,
    /// Datagrams sent on (duplicates included).
    pub forwarded: u64,
    /// Datagrams dropped: lost, blacked out, sent before a client was known, or whose send
    /// failed.
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Datagrams held back behind later ones.
    pub reordered: u64,
}

impl fmt::Display for DirectionCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received={} forwarded={} dropped={} duplicated={} reordered={}",
            self.received, self.forwarded, self.dropped, self.duplicated, self.reordered
        )
    }
}

/// The relay's counters, per direction, and the client it follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Client to server.
    pub upstream: DirectionCounters,
    /// Server to client.
    pub downstream: DirectionCounters,
    /// The client's latest address, once one datagram came from it.
    pub client: Option<SocketAddr>,
    /// How often the client's address changed after the first datagram.
    pub client_moves: u64,
    /// Datagrams that arrived on the server-side socket from another address than `to`
    /// (ignored).
    pub foreign: u64,
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "up: {} | down: {}", self.upstream, self.downstream)?;
        write!(f, " | client_moves={}", self.client_moves)?;
        if self.foreign > 0 {
            write!(f, " foreign={}", self.foreign)?;
        }
        Ok(())
    }
}

/// SplitMix64: a tiny, well-mixed, seeded generator (fault decisions need no more).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (always draws, so later draws do not depend on `p`).
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A uniform number in `0..=max`.
    fn upto(&mut self, max: u64) -> u64 {
        let draw = self.next_u64();
        if max == u64::MAX { draw } else { draw % (max + 1) }
    }
}

/// A datagram held back by `reorder`.
#[derive(Debug)]
struct Held {
    data: Vec<u8>,
    copies: u8,
    /// Datagrams of the same direction still to pass before it is released.
    remaining: u8,
    deadline: Instant,
}

/// A datagram waiting for its delay to pass.
#[derive(Debug)]
struct Timer {
    at: Instant,
    seq: u64,
    direction: Direction,
    data: Vec<u8>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The fault state of one direction.
#[derive(Debug)]
struct Lane {
    rng: Rng,
    /// Gilbert-Elliott state: true while in a loss burst.
    bad: bool,
    held: Vec<Held>,
    counters: DirectionCounters,
}

/// The relay's decisions, independent of sockets: `send` does the I/O.
#[derive(Debug)]
struct Engine {
    faults: Faults,
    started: Instant,
    lanes: [Lane; 2],
    timers: BinaryHeap<Reverse<Timer>>,
    seq: u64,
}

/// Sends one datagram in a direction; false if it could not be sent.
type Send<'a> = dyn FnMut(Direction, &[u8]) -> bool + 'a;

impl Engine {
    fn new(faults: Faults, seed: u64, started: Instant) -> Self {
        let lane = |stream: u64| Lane {
            // Two independent streams: each direction is deterministic given its own arrivals.
            rng: Rng::new(Rng::new(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F)).next_u64()),
            bad: false,
            held: Vec::new(),
            counters: DirectionCounters::default(),
        };
        Engine { faults, started, lanes: [lane(1), lane(2)], timers: BinaryHeap::new(), seq: 0 }
    }

    fn blacked_out(&self, now: Instant) -> bool {
        self.faults.blacked_out(now.saturating_duration_since(self.started))
    }

    /// Decides whether the next datagram of a lane is lost (independently or in bursts).
    fn lost(faults: &Faults, lane: &mut Lane) -> bool {
        let draw = lane.rng.unit();
        match faults.burst {
            None => draw < faults.loss,
            Some(len) => {
                // Leave the bad state with probability 1/len (bursts of mean length len);
                // enter it with the probability that makes the long-run bad share `loss`.
                let leave = 1.0 / len;
                let enter = if faults.loss >= 1.0 {
                    1.0
                } else {
                    (faults.loss * leave / (1.0 - faults.loss)).min(1.0)
                };
                lane.bad = if lane.bad { draw >= leave } else { draw < enter };
                lane.bad
            }
        }
    }

    /// A datagram arrived in `direction`.
    fn arrive(&mut self, direction: Direction, data: &[u8], now: Instant, send: &mut Send<'_>) {
        let blacked_out = self.blacked_out(now);
        let faults = &self.faults;
        let lane = &mut self.lanes[direction.index()];
        lane.counters.received += 1;
        // Draw every decision for every datagram, so the stream of decisions depends only on
        // the seed and the arrivals.
        let lost = Self::lost(faults, lane);
        let dup = lane.rng.chance(faults.dup);
        let reorder = lane.rng.chance(faults.reorder);
        let after = 1 + lane.rng.upto(2) as u8;
        if blacked_out || lost {
            lane.counters.dropped += 1;
            return;
        }
        let copies = if dup {
            lane.counters.duplicated += 1;
            2
        } else {
            1
        };
        if reorder {
            lane.counters.reordered += 1;
            lane.held.push(Held {
                data: data.to_vec(),
                copies,
                remaining: after,
                deadline: now + REORDER_HOLD,
            });
            return;
        }
        self.emit(direction, data, copies, now, send);
        // Held datagrams of this direction fall one further behind; release those that are
        // due, in the order they were held.
        let lane = &mut self.lanes[direction.index()];
        let mut due = Vec::new();
        lane.held.retain_mut(|h| {
            h.remaining -= 1;
            if h.remaining == 0 {
                due.push((std::mem::take(&mut h.data), h.copies));
                false
            } else {
                true
            }
        });
        for (data, copies) in due {
            self.emit(direction, &data, copies, now, send);
        }
    }

    /// Sends `copies` of a datagram now or, with a delay, through the timer heap.
    fn emit(
        &mut self,
        direction: Direction,
        data: &[u8],
        copies: u8,
        now: Instant,
        send: &mut Send<'_>,
    ) {
        for _ in 0..copies {
            let jitter = self.faults.jitter.as_nanos().min(u128::from(u64::MAX)) as u64;
            let extra =
                if jitter == 0 { 0 } else { self.lanes[direction.index()].rng.upto(jitter) };
            let delay = self.faults.delay + Duration::from_nanos(extra);
            if delay.is_zero() {
                self.send_now(direction, data, now, send);
            } else {
                self.seq += 1;
                let timer =
                    Timer { at: now + delay, seq: self.seq, direction, data: data.to_vec() };
                self.timers.push(Reverse(timer));
            }
        }
    }

    fn send_now(&mut self, direction: Direction, data: &[u8], now: Instant, send: &mut Send<'_>) {
        let blacked_out = self.blacked_out(now);
        let counters = &mut self.lanes[direction.index()].counters;
        if !blacked_out && send(direction, data) {
            counters.forwarded += 1;
        } else {
            counters.dropped += 1;
        }
    }

    /// Sends what is due: delayed datagrams and reordered ones held for too long.
    fn service(&mut self, now: Instant, send: &mut Send<'_>) {
        for direction in [Direction::Upstream, Direction::Downstream] {
            let lane = &mut self.lanes[direction.index()];
            if lane.held.iter().any(|h| h.deadline <= now) {
                let mut due = Vec::new();
                lane.held.retain_mut(|h| {
                    if h.deadline <= now {
                        due.push((std::mem::take(&mut h.data), h.copies));
                        false
                    } else {
                        true
                    }
                });
                for (data, copies) in due {
                    self.emit(direction, &data, copies, now, send);
                }
            }
        }
        while self.timers.peek().is_some_and(|t| t.0.at <= now) {
            let Some(Reverse(timer)) = self.timers.pop() else { break };
            self.send_now(timer.direction, &timer.data, now, send);
        }
    }

    /// When [`Engine::service`] next has something to do.
    fn next_wakeup(&self) -> Option<Instant> {
        let held = self.lanes.iter().flat_map(|l| l.held.iter().map(|h| h.deadline));
        held.chain(self.timers.peek().map(|t| t.0.at)).min()
    }
}

/// What the two reader threads and the timer thread share.
#[derive(Debug)]
struct Shared {
    listen: UdpSocket,
    upstream: UdpSocket,
    to: SocketAddr,
    stop: AtomicBool,
    state: Mutex<State>,
    /// Wakes the timer thread: a reader queued something due before [`State::timer_wake`],
    /// or the relay stops.
    timer: Condvar,
}

#[derive(Debug)]
struct State {
    engine: Engine,
    client: Option<SocketAddr>,
    client_moves: u64,
    foreign: u64,
    /// When the timer thread wakes by itself (`None`: only when notified, or to check for
    /// stop); a reader that queues something due earlier notifies it.
    timer_wake: Option<Instant>,
}

impl State {
    fn counters(&self) -> Counters {
        Counters {
            upstream: self.engine.lanes[0].counters,
            downstream: self.engine.lanes[1].counters,
            client: self.client,
            client_moves: self.client_moves,
            foreign: self.foreign,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a reader thread leaves the counters usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends out of the socket of `direction`; false if there is nowhere to send or it failed.
    fn sender<'a>(
        listen: &'a UdpSocket,
        upstream: &'a UdpSocket,
        to: SocketAddr,
        client: Option<SocketAddr>,
    ) -> impl FnMut(Direction, &[u8]) -> bool + 'a {
        move |direction, data| match direction {
            Direction::Upstream => upstream.send_to(data, to).is_ok(),
            Direction::Downstream => client.is_some_and(|c| listen.send_to(data, c).is_ok()),
        }
    }

    /// One reader: receives on the socket of `direction` until told to stop.
    fn run(&self, direction: Direction) {
        let socket = match direction {
            Direction::Upstream => &self.listen,
            Direction::Downstream => &self.upstream,
        };
        // Only to check for stop now and then: the timer thread releases what waits. Cannot
        // fail for a non-zero duration.
        let _ = socket.set_read_timeout(Some(POLL));
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.stop.load(Ordering::Relaxed) {
            let (len, from) = match socket.recv_from(&mut buf) {
                Ok(got) => got,
                // A timeout (check for stop), or e.g. an ICMP error reported on some systems:
                // nothing to forward.
                Err(_) => continue,
            };
            let mut state = self.lock();
            let now = Instant::now();
            match direction {
                Direction::Upstream => {
                    if state.client.is_some_and(|c| c != from) {
                        state.client_moves += 1;
                    }
                    state.client = Some(from);
                }
                Direction::Downstream if from != self.to => {
                    state.foreign += 1;
                    continue;
                }
                Direction::Downstream => {}
            }
            let mut send = Self::sender(&self.listen, &self.upstream, self.to, state.client);
            // What is already due goes out before the new arrival (the timer thread may not
            // have run yet).
            state.engine.service(now, &mut send);
            state.engine.arrive(direction, &buf[..len], now, &mut send);
            if let Some(next) = state.engine.next_wakeup()
                && state.timer_wake.is_none_or(|wake| next < wake)
            {
                state.timer_wake = Some(next);
                self.timer.notify_one();
            }
        }
    }

    /// The timer thread: releases delayed and held datagrams when they are due, until told
    /// to stop.
    fn run_timers(&self) {
        let mut state = self.lock();
        while !self.stop.load(Ordering::Relaxed) {
            let mut send = Self::sender(&self.listen, &self.upstream, self.to, state.client);
            state.engine.service(Instant::now(), &mut send);
            let next = state.engine.next_wakeup();
            state.timer_wake = next;
            let wait = match next {
                Some(at) => at.saturating_duration_since(Instant::now()).min(POLL),
                None => POLL,
            };
            if wait.is_zero() {
                continue;
            }
            state = match self.timer.wait_timeout(state, wait) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// Socket buffers the relay asks for: a burst of datagrams must wait in the kernel, not be
/// dropped there, or the relay would add loss of its own to the loss it is told to inject.
const SOCKET_BUFFER: usize = 8 << 20;

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER`]-byte buffers (as large as the system
/// allows: the kernel caps them at `net.core.rmem_max`/`wmem_max` without failing).
fn bind_with_buffers(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer only makes the relay drop more under bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A bound relay, not yet running: see [`Relay::spawn`].
#[derive(Debug)]
pub struct Relay {
    listen: UdpSocket,
    upstream: UdpSocket,
    config: RelayConfig,
}

impl Relay {
    /// Binds the listen socket and the server-side socket (an ephemeral port on the listen IP).
    pub fn bind(config: RelayConfig) -> io::Result<Relay> {
        config.faults.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listen = bind_with_buffers(config.listen)?;
        let upstream = bind_with_buffers(SocketAddr::new(config.listen.ip(), 0))?;
        Ok(Relay { listen, upstream, config })
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listen.local_addr().expect("a bound socket has an address")
    }

    /// The address the server sees the relayed datagrams come from.
    pub fn upstream_addr(&self) -> SocketAddr {
        self.upstream.local_addr().expect("a bound socket has an address")
    }

    /// Starts relaying on three threads (a reader per direction and a timer thread that
    /// releases delayed and held datagrams); the clock of the blackout windows starts now. The
    /// handle stops the relay when dropped.
    pub fn spawn(self) -> io::Result<RelayHandle> {
        let (listen_addr, upstream_addr) = (self.local_addr(), self.upstream_addr());
        let started = Instant::now();
        let shared = Arc::new(Shared {
            listen: self.listen,
            upstream: self.upstream,
            to: self.config.to,
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                engine: Engine::new(self.config.faults, self.config.seed, started),
                client: None,
                client_moves: 0,
                foreign: 0,
                timer_wake: None,
            }),
            timer: Condvar::new(),
        });
        let mut handle =
            RelayHandle { listen_addr, upstream_addr, started, shared, threads: Vec::new() };
        for (role, name) in [
            (Some(Direction::Upstream), "relay-up"),
            (Some(Direction::Downstream), "relay-down"),
            (None, "relay-timer"),
        ] {
            let runner = Arc::clone(&handle.shared);
            let thread = thread::Builder::new().name(name.into()).spawn(move || match role {
                Some(direction) => runner.run(direction),
                None => runner.run_timers(),
            })?;
            // On an error, dropping the handle stops the threads already started.
            handle.threads.push(thread);
        }
        Ok(handle)
    }
}

/// A running relay. Dropping it stops the relay (see [`RelayHandle::stop`]).
#[derive(Debug)]
pub struct RelayHandle {
    listen_addr: SocketAddr,
    upstream_addr: SocketAddr,
    started: Instant,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl RelayHandle {
    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// The address the server sees the relayed datagrams come from.
    pub fn upstream_addr(&self) -> SocketAddr {
        self.upstream_addr
    }

    /// When the relay started (the origin of the blackout windows).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters()
    }

    /// Adds a blackout window (measured from [`RelayHandle::started`]) to a running relay,
    /// e.g. one that opens now: `Blackout { start: handle.started().elapsed(), duration }`.
    pub fn add_blackout(&self, blackout: Blackout) {
        self.shared.lock().engine.faults.blackouts.push(blackout);
    }

    /// Stops the relay (datagrams still delayed or held are discarded) and returns the final
    /// counters.
    pub fn stop(mut self) -> Counters {
        self.halt();
        self.counters()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Under the lock, so the timer thread either sees `stop` or is already waiting.
        drop(self.shared.lock());
        self.shared.timer.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_durations_and_blackouts() {
        assert_eq!(parse_duration("2ms"), Ok(ms(2)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("300us"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("-1s").is_err());
        let b: Blackout = "10s@3s".parse().unwrap();
        assert_eq!(b, Blackout { start: ms(3000), duration: ms(10_000) });
        assert!(!b.contains(ms(2999)) && b.contains(ms(3000)) && !b.contains(ms(13_000)));
        assert!("10s".parse::<Blackout>().is_err());
    }

    /// Runs `n` arrivals of one direction through an engine, 1 ms apart, and returns what was
    /// sent (the first byte of each datagram) in order, after every timer fired.
    fn run_engine(faults: Faults, seed: u64, n: u8) -> (Vec<u8>, DirectionCounters) {
        let start = Instant::now();
        let mut engine = Engine::new(faults, seed, start);
        let mut out = Vec::new();
        let mut send = |_: Direction, d: &[u8]| {
            out.push(d[0]);
            true
        };
        for i in 0..n {
            let now = start + ms(u64::from(i));
            engine.service(now, &mut send);
            engine.arrive(Direction::Upstream, &[i], now, &mut send);
        }
        engine.service(start + ms(10_000), &mut send);
        let counters = engine.lanes[0].counters;
        (out, counters)
    }

    #[test]
    fn faults_are_deterministic_per_seed_and_counted() {
        let faults = Faults { loss: 0.2, dup: 0.1, reorder: 0.2, jitter: ms(3), ..Faults::none() };
        let (a, ca) = run_engine(faults.clone(), 7, 200);
        let (b, cb) = run_engine(faults.clone(), 7, 200);
        let (c, _) = run_engine(faults, 8, 200);
        assert_eq!((&a, ca), (&b, cb));
        assert_ne!(a, c);
        assert_eq!(ca.received, 200);
        assert_eq!(ca.forwarded, ca.received - ca.dropped + ca.duplicated);
        assert!(ca.dropped > 10 && ca.duplicated > 5 && ca.reordered > 10, "{ca}");
        assert!(a.windows(2).any(|w| w[0] > w[1]), "nothing reordered");
    }

    #[test]
    fn no_faults_keep_order_and_loss_one_drops_all() {
        let (out, c) = run_engine(Faults::none(), 1, 50);
        assert_eq!(out, (0..50).collect::<Vec<_>>());
        assert_eq!((c.forwarded, c.dropped), (50, 0));
        let (out, c) = run_engine(Faults { loss: 1.0, ..Faults::none() }, 1, 50);
        assert!(out.is_empty());
        assert_eq!(c.dropped, 50);
    }

    #[test]
    fn reordered_datagram_waits_for_followers_or_its_deadline() {
        let start = Instant::now();
        let mut engine = Engine::new(Faults { reorder: 1.0, ..Faults::none() }, 3, start);
        let mut out = Vec::new();
        let mut send = |_: Direction, d: &[u8]| {
            out.push(d[0]);
            true
        };
        engine.arrive(Direction::Upstream, &[1], start, &mut send);
        assert_eq!(engine.next_wakeup(), Some(start + REORDER_HOLD));
        engine.service(start + REORDER_HOLD, &mut send);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn bursts_keep_the_long_run_loss_rate() {
        let faults = Faults { loss: 0.2, burst: Some(5.0), ..Faults::none() };
        let start = Instant::now();
        let mut engine = Engine::new(faults, 11, start);
        let (mut runs, mut run, mut lost) = (0u32, 0u32, 0u32);
        let mut send = |_: Direction, _: &[u8]| true;
        let n = 100_000;
        for _ in 0..n {
            let before = engine.lanes[0].counters.dropped;
            engine.arrive(Direction::Upstream, &[0], start, &mut send);
            if engine.lanes[0].counters.dropped > before {
                lost += 1;
                run += 1;
            } else if run > 0 {
                runs += 1;
                run = 0;
            }
        }
        let rate = f64::from(lost) / f64::from(n);
        let mean_burst = f64::from(lost) / f64::from(runs);
        assert!((0.18..0.22).contains(&rate), "loss rate {rate}");
        assert!((4.0..6.0).contains(&mean_burst), "mean burst {mean_burst}");
    }

    #[test]
    fn blackout_drops_both_directions() {
        let start = Instant::now();
        let blackout = Blackout { start: ms(10), duration: ms(10) };
        let faults = Faults { blackouts: vec![blackout], ..Faults::none() };
        let mut engine = Engine::new(faults, 1, start);
        let mut sent = 0;
        let mut send = |_: Direction, _: &[u8]| {
            sent += 1;
            true
        };
        for t in [5, 12, 19, 20] {
            engine.arrive(Direction::Upstream, &[0], start + ms(t), &mut send);
            engine.arrive(Direction::Downstream, &[0], start + ms(t), &mut send);
        }
        assert_eq!(sent, 4);
        assert_eq!(engine.lanes[0].counters.dropped, 2);
        assert_eq!(engine.lanes[1].counters.dropped, 2);
    }

    #[test]
    fn relays_both_ways_and_follows_a_moving_client() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let config = RelayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            to: server.local_addr().unwrap(),
            faults: Faults::none(),
            seed: 1,
        };
        let relay = Relay::bind(config).unwrap().spawn().unwrap();
        let mut buf = [0u8; 16];
        for (round, payload) in [b"one", b"two"].iter().enumerate() {
            // A new client socket each round: the relay must answer the new address.
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            client.send_to(*payload, relay.local_addr()).unwrap();
            let (len, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..len], from), (&payload[..], relay.upstream_addr()));
            server.send_to(b"back", from).unwrap();
            let (len, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..len], from), (&b"back"[..], relay.local_addr()));
            assert_eq!(relay.counters().client_moves, round as u64);
        }
        let counters = relay.stop();
        assert_eq!(counters.upstream.forwarded, 2);
        assert_eq!(counters.downstream.forwarded, 2);
    }

    #[test]
    fn delay_is_honoured_without_big_overhead() {
        // An echo server behind a relay that delays both directions by 2 ms.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let config = RelayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            to: server.local_addr().unwrap(),
            faults: Faults { delay: ms(2), ..Faults::none() },
            seed: 1,
        };
        let relay = Relay::bind(config).unwrap().spawn().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let echo = {
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut buf = [0u8; 16];
                while !done.load(Ordering::Relaxed) {
                    if let Ok((len, from)) = server.recv_from(&mut buf) {
                        let _ = server.send_to(&buf[..len], from);
                    }
                }
            })
        };
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        let mut rtts: Vec<Duration> = (0..20u8)
            .map(|i| {
                let sent = Instant::now();
                client.send_to(&[i], relay.local_addr()).unwrap();
                let (len, _) = client.recv_from(&mut buf).unwrap();
                assert_eq!(&buf[..len], &[i]);
                sent.elapsed()
            })
            .collect();
        done.store(true, Ordering::Relaxed);
        echo.join().unwrap();
        rtts.sort();
        // Every round trip waits out both delays; the median should add little to them (a
        // generous sanity bound: timers used to cost several ms each).
        assert!(rtts[0] >= ms(4), "round trip {:?} shorter than the delays", rtts[0]);
        assert!(rtts[10] < ms(20), "median round trip {:?} for 2 ms each way", rtts[10]);
        assert_eq!(relay.stop().downstream.forwarded, 20);
    }
}
