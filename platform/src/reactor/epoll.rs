//! Linux backend: epoll, an eventfd for wake-ups and a timerfd for the deadline.
//!
//! Both internal fds are edge-triggered and never read: an edge comes with every eventfd write
//! and every timer expiry, and epoll re-checks readiness before reporting, so a timer expiry
//! erased by re-arming (`timerfd_settime` resets the expiry count) is not reported.

use super::{Interest, RawEvent, Token, millis_rounded_up};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// epoll keys of the internal fds; user tokens stay below [`Token::RESERVED_MIN`].
const WAKE_KEY: u64 = u64::MAX;
const TIMER_KEY: u64 = u64::MAX - 1;

pub(super) struct Selector {
    epoll: OwnedFd,
    timer: OwnedFd,
}

/// The writing side of the wake-up eventfd, owned by the wakers (the reactor keeps one).
pub(super) struct Notifier {
    eventfd: OwnedFd,
}

fn cvt(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 { Err(io::Error::last_os_error()) } else { Ok(result) }
}

/// Takes ownership of a descriptor a system call just returned.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful system call that creates a descriptor,
    // and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

impl Selector {
    pub(super) fn new() -> io::Result<(Selector, Notifier)> {
        // SAFETY: epoll_create1 takes no pointers.
        let epoll = owned(cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?);
        // SAFETY: eventfd takes no pointers.
        let eventfd =
            owned(cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?);
        // SAFETY: timerfd_create takes no pointers.
        let timer = owned(cvt(unsafe {
            libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK)
        })?);
        let edge_readable = (libc::EPOLLIN | libc::EPOLLET) as u32;
        ctl(&epoll, libc::EPOLL_CTL_ADD, eventfd.as_raw_fd(), edge_readable, WAKE_KEY)?;
        ctl(&epoll, libc::EPOLL_CTL_ADD, timer.as_raw_fd(), edge_readable, TIMER_KEY)?;
        Ok((Selector { epoll, timer }, Notifier { eventfd }))
    }

    pub(super) fn register(&self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        ctl(&self.epoll, libc::EPOLL_CTL_ADD, fd, epoll_bits(interest), token.0 as u64)
    }

    pub(super) fn reregister(&self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        ctl(&self.epoll, libc::EPOLL_CTL_MOD, fd, epoll_bits(interest), token.0 as u64)
    }

    pub(super) fn deregister(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL (since Linux 2.6.9).
        cvt(unsafe {
            libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut())
        })
        .map(drop)
    }

    /// Arms the timer to expire once, `after` from now (at once for zero).
    pub(super) fn arm_timer(&self, after: Duration) -> io::Result<()> {
        // A zero it_value would disarm: use the smallest delay instead.
        let after = after.max(Duration::from_nanos(1));
        let value = libc::timespec {
            tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: after.subsec_nanos().into(),
        };
        self.set_timer(value)
    }

    pub(super) fn disarm_timer(&self) -> io::Result<()> {
        self.set_timer(libc::timespec { tv_sec: 0, tv_nsec: 0 })
    }

    fn set_timer(&self, value: libc::timespec) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: value,
        };
        // SAFETY: `spec` is a valid itimerspec for the call; the old value is not requested.
        cvt(unsafe {
            libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut())
        })
        .map(drop)
    }

    /// One epoll_wait for at most `out.len()` events; returns how many it filled.
    pub(super) fn select(
        &self,
        out: &mut [Option<RawEvent>],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let mut buf = [libc::epoll_event { events: 0, u64: 0 }; super::MAX_EVENTS];
        let max = out.len().min(buf.len());
        let timeout_ms = timeout.map_or(-1, millis_rounded_up);
        // SAFETY: `buf` has room for `max` events and lives across the call.
        let n = cvt(unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                buf.as_mut_ptr(),
                max as libc::c_int,
                timeout_ms,
            )
        })? as usize;
        for (slot, event) in out.iter_mut().zip(&buf[..n]) {
            *slot = Some(raw_event(*event));
        }
        Ok(n)
    }
}

impl Notifier {
    pub(super) fn notify(&self) -> io::Result<()> {
        let one: u64 = 1;
        loop {
            // SAFETY: writes the 8 bytes of `one`, which lives across the call.
            let written = unsafe {
                libc::write(self.eventfd.as_raw_fd(), (&raw const one).cast(), size_of::<u64>())
            };
            if written >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                // The counter is full (after ~2^64 wakes): empty it and write again.
                io::ErrorKind::WouldBlock => self.drain()?,
                _ => return Err(err),
            }
        }
    }

    fn drain(&self) -> io::Result<()> {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into `count`, which lives across the call.
        let read = unsafe {
            libc::read(self.eventfd.as_raw_fd(), (&raw mut count).cast(), size_of::<u64>())
        };
        if read >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock { Ok(()) } else { Err(err) }
    }
}

fn ctl(epoll: &OwnedFd, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: key };
    // SAFETY: `event` is a valid epoll_event that lives across the call.
    cvt(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut event) }).map(drop)
}

/// Level-triggered interest bits.
fn epoll_bits(interest: Interest) -> u32 {
    let mut bits = 0;
    if interest.is_readable() {
        bits |= libc::EPOLLIN;
    }
    if interest.is_writable() {
        bits |= libc::EPOLLOUT;
    }
    bits as u32
}

fn raw_event(event: libc::epoll_event) -> RawEvent {
    // Copy the fields out: epoll_event is packed on x86_64.
    let (bits, key) = (event.events as libc::c_int, event.u64);
    match key {
        WAKE_KEY => RawEvent::Wake,
        TIMER_KEY => RawEvent::Timer,
        _ => {
            let readable_bits = libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLHUP | libc::EPOLLERR;
            RawEvent::Io {
                token: Token(key as usize),
                readable: bits & readable_bits != 0,
                writable: bits & (libc::EPOLLOUT | libc::EPOLLERR) != 0,
            }
        }
    }
}
