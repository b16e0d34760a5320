//! Batched UDP over loopback (127.0.0.1 and, when available, ::1).
#![cfg(target_os = "linux")]

use a3m_platform::reactor::{Event, Events, Interest, Reactor, Token};
use a3m_platform::udp::{RecvBatch, SendBatch, UdpConfig, UdpSocket};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Bounds every wait so a lost datagram fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(5);

/// Datagram `seq`: its number then a pattern, 4 to 1003 bytes long.
fn datagram(seq: u32) -> Vec<u8> {
    let len = 4 + (seq as usize * 7) % 1000;
    let mut bytes = seq.to_le_bytes().to_vec();
    bytes.extend((4..len).map(|j| (seq as usize * 31 + j) as u8));
    bytes
}

fn bind(addr: &str) -> UdpSocket {
    let config = UdpConfig {
        recv_buffer_size: Some(1 << 20),
        send_buffer_size: Some(1 << 20),
        ..UdpConfig::default()
    };
    UdpSocket::bind_with(addr.parse().unwrap(), &config).unwrap()
}

/// Sends `total` numbered datagrams from `sender` to `receiver` in batches and checks that
/// each arrives once, intact, from the sender.
fn move_datagrams(sender: &UdpSocket, receiver: &UdpSocket, total: u32) {
    let to = receiver.local_addr().unwrap();
    let from = sender.local_addr().unwrap();
    let mut reactor = Reactor::new().unwrap();
    reactor.register(receiver, Token(0), Interest::READABLE).unwrap();
    let mut events = Events::new();
    let mut outgoing = SendBatch::new(64, 1500);
    let mut incoming = RecvBatch::new(32, 1500);
    let mut seen = vec![false; total as usize];
    let (mut next, mut received) = (0u32, 0u32);
    let (mut largest_send, mut largest_recv) = (0, 0);
    while received < total {
        while next < total && !outgoing.is_full() {
            assert!(outgoing.push(to, &datagram(next)));
            next += 1;
        }
        match sender.send_batch(&mut outgoing) {
            Ok(n) => largest_send = largest_send.max(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("send_batch: {e}"),
        }
        // Drain what arrived; wait only when nothing has and some is on its way.
        loop {
            match receiver.recv_batch(&mut incoming) {
                Ok(n) => {
                    assert!(n >= 1 && n <= incoming.capacity());
                    assert_eq!(n, incoming.len());
                    largest_recv = largest_recv.max(n);
                    for d in incoming.iter() {
                        assert_eq!(d.from, from);
                        assert!(!d.truncated);
                        let seq = u32::from_le_bytes(d.data[..4].try_into().unwrap());
                        assert!(seq < total, "unknown datagram {seq}");
                        assert!(!seen[seq as usize], "datagram {seq} received twice");
                        assert_eq!(d.data, datagram(seq), "datagram {seq} altered");
                        seen[seq as usize] = true;
                        received += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let in_flight = next - received - outgoing.len() as u32;
                    if in_flight == 0 {
                        break;
                    }
                    reactor.wait(&mut events, Some(PATIENCE)).unwrap();
                    assert!(
                        events.contains(Event::Readable(Token(0))),
                        "{in_flight} datagrams never arrived"
                    );
                }
                Err(e) => panic!("recv_batch: {e}"),
            }
        }
    }
    assert!(seen.iter().all(|s| *s));
    // Loopback queues a whole sent batch at once: both sides moved many per call.
    assert!(largest_send > 1 && largest_recv > 1, "no batching: {largest_send}, {largest_recv}");
}

#[test]
fn batches_move_1000_datagrams_over_ipv4_loopback() {
    let sender = bind("127.0.0.1:0");
    let receiver = bind("127.0.0.1:0");
    move_datagrams(&sender, &receiver, 1000);
}

#[test]
fn batches_move_datagrams_over_ipv6_loopback() {
    let (sender, receiver) = match (
        UdpSocket::bind("[::1]:0".parse().unwrap()),
        UdpSocket::bind("[::1]:0".parse().unwrap()),
    ) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("skipped: no IPv6 loopback here ({e})");
            return;
        }
    };
    assert!(sender.local_addr().unwrap().is_ipv6());
    move_datagrams(&sender, &receiver, 300);
}

#[test]
fn empty_socket_and_empty_batch() {
    let socket = bind("127.0.0.1:0");
    let mut incoming = RecvBatch::new(4, 64);
    let err = socket.recv_batch(&mut incoming).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert!(incoming.is_empty());
    assert_eq!(socket.send_batch(&mut SendBatch::new(4, 64)).unwrap(), 0);
}

#[test]
fn long_datagram_is_cut_and_flagged() {
    let sender = bind("127.0.0.1:0");
    let receiver = bind("127.0.0.1:0");
    let to = receiver.local_addr().unwrap();
    sender.send_to(&[7u8; 100], to).unwrap();
    sender.send_to(&[8u8; 16], to).unwrap();
    let mut incoming = RecvBatch::new(4, 16);
    assert_eq!(receiver.recv_batch(&mut incoming).unwrap(), 2);
    let cut = incoming.get(0).unwrap();
    assert!(cut.truncated);
    assert_eq!(cut.data, &[7u8; 16]);
    let whole = incoming.get(1).unwrap();
    assert!(!whole.truncated);
    assert_eq!(whole.data, &[8u8; 16]);
    assert!(incoming.get(2).is_none());
}

#[test]
fn unsendable_datagram_is_dropped_with_its_error() {
    let sender = bind("127.0.0.1:0");
    let receiver = bind("127.0.0.1:0");
    let mut outgoing = SendBatch::new(4, 64);
    // An IPv6 destination cannot be reached from an IPv4 socket.
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    assert!(outgoing.push(v6, b"nowhere"));
    assert!(outgoing.push(receiver.local_addr().unwrap(), b"somewhere"));
    let err = sender.send_batch(&mut outgoing).unwrap_err();
    assert_ne!(err.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(outgoing.len(), 1);
    assert_eq!(sender.send_batch(&mut outgoing).unwrap(), 1);
    assert!(outgoing.is_empty());
    let mut incoming = RecvBatch::new(4, 64);
    assert_eq!(receiver.recv_batch(&mut incoming).unwrap(), 1);
    assert_eq!(incoming.get(0).unwrap().data, b"somewhere");
}

#[test]
fn buffer_sizes_are_applied() {
    let config = UdpConfig {
        recv_buffer_size: Some(96 * 1024),
        send_buffer_size: Some(80 * 1024),
        ..UdpConfig::default()
    };
    let socket = UdpSocket::bind_with("127.0.0.1:0".parse().unwrap(), &config).unwrap();
    // Linux doubles the value asked for (for its bookkeeping).
    assert!(socket.recv_buffer_size().unwrap() >= 96 * 1024);
    assert!(socket.send_buffer_size().unwrap() >= 80 * 1024);
    assert_eq!(socket.local_addr().unwrap().ip().to_string(), "127.0.0.1");
    assert_ne!(socket.local_addr().unwrap().port(), 0);
}

#[test]
fn types_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<UdpSocket>();
    send_sync::<RecvBatch>();
    send_sync::<SendBatch>();
}

// Segmentation offload (GSO on send, GRO on receive). Where the kernel lacks it the sockets
// say so and the same datagrams must arrive the same way; the tests then only skip the
// checks that datagrams were coalesced.

/// A receive batch whose slots turn GRO on (as the a3m reader's do).
fn gro_batch() -> RecvBatch {
    RecvBatch::new(64, 65_536)
}

/// Datagram `seq` of `len` bytes for stream `stream`: both numbers then a pattern.
fn numbered(stream: u8, seq: u32, len: usize) -> Vec<u8> {
    assert!(len >= 5);
    let mut bytes = vec![stream];
    bytes.extend(seq.to_le_bytes());
    bytes.extend((5..len).map(|j| (seq as usize * 13 + j * 7 + stream as usize) as u8));
    bytes
}

/// Sends everything `batch` holds (waiting out a full send buffer), returning the datagrams
/// the send calls reported.
fn send_all(sender: &UdpSocket, batch: &mut SendBatch) -> usize {
    let mut sent = 0;
    let deadline = std::time::Instant::now() + PATIENCE;
    while !batch.is_empty() {
        match sender.send_batch(batch) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(std::time::Instant::now() < deadline, "send buffer never drained");
                std::thread::yield_now();
            }
            Err(e) => panic!("send_batch: {e}"),
        }
    }
    sent
}

/// What one receive call returned.
struct Received {
    datagrams: Vec<Vec<u8>>,
    slots: usize,
}

/// Receives until `expected` datagrams have come, all from `from` and whole; returns them with
/// the receive calls' slot counts, one entry per call.
fn receive(
    receiver: &UdpSocket,
    batch: &mut RecvBatch,
    from: SocketAddr,
    expected: usize,
) -> Vec<Received> {
    let mut reactor = Reactor::new().unwrap();
    reactor.register(receiver, Token(0), Interest::READABLE).unwrap();
    let mut events = Events::new();
    let (mut calls, mut count) = (Vec::new(), 0);
    while count < expected {
        match receiver.recv_batch(batch) {
            Ok(n) => {
                assert_eq!(n, batch.len());
                assert!(batch.slots_filled() >= 1 && batch.slots_filled() <= n);
                let mut datagrams = Vec::new();
                for d in batch.iter() {
                    assert_eq!(d.from, from);
                    assert!(!d.truncated);
                    datagrams.push(d.data.to_vec());
                }
                count += n;
                calls.push(Received { datagrams, slots: batch.slots_filled() });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                reactor.wait(&mut events, Some(PATIENCE)).unwrap();
                assert!(!events.is_empty(), "{} of {expected} datagrams never arrived", count);
            }
            Err(e) => panic!("recv_batch: {e}"),
        }
    }
    assert_eq!(count, expected, "more datagrams than sent");
    calls
}

fn all(calls: &[Received]) -> Vec<Vec<u8>> {
    calls.iter().flat_map(|c| c.datagrams.iter().cloned()).collect()
}

/// The datagrams of one mixed batch: 40 × 1400 bytes to `a`, then to `b` four of 1400 and a
/// shorter one, then two more to `a` (1400, 200).
fn mixed_batch(a: SocketAddr, b: SocketAddr) -> (Vec<(SocketAddr, Vec<u8>)>, usize, usize) {
    let mut queued = Vec::new();
    for seq in 0..40 {
        queued.push((a, numbered(1, seq, 1400)));
    }
    for (seq, len) in [1400, 1400, 1400, 1400, 700].into_iter().enumerate() {
        queued.push((b, numbered(2, seq as u32, len)));
    }
    queued.push((a, numbered(1, 40, 1400)));
    queued.push((a, numbered(1, 41, 200)));
    (queued, 42, 5)
}

/// Sends [`mixed_batch`] from a fresh socket to a GRO receiver (`a`) and a receiver with
/// small slots (`b`, no GRO); with `offload` false, offload is off on all three. Returns
/// whether `a` got coalesced buffers.
fn mixed_batch_arrives(offload: bool) -> bool {
    let sender = bind("127.0.0.1:0");
    let a = bind("127.0.0.1:0");
    let b = bind("127.0.0.1:0");
    if !offload {
        for socket in [&sender, &a, &b] {
            socket.disable_offload();
        }
        assert!(!sender.gso_enabled());
    }
    let (to_a, to_b, from) =
        (a.local_addr().unwrap(), b.local_addr().unwrap(), sender.local_addr().unwrap());
    // A first receive turns GRO on before anything is sent.
    let mut into_a = gro_batch();
    let mut into_b = RecvBatch::new(16, 2048);
    assert_eq!(a.recv_batch(&mut into_a).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    assert_eq!(a.gro_enabled(), offload && a.gro_enabled());
    assert!(!b.gro_enabled(), "small slots turned GRO on");

    let (queued, for_a, for_b) = mixed_batch(to_a, to_b);
    let mut outgoing = SendBatch::new(64, 1500);
    for (to, bytes) in &queued {
        assert!(outgoing.push(*to, bytes));
    }
    assert_eq!(send_all(&sender, &mut outgoing), queued.len());

    let expect = |to: SocketAddr| -> Vec<Vec<u8>> {
        queued.iter().filter(|(t, _)| *t == to).map(|(_, bytes)| bytes.clone()).collect()
    };
    let at_a = receive(&a, &mut into_a, from, for_a);
    assert_eq!(all(&at_a), expect(to_a), "datagrams to a altered or out of order");
    let at_b = receive(&b, &mut into_b, from, for_b);
    assert_eq!(all(&at_b), expect(to_b), "datagrams to b altered or out of order");
    // Without GRO every datagram has its own slot.
    assert!(at_b.iter().all(|c| c.slots == c.datagrams.len()));
    let coalesced = at_a.iter().any(|c| c.slots < c.datagrams.len());
    if !offload {
        assert!(!coalesced, "coalesced with offload off");
    } else if sender.gso_enabled() && a.gro_enabled() {
        // 40 × 1400 bytes went as one segmented message, kept whole by GRO.
        assert!(at_a.iter().any(|c| c.datagrams.len() >= 40 && c.slots < 40), "not coalesced");
        assert!(coalesced);
    } else {
        eprintln!("no GSO/GRO here: coalescing not checked");
    }
    coalesced
}

#[test]
fn segmented_batch_to_two_destinations_arrives_in_order() {
    mixed_batch_arrives(true);
}

#[test]
fn batch_arrives_the_same_with_offload_disabled() {
    mixed_batch_arrives(false);
}

#[test]
fn runs_end_at_a_shorter_datagram_and_at_size_limits() {
    let sender = bind("127.0.0.1:0");
    let receiver = bind("127.0.0.1:0");
    let (to, from) = (receiver.local_addr().unwrap(), sender.local_addr().unwrap());
    let mut incoming = gro_batch();
    let _ = receiver.recv_batch(&mut incoming);
    // 10 × 1000 + 333 (one run); 1000, 1000 (a longer one after a shorter starts a new run);
    // empty datagrams (never segments); 64 × 1400 (more than 65,507 bytes: two runs); 3 × 2.
    let mut lengths = vec![1000; 10];
    lengths.extend([333, 1000, 1000, 0, 0, 1000]);
    lengths.extend([1400; 64]);
    lengths.extend([2, 2, 2]);
    let queued: Vec<Vec<u8>> = lengths
        .iter()
        .enumerate()
        .map(
            |(seq, &len)| if len < 5 { vec![seq as u8; len] } else { numbered(3, seq as u32, len) },
        )
        .collect();
    let mut outgoing = SendBatch::new(128, 1500);
    for bytes in &queued {
        assert!(outgoing.push(to, bytes));
    }
    assert_eq!(send_all(&sender, &mut outgoing), queued.len());
    let calls = receive(&receiver, &mut incoming, from, queued.len());
    assert_eq!(all(&calls), queued);
    if sender.gso_enabled() && receiver.gro_enabled() {
        // Messages (one slot each): [1000 × 10, 333] [1000, 1000] [0] [0] [1000], then in the
        // first call's remaining 48 datagrams [1400 × 46] [1400 × 2], in the second call
        // [1400 × 16] [2, 2, 2].
        let slots: usize = calls.iter().map(|c| c.slots).sum();
        assert_eq!(slots, 9, "{slots} slots for {} datagrams", queued.len());
    }
}

#[test]
fn segmented_datagrams_reach_a_receiver_without_gro() {
    // The kernel cuts a segmented message for a socket that did not ask for GRO.
    let sender = bind("127.0.0.1:0");
    let receiver = bind("127.0.0.1:0");
    let (to, from) = (receiver.local_addr().unwrap(), sender.local_addr().unwrap());
    let queued: Vec<Vec<u8>> = (0..30).map(|seq| numbered(4, seq, 1200)).collect();
    let mut outgoing = SendBatch::new(64, 1500);
    for bytes in &queued {
        assert!(outgoing.push(to, bytes));
    }
    assert_eq!(send_all(&sender, &mut outgoing), 30);
    let mut incoming = RecvBatch::new(64, 1500);
    let calls = receive(&receiver, &mut incoming, from, 30);
    assert_eq!(all(&calls), queued);
    assert!(calls.iter().all(|c| c.slots == c.datagrams.len()));
}

#[test]
fn ipv6_segmented_batch_arrives() {
    let (sender, receiver) = match (
        UdpSocket::bind("[::1]:0".parse().unwrap()),
        UdpSocket::bind("[::1]:0".parse().unwrap()),
    ) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("skipped: no IPv6 loopback here ({e})");
            return;
        }
    };
    let (to, from) = (receiver.local_addr().unwrap(), sender.local_addr().unwrap());
    let mut incoming = gro_batch();
    let _ = receiver.recv_batch(&mut incoming);
    let queued: Vec<Vec<u8>> = (0..45).map(|seq| numbered(5, seq, 1400)).collect();
    let mut outgoing = SendBatch::new(64, 1500);
    for bytes in &queued {
        assert!(outgoing.push(to, bytes));
    }
    assert_eq!(send_all(&sender, &mut outgoing), 45);
    let calls = receive(&receiver, &mut incoming, from, 45);
    assert_eq!(all(&calls), queued);
    if sender.gso_enabled() && receiver.gro_enabled() {
        assert!(calls.iter().any(|c| c.slots < c.datagrams.len()), "not coalesced");
    }
}

/// Moves the calling thread into a new network namespace whose loopback is up with `mtu`;
/// false if not permitted (not root, or a sandbox without namespaces).
fn private_loopback(mtu: i32) -> bool {
    // SAFETY: unshare only changes this thread's namespaces; it reads no memory of ours.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        eprintln!("skipped: no network namespace ({})", io::Error::last_os_error());
        return false;
    }
    let control = std::net::UdpSocket::bind("0.0.0.0:0");
    let Ok(control) = control else { return false };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&control);
    // SAFETY: ifreq is plain C data; all zeros is valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    request.ifr_ifru.ifru_mtu = mtu;
    // SAFETY: `request` is a valid ifreq naming "lo"; the kernel reads and writes only it.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFMTU as _, &mut request) } != 0 {
        eprintln!("skipped: cannot set the MTU ({})", io::Error::last_os_error());
        return false;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: as above.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &mut request) } != 0 {
        eprintln!("skipped: cannot bring lo up ({})", io::Error::last_os_error());
        return false;
    }
    true
}

#[test]
fn segments_longer_than_the_path_mtu_fall_back_to_plain_sends() {
    // In a namespace of its own, loopback has a 1500-byte MTU: a 3000-byte segment cannot
    // go segmented (the kernel refuses it: EINVAL or EMSGSIZE), but alone it is fragmented
    // and goes through. Nothing may be lost, and GSO must stay on for shorter segments.
    std::thread::spawn(|| {
        if !private_loopback(1500) {
            return;
        }
        let sender = bind("127.0.0.1:0");
        let receiver = bind("127.0.0.1:0");
        if !sender.gso_enabled() {
            eprintln!("skipped: no GSO here");
            return;
        }
        let (to, from) = (receiver.local_addr().unwrap(), sender.local_addr().unwrap());
        let mut incoming = gro_batch();
        let _ = receiver.recv_batch(&mut incoming);
        let long: Vec<Vec<u8>> = (0..10).map(|seq| numbered(6, seq, 3000)).collect();
        let mut outgoing = SendBatch::new(64, 4000);
        for bytes in &long {
            assert!(outgoing.push(to, bytes));
        }
        assert_eq!(send_all(&sender, &mut outgoing), 10);
        assert_eq!(all(&receive(&receiver, &mut incoming, from, 10)), long);
        assert!(sender.gso_enabled(), "GSO turned off for every size");

        let short: Vec<Vec<u8>> = (0..20).map(|seq| numbered(7, seq, 1000)).collect();
        for bytes in &short {
            assert!(outgoing.push(to, bytes));
        }
        assert_eq!(send_all(&sender, &mut outgoing), 20);
        let calls = receive(&receiver, &mut incoming, from, 20);
        assert_eq!(all(&calls), short);
        if receiver.gro_enabled() {
            assert!(
                calls.iter().any(|c| c.slots < c.datagrams.len()),
                "1000-byte run not segmented"
            );
        }
        // And the long ones still go (now without segmentation from the start).
        for bytes in &long {
            assert!(outgoing.push(to, bytes));
        }
        assert_eq!(send_all(&sender, &mut outgoing), 10);
        assert_eq!(all(&receive(&receiver, &mut incoming, from, 10)), long);
    })
    .join()
    .unwrap();
}

#[test]
fn a_failing_destination_is_reported_per_datagram_as_without_gso() {
    // A run to an unreachable destination (IPv6 from an IPv4 socket) fails segmented and
    // alone: each call drops one datagram with its error, as without GSO, and GSO stays on.
    let sender = bind("127.0.0.1:0");
    let receiver = bind("127.0.0.1:0");
    let gso = sender.gso_enabled();
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    let mut outgoing = SendBatch::new(8, 64);
    for _ in 0..3 {
        assert!(outgoing.push(v6, &[9; 40]));
    }
    assert!(outgoing.push(receiver.local_addr().unwrap(), b"somewhere"));
    let mut errors = 0;
    loop {
        match sender.send_batch(&mut outgoing) {
            Ok(n) => {
                assert_eq!(n, 1);
                break;
            }
            Err(e) => {
                assert_ne!(e.kind(), io::ErrorKind::WouldBlock);
                errors += 1;
                assert_eq!(outgoing.len(), 4 - errors);
            }
        }
    }
    assert_eq!(errors, 3);
    assert!(outgoing.is_empty());
    assert_eq!(sender.gso_enabled(), gso);
    let mut incoming = RecvBatch::new(4, 64);
    assert_eq!(receiver.recv_batch(&mut incoming).unwrap(), 1);
    assert_eq!(incoming.get(0).unwrap().data, b"somewhere");
}
