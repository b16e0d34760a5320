//! The event sources a node's reader thread waits on: sockets, a cross-thread wake-up and one
//! deadline, behind one API.
//!
//! * Linux/Android: epoll, with an eventfd for [`ReactorWaker::wake`] and a timerfd
//!   (`CLOCK_MONOTONIC`) for [`Reactor::set_deadline`].
//! * FreeBSD/macOS/iOS: kqueue, with `EVFILT_USER` (`NOTE_TRIGGER`) for wake-ups and
//!   `EVFILT_TIMER` for the deadline.
//!
//! Sockets are level-triggered: a socket stays readable (and is reported by every
//! [`Reactor::wait`]) until it has been read to `WouldBlock`. Register writability only while
//! a send is blocked, or every wait returns at once.
//!
//! ```no_run
//! # use std::time::{Duration, Instant};
//! # use a3m_platform::reactor::{Event, Events, Interest, Reactor, Token};
//! # fn main() -> std::io::Result<()> {
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! socket.set_nonblocking(true)?;
//! let mut reactor = Reactor::new()?;
//! reactor.register(&socket, Token(0), Interest::READABLE)?;
//! let waker = reactor.waker(); // give clones to other threads
//! reactor.set_deadline(Some(Instant::now() + Duration::from_millis(10)))?;
//! let mut events = Events::new();
//! reactor.wait(&mut events, None)?;
//! for event in events.iter() {
//!     match event {
//!         Event::Readable(Token(0)) => { /* read the socket until WouldBlock */ }
//!         Event::Woken => { /* look at every queue a waker may have filled */ }
//!         Event::Deadline => { /* the deadline passed: handle timeouts */ }
//!         _ => {}
//!     }
//! }
//! # drop(waker);
//! # Ok(())
//! # }
//! ```

pub mod clock;

#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "reactor/epoll.rs"]
mod sys;

#[cfg(any(target_os = "freebsd", target_os = "macos", target_os = "ios"))]
#[path = "reactor/kqueue.rs"]
mod sys;

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "macos",
    target_os = "ios"
)))]
compile_error!(
    "a3m-platform's reactor supports Linux/Android (epoll) and FreeBSD/macOS/iOS (kqueue)"
);

pub use clock::Clock;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Identifies a registered socket in the events [`Reactor::wait`] reports.
///
/// Any value except [`Token::RESERVED_MIN`] and above, which the reactor keeps for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub usize);

impl Token {
    /// The smallest token value the reactor keeps for its own sources; registering it fails.
    pub const RESERVED_MIN: usize = usize::MAX - 1;
}

/// Which readiness of a socket to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest {
    readable: bool,
    writable: bool,
}

impl Interest {
    /// Report when the socket can be read.
    pub const READABLE: Interest = Interest { readable: true, writable: false };
    /// Report when the socket can be written.
    pub const WRITABLE: Interest = Interest { readable: false, writable: true };
    /// Report both.
    pub const READABLE_WRITABLE: Interest = Interest { readable: true, writable: true };

    /// Whether readability is reported.
    pub const fn is_readable(self) -> bool {
        self.readable
    }

    /// Whether writability is reported.
    pub const fn is_writable(self) -> bool {
        self.writable
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        Interest {
            readable: self.readable || other.readable,
            writable: self.writable || other.writable,
        }
    }
}

/// One thing that happened, as reported by [`Reactor::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The socket registered with this token can be read, or has an error or hang-up to report
    /// (the next read returns it).
    Readable(Token),
    /// The socket registered with this token can be written (or has an error to report).
    Writable(Token),
    /// [`ReactorWaker::wake`] was called since the last `Woken`: look at everything a waker
    /// may have signalled. Any number of wakes before a wait give one `Woken`.
    Woken,
    /// The deadline of [`Reactor::set_deadline`] has been reached (never reported early).
    /// It is then cleared: set a new one for the next.
    Deadline,
}

/// Most kernel events one [`Reactor::wait`] collects.
pub const MAX_EVENTS: usize = 64;

/// Reusable storage for the events of one [`Reactor::wait`]; it never allocates after
/// construction.
pub struct Events {
    list: Vec<Event>,
    kernel_capacity: usize,
}

impl Events {
    /// Storage for up to [`MAX_EVENTS`] kernel events per wait.
    pub fn new() -> Events {
        Events::with_capacity(MAX_EVENTS)
    }

    /// Storage for up to `capacity` kernel events per wait (clamped to `1..=MAX_EVENTS`).
    /// Sources not reported by one wait are reported by the next.
    pub fn with_capacity(capacity: usize) -> Events {
        let kernel_capacity = capacity.clamp(1, MAX_EVENTS);
        // One kernel event can report a socket both readable and writable.
        Events { list: Vec::with_capacity(2 * kernel_capacity), kernel_capacity }
    }

    /// The events of the last wait.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.list.iter().copied()
    }

    /// Number of events of the last wait.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last wait reported nothing (its timeout expired, or it only saw a stale
    /// timer expiry).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether the last wait reported `event`.
    pub fn contains(&self, event: Event) -> bool {
        self.list.contains(&event)
    }

    /// Forgets the events of the last wait.
    pub fn clear(&mut self) {
        self.list.clear();
    }

    fn push(&mut self, event: Event) {
        debug_assert!(self.list.len() < self.list.capacity(), "events storage overflow");
        self.list.push(event);
    }
}

impl Default for Events {
    fn default() -> Events {
        Events::new()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.list.iter()).finish()
    }
}

/// What a backend saw, before the reactor applies its wake and deadline bookkeeping.
#[derive(Debug, Clone, Copy)]
enum RawEvent {
    Io { token: Token, readable: bool, writable: bool },
    Wake,
    Timer,
}

/// Waits for sockets, wake-ups and a deadline. Owned by one thread (the node's reader);
/// [`Reactor::waker`] hands out the part other threads use.
pub struct Reactor {
    selector: sys::Selector,
    waker: ReactorWaker,
    /// The deadline the OS timer is armed for, if any.
    deadline: Option<Instant>,
}

impl Reactor {
    /// A reactor with no sockets, no deadline and no pending wake-up.
    pub fn new() -> io::Result<Reactor> {
        let (selector, notifier) = sys::Selector::new()?;
        let shared = Arc::new(WakerShared { pending: AtomicBool::new(false), notifier });
        Ok(Reactor { selector, waker: ReactorWaker { shared }, deadline: None })
    }

    /// Starts reporting `interest` for `socket` as events carrying `token`.
    ///
    /// Register a socket once (epoll refuses a second registration), keep it open until
    /// [`Reactor::deregister`], and make it non-blocking. Fails with `InvalidInput` for a
    /// reserved token (see [`Token::RESERVED_MIN`]).
    pub fn register(&self, socket: &impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        check_token(token)?;
        self.selector.register(socket.as_fd().as_raw_fd(), token, interest)
    }

    /// Changes the token or interest of a registered socket.
    pub fn reregister(
        &self,
        socket: &impl AsFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        check_token(token)?;
        self.selector.reregister(socket.as_fd().as_raw_fd(), token, interest)
    }

    /// Stops reporting events for a registered socket.
    pub fn deregister(&self, socket: &impl AsFd) -> io::Result<()> {
        self.selector.deregister(socket.as_fd().as_raw_fd())
    }

    /// A handle that interrupts [`Reactor::wait`] from any thread.
    pub fn waker(&self) -> ReactorWaker {
        self.waker.clone()
    }

    /// Sets the one deadline (`None` clears it). When it passes, a wait reports
    /// [`Event::Deadline`] once. Setting the deadline already set costs no system call; a
    /// deadline in the past is reported by the next wait.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        if deadline == self.deadline {
            return Ok(());
        }
        match deadline {
            Some(at) => self.selector.arm_timer(at.saturating_duration_since(Instant::now()))?,
            None => self.selector.disarm_timer()?,
        }
        self.deadline = deadline;
        Ok(())
    }

    /// The deadline set and not yet reported.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Blocks until something happens, `timeout` passes (`None`: no limit; zero: only
    /// collect what is ready), then fills `events` (cleared first).
    ///
    /// `events` may come back empty: the timeout expired, or the wait only saw a stale timer.
    /// An interrupting signal (`EINTR`) does not end the wait early.
    pub fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let until = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut remaining = timeout;
        let mut raw = [None; MAX_EVENTS];
        let seen = loop {
            match self.selector.select(&mut raw[..events.kernel_capacity], remaining) {
                Ok(seen) => break seen,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    // Retry with what is left of the timeout (`None` stays `None`).
                    remaining = until.map(|u| u.saturating_duration_since(Instant::now()));
                }
                Err(e) => return Err(e),
            }
        };
        for raw_event in raw[..seen].iter().flatten() {
            match *raw_event {
                RawEvent::Io { token, readable, writable } => {
                    if readable {
                        events.push(Event::Readable(token));
                    }
                    if writable {
                        events.push(Event::Writable(token));
                    }
                }
                RawEvent::Wake => {
                    // The kernel event is consumed; clearing the flag afterwards lets the next
                    // wake() notify again. A wake() in between saw `pending` set and skipped
                    // its notification: this swap reads its write (acquire), so its work is
                    // visible to whoever handles this event.
                    self.waker.shared.pending.swap(false, Ordering::AcqRel);
                    events.push(Event::Woken);
                }
                RawEvent::Timer => self.on_timer(events),
            }
        }
        Ok(())
    }

    /// The OS timer fired: report the deadline if it really passed, else re-arm for the rest
    /// (a stale expiry of a replaced deadline, or a timer clock a little ahead of `Instant`).
    fn on_timer(&mut self, events: &mut Events) {
        let Some(at) = self.deadline else {
            return;
        };
        let now = Instant::now();
        // Should the OS refuse to re-arm (it has no reason to), report the deadline early
        // rather than lose it: the caller re-checks its timers against the clock anyway.
        if now < at && self.selector.arm_timer(at - now).is_ok() {
            return;
        }
        self.deadline = None;
        events.push(Event::Deadline);
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

fn check_token(token: Token) -> io::Result<()> {
    if token.0 >= Token::RESERVED_MIN {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "reserved reactor token"));
    }
    Ok(())
}

struct WakerShared {
    /// A notification is in flight and not yet reported by a wait: further wakes are free.
    pending: AtomicBool,
    notifier: sys::Notifier,
}

/// Interrupts the [`Reactor::wait`] of the reactor it came from; cheap to clone, usable from
/// any thread, and it stays valid after the reactor is dropped (waking then does nothing).
#[derive(Clone)]
pub struct ReactorWaker {
    shared: Arc<WakerShared>,
}

impl ReactorWaker {
    /// Makes the current or next wait report [`Event::Woken`].
    ///
    /// Publish the work first, then wake: the reader sees everything done before `wake()`.
    /// Only the first wake after a reported `Woken` makes a system call.
    pub fn wake(&self) -> io::Result<()> {
        // Release: the work published before this call reaches the reader's acquire swap.
        if self.shared.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.shared.notifier.notify().inspect_err(|_| {
            // Nothing is in flight: let the next wake try again.
            self.shared.pending.store(false, Ordering::Release);
        })
    }
}

impl fmt::Debug for ReactorWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorWaker")
            .field("pending", &self.shared.pending.load(Ordering::Relaxed))
            .finish()
    }
}

/// Converts a duration to whole milliseconds for APIs that take them, rounding up so a wait
/// never ends before the time asked for.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn millis_rounded_up(d: Duration) -> i32 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_up() {
        assert_eq!(millis_rounded_up(Duration::ZERO), 0);
        assert_eq!(millis_rounded_up(Duration::from_nanos(1)), 1);
        assert_eq!(millis_rounded_up(Duration::from_millis(7)), 7);
        assert_eq!(millis_rounded_up(Duration::from_micros(7_001)), 8);
        assert_eq!(millis_rounded_up(Duration::from_secs(u64::MAX)), i32::MAX);
    }

    #[test]
    fn interest_union() {
        let both = Interest::READABLE | Interest::WRITABLE;
        assert_eq!(both, Interest::READABLE_WRITABLE);
        assert!(both.is_readable() && both.is_writable());
        assert!(!Interest::READABLE.is_writable());
        assert!(!Interest::WRITABLE.is_readable());
    }

    #[test]
    fn reserved_tokens_are_refused() {
        let reactor = Reactor::new().unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err =
            reactor.register(&socket, Token(Token::RESERVED_MIN), Interest::READABLE).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        reactor.register(&socket, Token(Token::RESERVED_MIN - 1), Interest::READABLE).unwrap();
    }

    #[test]
    fn waker_flag_is_cleared_by_the_reported_wake() {
        let mut reactor = Reactor::new().unwrap();
        let waker = reactor.waker();
        waker.wake().unwrap();
        assert!(waker.shared.pending.load(Ordering::SeqCst));
        let mut events = Events::new();
        reactor.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
        assert!(events.contains(Event::Woken));
        assert!(!waker.shared.pending.load(Ordering::SeqCst));
    }

    #[test]
    fn events_capacity_is_clamped() {
        assert_eq!(Events::with_capacity(0).kernel_capacity, 1);
        assert_eq!(Events::with_capacity(10_000).kernel_capacity, MAX_EVENTS);
        assert!(Events::new().is_empty());
    }
}
