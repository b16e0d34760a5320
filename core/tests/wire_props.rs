//! Property tests of the wire codec: everything encoded decodes to itself, a full buffer
//! holds a prefix of the records, and no input makes the decoder panic.

use a3m_core::id::LinkIncarnation;
use a3m_core::wire::message::{self, Body, ErrorCode, FIRST_CUSTOM_KIND, Message};
use a3m_core::wire::{
    self, Ack, DatagramWriter, EncodeError, FLAG_SEALED, Header, MAX_ACK_RANGES, MAX_RECORDS,
    NODE_ID_MAX_LEN, Record, ReqSlots, SEAL_PREFIX_LEN, SEAL_TAG_LEN, SealPrefix, SlotRange, Slots,
    TAG_ID_MAX_LEN, Token,
};
use proptest::prelude::*;

/// A record that owns its payload and ranges, so strategies can generate it.
#[derive(Debug, Clone)]
enum OwnedRecord {
    ReqSlots(ReqSlots),
    Slots(Slots),
    Token { slot: u64, incarnation: u64, payload: Vec<u8> },
    Ack { incarnation: u64, ranges: Vec<SlotRange> },
}

impl OwnedRecord {
    fn as_record(&self) -> Record<'_> {
        match self {
            OwnedRecord::ReqSlots(r) => Record::ReqSlots(*r),
            OwnedRecord::Slots(s) => Record::Slots(*s),
            OwnedRecord::Token { slot, incarnation, payload } => {
                Record::Token(Token { slot: *slot, incarnation: *incarnation, payload })
            }
            OwnedRecord::Ack { incarnation, ranges } => Record::Ack(Ack::new(*incarnation, ranges)),
        }
    }
}

fn as_records(owned: &[OwnedRecord]) -> Vec<Record<'_>> {
    owned.iter().map(OwnedRecord::as_record).collect()
}

/// u64 values that hit every varint length and its edges, not only huge random numbers.
fn varint_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..300,
        any::<u64>(),
        (0u32..64).prop_map(|bit| 1u64 << bit),
        (1u32..64).prop_map(|bit| (1u64 << bit) - 1),
        Just(u64::MAX),
    ]
}

fn varint_u32() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..300, any::<u32>(), Just(u32::MAX), (0u32..32).prop_map(|bit| 1u32 << bit)]
}

/// 1 to `max` bytes of UTF-8: short ASCII, exactly `max` bytes, or any chars (up to 4 bytes
/// each, so at most `max / 4` of them).
fn identifier(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_.-]{1,8}",
        Just("x".repeat(max)),
        proptest::collection::vec(any::<char>(), 1..=max / 4)
            .prop_map(|chars| chars.into_iter().collect::<String>()),
    ]
}

fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

/// Valid ACK ranges: 1 to [`MAX_ACK_RANGES`], ascending, non-empty, with a gap of at least one
/// slot between neighbours, possibly reaching the top of the slot space.
fn ack_ranges() -> impl Strategy<Value = Vec<SlotRange>> {
    let step = (varint_u64(), varint_u64());
    proptest::collection::vec(step, 1..=MAX_ACK_RANGES).prop_map(|steps| {
        let mut ranges: Vec<SlotRange> = Vec::with_capacity(steps.len());
        for (gap, len_minus_one) in steps {
            let start = match ranges.last() {
                None => gap.min(u64::MAX - 1),
                // Neighbours must not touch, and the range needs one slot below u64::MAX.
                Some(prev) if prev.end <= u64::MAX - 2 => {
                    prev.end.saturating_add(gap.max(1)).min(u64::MAX - 1)
                }
                Some(_) => break,
            };
            let end = start + len_minus_one.min(u64::MAX - 1 - start) + 1;
            ranges.push(SlotRange { start, end });
        }
        ranges
    })
}

fn reqslots() -> impl Strategy<Value = OwnedRecord> {
    (varint_u64(), varint_u32(), varint_u64())
        .prop_map(|(start, count, lowest)| OwnedRecord::ReqSlots(ReqSlots { start, count, lowest }))
}

fn slots() -> impl Strategy<Value = OwnedRecord> {
    (varint_u64(), varint_u64(), varint_u32()).prop_map(|(start, incarnation, count)| {
        OwnedRecord::Slots(Slots { start, incarnation, count })
    })
}

fn token(max_payload: usize) -> impl Strategy<Value = OwnedRecord> {
    (varint_u64(), varint_u64(), payload(max_payload))
        .prop_map(|(slot, incarnation, payload)| OwnedRecord::Token { slot, incarnation, payload })
}

fn ack() -> impl Strategy<Value = OwnedRecord> {
    (varint_u64(), ack_ranges())
        .prop_map(|(incarnation, ranges)| OwnedRecord::Ack { incarnation, ranges })
}

fn any_record() -> impl Strategy<Value = OwnedRecord> {
    prop_oneof![reqslots(), slots(), token(200), ack()]
}

/// A header with random node ids (flags must be 0 in version 1).
#[derive(Debug, Clone)]
struct OwnedHeader {
    src: String,
    dst: String,
}

impl OwnedHeader {
    fn as_header(&self) -> Header<'_> {
        Header { src: &self.src, dst: &self.dst, flags: 0 }
    }
}

fn header() -> impl Strategy<Value = OwnedHeader> {
    (identifier(NODE_ID_MAX_LEN), identifier(NODE_ID_MAX_LEN))
        .prop_map(|(src, dst)| OwnedHeader { src, dst })
}

fn encoded_len(header: &Header<'_>, records: &[Record<'_>]) -> usize {
    header.encoded_len() + records.iter().map(|r| r.encoded_len().unwrap()).sum::<usize>()
}

/// Encodes all `records` into a buffer sized for their full encodings (a token for the slot
/// after the previous token's takes less: a `TOKEN_NEXT`); panics if any does not fit.
fn encode_all(header: &Header<'_>, records: &[Record<'_>]) -> Vec<u8> {
    let mut buf = vec![0u8; encoded_len(header, records)];
    let out = wire::encode_datagram(&mut buf, header, records).unwrap();
    assert_eq!(out.records, records.len());
    assert_eq!(out.len, buf.len() - compact_savings(records));
    buf.truncate(out.len);
    buf
}

/// Bytes saved by writing each token that continues the previous token (next slot, same
/// incarnation) as a `TOKEN_NEXT`: its slot and incarnation.
fn compact_savings(records: &[Record<'_>]) -> usize {
    let mut last: Option<(u64, u64)> = None;
    let mut saved = 0;
    for record in records {
        if let Record::Token(t) = record {
            if last.is_some_and(|(s, i)| s.checked_add(1) == Some(t.slot) && i == t.incarnation) {
                saved += wire::varint_len(t.slot) + wire::varint_len(t.incarnation);
            }
            last = Some((t.slot, t.incarnation));
        }
    }
    saved
}

/// Checks that `bytes` decodes to `header` and exactly `records`.
fn assert_decodes_to(bytes: &[u8], header: &Header<'_>, records: &[Record<'_>]) {
    let datagram = wire::decode_datagram(bytes).unwrap();
    assert_eq!(datagram.header, *header);
    assert_eq!(datagram.record_count(), records.len());
    assert_eq!(datagram.records().collect::<Vec<_>>(), records);
}

/// What every decodable input must satisfy: iterating it yields `record_count` records, every
/// TOKEN payload decodes as a message or fails cleanly, and re-encoding its records gives a
/// datagram no longer than the input that decodes to the same records.
fn check_whatever_decodes(input: &[u8]) {
    let Ok(datagram) = wire::decode_datagram(input) else { return };
    let records: Vec<Record<'_>> = datagram.records().collect();
    assert_eq!(records.len(), datagram.record_count());
    for record in &records {
        if let Record::Token(t) = record
            && let Ok(msg) = message::decode(t.payload)
        {
            let mut buf = vec![0u8; t.payload.len()];
            let n = message::encode(&msg, &mut buf).unwrap();
            assert_eq!(message::decode(&buf[..n]).unwrap(), msg);
        }
    }
    let mut buf = vec![0u8; input.len()];
    let out = wire::encode_datagram(&mut buf, &datagram.header, &records).unwrap();
    assert_eq!(out.records, records.len(), "re-encoding is never longer than the input");
    assert_decodes_to(&buf[..out.len], &datagram.header, &records);
}

fn round_trip_one(header: &OwnedHeader, record: &OwnedRecord) {
    let header = header.as_header();
    let records = [record.as_record()];
    let bytes = encode_all(&header, &records);
    assert_decodes_to(&bytes, &header, &records);
}

/// An owned message body, for strategies.
#[derive(Debug, Clone)]
enum OwnedBody {
    Error {
        code: ErrorCode,
        detail: Vec<u8>,
    },
    Link {
        protocol: u16,
        capacity: u32,
        metadata: Vec<u8>,
    },
    LinkReply {
        accept: bool,
        protocol: u16,
        capacity: u32,
        metadata: Option<Vec<u8>>,
        reason: Vec<u8>,
    },
    Unlink {
        sent: u64,
    },
    Flow {
        credits: u32,
        capacity_delta: i32,
    },
    Data {
        seq: u64,
        payload: Vec<u8>,
    },
    DataMore {
        seq: u64,
        payload: Vec<u8>,
    },
    Custom {
        kind: u8,
        body: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
struct OwnedMessage {
    src_tag: String,
    dst_tag: String,
    link: u32,
    body: OwnedBody,
}

impl OwnedMessage {
    fn as_message(&self) -> Message<'_> {
        let body = match &self.body {
            OwnedBody::Error { code, detail } => Body::Error { code: *code, detail },
            OwnedBody::Link { protocol, capacity, metadata } => {
                Body::Link { protocol: *protocol, capacity: *capacity, metadata }
            }
            OwnedBody::LinkReply { accept, protocol, capacity, metadata, reason } => {
                Body::LinkReply {
                    accept: *accept,
                    protocol: *protocol,
                    capacity: *capacity,
                    metadata: metadata.as_deref(),
                    reason,
                }
            }
            OwnedBody::Unlink { sent } => Body::Unlink { sent: *sent },
            OwnedBody::Flow { credits, capacity_delta } => {
                Body::Flow { credits: *credits, capacity_delta: *capacity_delta }
            }
            OwnedBody::Data { seq, payload } => Body::Data { seq: *seq, payload },
            OwnedBody::DataMore { seq, payload } => Body::DataMore { seq: *seq, payload },
            OwnedBody::Custom { kind, body } => Body::Custom { kind: *kind, body },
        };
        Message {
            src_tag: &self.src_tag,
            dst_tag: &self.dst_tag,
            link: LinkIncarnation(self.link),
            body,
        }
    }
}

fn error_body() -> impl Strategy<Value = OwnedBody> {
    let code = prop_oneof![
        Just(ErrorCode::SocketNotFound),
        Just(ErrorCode::IncompatibleProtocol),
        Just(ErrorCode::Refused),
    ];
    (code, payload(64)).prop_map(|(code, detail)| OwnedBody::Error { code, detail })
}

fn link_body() -> impl Strategy<Value = OwnedBody> {
    (any::<u16>(), varint_u32(), payload(64))
        .prop_map(|(protocol, capacity, metadata)| OwnedBody::Link { protocol, capacity, metadata })
}

fn link_reply_body() -> impl Strategy<Value = OwnedBody> {
    (any::<bool>(), any::<u16>(), varint_u32(), proptest::option::of(payload(64)), payload(64))
        .prop_map(|(accept, protocol, capacity, metadata, reason)| OwnedBody::LinkReply {
            accept,
            protocol,
            capacity,
            metadata,
            reason,
        })
}

fn unlink_body() -> impl Strategy<Value = OwnedBody> {
    varint_u64().prop_map(|sent| OwnedBody::Unlink { sent })
}

fn flow_body() -> impl Strategy<Value = OwnedBody> {
    let delta = prop_oneof![any::<i32>(), -300i32..300, Just(i32::MIN), Just(i32::MAX)];
    (varint_u32(), delta)
        .prop_map(|(credits, capacity_delta)| OwnedBody::Flow { credits, capacity_delta })
}

fn data_body() -> impl Strategy<Value = OwnedBody> {
    (varint_u64(), payload(200)).prop_map(|(seq, payload)| OwnedBody::Data { seq, payload })
}

fn data_more_body() -> impl Strategy<Value = OwnedBody> {
    (varint_u64(), proptest::collection::vec(any::<u8>(), 1..200))
        .prop_map(|(seq, payload)| OwnedBody::DataMore { seq, payload })
}

fn custom_body() -> impl Strategy<Value = OwnedBody> {
    (FIRST_CUSTOM_KIND..=u8::MAX, payload(64))
        .prop_map(|(kind, body)| OwnedBody::Custom { kind, body })
}

fn message_with(body: impl Strategy<Value = OwnedBody>) -> impl Strategy<Value = OwnedMessage> {
    (identifier(TAG_ID_MAX_LEN), identifier(TAG_ID_MAX_LEN), varint_u32(), body)
        .prop_map(|(src_tag, dst_tag, link, body)| OwnedMessage { src_tag, dst_tag, link, body })
}

fn any_message() -> impl Strategy<Value = OwnedMessage> {
    message_with(prop_oneof![
        error_body(),
        link_body(),
        link_reply_body(),
        unlink_body(),
        flow_body(),
        data_body(),
        data_more_body(),
        custom_body(),
    ])
}

/// Encodes `msg` exactly, checks it decodes to itself and that one byte less is refused.
fn message_round_trip(msg: &OwnedMessage) {
    let msg = msg.as_message();
    let len = msg.encoded_len().unwrap();
    let mut buf = vec![0u8; len];
    assert_eq!(message::encode(&msg, &mut buf), Ok(len));
    assert_eq!(message::decode(&buf), Ok(msg));
    assert_eq!(message::encode(&msg, &mut buf[..len - 1]), Err(EncodeError::BufferTooSmall));
}

/// One edit applied to a valid datagram.
#[derive(Debug, Clone)]
enum Mutation {
    Set { at: usize, byte: u8 },
    Flip { at: usize, bit: u8 },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Positions are taken modulo the current length when applied.
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match *m {
        Mutation::Set { at, byte } => bytes[at % n] = byte,
        Mutation::Flip { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::Insert { at, byte } => bytes.insert(at % (n + 1), byte),
        Mutation::Remove { at } => {
            bytes.remove(at % n);
        }
        Mutation::Truncate { at } => bytes.truncate(at % n),
    }
}

proptest! {
    #[test]
    fn reqslots_round_trips(h in header(), r in reqslots()) {
        round_trip_one(&h, &r);
    }

    #[test]
    fn slots_round_trips(h in header(), r in slots()) {
        round_trip_one(&h, &r);
    }

    #[test]
    fn token_round_trips(h in header(), r in token(2000)) {
        round_trip_one(&h, &r);
    }

    #[test]
    fn ack_round_trips(h in header(), r in ack()) {
        round_trip_one(&h, &r);
        // The decoded ACK reports exactly the ranges it was built from.
        let OwnedRecord::Ack { ranges, .. } = &r else { unreachable!() };
        let bytes = encode_all(&h.as_header(), &[r.as_record()]);
        let datagram = wire::decode_datagram(&bytes).unwrap();
        let Some(Record::Ack(decoded)) = datagram.records().next() else {
            panic!("expected an ACK")
        };
        prop_assert_eq!(decoded.range_count(), ranges.len());
        prop_assert_eq!(decoded.ranges().collect::<Vec<_>>(), ranges.clone());
    }

    #[test]
    fn datagrams_with_many_records_round_trip(
        h in header(),
        owned in proptest::collection::vec(any_record(), 1..300),
    ) {
        let header = h.as_header();
        let records = as_records(&owned);
        let bytes = encode_all(&header, &records);
        assert_decodes_to(&bytes, &header, &records);
    }

    /// A run of tokens for consecutive slots of one incarnation, among other records, names
    /// its slot and incarnation once: the rest go as `TOKEN_NEXT`, and decode the same.
    #[test]
    fn consecutive_tokens_name_their_slot_once_and_round_trip(
        h in header(),
        first in varint_u64(),
        incarnation in varint_u64(),
        payloads in proptest::collection::vec(payload(64), 1..50),
        other in proptest::option::of(reqslots()),
        at in any::<proptest::sample::Index>(),
    ) {
        let header = h.as_header();
        let first = first.min(u64::MAX - 64);
        let mut records: Vec<Record<'_>> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Record::Token(Token { slot: first + i as u64, incarnation, payload: p })
            })
            .collect();
        // A record of another kind in between does not break the run.
        if let Some(o) = &other {
            records.insert(at.index(records.len() + 1), o.as_record());
        }
        let bytes = encode_all(&header, &records);
        let full = encoded_len(&header, &records);
        let names: usize = (1..payloads.len() as u64)
            .map(|i| wire::varint_len(first + i) + wire::varint_len(incarnation))
            .sum();
        prop_assert_eq!(bytes.len(), full - names);
        assert_decodes_to(&bytes, &header, &records);
    }

    #[test]
    fn every_message_kind_round_trips(msg in any_message()) {
        message_round_trip(&msg);
    }

    #[test]
    fn error_messages_round_trip(msg in message_with(error_body())) {
        message_round_trip(&msg);
    }

    #[test]
    fn link_messages_round_trip(msg in message_with(link_body())) {
        message_round_trip(&msg);
    }

    #[test]
    fn link_reply_messages_round_trip(msg in message_with(link_reply_body())) {
        message_round_trip(&msg);
    }

    #[test]
    fn unlink_messages_round_trip(msg in message_with(unlink_body())) {
        message_round_trip(&msg);
    }

    #[test]
    fn flow_messages_round_trip(msg in message_with(flow_body())) {
        message_round_trip(&msg);
    }

    #[test]
    fn data_messages_round_trip(msg in message_with(data_body())) {
        message_round_trip(&msg);
    }

    #[test]
    fn data_more_messages_round_trip(msg in message_with(data_more_body())) {
        message_round_trip(&msg);
    }

    #[test]
    fn custom_messages_round_trip(msg in message_with(custom_body())) {
        message_round_trip(&msg);
    }

    #[test]
    fn the_routed_data_decoder_agrees_with_the_full_one(
        msg in message_with(prop_oneof![data_body(), data_more_body()]),
        other in any_message(),
        mutations in proptest::collection::vec(mutation(), 0..4),
    ) {
        let m = msg.as_message();
        let mut prefix = [0u8; message::DATA_PREFIX_MAX + 1];
        let len = message::data_prefix(m.src_tag, m.dst_tag, m.link, &mut prefix).unwrap();
        let prefix = &prefix[..len];
        let encode = |m: &Message<'_>| {
            let mut buf = vec![0u8; m.encoded_len().unwrap()];
            message::encode(m, &mut buf).unwrap();
            buf
        };
        let mut bytes = encode(&m);
        prop_assert_eq!(message::decode_routed_data(prefix, &bytes), Some(m.body));
        // Whatever the routed decoder accepts, the full decoder reads the same.
        for input in [encode(&other.as_message()), {
            for mutation in &mutations {
                apply(&mut bytes, mutation);
            }
            bytes
        }] {
            if let Some(body) = message::decode_routed_data(prefix, &input) {
                let full = Message { body, ..m };
                prop_assert_eq!(message::decode(&input), Ok(full));
            }
        }
    }

    #[test]
    fn messages_in_tokens_round_trip(
        h in header(),
        msgs in proptest::collection::vec(any_message(), 1..20),
        slot in varint_u64(),
        incarnation in varint_u64(),
    ) {
        let payloads: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| {
                let m = m.as_message();
                let mut buf = vec![0u8; m.encoded_len().unwrap()];
                message::encode(&m, &mut buf).unwrap();
                buf
            })
            .collect();
        let records: Vec<Record<'_>> = payloads
            .iter()
            .map(|p| Record::Token(Token { slot, incarnation, payload: p }))
            .collect();
        let bytes = encode_all(&h.as_header(), &records);
        let datagram = wire::decode_datagram(&bytes).unwrap();
        let decoded: Vec<Message<'_>> = datagram
            .records()
            .map(|r| match r {
                Record::Token(t) => message::decode(t.payload).unwrap(),
                other => panic!("expected a TOKEN, got {other:?}"),
            })
            .collect();
        let expected: Vec<Message<'_>> = msgs.iter().map(OwnedMessage::as_message).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn a_small_buffer_holds_a_prefix_of_the_records(
        h in header(),
        owned in proptest::collection::vec(any_record(), 1..60),
        size_seed in any::<usize>(),
    ) {
        let header = h.as_header();
        let records = as_records(&owned);
        let full = encoded_len(&header, &records);
        let size = size_seed % (full + 16);
        let mut buf = vec![0u8; size];
        let result = wire::encode_datagram(&mut buf, &header, &records);

        // The longest prefix that fits: the encoder stops at the first record that does not.
        let mut fit = 0;
        let mut len = header.encoded_len();
        for r in &records {
            let next = len + r.encoded_len().unwrap();
            if next > size {
                break;
            }
            len = next;
            fit += 1;
        }
        if size < header.encoded_len() || fit == 0 {
            prop_assert_eq!(result, Err(EncodeError::BufferTooSmall));
        } else {
            let out = result.unwrap();
            prop_assert_eq!(out.records, fit);
            prop_assert_eq!(out.len, len);
            assert_decodes_to(&buf[..out.len], &header, &records[..fit]);
        }
    }

    #[test]
    fn a_record_that_does_not_fit_leaves_the_writer_unchanged(
        h in header(),
        first in any_record(),
        second in any_record(),
        spare_seed in any::<usize>(),
    ) {
        let header = h.as_header();
        let (first, second) = (first.as_record(), second.as_record());
        let second_len = second.encoded_len().unwrap();
        // Room for the first record and strictly less than the second one needs.
        let spare = spare_seed % second_len;
        let mut buf = vec![0u8; encoded_len(&header, &[first]) + spare];
        let mut w = DatagramWriter::new(&mut buf, &header).unwrap();
        w.push(&first).unwrap();
        prop_assert_eq!(w.remaining(), spare);
        prop_assert_eq!(w.push(&second), Err(EncodeError::BufferTooSmall));
        prop_assert_eq!(w.remaining(), spare);
        prop_assert_eq!(w.record_count(), 1);
        let out = w.finish();
        assert_decodes_to(&buf[..out.len], &header, &[first]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(input in payload(300)) {
        check_whatever_decodes(&input);
        let _ = message::decode(&input);
    }

    #[test]
    fn decode_never_panics_behind_a_valid_header(h in header(), tail in payload(300)) {
        // A valid header makes the decoder look at the records, where most of the work is.
        let mut input = vec![0xA3, 0x4D, 1, 0];
        input.push(h.src.len() as u8);
        input.extend_from_slice(h.src.as_bytes());
        input.push(h.dst.len() as u8);
        input.extend_from_slice(h.dst.as_bytes());
        input.extend_from_slice(&tail);
        check_whatever_decodes(&input);
    }

    #[test]
    fn decode_never_panics_on_mutated_datagrams(
        h in header(),
        owned in proptest::collection::vec(any_record(), 1..20),
        msgs in proptest::collection::vec(any_message(), 0..4),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let payloads: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| {
                let m = m.as_message();
                let mut buf = vec![0u8; m.encoded_len().unwrap()];
                message::encode(&m, &mut buf).unwrap();
                buf
            })
            .collect();
        let mut records = as_records(&owned);
        records.extend(
            payloads.iter().map(|p| Record::Token(Token { slot: 1, incarnation: 2, payload: p })),
        );
        let mut bytes = encode_all(&h.as_header(), &records);
        for m in &mutations {
            apply(&mut bytes, m);
            check_whatever_decodes(&bytes);
        }
    }
}

fn seal_prefix() -> impl Strategy<Value = SealPrefix> {
    (any::<u8>(), any::<u8>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(aead, key_id, dst_epoch, epoch, counter)| SealPrefix {
            aead,
            key_id,
            dst_epoch,
            epoch,
            counter,
        },
    )
}

/// Writes a sealed datagram's framing around `records` (left in clear: the codec does not
/// encrypt) with a tag of `tag_byte`s; returns its bytes.
fn sealed_framing(
    h: &OwnedHeader,
    prefix: &SealPrefix,
    records: &[Record<'_>],
    tag: u8,
) -> Vec<u8> {
    let header = Header { src: &h.src, dst: &h.dst, flags: FLAG_SEALED };
    let room = encoded_len(&header, records) + SEAL_PREFIX_LEN + SEAL_TAG_LEN;
    let mut buf = vec![0u8; room];
    let mut w = DatagramWriter::new_sealed(&mut buf, &header, prefix).unwrap();
    for r in records {
        w.push(r).unwrap();
    }
    let out = w.finish();
    assert_eq!(out.len + SEAL_TAG_LEN, room - compact_savings(records));
    buf.truncate(out.len + SEAL_TAG_LEN);
    buf[out.len..].fill(tag);
    buf
}

proptest! {
    /// The seal prefix round-trips field by field, at the offsets the format documents, and
    /// the records behind it (here in clear) decode as they were written.
    #[test]
    fn sealed_framing_round_trips(
        h in header(),
        prefix in seal_prefix(),
        owned in proptest::collection::vec(any_record(), 1..20),
        tag in any::<u8>(),
    ) {
        let records = as_records(&owned);
        let bytes = sealed_framing(&h, &prefix, &records, tag);
        let parts = wire::decode_sealed(&bytes).unwrap();
        let at = Header { src: &h.src, dst: &h.dst, flags: FLAG_SEALED }.encoded_len();
        prop_assert_eq!(parts.header, Header { src: &h.src, dst: &h.dst, flags: FLAG_SEALED });
        prop_assert_eq!(
            (parts.aead, parts.key_id, parts.dst_epoch, parts.epoch, parts.counter),
            (prefix.aead, prefix.key_id, prefix.dst_epoch, prefix.epoch, prefix.counter)
        );
        prop_assert_eq!(parts.aad_len, at + SEAL_PREFIX_LEN);
        prop_assert_eq!(&bytes[at..at + 2], &[prefix.aead, prefix.key_id][..]);
        prop_assert_eq!(&bytes[at + 2..at + 10], &prefix.dst_epoch.to_be_bytes()[..]);
        prop_assert_eq!(&bytes[at + 10..at + 18], &prefix.epoch.to_be_bytes()[..]);
        prop_assert_eq!(&bytes[at + 18..at + 26], &prefix.counter.to_be_bytes()[..]);
        prop_assert_eq!(parts.tag, [tag; SEAL_TAG_LEN]);
        let datagram = wire::decode_records(parts.header, parts.ciphertext).unwrap();
        prop_assert_eq!(datagram.records().collect::<Vec<_>>(), records);
        // A sealed datagram is never taken for a plaintext one.
        prop_assert_eq!(wire::decode_datagram(&bytes).err(), Some(wire::DecodeError::Sealed));
    }

    /// Any edit of a sealed datagram's framing decodes to a consistent split or an error,
    /// never a panic: the parts always add up to the input.
    #[test]
    fn sealed_framing_never_panics_when_mutated(
        h in header(),
        prefix in seal_prefix(),
        owned in proptest::collection::vec(any_record(), 1..8),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let records = as_records(&owned);
        let mut bytes = sealed_framing(&h, &prefix, &records, 0);
        for m in &mutations {
            apply(&mut bytes, m);
            if let Ok(parts) = wire::decode_sealed(&bytes) {
                prop_assert_eq!(parts.aad_len + parts.ciphertext.len() + SEAL_TAG_LEN, bytes.len());
                prop_assert!(!parts.ciphertext.is_empty());
            }
        }
    }
}

#[test]
fn an_empty_data_more_is_not_encoded() {
    let msg = Message {
        src_tag: "s",
        dst_tag: "d",
        link: LinkIncarnation(1),
        body: Body::DataMore { seq: 0, payload: b"" },
    };
    assert_eq!(msg.encoded_len(), Err(EncodeError::BadValue));
    assert_eq!(message::encode(&msg, &mut [0u8; 64]), Err(EncodeError::BadValue));
}

#[test]
fn encoding_stops_at_max_records() {
    let header = Header { src: "A", dst: "B", flags: 0 };
    let record = Record::ReqSlots(ReqSlots { start: 0, count: 0, lowest: 0 });
    let records = vec![record; MAX_RECORDS + 1];
    let mut buf = vec![0u8; encoded_len(&header, &records)];
    let out = wire::encode_datagram(&mut buf, &header, &records).unwrap();
    assert_eq!(out.records, MAX_RECORDS);
    assert_decodes_to(&buf[..out.len], &header, &records[..MAX_RECORDS]);
}

#[test]
fn ack_ranges_at_the_top_of_the_slot_space_round_trip() {
    let header = Header { src: "A", dst: "B", flags: 0 };
    let ranges = [SlotRange { start: 0, end: 1 }, SlotRange { start: u64::MAX - 1, end: u64::MAX }];
    let records = [Record::Ack(Ack::new(u64::MAX, &ranges))];
    let bytes = encode_all(&header, &records);
    assert_decodes_to(&bytes, &header, &records);
}

/// A `TOKEN_NEXT` needs a token before it in the same datagram, and a slot after it.
#[test]
fn a_token_next_without_a_token_before_it_is_malformed() {
    let header = Header { src: "a", dst: "b", flags: 0 };
    let mut buf = vec![0u8; 256];
    let mut w = DatagramWriter::new(&mut buf, &header).unwrap();
    w.push(&Record::Token(Token { slot: u64::MAX, incarnation: 3, payload: b"x" })).unwrap();
    let len = w.finish().len;
    let token_at = len - 1 - 1 - 1 - wire::varint_len(3) - wire::varint_len(u64::MAX);
    // The token alone decodes; a TOKEN_NEXT after slot u64::MAX does not.
    assert!(wire::decode_datagram(&buf[..len]).is_ok());
    let mut after_max = buf[..len].to_vec();
    after_max.extend_from_slice(&[0x08, 1, b'y']);
    assert_eq!(wire::decode_datagram(&after_max).unwrap_err(), wire::DecodeError::OrphanTokenNext);
    // In place of the token: no token before it.
    let mut orphan = buf[..token_at].to_vec();
    orphan.extend_from_slice(&[0x08, 1, b'y']);
    assert_eq!(wire::decode_datagram(&orphan).unwrap_err(), wire::DecodeError::OrphanTokenNext);
    // After another kind of record only: still none.
    let mut w = DatagramWriter::new(&mut buf, &header).unwrap();
    w.push(&Record::ReqSlots(ReqSlots { start: 1, count: 2, lowest: 0 })).unwrap();
    let len = w.finish().len;
    let mut after_request = buf[..len].to_vec();
    after_request.extend_from_slice(&[0x08, 1, b'y']);
    assert_eq!(
        wire::decode_datagram(&after_request).unwrap_err(),
        wire::DecodeError::OrphanTokenNext
    );
}
