//! Systems without `recvmmsg`/`sendmmsg` here: a loop of `recvmsg` (which reports truncation
//! and the source address) and `sendto`, without segmentation offload.

use super::{RecvBatch, SendBatch};
use socket2::Socket;
use std::io;
use std::os::fd::AsRawFd;

/// No segmentation offload here.
pub(super) struct Offload;

impl Offload {
    pub(super) fn new(_socket: &Socket) -> Offload {
        Offload
    }

    pub(super) fn disable(&self) {}

    pub(super) fn gso_enabled(&self) -> bool {
        false
    }

    pub(super) fn gro_enabled(&self) -> bool {
        false
    }
}

pub(super) fn recv(socket: &Socket, _offload: &Offload, batch: &mut RecvBatch) -> io::Result<()> {
    while batch.slots_filled < batch.capacity() {
        let index = batch.slots_filled;
        let start = index * batch.slot_size;
        let mut iovec = libc::iovec {
            iov_base: batch.data[start..start + batch.slot_size].as_mut_ptr().cast(),
            iov_len: batch.slot_size,
        };
        // SAFETY: msghdr is plain C data; all zeros is valid (null pointers, zero lengths).
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_name = (&raw mut batch.names[index]).cast();
        header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        header.msg_iov = &raw mut iovec;
        header.msg_iovlen = 1;
        // SAFETY: `header` points to `iovec` (over slot `index` of `batch.data`, in bounds)
        // and to `batch.names[index]` with its size, all alive and untouched during the call.
        let received =
            unsafe { libc::recvmsg(socket.as_raw_fd(), &mut header, libc::MSG_DONTWAIT) };
        if received < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // After some datagrams, the error waits for the next call.
            return if batch.slots_filled > 0 { Ok(()) } else { Err(err) };
        }
        let truncated = header.msg_flags & libc::MSG_TRUNC != 0;
        batch.record(index, received as usize, header.msg_namelen, truncated, None);
    }
    Ok(())
}

pub(super) fn send(
    socket: &Socket,
    _offload: &Offload,
    batch: &mut SendBatch,
) -> io::Result<usize> {
    let mut sent = 0;
    while !batch.is_empty() {
        let slot = &batch.slots[batch.head];
        let start = batch.head * batch.slot_size;
        match socket.send_to(&batch.data[start..start + slot.len], &slot.name) {
            Ok(_) => {
                batch.consume(1);
                sent += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // After some datagrams, the error waits for the next call.
            Err(_) if sent > 0 => return Ok(sent),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
            Err(e) => {
                batch.consume(1);
                return Err(e);
            }
        }
    }
    Ok(sent)
}
