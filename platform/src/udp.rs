//! Non-blocking UDP sockets with batched receive and send.
//!
//! [`RecvBatch`] and [`SendBatch`] own preallocated slots (one buffer per datagram) and are
//! reused from call to call: nothing is allocated per datagram. On Linux one `recvmmsg` /
//! `sendmmsg` moves up to 64 datagrams; elsewhere the batch is a loop of `recvmsg` / `sendto`.
//!
//! Both batch calls follow std's convention for non-blocking sockets: `Ok(n)` with `n >= 1`
//! when something moved, `Err(e)` with `e.kind() == io::ErrorKind::WouldBlock` when nothing
//! could (then wait for [`crate::reactor::Event::Readable`] / `Writable`).
//!
//! ```no_run
//! # use a3m_platform::udp::{RecvBatch, SendBatch, UdpSocket};
//! # fn main() -> std::io::Result<()> {
//! let socket = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
//! let mut outgoing = SendBatch::new(32, 1500);
//! outgoing.push("127.0.0.1:9000".parse().unwrap(), b"hello");
//! socket.send_batch(&mut outgoing)?;
//! let mut incoming = RecvBatch::new(32, 1500);
//! match socket.recv_batch(&mut incoming) {
//!     Ok(_) => for datagram in incoming.iter() { let _ = (datagram.from, datagram.data); },
//!     Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```

#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "udp/mmsg.rs"]
mod sys;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[path = "udp/portable.rs"]
mod sys;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// Socket options applied before binding; `None` keeps the system default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpConfig {
    /// `SO_RCVBUF` in bytes (Linux doubles it and caps it at `net.core.rmem_max`).
    pub recv_buffer_size: Option<usize>,
    /// `SO_SNDBUF` in bytes (Linux doubles it and caps it at `net.core.wmem_max`).
    pub send_buffer_size: Option<usize>,
}

/// A non-blocking UDP socket (IPv4 or IPv6, after the address it is bound to).
pub struct UdpSocket {
    socket: Socket,
}

impl UdpSocket {
    /// Binds a non-blocking socket to `addr` with the system's buffer sizes.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
        UdpSocket::bind_with(addr, &UdpConfig::default())
    }

    /// Binds a non-blocking socket to `addr` with the options of `config`.
    pub fn bind_with(addr: SocketAddr, config: &UdpConfig) -> io::Result<UdpSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_nonblocking(true)?;
        if let Some(size) = config.recv_buffer_size {
            socket.set_recv_buffer_size(size)?;
        }
        if let Some(size) = config.send_buffer_size {
            socket.set_send_buffer_size(size)?;
        }
        socket.bind(&SockAddr::from(addr))?;
        Ok(UdpSocket { socket })
    }

    /// The address the socket is bound to (with the port the system chose for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()?.as_socket().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "UDP socket with a non-IP address")
        })
    }

    /// The `SO_RCVBUF` in effect, in bytes.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.socket.recv_buffer_size()
    }

    /// The `SO_SNDBUF` in effect, in bytes.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.socket.send_buffer_size()
    }

    /// The underlying socket2 socket, for options this type does not cover.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Sends one datagram; `WouldBlock` if the send buffer is full.
    pub fn send_to(&self, bytes: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(bytes, &SockAddr::from(to))
    }

    /// Receives waiting datagrams into `batch` (replacing what it held): `Ok(n)` with
    /// `1 <= n <= batch.capacity()`, or `WouldBlock` when none is waiting.
    ///
    /// A datagram longer than the batch's slots is cut to the slot and marked
    /// [`Datagram::truncated`]. An error that follows some datagrams is left for the next call.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.filled = 0;
        sys::recv(&self.socket, batch)?;
        Ok(batch.filled)
    }

    /// Sends datagrams from the front of `batch` and removes those sent: `Ok(n)` with `n >= 1`
    /// (fewer than queued if the send buffer filled up; `Ok(0)` only for an empty batch), or
    /// `WouldBlock` when none could go (the batch is unchanged).
    ///
    /// Any other error concerns the datagram at the front: it is removed from the batch
    /// (retrying would fail the same way) and the error returned, so the caller can count it
    /// and call again for the rest.
    pub fn send_batch(&self, batch: &mut SendBatch) -> io::Result<usize> {
        sys::send(&self.socket, batch)
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.as_raw_fd())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

/// One received datagram, borrowed from a [`RecvBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Where it came from.
    pub from: SocketAddr,
    /// Its bytes (cut to the slot size if it was longer).
    pub data: &'a [u8],
    /// It was longer than the slot and lost its tail.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy)]
struct RecvSlot {
    from: SocketAddr,
    len: usize,
    truncated: bool,
}

const UNSPECIFIED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// Reusable storage for the datagrams of one [`UdpSocket::recv_batch`].
pub struct RecvBatch {
    data: Vec<u8>,
    slot_size: usize,
    slots: Vec<RecvSlot>,
    /// Source addresses as the kernel writes them.
    names: Vec<libc::sockaddr_storage>,
    filled: usize,
}

impl RecvBatch {
    /// Room for `capacity` datagrams of up to `slot_size` bytes each.
    ///
    /// # Panics
    /// If either is zero.
    pub fn new(capacity: usize, slot_size: usize) -> RecvBatch {
        assert!(capacity > 0 && slot_size > 0, "a receive batch needs room for a datagram");
        let empty = RecvSlot { from: UNSPECIFIED, len: 0, truncated: false };
        RecvBatch {
            data: vec![0; capacity * slot_size],
            slot_size,
            slots: vec![empty; capacity],
            names: vec![zeroed_sockaddr(); capacity],
            filled: 0,
        }
    }

    /// How many datagrams one receive can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The largest datagram a slot holds whole.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// How many datagrams the last receive delivered.
    pub fn len(&self) -> usize {
        self.filled
    }

    /// Whether the batch holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The `index`th datagram of the last receive.
    pub fn get(&self, index: usize) -> Option<Datagram<'_>> {
        (index < self.filled).then(|| {
            let slot = self.slots[index];
            let start = index * self.slot_size;
            Datagram {
                from: slot.from,
                data: &self.data[start..start + slot.len],
                truncated: slot.truncated,
            }
        })
    }

    /// The datagrams of the last receive, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = Datagram<'_>> + '_ {
        (0..self.filled).filter_map(|i| self.get(i))
    }

    /// Forgets the datagrams held.
    pub fn clear(&mut self) {
        self.filled = 0;
    }

    /// Records datagram `index` once the kernel has filled its slot and name.
    fn set(&mut self, index: usize, len: usize, name_len: libc::socklen_t, truncated: bool) {
        let from = socket_addr(&self.names[index], name_len).unwrap_or(UNSPECIFIED);
        self.slots[index] = RecvSlot { from, len: len.min(self.slot_size), truncated };
    }
}

impl fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.capacity())
            .field("slot_size", &self.slot_size)
            .field("len", &self.filled)
            .finish()
    }
}

#[derive(Clone)]
struct SendSlot {
    to: SocketAddr,
    /// `to` as the kernel reads it, converted once when queued.
    name: SockAddr,
    len: usize,
}

/// Reusable storage for datagrams waiting to be sent by [`UdpSocket::send_batch`]: a queue of
/// slots filled at the back ([`SendBatch::next_slot`] + [`SendBatch::commit`], or
/// [`SendBatch::push`]) and sent from the front.
pub struct SendBatch {
    data: Vec<u8>,
    slot_size: usize,
    slots: Vec<SendSlot>,
    /// Queued datagrams are the slots `head..tail`.
    head: usize,
    tail: usize,
}

impl SendBatch {
    /// Room for `capacity` datagrams of up to `slot_size` bytes each.
    ///
    /// # Panics
    /// If either is zero.
    pub fn new(capacity: usize, slot_size: usize) -> SendBatch {
        assert!(capacity > 0 && slot_size > 0, "a send batch needs room for a datagram");
        let empty = SendSlot { to: UNSPECIFIED, name: SockAddr::from(UNSPECIFIED), len: 0 };
        SendBatch {
            data: vec![0; capacity * slot_size],
            slot_size,
            slots: vec![empty; capacity],
            head: 0,
            tail: 0,
        }
    }

    /// How many datagrams the batch can queue.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The largest datagram a slot holds.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// How many datagrams are queued.
    pub fn len(&self) -> usize {
        self.tail - self.head
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Whether no datagram can be added.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// The buffer of the next free slot (`slot_size` bytes) to write a datagram into, then
    /// [`SendBatch::commit`] it; `None` if the batch is full.
    pub fn next_slot(&mut self) -> Option<&mut [u8]> {
        if self.is_full() {
            return None;
        }
        self.make_room();
        let start = self.tail * self.slot_size;
        Some(&mut self.data[start..start + self.slot_size])
    }

    /// Queues the first `len` bytes of the slot [`SendBatch::next_slot`] returned, for `to`.
    ///
    /// # Panics
    /// If the batch is full or `len` exceeds the slot size.
    pub fn commit(&mut self, to: SocketAddr, len: usize) {
        assert!(len <= self.slot_size, "datagram longer than the send slot");
        assert!(!self.is_full(), "commit to a full send batch");
        self.make_room();
        self.slots[self.tail] = SendSlot { to, name: SockAddr::from(to), len };
        self.tail += 1;
    }

    /// Queues a copy of `bytes` for `to`; `false` (nothing queued) if the batch is full or
    /// `bytes` is longer than a slot.
    pub fn push(&mut self, to: SocketAddr, bytes: &[u8]) -> bool {
        if bytes.len() > self.slot_size {
            return false;
        }
        let Some(slot) = self.next_slot() else {
            return false;
        };
        slot[..bytes.len()].copy_from_slice(bytes);
        self.commit(to, bytes.len());
        true
    }

    /// The queued datagrams, front first.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        (self.head..self.tail).map(|i| {
            let start = i * self.slot_size;
            (self.slots[i].to, &self.data[start..start + self.slots[i].len])
        })
    }

    /// Drops every queued datagram.
    pub fn clear(&mut self) {
        self.head = 0;
        self.tail = 0;
    }

    /// Removes `n` datagrams from the front.
    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.head += n;
        if self.head == self.tail {
            self.clear();
        }
    }

    /// Moves the queue to the front of the storage when its back has reached the end.
    fn make_room(&mut self) {
        if self.tail == self.capacity() && self.head > 0 {
            let size = self.slot_size;
            self.data.copy_within(self.head * size..self.tail * size, 0);
            self.slots[..self.tail].rotate_left(self.head);
            self.tail -= self.head;
            self.head = 0;
        }
    }
}

impl fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendBatch")
            .field("capacity", &self.capacity())
            .field("slot_size", &self.slot_size)
            .field("len", &self.len())
            .finish()
    }
}

fn zeroed_sockaddr() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain C data; all zeros is a valid (AF_UNSPEC) value.
    unsafe { std::mem::zeroed() }
}

/// Reads the IPv4 or IPv6 address the kernel wrote into `storage`.
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET, length checked), and
            // sockaddr_storage is large and aligned enough for every sockaddr type.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6 (family AF_INET6, length checked).
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                port,
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn send_batch_queues_and_compacts() {
        let mut batch = SendBatch::new(3, 4);
        assert!(batch.push(addr(1), b"a"));
        assert!(batch.push(addr(2), b"bb"));
        assert!(batch.push(addr(3), b"ccc"));
        assert!(batch.is_full());
        assert!(!batch.push(addr(4), b"d"));
        batch.consume(2);
        assert_eq!(batch.len(), 1);
        assert!(batch.push(addr(4), b"dddd"));
        assert!(!batch.push(addr(5), b"toolong"));
        let queued: Vec<_> = batch.iter().map(|(a, b)| (a.port(), b.to_vec())).collect();
        assert_eq!(queued, vec![(3, b"ccc".to_vec()), (4, b"dddd".to_vec())]);
        batch.consume(2);
        assert!(batch.is_empty());
        assert_eq!((batch.head, batch.tail), (0, 0));
    }

    #[test]
    fn next_slot_and_commit() {
        let mut batch = SendBatch::new(1, 8);
        let slot = batch.next_slot().unwrap();
        assert_eq!(slot.len(), 8);
        slot[..3].copy_from_slice(b"xyz");
        batch.commit(addr(9), 3);
        assert!(batch.next_slot().is_none());
        assert_eq!(batch.iter().next(), Some((addr(9), &b"xyz"[..])));
    }

    #[test]
    fn unknown_address_family_is_refused() {
        assert_eq!(socket_addr(&zeroed_sockaddr(), 128), None);
    }
}
