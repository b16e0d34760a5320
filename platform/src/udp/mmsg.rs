//! Linux: one `recvmmsg` / `sendmmsg` per chunk of up to [`CHUNK`] datagrams, with UDP
//! segmentation offload (GSO) on send and receive offload (GRO) where the kernel has them.
//!
//! The message headers hold raw pointers into the batch, so they are built on the stack for
//! each call instead of being stored in it. Only the entries a call uses are written (the
//! arrays start uninitialised): zeroing all [`CHUNK`] headers cost more than a one-datagram
//! call's own work.
//!
//! Send: consecutive queued datagrams with the same destination and length (the last may be
//! shorter) form a run that goes as one message: one iovec per datagram, pointing into the
//! batch (no copy), and a `UDP_SEGMENT` control message with the length, from which the
//! kernel (or the network card) cuts the datagrams again. A call still carries at most
//! [`CHUNK`] datagrams, in fewer messages. Support is probed when the socket is created,
//! with `setsockopt(UDP_SEGMENT)`: a kernel without it would ignore the control message and
//! send a run as one long datagram. A failed segmented send is retried without segmentation
//! (see [`send`]).
//!
//! Receive: `UDP_GRO` is turned on by the first receive into slots of [`GRO_SLOT`] bytes
//! (the kernel coalesces at most 64 KiB) and never off again, since a coalesced buffer read
//! without GRO on carries no segment size. Every receive passes a control buffer per slot
//! and reads the `UDP_GRO` control message (the segment size) from it: the batch splits such
//! a slot into its datagrams.

use super::{RecvBatch, SendBatch};
use socket2::Socket;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Most datagrams one system call moves.
const CHUNK: usize = 64;
/// Most datagrams in one segmented message (the kernel's `UDP_MAX_SEGMENTS` was 64 until
/// Linux 6.9 raised it).
const MAX_SEGMENTS: usize = 64;
/// Most bytes in one segmented message: the largest UDP payload over IPv4.
const MAX_GSO_BYTES: usize = 65_507;
/// Receive slots at least this large turn GRO on: a coalesced buffer is less than 64 KiB
/// with its IP and UDP headers.
pub(super) const GRO_SLOT: usize = 65_535;

/// Room for the control messages of one header: the one this code reads or writes
/// (`UDP_GRO`, an int, or `UDP_SEGMENT`, a u16) needs 24 bytes; the rest leaves room for an
/// option someone turned on through [`super::UdpSocket::socket`].
const CONTROL_LEN: usize = 64;
/// Offset of a control message's data from its header (`CMSG_DATA`), also its header size.
// SAFETY: CMSG_LEN is arithmetic on sizes; it is only `unsafe` by the libc crate's macro.
const CMSG_HEADER: usize = unsafe { libc::CMSG_LEN(0) } as usize;
// SAFETY: as above.
const SEGMENT_CMSG_LEN: usize = unsafe { libc::CMSG_LEN(size_of::<u16>() as _) } as usize;
// SAFETY: as above.
const SEGMENT_CMSG_SPACE: usize = unsafe { libc::CMSG_SPACE(size_of::<u16>() as _) } as usize;
// SAFETY: as above.
const GRO_CMSG_LEN: usize = unsafe { libc::CMSG_LEN(size_of::<libc::c_int>() as _) } as usize;

const _: () = {
    assert!(CMSG_HEADER == size_of::<libc::cmsghdr>());
    assert!(SEGMENT_CMSG_SPACE <= CONTROL_LEN && GRO_CMSG_LEN <= CONTROL_LEN);
    assert!(align_of::<libc::cmsghdr>() <= align_of::<ControlBuffer>());
};

/// Storage for control messages, aligned for `cmsghdr` as `CMSG_FIRSTHDR` requires.
#[repr(C, align(8))]
struct ControlBuffer([u8; CONTROL_LEN]);

/// `CMSG_ALIGN`: control messages start at multiples of `size_t`.
const fn cmsg_align(len: usize) -> usize {
    (len + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// `Offload::gro`: the kernel refused `UDP_GRO` (or offload was disabled).
const GRO_UNAVAILABLE: u8 = 0;
/// `Offload::gro`: not turned on yet.
const GRO_OFF: u8 = 1;
/// `Offload::gro`: turned on (for good).
const GRO_ON: u8 = 2;

/// Whether `A3M_UDP_OFFLOAD=off` (or `0`) turned offload off for the whole process.
fn disabled_by_environment() -> bool {
    static DISABLED: OnceLock<bool> = OnceLock::new();
    *DISABLED.get_or_init(|| {
        std::env::var_os("A3M_UDP_OFFLOAD")
            .is_some_and(|v| v.eq_ignore_ascii_case("off") || v == "0")
    })
}

/// The segmentation offload state of one socket.
pub(super) struct Offload {
    /// Longest segment a segmented message may carry; 0 when GSO is off.
    gso_max: AtomicUsize,
    /// `GRO_UNAVAILABLE`, `GRO_OFF` or `GRO_ON`.
    gro: AtomicU8,
}

impl Offload {
    /// Probes GSO on a new socket; GRO waits for the first receive into large slots.
    pub(super) fn new(socket: &Socket) -> Offload {
        let allowed = !disabled_by_environment();
        // 0 leaves sends without a control message unsegmented (the default); a kernel that
        // does not know the option refuses it.
        let gso = allowed && set_udp_option(socket, libc::UDP_SEGMENT, 0).is_ok();
        Offload {
            gso_max: AtomicUsize::new(if gso { MAX_GSO_BYTES } else { 0 }),
            gro: AtomicU8::new(if allowed { GRO_OFF } else { GRO_UNAVAILABLE }),
        }
    }

    pub(super) fn disable(&self) {
        self.gso_max.store(0, Ordering::Relaxed);
        let _ = self.gro.compare_exchange(
            GRO_OFF,
            GRO_UNAVAILABLE,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    pub(super) fn gso_enabled(&self) -> bool {
        self.gso_max.load(Ordering::Relaxed) > 0
    }

    pub(super) fn gro_enabled(&self) -> bool {
        self.gro.load(Ordering::Relaxed) == GRO_ON
    }

    /// Turns GRO on if it is not yet and the kernel has it.
    fn enable_gro(&self, socket: &Socket) {
        if self.gro.load(Ordering::Relaxed) != GRO_OFF {
            return;
        }
        let state = match set_udp_option(socket, libc::UDP_GRO, 1) {
            Ok(()) => GRO_ON,
            Err(_) => GRO_UNAVAILABLE,
        };
        // A concurrent `disable` wins; receives read GRO control messages whatever the state.
        let _ = self.gro.compare_exchange(GRO_OFF, state, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A segmented message of `segment`-byte datagrams failed with `errno`, and its first
    /// datagram then went through alone.
    fn blame(&self, errno: i32, segment: usize) {
        match errno {
            // The route cannot segment (IPsec, or no checksum offload on older kernels).
            libc::EIO => self.gso_max.store(0, Ordering::Relaxed),
            // A segment longer than the path MTU (EINVAL before Linux 6.14, EMSGSIZE since),
            // or a socket option that forbids GSO (EINVAL; then every size fails in turn).
            libc::EINVAL | libc::EMSGSIZE => {
                self.gso_max.fetch_min(segment.saturating_sub(1), Ordering::Relaxed);
            }
            // Anything else was about the moment (a pending ICMP error, memory), not GSO.
            _ => {}
        }
    }
}

/// `setsockopt(SOL_UDP, name, value)`.
fn set_udp_option(socket: &Socket, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a live c_int and its size is passed with it; the kernel
    // only reads it.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn empty_header() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain C data; all zeros is valid (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

/// The control messages of a header.
#[derive(Debug, Clone, Copy)]
enum Control {
    None,
    /// A buffer for the kernel to write the received ones into.
    Receive,
    /// A `UDP_SEGMENT` message with this segment size, written into the buffer.
    Segment(u16),
}

/// Header, iovec and control storage for one call; only the first `headers_written` headers
/// and controls and `iovecs_written` iovecs are initialised.
struct Scratch {
    iovecs: [MaybeUninit<libc::iovec>; CHUNK],
    headers: [MaybeUninit<libc::mmsghdr>; CHUNK],
    /// Header `i`'s control messages, in `controls[i]`.
    controls: [MaybeUninit<ControlBuffer>; CHUNK],
    /// Header `i`'s first iovec and its control messages.
    layout: [MaybeUninit<(usize, Control)>; CHUNK],
    iovecs_written: usize,
    /// Iovecs that belong to a header already written.
    iovecs_claimed: usize,
    headers_written: usize,
}

impl Scratch {
    fn new() -> Self {
        Self {
            iovecs: [const { MaybeUninit::uninit() }; CHUNK],
            headers: [const { MaybeUninit::uninit() }; CHUNK],
            controls: [const { MaybeUninit::uninit() }; CHUNK],
            layout: [const { MaybeUninit::uninit() }; CHUNK],
            iovecs_written: 0,
            iovecs_claimed: 0,
            headers_written: 0,
        }
    }

    /// Appends an iovec over `len` bytes at `base`, for the next header.
    fn iovec(&mut self, base: *mut u8, len: usize) {
        let i = self.iovecs_written;
        assert!(i < CHUNK, "more than {CHUNK} iovecs");
        self.iovecs[i].write(libc::iovec { iov_base: base.cast(), iov_len: len });
        self.iovecs_written += 1;
    }

    /// Appends a header over the iovecs appended since the previous one (at least one),
    /// naming the socket address `name` of `name_len` bytes, with `control`. Its pointers
    /// are set by [`Scratch::headers`].
    fn header(&mut self, name: *mut u8, name_len: u32, control: Control) {
        let i = self.headers_written;
        let first = self.iovecs_claimed;
        assert!(i < CHUNK && first < self.iovecs_written, "a header needs an iovec");
        let mut header = empty_header();
        header.msg_hdr.msg_name = name.cast();
        header.msg_hdr.msg_namelen = name_len;
        header.msg_hdr.msg_iovlen = (self.iovecs_written - first) as _;
        if let Control::Segment(size) = control {
            let mut buffer = ControlBuffer([0; CONTROL_LEN]);
            // SAFETY: cmsghdr is plain C data; all zeros is valid (it may have padding
            // fields, so it is not built as a literal).
            let mut cmsg: libc::cmsghdr = unsafe { std::mem::zeroed() };
            cmsg.cmsg_len = SEGMENT_CMSG_LEN as _;
            cmsg.cmsg_level = libc::SOL_UDP;
            cmsg.cmsg_type = libc::UDP_SEGMENT;
            // SAFETY: the buffer holds CONTROL_LEN >= SEGMENT_CMSG_SPACE bytes and is
            // aligned for cmsghdr (checked at compile time); the header is written at offset
            // 0 and the u16 after it, at the CMSG_DATA offset, unaligned-tolerant.
            unsafe {
                buffer.0.as_mut_ptr().cast::<libc::cmsghdr>().write(cmsg);
                buffer.0.as_mut_ptr().add(CMSG_HEADER).cast::<u16>().write_unaligned(size);
            }
            self.controls[i].write(buffer);
        }
        self.layout[i].write((first, control));
        self.headers[i].write(header);
        self.iovecs_claimed = self.iovecs_written;
        self.headers_written += 1;
    }

    /// The headers for the system call, each pointing at its iovecs and control buffer. The
    /// pointers are all derived here, from one borrow of each array, after the last
    /// `header`: a pointer taken there would be invalidated by the next `&mut self`.
    fn headers(&mut self) -> *mut libc::mmsghdr {
        assert_eq!(self.iovecs_claimed, self.iovecs_written, "iovecs without a header");
        let iovecs = self.iovecs.as_mut_ptr().cast::<libc::iovec>();
        let controls = self.controls.as_mut_ptr().cast::<ControlBuffer>();
        for i in 0..self.headers_written {
            // SAFETY: entries below `headers_written` were initialised by `header`.
            let (header, (first, control)) =
                unsafe { (self.headers[i].assume_init_mut(), self.layout[i].assume_init()) };
            header.msg_hdr.msg_iov = iovecs.wrapping_add(first);
            let control_len = match control {
                Control::None => continue,
                Control::Receive => CONTROL_LEN,
                Control::Segment(_) => SEGMENT_CMSG_SPACE,
            };
            header.msg_hdr.msg_control = controls.wrapping_add(i).cast();
            header.msg_hdr.msg_controllen = control_len as _;
        }
        self.headers.as_mut_ptr().cast()
    }

    /// Header `i`, written by [`Scratch::header`] (and possibly updated by the kernel).
    fn written_header(&self, i: usize) -> &libc::mmsghdr {
        assert!(i < self.headers_written, "header {i} was never written");
        // SAFETY: entries below `headers_written` were initialised by `header`; the kernel
        // only stores plain integers (lengths, flags) into headers it was given.
        unsafe { self.headers[i].assume_init_ref() }
    }

    /// The `UDP_GRO` segment size the kernel reported for received header `i`, if any.
    fn gro_segment(&self, i: usize) -> Option<usize> {
        // SAFETY: entries below `headers_written` were initialised by `header` (which
        // `written_header` checks first).
        let (header, (_, control)) =
            (self.written_header(i), unsafe { self.layout[i].assume_init() });
        if !matches!(control, Control::Receive) {
            return None;
        }
        // After the call, msg_controllen is what the kernel wrote (size_t in glibc, socklen_t
        // in musl).
        #[allow(clippy::unnecessary_cast)]
        let written = (header.msg_hdr.msg_controllen as usize).min(CONTROL_LEN);
        // SAFETY: the kernel wrote the first `written` bytes of buffer `i` (given to it with
        // CONTROL_LEN bytes by `headers`), so they are initialised; nothing writes them now.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.controls[i].as_ptr().cast::<u8>(), written) };
        let mut offset = 0;
        while offset + CMSG_HEADER <= written {
            // SAFETY: CMSG_HEADER == size_of::<cmsghdr>() bytes at `offset` are in `bytes`;
            // cmsghdr is plain C data valid for any bit pattern; read unaligned to be safe.
            let cmsg: libc::cmsghdr =
                unsafe { ptr::read_unaligned(bytes.as_ptr().add(offset).cast()) };
            let len = cmsg.cmsg_len as usize;
            if len < CMSG_HEADER || len > written - offset {
                break;
            }
            if cmsg.cmsg_level == libc::SOL_UDP
                && cmsg.cmsg_type == libc::UDP_GRO
                && len >= GRO_CMSG_LEN
            {
                let data = &bytes[offset + CMSG_HEADER..offset + GRO_CMSG_LEN];
                let size = libc::c_int::from_ne_bytes(data.try_into().ok()?);
                return usize::try_from(size).ok().filter(|&s| s > 0);
            }
            offset += cmsg_align(len);
        }
        None
    }
}

pub(super) fn recv(socket: &Socket, offload: &Offload, batch: &mut RecvBatch) -> io::Result<()> {
    if batch.slot_size >= GRO_SLOT {
        offload.enable_gro(socket);
    }
    let capacity = batch.capacity();
    let slot_size = batch.slot_size;
    let name_size = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    while batch.slots_filled < capacity {
        let start = batch.slots_filled;
        let count = (capacity - start).min(CHUNK);
        let data = batch.data.as_mut_ptr();
        let names = batch.names.as_mut_ptr();
        let mut scratch = Scratch::new();
        for i in 0..count {
            scratch.iovec(data.wrapping_add((start + i) * slot_size), slot_size);
            let name = names.wrapping_add(start + i).cast();
            scratch.header(name, name_size, Control::Receive);
        }
        // SAFETY: `count` headers are initialised; each points to its own iovec (on this
        // stack) over slot `start + i` of `batch.data` (`slot_size` bytes, in bounds since
        // `start + i < capacity`), to its own `batch.names` entry with that entry's size, and
        // to its own CONTROL_LEN-byte control buffer on this stack. Nothing else touches
        // `batch` or `scratch` during the call.
        let received = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                scratch.headers(),
                count as _,
                libc::MSG_DONTWAIT as _,
                ptr::null_mut(),
            )
        };
        if received < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // After some datagrams, the error waits for the next call.
            return if batch.slots_filled > 0 { Ok(()) } else { Err(err) };
        }
        let received = received as usize;
        for i in 0..received {
            let header = scratch.written_header(i);
            let truncated = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let len = header.msg_len as usize;
            let name_len = header.msg_hdr.msg_namelen;
            batch.record(start + i, len, name_len, truncated, scratch.gro_segment(i));
        }
        if received < count {
            break;
        }
    }
    Ok(())
}

/// How many queued datagrams from slot `first` on (at most `available`) can go as one
/// segmented message with segments of at most `gso_max` bytes: 1 if none can.
fn run_length(batch: &SendBatch, first: usize, available: usize, gso_max: usize) -> usize {
    let lead = &batch.slots[first];
    let segment = lead.len;
    if segment == 0 || segment > gso_max {
        return 1;
    }
    let (mut run, mut total) = (1, segment);
    while run < available.min(MAX_SEGMENTS) {
        let next = &batch.slots[first + run];
        // An empty datagram would vanish in the segmentation: it goes alone.
        if next.to != lead.to || next.len == 0 || next.len > segment {
            break;
        }
        if total + next.len > MAX_GSO_BYTES {
            break;
        }
        total += next.len;
        run += 1;
        if next.len < segment {
            // Only the last segment may be shorter.
            break;
        }
    }
    run
}

/// Sends the batch from the front, [`CHUNK`] datagrams per `sendmmsg`, runs of them as
/// segmented messages.
///
/// When a call fails with a segmented message at the front (an error after the first
/// message is reported only when that message is at the front of the next call), the call
/// is made again without segmentation: if its front datagram then goes through, the error
/// was GSO's ([`Offload::blame`]); if it fails alone too, it is removed and its error
/// returned, as without GSO. So GSO never loses a datagram that would have gone without it.
pub(super) fn send(socket: &Socket, offload: &Offload, batch: &mut SendBatch) -> io::Result<usize> {
    let mut sent = 0;
    // The error and segment size of a segmented front message that failed, while the call
    // is retried without segmentation.
    let mut suspect: Option<(i32, usize)> = None;
    while !batch.is_empty() {
        let gso_max = match suspect {
            Some(_) => 0,
            None => offload.gso_max.load(Ordering::Relaxed),
        };
        let head = batch.head;
        let count = batch.len().min(CHUNK);
        let data = batch.data.as_ptr();
        let mut scratch = Scratch::new();
        // Datagrams each message carries.
        let mut carried = [0u8; CHUNK];
        let mut messages = 0;
        let mut i = 0;
        while i < count {
            let slot = &batch.slots[head + i];
            let run = run_length(batch, head + i, count - i, gso_max);
            for j in i..i + run {
                // The kernel only reads through these pointers.
                let base = data.wrapping_add((head + j) * batch.slot_size).cast_mut();
                scratch.iovec(base, batch.slots[head + j].len);
            }
            // Segments are at most gso_max <= MAX_GSO_BYTES bytes, so they fit in a u16.
            let control = if run > 1 { Control::Segment(slot.len as u16) } else { Control::None };
            let name = slot.name.as_ptr().cast_mut().cast();
            scratch.header(name, slot.name.len(), control);
            carried[messages] = run as u8;
            messages += 1;
            i += run;
        }
        // SAFETY: `messages` headers are initialised; each points to a socket address owned
        // by `batch.slots` (with its length), to its own iovecs (on this stack) over the
        // queued bytes of its slots in `batch.data`, and, if segmented, to its own control
        // buffer on this stack holding one UDP_SEGMENT message of the length given. The
        // kernel only reads them, and neither `batch` nor `scratch` is touched during the
        // call.
        let done = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                scratch.headers(),
                messages as _,
                libc::MSG_DONTWAIT as _,
            )
        };
        if done < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                // After some datagrams, the error waits for the next call.
                _ if sent > 0 => return Ok(sent),
                io::ErrorKind::WouldBlock => return Err(err),
                _ if carried[0] > 1 => {
                    // Try again without segmentation before blaming the datagrams.
                    let segment = batch.slots[head].len;
                    suspect = Some((err.raw_os_error().unwrap_or(0), segment));
                    continue;
                }
                _ => {
                    batch.consume(1);
                    return Err(err);
                }
            }
        }
        let done = done as usize;
        if let Some((errno, segment)) = suspect.take() {
            // The front datagram went alone where its segmented message failed.
            offload.blame(errno, segment);
        }
        let datagrams = carried[..done].iter().map(|&n| usize::from(n)).sum();
        batch.consume(datagrams);
        sent += datagrams;
        if done < messages {
            break;
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn offload() -> Offload {
        Offload { gso_max: AtomicUsize::new(MAX_GSO_BYTES), gro: AtomicU8::new(GRO_OFF) }
    }

    #[test]
    fn blame_narrows_or_disables_gso() {
        let o = offload();
        o.blame(libc::ECONNREFUSED, 1400);
        assert_eq!(o.gso_max.load(Ordering::Relaxed), MAX_GSO_BYTES);
        o.blame(libc::EMSGSIZE, 3000);
        assert_eq!(o.gso_max.load(Ordering::Relaxed), 2999);
        o.blame(libc::EINVAL, 1400);
        assert_eq!(o.gso_max.load(Ordering::Relaxed), 1399);
        // A later failure of a longer segment (queued before) does not widen it again.
        o.blame(libc::EMSGSIZE, 3000);
        assert_eq!(o.gso_max.load(Ordering::Relaxed), 1399);
        assert!(o.gso_enabled());
        o.blame(libc::EIO, 100);
        assert!(!o.gso_enabled());
    }

    #[test]
    fn disable_keeps_gro_that_is_on() {
        let o = offload();
        o.disable();
        assert!(!o.gso_enabled());
        assert_eq!(o.gro.load(Ordering::Relaxed), GRO_UNAVAILABLE);
        let o = offload();
        o.gro.store(GRO_ON, Ordering::Relaxed);
        o.disable();
        assert!(o.gro_enabled());
    }

    #[test]
    fn runs_follow_destination_length_and_limits() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut batch = SendBatch::new(128, 2000);
        let mut queue = |to, len: usize| assert!(batch.push(to, &vec![0; len]));
        for len in [100, 100, 100, 40, 100, 100] {
            queue(a, len);
        }
        queue(b, 100);
        queue(b, 0);
        queue(b, 100);
        queue(b, 200);
        for _ in 0..70 {
            queue(a, 2000);
        }
        let runs = |gso_max| {
            let (mut runs, mut i) = (Vec::new(), 0);
            while i < batch.len() {
                let run = run_length(&batch, i, batch.len() - i, gso_max);
                runs.push(run);
                i += run;
            }
            runs
        };
        // 3 × 100 + 40 end at the shorter; a's 100s stop at b; an empty datagram and a
        // longer one go alone; 2000-byte segments fill 65,507 bytes with 32.
        assert_eq!(runs(MAX_GSO_BYTES), vec![4, 2, 1, 1, 1, 1, 32, 32, 6]);
        assert_eq!(runs(1999)[6..], [1; 70]);
        assert_eq!(runs(0).len(), batch.len());
    }
}
