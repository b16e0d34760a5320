//! Non-blocking UDP sockets with batched receive and send.
//!
//! [`RecvBatch`] and [`SendBatch`] own preallocated slots (one buffer per datagram) and are
//! reused from call to call: nothing is allocated per datagram. On Linux one `recvmmsg` /
//! `sendmmsg` moves up to 64 datagrams; elsewhere the batch is a loop of `recvmsg` / `sendto`.
//!
//! On Linux the batches also use UDP segmentation offload where the kernel has it: queued
//! datagrams that follow each other to the same destination with the same length (the last
//! may be shorter) leave as one message with a `UDP_SEGMENT` control message (GSO, one trip
//! down the stack for up to 64 datagrams), and a socket read with slots of at least
//! 65,535 bytes turns on `UDP_GRO`, so that the kernel may hand over several datagrams of one
//! sender coalesced into one buffer, which [`RecvBatch`] splits again. Callers see the same
//! datagrams either way. A socket whose kernel refuses either option, or fails a segmented
//! send in a way that blames the offload, carries on without it (see [`UdpSocket::send_batch`]);
//! the environment variable `A3M_UDP_OFFLOAD=off` (read once per process) turns both off for
//! every socket.
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
    /// Leave UDP GSO/GRO off (Linux). They pay off for path-MTU-sized datagrams; with
    /// datagrams near 64 KiB (loopback) each call already moves that much, and GRO's receive
    /// path only adds work (about 10 % of a 1000-byte message stream, measured).
    pub no_offload: bool,
}

/// A non-blocking UDP socket (IPv4 or IPv6, after the address it is bound to).
pub struct UdpSocket {
    socket: Socket,
    /// What segmentation offload the socket uses (nothing outside Linux).
    offload: sys::Offload,
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
        let offload = sys::Offload::new(&socket);
        if config.no_offload {
            offload.disable();
        }
        Ok(UdpSocket { socket, offload })
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
    /// `n == batch.len() >= 1`, or `WouldBlock` when none is waiting.
    ///
    /// One receive fills at most [`RecvBatch::capacity`] slots, so `n` is at most the capacity
    /// unless the kernel coalesced datagrams (GRO, Linux, slots of at least 65,535 bytes): a
    /// slot then holds several, and `n` counts datagrams, not slots. Either way, `n` below
    /// the capacity means the socket had nothing more waiting.
    ///
    /// A datagram longer than the batch's slots is cut to the slot and marked
    /// [`Datagram::truncated`]. An error that follows some datagrams is left for the next call.
    ///
    /// The first receive into slots of 65,535 bytes or more turns GRO on for good: read such a
    /// socket with such batches only, since a coalesced buffer cut by a smaller slot loses the
    /// datagrams of its tail (the last one kept is reported truncated).
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.clear();
        sys::recv(&self.socket, &self.offload, batch)?;
        Ok(batch.len())
    }

    /// Sends datagrams from the front of `batch` and removes those sent: `Ok(n)` with `n >= 1`
    /// (fewer than queued if the send buffer filled up; `Ok(0)` only for an empty batch), or
    /// `WouldBlock` when none could go (the batch is unchanged).
    ///
    /// Any other error concerns the datagram at the front: it is removed from the batch
    /// (retrying would fail the same way) and the error returned, so the caller can count it
    /// and call again for the rest.
    ///
    /// On Linux, runs of datagrams to one destination go as segmented (GSO) messages. When
    /// such a message at the front fails, the call resends without segmentation instead of
    /// reporting the error: the error is reported (and the front datagram removed) only if
    /// the datagram fails alone too. If it goes through alone, segmentation was to blame: an
    /// `EIO` turns GSO off for this socket, an `EINVAL` or `EMSGSIZE` (a path MTU below the
    /// segment size) turns it off for segments of that size and longer.
    pub fn send_batch(&self, batch: &mut SendBatch) -> io::Result<usize> {
        sys::send(&self.socket, &self.offload, batch)
    }

    /// Whether sends may use UDP segmentation offload (GSO) now, for some segment size.
    #[doc(hidden)]
    pub fn gso_enabled(&self) -> bool {
        self.offload.gso_enabled()
    }

    /// Whether the kernel may coalesce received datagrams (UDP GRO) on this socket.
    #[doc(hidden)]
    pub fn gro_enabled(&self) -> bool {
        self.offload.gro_enabled()
    }

    /// Turns segmentation offload off for this socket, as a kernel without it would: sends
    /// go one message per datagram and GRO is not turned on. (GRO already on stays on, and
    /// coalesced buffers are still split.) For tests and measurements.
    #[doc(hidden)]
    pub fn disable_offload(&self) {
        self.offload.disable();
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

/// Where a received datagram lies: in slot `slot`, bytes `start..start + len` of `data`.
#[derive(Debug, Clone, Copy)]
struct RecvPiece {
    slot: u32,
    start: u32,
    len: u32,
    truncated: bool,
}

const UNSPECIFIED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// Reusable storage for the datagrams of one [`UdpSocket::recv_batch`].
///
/// The kernel fills one slot per receive; a slot holds one datagram, or several that the
/// kernel coalesced (GRO), which the batch lists separately.
pub struct RecvBatch {
    data: Vec<u8>,
    slot_size: usize,
    /// Source address of each slot filled.
    from: Vec<SocketAddr>,
    /// Source addresses as the kernel writes them, one per slot.
    names: Vec<libc::sockaddr_storage>,
    /// Slots the last receive filled.
    slots_filled: usize,
    /// The datagrams of those slots, in arrival order (more than the slots with GRO).
    pieces: Vec<RecvPiece>,
}

/// `size` zero bytes, written through now: `vec![0; size]` gets pages the kernel maps
/// lazily, so a batch would grow the process's memory the first time traffic (a burst, or a
/// flood of forged datagrams filling every slot) reaches its far slots. Resident from the
/// start, the batches never do.
fn resident_zeroed(size: usize) -> Vec<u8> {
    let mut data = vec![0u8; size];
    // One write per 4 KiB page, and the last byte (the buffer need not start on a page);
    // `black_box` keeps the compiler from dropping stores of a zero it knows is there.
    for i in (0..size).step_by(4096).chain(size.checked_sub(1)) {
        data[i] = std::hint::black_box(0);
    }
    data
}

impl RecvBatch {
    /// Room for `capacity` datagrams of up to `slot_size` bytes each, resident at once.
    ///
    /// # Panics
    /// If either is zero.
    pub fn new(capacity: usize, slot_size: usize) -> RecvBatch {
        assert!(capacity > 0 && slot_size > 0, "a receive batch needs room for a datagram");
        let size = capacity.checked_mul(slot_size).expect("receive batch too large");
        assert!(u32::try_from(size).is_ok(), "receive batch larger than 4 GiB");
        RecvBatch {
            data: resident_zeroed(size),
            slot_size,
            from: vec![UNSPECIFIED; capacity],
            names: vec![zeroed_sockaddr(); capacity],
            slots_filled: 0,
            pieces: Vec::with_capacity(capacity),
        }
    }

    /// How many slots one receive can fill: the most datagrams it can hold, unless the kernel
    /// coalesces them (GRO, see [`UdpSocket::recv_batch`]).
    pub fn capacity(&self) -> usize {
        self.names.len()
    }

    /// The largest datagram a slot holds whole.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// How many datagrams the last receive delivered.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether the batch holds no datagram.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// How many slots the last receive filled: [`RecvBatch::len`], or fewer if the kernel
    /// coalesced datagrams (GRO).
    #[doc(hidden)]
    pub fn slots_filled(&self) -> usize {
        self.slots_filled
    }

    /// The `index`th datagram of the last receive.
    pub fn get(&self, index: usize) -> Option<Datagram<'_>> {
        self.pieces.get(index).map(|piece| self.datagram(piece))
    }

    /// The datagrams of the last receive, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = Datagram<'_>> + '_ {
        self.pieces.iter().map(|piece| self.datagram(piece))
    }

    /// Forgets the datagrams held.
    pub fn clear(&mut self) {
        self.slots_filled = 0;
        self.pieces.clear();
    }

    fn datagram(&self, piece: &RecvPiece) -> Datagram<'_> {
        let start = piece.start as usize;
        Datagram {
            from: self.from[piece.slot as usize],
            data: &self.data[start..start + piece.len as usize],
            truncated: piece.truncated,
        }
    }

    /// Records slot `slot` once the kernel has filled it and its name: `len` bytes came (more
    /// than the slot if `truncated`), holding datagrams of `segment` bytes each (the last may
    /// be shorter) if the kernel coalesced them, one datagram if `segment` is `None`.
    fn record(
        &mut self,
        slot: usize,
        len: usize,
        name_len: libc::socklen_t,
        truncated: bool,
        segment: Option<usize>,
    ) {
        debug_assert_eq!(slot, self.slots_filled, "slots are recorded in order");
        self.from[slot] = socket_addr(&self.names[slot], name_len).unwrap_or(UNSPECIFIED);
        self.slots_filled = slot + 1;
        let kept = len.min(self.slot_size);
        let base = slot * self.slot_size;
        // In bounds of `data`, whose length fits in u32 (checked by `new`).
        let piece = |offset: usize, len: usize, truncated| RecvPiece {
            slot: slot as u32,
            start: (base + offset) as u32,
            len: len as u32,
            truncated,
        };
        let Some(segment) = segment.filter(|&s| s > 0 && s < len) else {
            self.pieces.push(piece(0, kept, truncated));
            return;
        };
        // Whole segments, then the shorter last one; if the buffer was cut, what is left of
        // the segment it was cut in (perhaps nothing) is the truncated last datagram.
        let mut offset = 0;
        while kept - offset >= segment {
            self.pieces.push(piece(offset, segment, false));
            offset += segment;
        }
        if offset < kept || truncated {
            self.pieces.push(piece(offset, kept - offset, truncated));
        }
    }
}

impl fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.capacity())
            .field("slot_size", &self.slot_size)
            .field("slots_filled", &self.slots_filled)
            .field("len", &self.len())
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
    /// Room for `capacity` datagrams of up to `slot_size` bytes each, resident at once.
    ///
    /// # Panics
    /// If either is zero.
    pub fn new(capacity: usize, slot_size: usize) -> SendBatch {
        assert!(capacity > 0 && slot_size > 0, "a send batch needs room for a datagram");
        let empty = SendSlot { to: UNSPECIFIED, name: SockAddr::from(UNSPECIFIED), len: 0 };
        let size = capacity.checked_mul(slot_size).expect("send batch too large");
        SendBatch {
            data: resident_zeroed(size),
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

    /// The slot buffer (`slot_size` bytes) of the `index`-th queued datagram from the front,
    /// to finish it in place before it is sent (sealing it, say; its committed length stays).
    pub fn queued_mut(&mut self, index: usize) -> Option<&mut [u8]> {
        let i = self.head.checked_add(index).filter(|&i| i < self.tail)?;
        let start = i * self.slot_size;
        Some(&mut self.data[start..start + self.slot_size])
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
    fn queued_datagrams_can_be_finished_in_place_by_their_place_in_the_queue() {
        let mut batch = SendBatch::new(3, 4);
        assert!(batch.push(addr(1), b"a"));
        assert!(batch.push(addr(2), b"bb"));
        batch.consume(1);
        // Queued after a consume: the index counts from the front, whatever the storage.
        assert!(batch.push(addr(3), b"cc"));
        assert!(batch.push(addr(4), b"dd"));
        assert_eq!(batch.queued_mut(1).map(|slot| slot.len()), Some(4));
        batch.queued_mut(1).unwrap()[..2].copy_from_slice(b"CC");
        assert!(batch.queued_mut(3).is_none());
        let queued: Vec<_> = batch.iter().map(|(_, b)| b.to_vec()).collect();
        assert_eq!(queued, vec![b"bb".to_vec(), b"CC".to_vec(), b"dd".to_vec()]);
    }

    /// The datagrams of `batch` as (offset in its storage, length, truncated).
    fn pieces(batch: &RecvBatch) -> Vec<(usize, usize, bool)> {
        let base = batch.data.as_ptr() as usize;
        batch.iter().map(|d| (d.data.as_ptr() as usize - base, d.data.len(), d.truncated)).collect()
    }

    #[test]
    fn coalesced_slots_are_split() {
        let mut batch = RecvBatch::new(3, 100);
        batch.record(0, 30, 0, false, None);
        // Three segments of 25 and a shorter last one.
        batch.record(1, 90, 0, false, Some(25));
        // Exactly two segments; a segment size at least the length is one datagram.
        batch.record(2, 50, 0, false, Some(25));
        assert_eq!(batch.slots_filled(), 3);
        assert_eq!(
            pieces(&batch),
            vec![
                (0, 30, false),
                (100, 25, false),
                (125, 25, false),
                (150, 25, false),
                (175, 15, false),
                (200, 25, false),
                (225, 25, false),
            ]
        );
        assert_eq!(batch.len(), 7);
        assert_eq!(batch.get(6).unwrap().data.len(), 25);
        assert!(batch.get(7).is_none());
        batch.clear();
        batch.record(0, 40, 0, false, Some(40));
        batch.record(1, 0, 0, false, Some(25));
        assert_eq!(pieces(&batch), vec![(0, 40, false), (100, 0, false)]);
    }

    #[test]
    fn cut_coalesced_slot_ends_with_a_truncated_datagram() {
        let mut batch = RecvBatch::new(2, 100);
        // Cut inside the fifth segment of 24: four whole ones, then 4 bytes of the fifth.
        batch.record(0, 100, 0, true, Some(24));
        // Cut at a segment boundary: the lost rest shows as an empty truncated datagram.
        batch.record(1, 100, 0, true, Some(25));
        assert_eq!(
            pieces(&batch),
            vec![
                (0, 24, false),
                (24, 24, false),
                (48, 24, false),
                (72, 24, false),
                (96, 4, true),
                (100, 25, false),
                (125, 25, false),
                (150, 25, false),
                (175, 25, false),
                (200, 0, true),
            ]
        );
    }

    #[test]
    fn unknown_address_family_is_refused() {
        assert_eq!(socket_addr(&zeroed_sockaddr(), 128), None);
    }
}
