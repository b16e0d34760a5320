//! Notices changes of the host's interface addresses and links, so that a node bound to a
//! wildcard address, whose source address the kernel picks per datagram, can tell its peers
//! at once that it moved (the peers otherwise learn it only from its next datagram, which may
//! be a long timer away, and never if they are waiting for it).
//!
//! Linux: a non-blocking `NETLINK_ROUTE` socket subscribed to IPv4/IPv6 address events and
//! link events; readable when something changed. Elsewhere (a `PF_ROUTE` socket would do the
//! same on the BSDs) [`NetWatch::new`] fails with `Unsupported`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A source of "the host's addresses or links changed" events (see the module doc).
#[derive(Debug)]
pub struct NetWatch {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: OwnedFd,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    never: std::convert::Infallible,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl NetWatch {
    /// Subscribes to address and link changes of the calling thread's network namespace.
    pub fn new() -> io::Result<NetWatch> {
        // SAFETY: plain socket(2); the result is checked and owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: all zeros is a valid sockaddr_nl; the fields are set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups =
            (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
        // SAFETY: `addr` is a sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NetWatch { fd })
    }

    /// Reads every pending notification; true if one reported an address added or removed,
    /// or a link's state change (or if notifications were lost: the kernel's buffer
    /// overflowed). `Ok(false)` when nothing relevant was pending.
    pub fn changed(&self) -> io::Result<bool> {
        let mut buf = [0u8; 8192];
        let mut changed = false;
        loop {
            // SAFETY: `buf` is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(changed),
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => changed = true,
                    _ => return Err(e),
                }
                continue;
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= size_of::<libc::nlmsghdr>() {
                // The header: u32 length, u16 type, ...
                let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
                match kind {
                    libc::RTM_NEWADDR | libc::RTM_DELADDR => changed = true,
                    // A link event counts once the link can carry traffic: datagrams sent
                    // between "up" and "running" are dropped, and an ARP request dropped then
                    // is retried only a second later.
                    libc::RTM_NEWLINK if rest.len() >= 28 => {
                        let flags = u32::from_ne_bytes(rest[24..28].try_into().unwrap());
                        let running = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
                        changed |= flags & running == running;
                    }
                    _ => {}
                }

                let step = (len + 3) & !3;
                if len < size_of::<libc::nlmsghdr>() || step > rest.len() {
                    break;
                }
                rest = &rest[step..];
            }
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl NetWatch {
    /// Not implemented on this system yet.
    pub fn new() -> io::Result<NetWatch> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Never called: no watch can be made.
    pub fn changed(&self) -> io::Result<bool> {
        match self.never {}
    }
}

impl AsFd for NetWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return self.fd.as_fd();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        match self.never {}
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::NetWatch;

    #[test]
    fn a_watch_opens_and_reads_without_blocking() {
        // (That it reports real changes is shown end to end by ci/mobility.sh and
        // examples/tests/mobility_netns.rs, which move addresses in network namespaces.)
        let watch = NetWatch::new().expect("NETLINK_ROUTE socket");
        // Whatever the host did meanwhile, reading never blocks and never fails.
        watch.changed().expect("reading notifications");
        watch.changed().expect("reading again");
    }
}
