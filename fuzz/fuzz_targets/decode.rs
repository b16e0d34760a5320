//! Fuzzes the datagram and message decoders: no input may panic, and whatever decodes must
//! re-encode into a datagram (never longer than the input) that decodes to the same records.
//! Sealed datagrams too: their framing decoder, a node with a key receiving the input as it
//! is, and the input's bytes sealed under that node's key as records (so that what lies behind
//! a valid tag is fuzzed as well).
#![no_main]

use std::net::SocketAddr;

use a3m_core::id::NodeId;
use a3m_core::node::{Node, NodeConfig};
use a3m_core::seal::{Aead, KeySchedule, Psk, SealConfig};
use a3m_core::time::Instant;
use a3m_core::wire::{self, Record, message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The message codec sees arbitrary bytes too, not only the payloads of valid TOKENs.
    check_message(data);
    check_sealed(data);

    let Ok(datagram) = wire::decode_datagram(data) else { return };
    let records: Vec<Record<'_>> = datagram.records().collect();
    assert_eq!(records.len(), datagram.record_count());
    for record in &records {
        if let Record::Token(token) = record {
            check_message(token.payload);
        }
    }

    // Canonical varints are never longer than what was read, so the input's size suffices.
    let mut buf = vec![0u8; data.len()];
    let out = wire::encode_datagram(&mut buf, &datagram.header, &records)
        .expect("a decoded datagram re-encodes");
    assert_eq!(out.records, records.len(), "every record fits in the input's size");
    let again = wire::decode_datagram(&buf[..out.len]).expect("a re-encoded datagram decodes");
    assert_eq!(again.header, datagram.header);
    assert!(again.records().eq(records.iter().copied()), "records change in a round trip");
});

/// Decodes `bytes` as a message; if it decodes, it must re-encode to an equal message.
fn check_message(bytes: &[u8]) {
    let Ok(msg) = message::decode(bytes) else { return };
    let mut buf = vec![0u8; bytes.len()];
    let n = message::encode(&msg, &mut buf).expect("a decoded message re-encodes");
    assert_eq!(message::decode(&buf[..n]), Ok(msg));
}

const KEY: [u8; 32] = [7; 32];

/// The sealed paths: framing, a keyed node given the input, and the input sealed as records.
fn check_sealed(data: &[u8]) {
    if let Ok(sealed) = wire::decode_sealed(data) {
        assert_eq!(sealed.aad_len + sealed.ciphertext.len() + wire::SEAL_TAG_LEN, data.len());
    }
    let from: SocketAddr = "10.0.0.1:1".parse().unwrap();
    let mut node = Node::new(NodeId::new("B").unwrap(), NodeConfig::default());
    node.set_seal(SealConfig { psk: Psk::new(KEY), epoch: 1, aead: Aead::ChaCha20Poly1305 });
    node.handle_datagram(Instant::ZERO, from, data);
    // The input as the records of a datagram from "A", sealed with the right key: first for
    // another epoch of B (dropped unopened, maybe answered), then for B's epoch 1.
    for dst_epoch in [2u64, 1] {
        let buf = sealed_records(data, dst_epoch, 9);
        let (stale, opened) = (node.stats().stale_dst_epoch, node.stats().sealed_opened);
        let peers = node.peer_count();
        node.handle_datagram(Instant::ZERO, from, &buf);
        if dst_epoch != 1 && !data.is_empty() {
            assert_eq!(node.stats().stale_dst_epoch, stale + 1);
            assert_eq!(node.stats().sealed_opened, opened);
            assert_eq!(node.peer_count(), peers, "a stale datagram took a peer slot");
        }
    }
    // The same datagram again is a replay.
    let buf = sealed_records(data, 1, 9);
    let replayed = node.stats().replayed;
    node.handle_datagram(Instant::ZERO, from, &buf);
    if node.stats().sealed_opened > 0 {
        assert_eq!(node.stats().replayed, replayed + 1);
    }
    let mut out = vec![0u8; 2048];
    while node.poll_transmit(Instant::ZERO, &mut out).is_some() {}
}

/// `records` as the records of a datagram from "A" (epoch 5, counter `counter`) to "B" whose
/// epoch A knows as `dst_epoch`, sealed with the right key.
fn sealed_records(records: &[u8], dst_epoch: u64, counter: u64) -> Vec<u8> {
    let header = wire::Header { src: "A", dst: "B", flags: wire::FLAG_SEALED };
    let ks = KeySchedule::new(&Psk::new(KEY));
    let prefix_at = header.encoded_len();
    let mut buf = vec![0u8; prefix_at + wire::SEAL_OVERHEAD + records.len()];
    buf[..prefix_at].copy_from_slice(&[0xA3, 0x4D, 1, wire::FLAG_SEALED, 1, b'A', 1, b'B']);
    buf[prefix_at] = Aead::ChaCha20Poly1305.id();
    buf[prefix_at + 1] = ks.id();
    buf[prefix_at + 2..prefix_at + 10].copy_from_slice(&dst_epoch.to_be_bytes());
    buf[prefix_at + 10..prefix_at + 18].copy_from_slice(&5u64.to_be_bytes());
    buf[prefix_at + 18..prefix_at + 26].copy_from_slice(&counter.to_be_bytes());
    let aad_len = prefix_at + wire::SEAL_PREFIX_LEN;
    buf[aad_len..aad_len + records.len()].copy_from_slice(records);
    let cipher = ks.cipher(Aead::ChaCha20Poly1305, 5, "A", "B");
    let len = cipher.seal(counter, &mut buf, aad_len, aad_len + records.len()).expect("room");
    buf.truncate(len);
    buf
}
