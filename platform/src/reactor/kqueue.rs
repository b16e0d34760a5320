//! kqueue backend (FreeBSD, macOS, iOS): sockets as level-triggered `EVFILT_READ` /
//! `EVFILT_WRITE`, wake-ups as an `EVFILT_USER` event (`EV_CLEAR`, fired with `NOTE_TRIGGER`),
//! the deadline as a one-shot `EVFILT_TIMER` in microseconds.

use super::{Interest, RawEvent, Token};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// Idents of the internal events (each filter has its own ident space).
const WAKE_IDENT: usize = 0;
const TIMER_IDENT: usize = 0;

pub(super) struct Selector {
    kqueue: Arc<OwnedFd>,
}

/// Triggers the `EVFILT_USER` event; shares the kqueue with the selector.
pub(super) struct Notifier {
    kqueue: Arc<OwnedFd>,
}

fn cvt(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 { Err(io::Error::last_os_error()) } else { Ok(result) }
}

fn kevent(
    ident: usize,
    filter: i16,
    flags: u16,
    fflags: u32,
    data: u64,
    token: usize,
) -> libc::kevent {
    // SAFETY: kevent is plain C data (integers and a pointer); all zeros is a valid value. It
    // is zeroed rather than spelled out because its fields differ between systems and
    // versions (FreeBSD's `ext`).
    let mut event: libc::kevent = unsafe { std::mem::zeroed() };
    event.ident = ident as libc::uintptr_t;
    event.filter = filter as _;
    event.flags = flags as _;
    event.fflags = fflags as _;
    event.data = data.min(isize::MAX as u64) as _;
    event.udata = std::ptr::without_provenance_mut(token);
    event
}

impl Selector {
    pub(super) fn new() -> io::Result<(Selector, Notifier)> {
        // SAFETY: kqueue takes no arguments.
        let fd = cvt(unsafe { libc::kqueue() })?;
        // SAFETY: `fd` was just returned by kqueue and nothing else owns it.
        let kqueue = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        // SAFETY: F_SETFD takes an integer argument.
        cvt(unsafe { libc::fcntl(kqueue.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        let selector = Selector { kqueue: kqueue.clone() };
        let wake = kevent(WAKE_IDENT, libc::EVFILT_USER, libc::EV_ADD | libc::EV_CLEAR, 0, 0, 0);
        selector.apply(&mut [wake])?;
        Ok((selector, Notifier { kqueue }))
    }

    pub(super) fn register(&self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        self.reregister(fd, token, interest)
    }

    pub(super) fn reregister(&self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let flags = |wanted: bool| if wanted { libc::EV_ADD } else { libc::EV_DELETE };
        let ident = fd as usize;
        self.apply(&mut [
            kevent(ident, libc::EVFILT_READ, flags(interest.is_readable()), 0, 0, token.0),
            kevent(ident, libc::EVFILT_WRITE, flags(interest.is_writable()), 0, 0, token.0),
        ])
    }

    pub(super) fn deregister(&self, fd: RawFd) -> io::Result<()> {
        let ident = fd as usize;
        self.apply(&mut [
            kevent(ident, libc::EVFILT_READ, libc::EV_DELETE, 0, 0, 0),
            kevent(ident, libc::EVFILT_WRITE, libc::EV_DELETE, 0, 0, 0),
        ])
    }

    /// Arms the one-shot timer `after` from now, rounded up to a microsecond (re-adding an
    /// armed timer replaces it).
    pub(super) fn arm_timer(&self, after: Duration) -> io::Result<()> {
        // Some kernels refuse huge timer values; a far deadline is re-armed when this expires.
        let after = after.min(Duration::from_secs(24 * 3600));
        let micros = u64::try_from(after.as_nanos().div_ceil(1_000)).unwrap_or(u64::MAX).max(1);
        let flags = libc::EV_ADD | libc::EV_ONESHOT;
        let timer = kevent(TIMER_IDENT, libc::EVFILT_TIMER, flags, libc::NOTE_USECONDS, micros, 0);
        self.apply(&mut [timer])
    }

    pub(super) fn disarm_timer(&self) -> io::Result<()> {
        self.apply(&mut [kevent(TIMER_IDENT, libc::EVFILT_TIMER, libc::EV_DELETE, 0, 0, 0)])
    }

    /// Submits changes and checks each receipt; deleting what is not there is not an error.
    fn apply(&self, changes: &mut [libc::kevent]) -> io::Result<()> {
        let mut receipts = [kevent(0, 0, 0, 0, 0, 0); 2];
        assert!(changes.len() <= receipts.len(), "too many kqueue changes at once");
        for change in changes.iter_mut() {
            change.flags |= libc::EV_RECEIPT;
        }
        let no_wait = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `changes` and `receipts` are valid for their lengths across the call, and
        // with EV_RECEIPT every change yields one receipt, so `receipts` has room for all.
        let n = cvt(unsafe {
            libc::kevent(
                self.kqueue.as_raw_fd(),
                changes.as_ptr(),
                changes.len() as libc::c_int,
                receipts.as_mut_ptr(),
                changes.len() as libc::c_int,
                &no_wait,
            )
        })? as usize;
        for receipt in &receipts[..n] {
            let errno = receipt.data as i64;
            if receipt.flags & libc::EV_ERROR != 0 && errno != 0 && errno != libc::ENOENT as i64 {
                return Err(io::Error::from_raw_os_error(errno as i32));
            }
        }
        Ok(())
    }

    /// One kevent wait for at most `out.len()` events; returns how many it filled.
    pub(super) fn select(
        &self,
        out: &mut [Option<RawEvent>],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let mut buf = [kevent(0, 0, 0, 0, 0, 0); super::MAX_EVENTS];
        let max = out.len().min(buf.len());
        // Some kernels refuse huge timeouts; a wait may end early with no events anyway.
        let timeout = timeout.map(|t| {
            let t = t.min(Duration::from_secs(24 * 3600));
            libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as _ }
        });
        let timeout_ptr = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: no changes are passed; `buf` has room for `max` events and `timeout_ptr` is
        // null or points to `timeout`, both alive across the call.
        let n = cvt(unsafe {
            libc::kevent(
                self.kqueue.as_raw_fd(),
                std::ptr::null(),
                0,
                buf.as_mut_ptr(),
                max as libc::c_int,
                timeout_ptr,
            )
        })? as usize;
        for (slot, event) in out.iter_mut().zip(&buf[..n]) {
            *slot = raw_event(event);
        }
        Ok(n)
    }
}

impl Notifier {
    pub(super) fn notify(&self) -> io::Result<()> {
        let trigger = [kevent(WAKE_IDENT, libc::EVFILT_USER, 0, libc::NOTE_TRIGGER, 0, 0)];
        loop {
            // SAFETY: one change from `trigger`, alive across the call; no event list.
            let result = cvt(unsafe {
                libc::kevent(
                    self.kqueue.as_raw_fd(),
                    trigger.as_ptr(),
                    1,
                    std::ptr::null_mut(),
                    0,
                    std::ptr::null(),
                )
            });
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map(drop),
            }
        }
    }
}

fn raw_event(event: &libc::kevent) -> Option<RawEvent> {
    let token = Token(event.udata.addr());
    match event.filter {
        libc::EVFILT_USER => Some(RawEvent::Wake),
        libc::EVFILT_TIMER => Some(RawEvent::Timer),
        // EV_EOF and socket errors arrive as readability: the next read reports them.
        libc::EVFILT_READ => Some(RawEvent::Io { token, readable: true, writable: false }),
        libc::EVFILT_WRITE => Some(RawEvent::Io { token, readable: false, writable: true }),
        _ => None,
    }
}
