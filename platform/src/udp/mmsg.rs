//! Linux: one `recvmmsg` / `sendmmsg` per chunk of up to [`CHUNK`] datagrams.
//!
//! The message headers hold raw pointers into the batch, so they are built on the stack for
//! each call instead of being stored in it. Only the entries a call uses are written (the
//! arrays start uninitialised): zeroing all [`CHUNK`] headers cost more than a one-datagram
//! call's own work.

use super::{RecvBatch, SendBatch};
use socket2::Socket;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::ptr;

/// Most datagrams one system call moves.
const CHUNK: usize = 64;

fn empty_header() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain C data; all zeros is valid (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

/// Header and iovec storage for one call; only the first `written` entries are initialised.
struct Scratch {
    iovecs: [MaybeUninit<libc::iovec>; CHUNK],
    headers: [MaybeUninit<libc::mmsghdr>; CHUNK],
    written: usize,
}

impl Scratch {
    fn new() -> Self {
        Self {
            iovecs: [const { MaybeUninit::uninit() }; CHUNK],
            headers: [const { MaybeUninit::uninit() }; CHUNK],
            written: 0,
        }
    }

    /// Writes entry `i` (entries are written in order, from 0): one iovec over `len` bytes at
    /// `base`, and a header naming the socket address `name` of `name_len` bytes. The header
    /// is pointed at its iovec by [`Scratch::headers`].
    fn set(&mut self, i: usize, base: *mut u8, len: usize, name: *mut u8, name_len: u32) {
        assert_eq!(i, self.written, "scratch entries are written in order");
        self.iovecs[i].write(libc::iovec { iov_base: base.cast(), iov_len: len });
        let mut header = empty_header();
        header.msg_hdr.msg_name = name.cast();
        header.msg_hdr.msg_namelen = name_len;
        header.msg_hdr.msg_iovlen = 1;
        self.headers[i].write(header);
        self.written += 1;
    }

    /// The headers for the system call, each pointing at its iovec. The iovec pointers are
    /// all derived here, from one borrow of the array, after the last `set`: a pointer taken
    /// in `set` would be invalidated by the next `&mut self`.
    fn headers(&mut self) -> *mut libc::mmsghdr {
        let iovecs = self.iovecs.as_mut_ptr().cast::<libc::iovec>();
        for (i, header) in self.headers[..self.written].iter_mut().enumerate() {
            // SAFETY: entries below `written` were initialised by `set`.
            let header = unsafe { header.assume_init_mut() };
            header.msg_hdr.msg_iov = iovecs.wrapping_add(i);
        }
        self.headers.as_mut_ptr().cast()
    }

    /// Header `i`, written by [`Scratch::set`] (and possibly updated by the kernel).
    fn header(&self, i: usize) -> &libc::mmsghdr {
        assert!(i < self.written, "header {i} was never written");
        // SAFETY: entries below `written` were initialised by `set`; the kernel only stores
        // plain integers (lengths, flags) into headers it was given.
        unsafe { self.headers[i].assume_init_ref() }
    }
}

pub(super) fn recv(socket: &Socket, batch: &mut RecvBatch) -> io::Result<()> {
    let capacity = batch.capacity();
    let slot_size = batch.slot_size;
    let name_size = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    while batch.filled < capacity {
        let start = batch.filled;
        let count = (capacity - start).min(CHUNK);
        let data = batch.data.as_mut_ptr();
        let names = batch.names.as_mut_ptr();
        let mut scratch = Scratch::new();
        for i in 0..count {
            let base = data.wrapping_add((start + i) * slot_size);
            scratch.set(i, base, slot_size, names.wrapping_add(start + i).cast(), name_size);
        }
        // SAFETY: `count` headers are initialised; each points to its own iovec (on this
        // stack) over slot `start + i` of `batch.data` (`slot_size` bytes, in bounds since
        // `start + i < capacity`) and to its own `batch.names` entry, with that entry's size.
        // Nothing else touches `batch` during the call.
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
            return if batch.filled > 0 { Ok(()) } else { Err(err) };
        }
        let received = received as usize;
        for i in 0..received {
            let header = scratch.header(i);
            let truncated = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let len = header.msg_len as usize;
            batch.set(start + i, len, header.msg_hdr.msg_namelen, truncated);
        }
        batch.filled += received;
        if received < count {
            break;
        }
    }
    Ok(())
}

pub(super) fn send(socket: &Socket, batch: &mut SendBatch) -> io::Result<usize> {
    let mut sent = 0;
    while !batch.is_empty() {
        let head = batch.head;
        let count = batch.len().min(CHUNK);
        let data = batch.data.as_ptr();
        let mut scratch = Scratch::new();
        for i in 0..count {
            let slot = &batch.slots[head + i];
            // The kernel only reads through these pointers.
            let base = data.wrapping_add((head + i) * batch.slot_size).cast_mut();
            let name = slot.name.as_ptr().cast_mut().cast();
            scratch.set(i, base, slot.len, name, slot.name.len());
        }
        // SAFETY: `count` headers are initialised; each points to a socket address owned by
        // `batch.slots` (with its length) and to its own iovec over the queued bytes of its
        // slot in `batch.data`; the kernel only reads them, and `batch` is not touched during
        // the call.
        let done = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                scratch.headers(),
                count as _,
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
                _ => {
                    batch.consume(1);
                    return Err(err);
                }
            }
        }
        let done = done as usize;
        batch.consume(done);
        sent += done;
        if done < count {
            break;
        }
    }
    Ok(sent)
}
