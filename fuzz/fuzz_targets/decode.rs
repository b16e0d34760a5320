//! Fuzzes the datagram and message decoders: no input may panic, and whatever decodes must
//! re-encode into a datagram (never longer than the input) that decodes to the same records.
#![no_main]

use a3m_core::wire::{self, Record, message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The message codec sees arbitrary bytes too, not only the payloads of valid TOKENs.
    check_message(data);

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
