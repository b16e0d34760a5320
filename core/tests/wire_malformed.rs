//! Malformed datagrams and messages, each with the exact error the decoder must give.
//!
//! Every table starts from a valid input (checked to decode) and breaks one thing, so a case
//! fails for the reason its name says and not for some other defect in its bytes.

use DecodeError::*;
use a3m_core::id::IdError;
use a3m_core::wire::message::{self, Body};
use a3m_core::wire::{self, DecodeError, MAX_ACK_RANGES, MAX_RECORDS, NODE_ID_MAX_LEN, Record};

/// The header of a datagram from "A" to "B".
const HEADER: [u8; 8] = [0xA3, 0x4D, 1, 0, 1, b'A', 1, b'B'];
/// A `REQSLOTS` for slot 0, count 0, lowest 0.
const REQSLOTS: [u8; 4] = [0x01, 0, 0, 0];

/// A varint of `v`.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// `parts` concatenated.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A datagram from "A" to "B" carrying `records` (already encoded).
fn datagram(records: &[u8]) -> Vec<u8> {
    cat(&[&HEADER, records])
}

/// A datagram with the given header fields (raw id bytes) and one `REQSLOTS`.
fn with_header(magic: [u8; 2], version: u8, flags: u8, src: &[u8], dst: &[u8]) -> Vec<u8> {
    cat(&[&magic, &[version, flags, src.len() as u8], src, &[dst.len() as u8], dst, &REQSLOTS])
}

/// An `ACK` of incarnation 1 with `count` ranges given as (gap, length − 1) pairs.
fn ack(count: u64, ranges: &[(u64, u64)]) -> Vec<u8> {
    let mut out = cat(&[&[0x04, 1], &varint(count)]);
    for &(gap, len_minus_one) in ranges {
        out.extend(varint(gap));
        out.extend(varint(len_minus_one));
    }
    out
}

/// A message of `kind` from tag "s" to tag "d" on link 7, with `body` (already encoded).
fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    cat(&[&[kind, 1, b's', 1, b'd', 7], body])
}

/// A message of `kind` with raw tag bytes and `body`.
fn msg_with_tags(kind: u8, src: &[u8], dst: &[u8], body: &[u8]) -> Vec<u8> {
    cat(&[&[kind, src.len() as u8], src, &[dst.len() as u8], dst, &[7], body])
}

/// Checks every `(name, input, expected)` row and reports all mismatches at once.
fn check_table(
    decode: impl Fn(&[u8]) -> Result<String, DecodeError>,
    table: &[(&str, Vec<u8>, Result<(), DecodeError>)],
) {
    let mut wrong = Vec::new();
    for (name, input, expected) in table {
        let got = decode(input);
        let got_shape = got.as_ref().map(|_| ()).map_err(|e| *e);
        if got_shape != *expected {
            wrong.push(format!("{name}: expected {expected:?}, got {got:?} for {input:02x?}"));
        }
    }
    assert!(wrong.is_empty(), "{} case(s) wrong:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn truncating_a_datagram_at_every_byte_gives_the_error_of_the_field_it_cuts() {
    let full = cat(&[
        // 0..9: magic, version, flags, src "A", dst "BC"
        &[0xA3, 0x4D, 1, 0, 1, b'A', 2, b'B', b'C'],
        // 9..14: REQSLOTS start 128 (two-byte varint), count 16, lowest 0
        &[0x01, 0x80, 0x01, 0x10, 0x00],
        // 14..19: SLOTS start 5, incarnation 3, count 144 (two-byte varint)
        &[0x02, 0x05, 0x03, 0x90, 0x01],
        // 19..27: TOKEN slot 7, incarnation 3, payload length 4, "data"
        &[0x03, 0x07, 0x03, 0x04, b'd', b'a', b't', b'a'],
        // 27..34: ACK incarnation 3, 2 ranges: gap 5 len-1 2, gap 2 len-1 0
        &[0x04, 0x03, 0x02, 0x05, 0x02, 0x02, 0x00],
    ]);
    assert_eq!(full.len(), 34);
    let all: Vec<Record<'_>> = wire::decode_datagram(&full).unwrap().records().collect();
    assert_eq!(all.len(), 4);

    // Ok(n): a cut between records leaves a valid datagram with the first n records.
    let expected = |cut: usize| -> Result<usize, DecodeError> {
        match cut {
            0..=8 => Err(Truncated),
            9 => Err(NoRecords),
            10..=13 => Err(Truncated),
            14 => Ok(1),
            15..=18 => Err(Truncated),
            19 => Ok(2),
            // kind, slot, incarnation, then the payload length itself
            20..=22 => Err(Truncated),
            // the length (4) is there but the payload is cut short
            23..=26 => Err(LengthPastEnd),
            27 => Ok(3),
            28..=33 => Err(Truncated),
            34 => Ok(4),
            _ => unreachable!(),
        }
    };
    for cut in 0..=full.len() {
        let got = wire::decode_datagram(&full[..cut]).map(|d| d.records().collect::<Vec<_>>());
        match expected(cut) {
            Ok(n) => assert_eq!(got, Ok(all[..n].to_vec()), "cut at {cut}"),
            Err(e) => assert_eq!(got, Err(e), "cut at {cut}"),
        }
    }
}

#[test]
fn truncating_a_message_at_every_byte_gives_the_error_of_the_field_it_cuts() {
    let full = cat(&[
        // 0..6: LINKREPLY, src "s", dst "d", link 7
        &[0x03, 1, b's', 1, b'd', 7],
        // 6..10: flags accept+metadata, protocol 129 (two-byte varint), capacity 2
        &[0x03, 0x81, 0x01, 0x02],
        // 10..13: metadata length 2, "md"
        &[0x02, b'm', b'd'],
        // 13..14: reason "r" (the rest)
        b"r",
    ]);
    let decoded = message::decode(&full).unwrap();
    assert_eq!(
        decoded.body,
        Body::LinkReply {
            accept: true,
            protocol: 129,
            capacity: 2,
            metadata: Some(b"md"),
            reason: b"r"
        }
    );
    for cut in 0..full.len() {
        let expected = match cut {
            0..=10 => Err(Truncated),
            11 | 12 => Err(LengthPastEnd),
            // Only the free-form reason is cut: still a valid message, with an empty reason.
            13 => Ok(()),
            _ => unreachable!(),
        };
        assert_eq!(message::decode(&full[..cut]).map(|_| ()), expected, "cut at {cut}");
    }
}

#[test]
fn the_valid_inputs_the_tables_start_from_decode() {
    let max_id = [b'n'; NODE_ID_MAX_LEN];
    let max_ranges: Vec<(u64, u64)> = vec![(1, 0); MAX_ACK_RANGES];
    let many = REQSLOTS.repeat(MAX_RECORDS);
    let datagrams: Vec<(&str, Vec<u8>)> = vec![
        ("plain header + REQSLOTS", datagram(&REQSLOTS)),
        ("with_header baseline", with_header([0xA3, 0x4D], 1, 0, b"A", b"B")),
        ("ids of the maximum length", with_header([0xA3, 0x4D], 1, 0, &max_id, &max_id)),
        ("multi-byte UTF-8 ids", with_header([0xA3, 0x4D], 1, 0, "é".as_bytes(), "𐀀".as_bytes())),
        ("TOKEN with payload", datagram(&[0x03, 1, 1, 4, b'a', b'b', b'c', b'd'])),
        ("TOKEN with empty payload", datagram(&[0x03, 1, 1, 0])),
        ("ACK with one range", datagram(&ack(1, &[(0, 0)]))),
        ("ACK with MAX_ACK_RANGES ranges", datagram(&ack(MAX_ACK_RANGES as u64, &max_ranges))),
        ("ACK ending at u64::MAX", datagram(&ack(1, &[(u64::MAX - 1, 0)]))),
        ("ACK of the whole slot space", datagram(&ack(1, &[(0, u64::MAX - 1)]))),
        ("MAX_RECORDS records", datagram(&many)),
        ("varint of u64::MAX", datagram(&cat(&[&[0x01], &varint(u64::MAX), &[0, 0]]))),
        ("count of u32::MAX", datagram(&cat(&[&[0x01, 0], &varint(u32::MAX.into()), &[0]]))),
        ("overlong zero varint", datagram(&[0x01, 0x80, 0x80, 0x00, 0, 0])),
    ];
    for (name, input) in &datagrams {
        assert!(wire::decode_datagram(input).is_ok(), "{name}: {input:02x?}");
    }
    let messages: Vec<(&str, Vec<u8>)> = vec![
        ("ERROR", msg(0x01, &[0x01])),
        ("LINK", msg(0x02, &[0x01, 0x02, b'm'])),
        ("LINKREPLY without metadata", msg(0x03, &[0x01, 0x01, 0x02])),
        ("LINKREPLY with metadata", msg(0x03, &[0x03, 0x01, 0x02, 0x01, b'm', b'r'])),
        ("UNLINK", msg(0x04, &[0x05])),
        ("FLOW", msg(0x05, &[0x05, 0x03])),
        ("DATA", msg(0x06, &[0x00, b'x'])),
        ("empty DATA", msg(0x06, &[0x00])),
        ("DATA_MORE", msg(0x07, &[0x00, b'x'])),
        ("DATA_MORE, long sequence number", msg(0x07, &cat(&[&varint(u64::MAX), b"xy"]))),
        ("first custom kind", msg(0x40, b"body")),
        ("last custom kind", msg(0xFF, b"")),
        ("LINK protocol u16::MAX", msg(0x02, &cat(&[&varint(u16::MAX.into()), &[0]]))),
        ("tags of the maximum length", msg_with_tags(0x04, &[b't'; 32], &[b't'; 32], &[0])),
    ];
    for (name, input) in &messages {
        assert!(message::decode(input).is_ok(), "{name}: {input:02x?}");
    }
}

#[test]
fn malformed_headers() {
    let ok_magic = [0xA3, 0x4D];
    let long_id = [b'n'; NODE_ID_MAX_LEN + 1];
    let table = vec![
        ("empty input", vec![], Err(Truncated)),
        ("one byte", vec![0xA3], Err(Truncated)),
        ("magic only", vec![0xA3, 0x4D], Err(Truncated)),
        ("wrong second magic byte", with_header([0xA3, 0x4E], 1, 0, b"A", b"B"), Err(BadMagic)),
        ("magic bytes swapped", with_header([0x4D, 0xA3], 1, 0, b"A", b"B"), Err(BadMagic)),
        ("zero magic", with_header([0, 0], 1, 0, b"A", b"B"), Err(BadMagic)),
        ("wrong magic, too short for a header", vec![0x00, 0x00], Err(BadMagic)),
        ("version 0", with_header(ok_magic, 0, 0, b"A", b"B"), Err(UnsupportedVersion(0))),
        ("version 2", with_header(ok_magic, 2, 0, b"A", b"B"), Err(UnsupportedVersion(2))),
        ("version 255", with_header(ok_magic, 255, 0, b"A", b"B"), Err(UnsupportedVersion(255))),
        (
            "version checked before flags",
            with_header(ok_magic, 2, 1, b"A", b"B"),
            Err(UnsupportedVersion(2)),
        ),
        // Bit 0 is FLAG_SEALED: such a datagram must be opened, not decoded as plaintext.
        ("flag bit 0", with_header(ok_magic, 1, 0x01, b"A", b"B"), Err(Sealed)),
        ("flag bit 1", with_header(ok_magic, 1, 0x02, b"A", b"B"), Err(UnknownFlags(0x02))),
        ("flag bit 7", with_header(ok_magic, 1, 0x80, b"A", b"B"), Err(UnknownFlags(0x80))),
        ("all flags", with_header(ok_magic, 1, 0xFF, b"A", b"B"), Err(UnknownFlags(0xFF))),
        ("empty source id", with_header(ok_magic, 1, 0, b"", b"B"), Err(BadId(IdError::Empty))),
        (
            "empty destination id",
            with_header(ok_magic, 1, 0, b"A", b""),
            Err(BadId(IdError::Empty)),
        ),
        (
            "source id one byte too long",
            with_header(ok_magic, 1, 0, &long_id, b"B"),
            Err(BadId(IdError::TooLong { len: NODE_ID_MAX_LEN + 1, max: NODE_ID_MAX_LEN })),
        ),
        (
            "destination id one byte too long",
            with_header(ok_magic, 1, 0, b"A", &long_id),
            Err(BadId(IdError::TooLong { len: NODE_ID_MAX_LEN + 1, max: NODE_ID_MAX_LEN })),
        ),
        (
            // The length is refused before the missing bytes are noticed.
            "id length 255 with nothing behind it",
            vec![0xA3, 0x4D, 1, 0, 255],
            Err(BadId(IdError::TooLong { len: 255, max: NODE_ID_MAX_LEN })),
        ),
        ("id cut short", vec![0xA3, 0x4D, 1, 0, 3, b'A'], Err(Truncated)),
        (
            "source id 0xFF",
            with_header(ok_magic, 1, 0, &[0xFF], b"B"),
            Err(BadId(IdError::NotUtf8)),
        ),
        (
            "destination id with a cut UTF-8 sequence",
            with_header(ok_magic, 1, 0, b"A", &[b'x', 0xC3]),
            Err(BadId(IdError::NotUtf8)),
        ),
        (
            "overlong UTF-8 for NUL",
            with_header(ok_magic, 1, 0, &[0xC0, 0x80], b"B"),
            Err(BadId(IdError::NotUtf8)),
        ),
        (
            "UTF-8 surrogate",
            with_header(ok_magic, 1, 0, &[0xED, 0xA0, 0x80], b"B"),
            Err(BadId(IdError::NotUtf8)),
        ),
        ("header without records", HEADER.to_vec(), Err(NoRecords)),
    ];
    check_table(|b| wire::decode_datagram(b).map(|d| format!("{d:?}")), &table);
}

#[test]
fn malformed_records() {
    let two_pow_32 = varint(1 << 32);
    let mut table = vec![
        (
            "TOKEN payload one byte past the end",
            datagram(&[0x03, 1, 1, 5, b'a', b'b', b'c', b'd']),
            Err(LengthPastEnd),
        ),
        ("TOKEN payload length with no payload", datagram(&[0x03, 1, 1, 1]), Err(LengthPastEnd)),
        (
            "TOKEN payload length u64::MAX",
            datagram(&cat(&[&[0x03, 1, 1], &varint(u64::MAX), b"abc"])),
            Err(LengthPastEnd),
        ),
        (
            "TOKEN payload past the end behind a valid record",
            datagram(&cat(&[&REQSLOTS, &[0x03, 1, 1, 2, b'a']])),
            Err(LengthPastEnd),
        ),
        (
            "unknown kind after a valid record",
            datagram(&cat(&[&REQSLOTS, &[0x09, 0, 0, 0]])),
            Err(UnknownRecordKind(0x09)),
        ),
        ("TOKEN_NEXT first", datagram(&[0x08, 1, b'a']), Err(OrphanTokenNext)),
        (
            "TOKEN_NEXT after a REQSLOTS only",
            datagram(&cat(&[&REQSLOTS, &[0x08, 1, b'a']])),
            Err(OrphanTokenNext),
        ),
        (
            "TOKEN_NEXT payload past the end behind a TOKEN",
            datagram(&[0x03, 1, 1, 1, b'a', 0x08, 2, b'b']),
            Err(LengthPastEnd),
        ),
        ("PATH_CHALLENGE cut short", datagram(&[0x05, 1, 2, 3, 4, 5, 6, 7]), Err(Truncated)),
        ("PATH_RESPONSE cut short", datagram(&[0x06, 1, 2, 3]), Err(Truncated)),
        ("SEAL_MISMATCH cut short", datagram(&[0x07]), Err(Truncated)),
        ("too many records", datagram(&REQSLOTS.repeat(MAX_RECORDS + 1)), Err(TooManyRecords)),
        (
            // The limit is hit before the extra record is even read.
            "too many records, the extra one garbage",
            datagram(&cat(&[&REQSLOTS.repeat(MAX_RECORDS), &[0xEE]])),
            Err(TooManyRecords),
        ),
        ("ACK with 0 ranges", datagram(&ack(0, &[])), Err(BadAckRangeCount)),
        (
            "ACK with MAX_ACK_RANGES + 1 ranges",
            datagram(&ack(MAX_ACK_RANGES as u64 + 1, &vec![(1, 0); MAX_ACK_RANGES + 1])),
            Err(BadAckRangeCount),
        ),
        ("ACK with u64::MAX ranges", datagram(&ack(u64::MAX, &[(1, 0)])), Err(BadAckRangeCount)),
        ("ACK with fewer ranges than announced", datagram(&ack(2, &[(1, 0)])), Err(Truncated)),
        ("ACK range starting at u64::MAX", datagram(&ack(1, &[(u64::MAX, 0)])), Err(BadAckRange)),
        (
            "ACK range longer than the slot space",
            datagram(&ack(1, &[(0, u64::MAX)])),
            Err(BadAckRange),
        ),
        (
            "ACK range ending past u64::MAX",
            datagram(&ack(1, &[(2, u64::MAX - 2)])),
            Err(BadAckRange),
        ),
        (
            "ACK second range's gap overflows",
            datagram(&ack(2, &[(0, 0), (u64::MAX, 0)])),
            Err(BadAckRange),
        ),
        (
            "ACK ranges touching (gap 0 after the first)",
            datagram(&ack(2, &[(5, 2), (0, 0)])),
            Err(BadAckRange),
        ),
        (
            "varint of 11 bytes",
            datagram(&cat(&[&[0x01], &[0x80; 10], &[0x00, 0, 0]])),
            Err(BadVarint),
        ),
        (
            "varint with a continuation bit on its 10th byte",
            datagram(&cat(&[&[0x01], &[0xFF; 9], &[0x81, 0x00, 0, 0]])),
            Err(BadVarint),
        ),
        (
            "varint overflowing u64 at its 10th byte",
            datagram(&cat(&[&[0x01], &[0xFF; 9], &[0x02, 0, 0]])),
            Err(BadVarint),
        ),
        (
            "varint overflowing u64 at its 10th byte, all bits",
            datagram(&cat(&[&[0x02], &[0xFF; 9], &[0x7F, 0, 0]])),
            Err(BadVarint),
        ),
        ("varint cut after a continuation byte", datagram(&[0x01, 0x80]), Err(Truncated)),
        ("REQSLOTS count 2^32", datagram(&cat(&[&[0x01, 0], &two_pow_32, &[0]])), Err(BadVarint)),
        ("SLOTS count 2^32", datagram(&cat(&[&[0x02, 0, 0], &two_pow_32])), Err(BadVarint)),
        (
            "SLOTS count u64::MAX",
            datagram(&cat(&[&[0x02, 0, 0], &varint(u64::MAX)])),
            Err(BadVarint),
        ),
    ];
    for kind in (0x00..=0xFF).filter(|k| !(0x01..=0x08).contains(k)) {
        table.push((
            "unknown record kind",
            datagram(&[kind, 0, 0, 0]),
            Err(UnknownRecordKind(kind)),
        ));
        table.push(("unknown record kind, alone", datagram(&[kind]), Err(UnknownRecordKind(kind))));
    }
    check_table(|b| wire::decode_datagram(b).map(|d| format!("{d:?}")), &table);
}

#[test]
fn malformed_messages() {
    let long_tag = [b't'; 33];
    let two_pow_32 = varint(1 << 32);
    let mut table = vec![
        ("empty message", vec![], Err(Truncated)),
        ("kind only", vec![0x06], Err(Truncated)),
        ("DATA_MORE kind only", vec![0x07], Err(Truncated)),
        ("DATA_MORE without a payload", msg(0x07, &[0x00]), Err(BadValue)),
        ("DATA_MORE without a sequence number", msg(0x07, &[]), Err(Truncated)),
        ("DATA_MORE sequence number of 11 bytes", msg(0x07, &[0x80; 11]), Err(BadVarint)),
        ("ERROR code 0", msg(0x01, &[0x00]), Err(BadValue)),
        ("ERROR code 4", msg(0x01, &[0x04, b'x']), Err(BadValue)),
        ("ERROR code 255", msg(0x01, &[0xFF]), Err(BadValue)),
        ("ERROR without a code", msg(0x01, &[]), Err(Truncated)),
        ("LINKREPLY flag bit 2", msg(0x03, &[0x04, 0x01, 0x02]), Err(BadValue)),
        ("LINKREPLY flag bit 7", msg(0x03, &[0x81, 0x01, 0x02]), Err(BadValue)),
        ("LINKREPLY all flags", msg(0x03, &[0xFF, 0x01, 0x02]), Err(BadValue)),
        (
            "LINKREPLY metadata past the end",
            msg(0x03, &[0x02, 0x01, 0x02, 0x03, b'm']),
            Err(LengthPastEnd),
        ),
        ("LINKREPLY metadata flag, no length", msg(0x03, &[0x02, 0x01, 0x02]), Err(Truncated)),
        ("FLOW with a trailing byte", msg(0x05, &[0x05, 0x03, 0x00]), Err(TrailingBytes)),
        ("FLOW with trailing text", msg(0x05, &[0x05, 0x03, b'x', b'y']), Err(TrailingBytes)),
        ("FLOW without capacity change", msg(0x05, &[0x05]), Err(Truncated)),
        ("FLOW credits 2^32", msg(0x05, &cat(&[&two_pow_32, &[0]])), Err(BadVarint)),
        ("FLOW capacity change 2^32", msg(0x05, &cat(&[&[0], &two_pow_32])), Err(BadVarint)),
        ("UNLINK with a trailing byte", msg(0x04, &[0x05, 0x00]), Err(TrailingBytes)),
        ("UNLINK without a count", msg(0x04, &[]), Err(Truncated)),
        ("UNLINK count of 11 bytes", msg(0x04, &cat(&[&[0x80; 10], &[0]])), Err(BadVarint)),
        ("LINK protocol 2^16", msg(0x02, &cat(&[&varint(1 << 16), &[0]])), Err(BadVarint)),
        ("LINK capacity 2^32", msg(0x02, &cat(&[&[0x01], &two_pow_32])), Err(BadVarint)),
        (
            "LINKREPLY protocol 2^16",
            msg(0x03, &cat(&[&[0x01], &varint(1 << 16), &[0]])),
            Err(BadVarint),
        ),
        (
            "link incarnation 2^32",
            cat(&[&[0x06, 1, b's', 1, b'd'], &two_pow_32, &[0]]),
            Err(BadVarint),
        ),
        (
            "source tag one byte too long",
            msg_with_tags(0x04, &long_tag, b"d", &[0]),
            Err(BadId(IdError::TooLong { len: 33, max: 32 })),
        ),
        (
            "destination tag one byte too long",
            msg_with_tags(0x04, b"s", &long_tag, &[0]),
            Err(BadId(IdError::TooLong { len: 33, max: 32 })),
        ),
        ("empty source tag", msg_with_tags(0x04, b"", b"d", &[0]), Err(BadId(IdError::Empty))),
        ("empty destination tag", msg_with_tags(0x04, b"s", b"", &[0]), Err(BadId(IdError::Empty))),
        ("non-UTF-8 tag", msg_with_tags(0x04, &[0xFE], b"d", &[0]), Err(BadId(IdError::NotUtf8))),
    ];
    for kind in std::iter::once(0x00).chain(0x08..=0x3F) {
        // A kind reserved for the core is refused whatever follows it.
        table.push(("reserved kind", msg(kind, &[0x00]), Err(UnknownMessageKind(kind))));
        table.push(("reserved kind, alone", vec![kind], Err(UnknownMessageKind(kind))));
    }
    check_table(|b| message::decode(b).map(|m| format!("{m:?}")), &table);
}
