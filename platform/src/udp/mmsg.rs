//! Linux: one `recvmmsg` / `sendmmsg` per chunk of up to [`CHUNK`] datagrams.
//!
//! The message headers hold raw pointers into the batch, so they are built on the stack for
//! each call instead of being stored in it.

use super::{RecvBatch, SendBatch};
use socket2::Socket;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr;

/// Most datagrams one system call moves.
const CHUNK: usize = 64;

fn empty_header() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain C data; all zeros is valid (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

const EMPTY_IOVEC: libc::iovec = libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 };

pub(super) fn recv(socket: &Socket, batch: &mut RecvBatch) -> io::Result<()> {
    let capacity = batch.capacity();
    let slot_size = batch.slot_size;
    let name_size = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    while batch.filled < capacity {
        let start = batch.filled;
        let count = (capacity - start).min(CHUNK);
        let data = batch.data.as_mut_ptr();
        let names = batch.names.as_mut_ptr();
        let mut iovecs = [EMPTY_IOVEC; CHUNK];
        for (i, iovec) in iovecs[..count].iter_mut().enumerate() {
            iovec.iov_base = data.wrapping_add((start + i) * slot_size).cast();
            iovec.iov_len = slot_size;
        }
        let iovecs = iovecs.as_mut_ptr();
        let mut headers = [empty_header(); CHUNK];
        for (i, header) in headers[..count].iter_mut().enumerate() {
            header.msg_hdr.msg_name = names.wrapping_add(start + i).cast();
            header.msg_hdr.msg_namelen = name_size;
            header.msg_hdr.msg_iov = iovecs.wrapping_add(i);
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `count` headers are initialised; each points to its own iovec (on this
        // stack) over slot `start + i` of `batch.data` (`slot_size` bytes, in bounds since
        // `start + i < capacity`) and to its own `batch.names` entry, with that entry's size.
        // Nothing else touches `batch` during the call.
        let received = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
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
        for (i, header) in headers[..received].iter().enumerate() {
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
        let mut iovecs = [EMPTY_IOVEC; CHUNK];
        for (i, iovec) in iovecs[..count].iter_mut().enumerate() {
            // The kernel only reads through these pointers.
            iovec.iov_base = data.wrapping_add((head + i) * batch.slot_size).cast_mut().cast();
            iovec.iov_len = batch.slots[head + i].len;
        }
        let iovecs = iovecs.as_mut_ptr();
        let mut headers = [empty_header(); CHUNK];
        for (i, header) in headers[..count].iter_mut().enumerate() {
            let name = &batch.slots[head + i].name;
            header.msg_hdr.msg_name = name.as_ptr().cast_mut().cast();
            header.msg_hdr.msg_namelen = name.len();
            header.msg_hdr.msg_iov = iovecs.wrapping_add(i);
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `count` headers are initialised; each points to a socket address owned by
        // `batch.slots` (with its length) and to its own iovec over the queued bytes of its
        // slot in `batch.data`; the kernel only reads them, and `batch` is not touched during
        // the call.
        let done = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
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
