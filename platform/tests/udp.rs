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
    let config = UdpConfig { recv_buffer_size: Some(1 << 20), send_buffer_size: Some(1 << 20) };
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
    let config = UdpConfig { recv_buffer_size: Some(96 * 1024), send_buffer_size: Some(80 * 1024) };
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
