//! The datagram format: a header followed by one or more exactly-once records.
//!
//! Everything a3m sends on the network is one *datagram*. It starts with a header and
//! carries one or more *records* of the exactly-once protocol (see `SPEC.md`): `REQSLOTS`,
//! `SLOTS`, `TOKEN` and `ACK`. Batching many records into one datagram is what makes a3m
//! fast; the [`DatagramWriter`] fills a caller's buffer up to the size the caller chooses.
//! A `TOKEN` carries one a3m socket message, whose codec is in [`message`].
//!
//! # Encoding rules
//!
//! * Integers marked *varint* are unsigned LEB128: 7 bits per byte, least significant group
//!   first, high bit set on every byte but the last; at most 10 bytes for a `u64`. Overlong
//!   forms that overflow the field's type are rejected.
//! * Identifiers (node ids) are a length byte followed by that many bytes of UTF-8; the length
//!   must be between 1 and [`NODE_ID_MAX_LEN`].
//! * Byte strings (token payloads) are a varint length followed by the bytes.
//!
//! # Header
//!
//! | bytes | field |
//! |---|---|
//! | 2 | magic `A3 4D` |
//! | 1 | version, currently [`VERSION`] = 1 |
//! | 1 | flags: bit 0 ([`FLAG_SEALED`]) says the records are sealed; the other bits must be 0 |
//! | 1 + n | source node id |
//! | 1 + n | destination node id |
//!
//! A plaintext datagram (flags 0) continues with its records. A sealed one continues as
//! described under [Sealed datagrams](#sealed-datagrams).
//!
//! # Records
//!
//! Each record starts with a kind byte; records run until the end of the datagram. A datagram
//! carries at least one and at most [`MAX_RECORDS`] records.
//!
//! | kind | record | fields after the kind byte |
//! |---|---|---|
//! | `01` | `REQSLOTS` | start slot (varint), count (varint, u32), lowest slot still wanted (varint) |
//! | `02` | `SLOTS` | start slot (varint), receiver incarnation (varint), count (varint, u32) |
//! | `03` | `TOKEN` | slot (varint), receiver incarnation (varint), payload (byte string) |
//! | `08` | `TOKEN_NEXT` | payload (byte string): a `TOKEN` for the slot after the previous token's in this datagram (a `TOKEN` or `TOKEN_NEXT`), of the same incarnation; a datagram whose first token is one is malformed |
//! | `04` | `ACK` | receiver incarnation (varint), range count (varint, 1..=[`MAX_ACK_RANGES`]), then per range: gap (varint), length − 1 (varint) |
//! | `05` | `PATH_CHALLENGE` | 8 bytes the peer must echo from the address it was sent to |
//! | `06` | `PATH_RESPONSE` | the 8 bytes of a `PATH_CHALLENGE`, echoed |
//! | `07` | `SEAL_MISMATCH` | 1 byte: [`SEAL_MISMATCH_NO_KEY`] (the sender has no key and refuses sealed datagrams), [`SEAL_MISMATCH_KEY_REQUIRED`] (the sender has a key and refuses plaintext) [`SEAL_MISMATCH_STALE_EPOCH`] (sealed only: the sender dropped a datagram sealed for another of its starts) or [`SEAL_MISMATCH_UNKNOWN_KEY`] (the sender has a key, but not the one the refused datagram was sealed with) |
//!
//! `SEAL_MISMATCH` is always sent alone. With reasons 1 and 2 it goes in a plaintext
//! datagram, even from a node with a key: it is how a node tells a peer why it refuses its
//! datagrams, so that the peer's application gets a reason instead of a silent timeout. Being
//! unauthenticated, it only ever sets the receiver's [`crate::node::Node::last_refusal`];
//! nodes send it at most ten times a second. Reason 3 goes sealed; what it carries is in its
//! seal (see [Sealed datagrams](#sealed-datagrams)).
//!
//! `ACK` ranges are ascending, disjoint and not adjacent. A range's start is the end of the
//! previous range (0 for the first) plus its gap; every gap but the first is at least 1 (touching
//! ranges are written as one), and every length is at least 1. So the slots 5, 6, 7 and 10 are
//! two ranges, `5..8` (gap 5, length−1 2) and `10..11` (gap 2, length−1 0).
//!
//! `PATH_CHALLENGE` and `PATH_RESPONSE` check a new address before a node sends a peer's
//! traffic there (as QUIC's frames of the same names do): a datagram naming a known peer
//! but coming from another address does not move the peer; the node sends a challenge to
//! that address, and moves the peer only when the challenge's bytes come back from there.
//!
//! # Sealed datagrams
//!
//! A node configured with a pre-shared key (see [`crate::seal`]) sends only sealed
//! datagrams and refuses plaintext ones; a node without one refuses sealed ones. A sealed
//! datagram is, byte by byte:
//!
//! | bytes | field |
//! |---|---|
//! | 2 | magic `A3 4D` |
//! | 1 | version 1 |
//! | 1 | flags `01` ([`FLAG_SEALED`]) |
//! | 1 + n | source node id |
//! | 1 + n | destination node id |
//! | 1 | AEAD algorithm: `01` ChaCha20-Poly1305, `02` AES-256-GCM (each sender picks its own; a receiver opens either) |
//! | 1 | key id: the first byte of SHA-256(`"a3m psk id"` ‖ key), so a receiver knows which of its keys (current, or the previous one during a rotation) to try, and tells a wrong key from a forgery |
//! | 8 | destination epoch, big-endian: the newest epoch of the destination that the sender has authenticated (from a sealed datagram of the destination), or 0 if it has authenticated none yet |
//! | 8 | epoch of the sender, big-endian: chosen at every start of the sender and growing from one start to the next (the std adapters take the wall clock in microseconds) |
//! | 8 | counter, big-endian: one sequence per sender and epoch, shared by all its peers, never repeated |
//! | m ≥ 1 | the records, encrypted |
//! | 16 | the AEAD tag |
//!
//! Everything before the encrypted records ([`SealedDatagram::aad_len`] bytes) is the
//! associated data: it is authenticated, not encrypted. The key is HKDF-SHA256 (salt
//! `"a3m seal v1"`, input key material the pre-shared key) expanded with the info `"a3m v1"`
//! ‖ algorithm ‖ key id ‖ epoch ‖ source id (length byte and bytes) ‖ destination id (length
//! byte and bytes): one key per direction, per pair of nodes, per sender start. The 12-byte
//! nonce is 4 zero bytes then the counter, big-endian; a key never sees a counter twice, so a
//! nonce is never reused, across restarts included (a new epoch is a new key).
//!
//! The destination epoch is authenticated as associated data but is not part of the key, so
//! a sender's key does not change when it learns that the receiver restarted, and a receiver
//! has one key to try per sender epoch whatever the sender knew. It comes before the
//! sender's epoch so that the prefix ends with what makes the nonce unique, the sender's
//! epoch and counter.
//!
//! A receiver keeps, per peer, the newest epoch it authenticated and a sliding window over
//! the counters of that epoch (see [`crate::seal::ReplayWindow`]): a datagram of an older
//! epoch, with a counter it has seen, or with one too far behind the newest, is dropped.
//! Those windows live in memory and start empty when the receiver restarts; the destination
//! epoch is what protects a restarted receiver. A datagram whose destination epoch is not 0
//! and is not the receiver's own epoch was sealed for another start of the receiver: it is
//! dropped before it is opened, whatever its counter. So a datagram captured before the
//! receiver restarted cannot be replayed to the new start, except one sealed with destination
//! epoch 0: a sender uses 0 only while it knows no epoch of the receiver (its first round
//! trip with it), and each such datagram can be replayed once into every later start of the
//! receiver that has not yet authenticated that epoch of the sender (see [`crate::seal`] for
//! the exact exposure).
//!
//! For example, the prefix of a datagram from `A` (epoch 100, counter 7) to `B`, whose epoch
//! 200 `A` has authenticated, sealed with ChaCha20-Poly1305 under a key of id `1B`:
//!
//! ```text
//! A3 4D 01 01                  magic, version 1, flags: sealed
//! 01 41 01 42                  source "A", destination "B"
//! 01 1B                        ChaCha20-Poly1305, key id 1B
//! 00 00 00 00 00 00 00 C8      destination epoch 200
//! 00 00 00 00 00 00 00 64      epoch 100
//! 00 00 00 00 00 00 00 07      counter 7
//! ...                          the records, encrypted, then the 16-byte tag
//! ```
//!
//! A node that drops a datagram for its destination epoch tells the sender its current epoch
//! (else a sender that does not restart would keep sealing for the receiver's previous start
//! for ever): if the datagram authenticates, and is not itself such an answer, it answers with
//! a sealed datagram of one `SEAL_MISMATCH` record of reason
//! [`SEAL_MISMATCH_STALE_EPOCH`], whose destination epoch is the epoch of the dropped
//! datagram's sender. Its seal carries the receiver's current epoch, authenticated, which the
//! sender adopts at once; the record itself means nothing else. These answers go at most
//! 64 at once and 100 a second per node, as path challenges do (they answer datagrams the
//! node did not accept, so they must not be a reflector).
//!
//! # Example
//!
//! A datagram from node `A` to node `B` carrying a `REQSLOTS` for 16 slots from slot 0 and
//! an `ACK` of slots 5..8 and 10 under incarnation 3:
//!
//! ```text
//! A3 4D 01 00        magic, version 1, flags 0
//! 01 41              source "A"
//! 01 42              destination "B"
//! 01 00 10 00        REQSLOTS start 0, count 16, lowest 0
//! 04 03 02 05 02 02 00
//!                    ACK incarnation 3, 2 ranges: gap 5 len 3, gap 2 len 1
//! ```
//!
//! ```
//! use a3m_core::wire::{self, Header, Record, ReqSlots, Ack, SlotRange};
//! let mut buf = [0u8; 64];
//! let ranges = [SlotRange { start: 5, end: 8 }, SlotRange { start: 10, end: 11 }];
//! let records = [
//!     Record::ReqSlots(ReqSlots { start: 0, count: 16, lowest: 0 }),
//!     Record::Ack(Ack::new(3, &ranges)),
//! ];
//! let header = Header { src: "A", dst: "B", flags: 0 };
//! let written = wire::encode_datagram(&mut buf, &header, &records).unwrap();
//! assert_eq!(written.records, 2);
//! assert_eq!(
//!     &buf[..written.len],
//!     &[0xA3, 0x4D, 1, 0, 1, b'A', 1, b'B', 1, 0, 16, 0, 4, 3, 2, 5, 2, 2, 0]
//! );
//! let datagram = wire::decode_datagram(&buf[..written.len]).unwrap();
//! assert_eq!(datagram.header.src, "A");
//! assert!(datagram.records().eq(records.iter().cloned()));
//! ```
//!
//! # Robustness
//!
//! [`decode_datagram`] accepts any byte string: it returns a value or a [`DecodeError`], never
//! panics, never allocates, and does work linear in the input. It checks the whole datagram
//! up front, so iterating its records afterwards cannot fail.

pub mod message;
mod reader;
mod writer;

use core::fmt;

use crate::id::{IdError, check_id};
pub use crate::id::{NODE_ID_MAX_LEN, TAG_ID_MAX_LEN};
use reader::Reader;
use writer::Writer;
pub use writer::{DatagramWriter, Encoded, SealPrefix};

/// The two bytes every a3m datagram starts with.
pub const MAGIC: [u8; 2] = [0xA3, 0x4D];
/// The wire format version this code speaks.
pub const VERSION: u8 = 1;
/// Most records one datagram may carry.
pub const MAX_RECORDS: usize = 4096;
/// Most ranges one `ACK` record may carry.
pub const MAX_ACK_RANGES: usize = 64;
/// Largest datagram a3m sends or accepts (the largest UDP payload over IPv4).
pub const MAX_DATAGRAM_LEN: usize = 65_507;
/// Header flag: the datagram is sealed (see [Sealed datagrams](self#sealed-datagrams)).
pub const FLAG_SEALED: u8 = 0x01;
/// Flag bits defined by this version.
const KNOWN_FLAGS: u8 = FLAG_SEALED;
/// Bytes between a sealed datagram's header and its encrypted records: algorithm, key id,
/// destination epoch, epoch and counter.
pub const SEAL_PREFIX_LEN: usize = 26;
/// Bytes of the AEAD tag at the end of a sealed datagram.
pub const SEAL_TAG_LEN: usize = 16;
/// Bytes sealing adds to a datagram: [`SEAL_PREFIX_LEN`] + [`SEAL_TAG_LEN`].
pub const SEAL_OVERHEAD: usize = SEAL_PREFIX_LEN + SEAL_TAG_LEN;
/// `SEAL_MISMATCH` reason: the sender has no key and refuses sealed datagrams.
pub const SEAL_MISMATCH_NO_KEY: u8 = 1;
/// `SEAL_MISMATCH` reason: the sender has a key and refuses plaintext datagrams.
pub const SEAL_MISMATCH_KEY_REQUIRED: u8 = 2;
/// `SEAL_MISMATCH` reason, only ever in a sealed datagram: the sender dropped a datagram
/// sealed for another of its epochs (see [Sealed datagrams](self#sealed-datagrams)); the
/// seal of this one carries its current epoch.
pub const SEAL_MISMATCH_STALE_EPOCH: u8 = 3;
/// `SEAL_MISMATCH` reason, in a plaintext datagram: the sender has a key, but not the one
/// the refused datagram was sealed with (its key id is unknown there).
pub const SEAL_MISMATCH_UNKNOWN_KEY: u8 = 4;
/// Bytes of a `PATH_CHALLENGE` or `PATH_RESPONSE` record's data.
pub const PATH_DATA_LEN: usize = 8;

const KIND_REQSLOTS: u8 = 0x01;
const KIND_SLOTS: u8 = 0x02;
const KIND_TOKEN: u8 = 0x03;
const KIND_ACK: u8 = 0x04;
const KIND_PATH_CHALLENGE: u8 = 0x05;
const KIND_PATH_RESPONSE: u8 = 0x06;
const KIND_SEAL_MISMATCH: u8 = 0x07;
pub(crate) const KIND_TOKEN_NEXT: u8 = 0x08;

/// Why a byte string is not a valid datagram or message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ends in the middle of a field.
    Truncated,
    /// The first two bytes are not [`MAGIC`].
    BadMagic,
    /// The version byte is not one this code speaks.
    UnsupportedVersion(u8),
    /// The flags byte has bits this version does not define.
    UnknownFlags(u8),
    /// A node or tag identifier is empty, too long or not UTF-8.
    BadId(IdError),
    /// A varint is longer than its type allows or overflows it.
    BadVarint,
    /// A length field points past the end of the input.
    LengthPastEnd,
    /// The datagram has a header but no record.
    NoRecords,
    /// More than [`MAX_RECORDS`] records in one datagram.
    TooManyRecords,
    /// A record kind byte that this version does not define.
    UnknownRecordKind(u8),
    /// An `ACK` with no range or more than [`MAX_ACK_RANGES`] ranges.
    BadAckRangeCount,
    /// An `ACK` range that overflows the slot space or touches the range before it.
    BadAckRange,
    /// A message kind byte in the core range that this version does not define.
    UnknownMessageKind(u8),
    /// A field holds a value its type does not allow.
    BadValue,
    /// Bytes left over after a message that has a fixed layout.
    TrailingBytes,
    /// The datagram is longer than [`MAX_DATAGRAM_LEN`].
    TooLong,
    /// A `TOKEN_NEXT` with no token before it in the datagram, or after slot `u64::MAX`.
    OrphanTokenNext,
    /// The datagram is sealed: open it ([`decode_sealed`], then [`decode_records`] over the
    /// decrypted records) instead of decoding it as plaintext.
    Sealed,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("input ends in the middle of a field"),
            DecodeError::BadMagic => f.write_str("not an a3m datagram (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported wire version {v}"),
            DecodeError::UnknownFlags(x) => write!(f, "unknown flag bits {x:#04x}"),
            DecodeError::BadId(e) => write!(f, "bad identifier: {e}"),
            DecodeError::BadVarint => f.write_str("malformed varint"),
            DecodeError::LengthPastEnd => f.write_str("length field points past the end"),
            DecodeError::NoRecords => f.write_str("datagram carries no record"),
            DecodeError::TooManyRecords => write!(f, "more than {MAX_RECORDS} records"),
            DecodeError::UnknownRecordKind(k) => write!(f, "unknown record kind {k:#04x}"),
            DecodeError::BadAckRangeCount => {
                write!(f, "ACK must carry 1 to {MAX_ACK_RANGES} ranges")
            }
            DecodeError::BadAckRange => {
                f.write_str("ACK range overflows the slot space or touches the previous one")
            }
            DecodeError::UnknownMessageKind(k) => write!(f, "unknown message kind {k:#04x}"),
            DecodeError::BadValue => f.write_str("field value out of range"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes after message"),
            DecodeError::TooLong => write!(f, "datagram longer than {MAX_DATAGRAM_LEN} bytes"),
            DecodeError::Sealed => f.write_str("sealed datagram: open it before decoding"),
            DecodeError::OrphanTokenNext => {
                f.write_str("TOKEN_NEXT without a token before it in the datagram")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// Why something could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer cannot hold the header, or the first record does not fit.
    BufferTooSmall,
    /// An identifier is empty or too long.
    BadId(IdError),
    /// A value cannot be represented (an `ACK` with no, too many, unordered, touching or empty
    /// ranges; a custom message kind in the core range; a payload larger than a datagram).
    BadValue,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall => f.write_str("buffer too small"),
            EncodeError::BadId(e) => write!(f, "bad identifier: {e}"),
            EncodeError::BadValue => f.write_str("value cannot be encoded"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// The header of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The sending node.
    pub src: &'a str,
    /// The node the datagram is for.
    pub dst: &'a str,
    /// Flag bits: 0, or [`FLAG_SEALED`] for a sealed datagram.
    pub flags: u8,
}

impl Header<'_> {
    /// Bytes this header takes on the wire.
    pub fn encoded_len(&self) -> usize {
        4 + 1 + self.src.len() + 1 + self.dst.len()
    }
}

/// `REQSLOTS(s, n, l)`: the sender asks for `count` slots from `start`; `lowest` is the lowest
/// slot it still cares about. `count == 0` asks the receiver to forget every slot below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReqSlots {
    /// First slot asked for.
    pub start: u64,
    /// How many slots are asked for (0: only garbage-collect below `lowest`).
    pub count: u32,
    /// Lowest slot id the sender still cares about.
    pub lowest: u64,
}

/// `SLOTS(s, r, n)`: the receiver grants slots `start..start+count` under incarnation `incarnation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// First slot granted (ties the grant to the request).
    pub start: u64,
    /// The receiver record's incarnation.
    pub incarnation: u64,
    /// How many slots are granted.
    pub count: u32,
}

/// `TOKEN(s, r, payload)`: a message bound to slot `slot` of incarnation `incarnation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// The slot (envelope) this message is bound to.
    pub slot: u64,
    /// The receiver incarnation the slot belongs to.
    pub incarnation: u64,
    /// The message: one encoded a3m socket message (see [`message`]).
    pub payload: &'a [u8],
}

/// A half-open range of slot ids, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRange {
    /// First slot in the range.
    pub start: u64,
    /// One past the last slot in the range.
    pub end: u64,
}

impl SlotRange {
    /// Number of slots in the range.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True if the range holds no slot.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True if `slot` is in the range.
    pub fn contains(&self, slot: u64) -> bool {
        self.start <= slot && slot < self.end
    }
}

/// `ACK(r, ranges)`: the tokens in these slot ranges were delivered (or were duplicates).
#[derive(Clone, Copy)]
pub struct Ack<'a> {
    /// The receiver incarnation the slots belong to.
    pub incarnation: u64,
    ranges: AckRanges<'a>,
}

#[derive(Clone, Copy)]
enum AckRanges<'a> {
    /// Ranges given by a sender, not yet checked.
    Slice(&'a [SlotRange]),
    /// Validated encoded ranges borrowed from a datagram.
    Encoded { count: usize, bytes: &'a [u8] },
}

impl<'a> Ack<'a> {
    /// An `ACK` of `ranges`, which must be non-empty, ascending, disjoint, each non-empty, and
    /// at most [`MAX_ACK_RANGES`] long (checked when encoding).
    pub fn new(incarnation: u64, ranges: &'a [SlotRange]) -> Self {
        Self { incarnation, ranges: AckRanges::Slice(ranges) }
    }

    /// Number of ranges.
    pub fn range_count(&self) -> usize {
        match self.ranges {
            AckRanges::Slice(s) => s.len(),
            AckRanges::Encoded { count, .. } => count,
        }
    }

    /// The acknowledged ranges, in ascending order.
    pub fn ranges(&self) -> impl Iterator<Item = SlotRange> + 'a {
        let (slice, count, bytes) = match self.ranges {
            AckRanges::Slice(s) => (s, 0, &[][..]),
            AckRanges::Encoded { count, bytes } => (&[][..], count, bytes),
        };
        let mut encoded = Reader::new(bytes);
        let mut prev_end = 0u64;
        let mut left = count;
        slice.iter().copied().chain(core::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            // Validated when the datagram was decoded.
            let range = read_range(&mut encoded, prev_end).ok()?;
            prev_end = range.end;
            Some(range)
        }))
    }

    // Out of line: the range walk would make every caller of `Record::encoded_len` pay for
    // its registers, and `ACK`s are rare next to `TOKEN`s.
    #[inline(never)]
    fn encoded_len(&self) -> Result<usize, EncodeError> {
        let mut len = varint_len(self.incarnation) + varint_len(self.range_count() as u64);
        let mut prev_end = 0u64;
        let mut count = 0;
        for r in self.ranges() {
            if r.is_empty() || r.start < prev_end || (count > 0 && r.start == prev_end) {
                return Err(EncodeError::BadValue);
            }
            len += varint_len(r.start - prev_end) + varint_len(r.len() - 1);
            prev_end = r.end;
            count += 1;
        }
        if count == 0 || count > MAX_ACK_RANGES {
            return Err(EncodeError::BadValue);
        }
        Ok(len)
    }
}

impl fmt::Debug for Ack<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Ranges<'b>(Ack<'b>);
        impl fmt::Debug for Ranges<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.ranges()).finish()
            }
        }
        f.debug_struct("Ack")
            .field("incarnation", &self.incarnation)
            .field("ranges", &Ranges(*self))
            .finish()
    }
}

impl PartialEq for Ack<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.incarnation == other.incarnation && self.ranges().eq(other.ranges())
    }
}

impl Eq for Ack<'_> {}

/// One record of the exactly-once protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// Ask the receiver for slots.
    ReqSlots(ReqSlots),
    /// Grant slots.
    Slots(Slots),
    /// A message bound to a slot.
    Token(Token<'a>),
    /// Acknowledge delivered slots.
    Ack(Ack<'a>),
    /// Ask the peer to echo these bytes: proves that it receives at the address this was
    /// sent to.
    PathChallenge([u8; PATH_DATA_LEN]),
    /// The bytes of a `PATH_CHALLENGE`, echoed.
    PathResponse([u8; PATH_DATA_LEN]),
    /// The sender refuses our datagrams for a sealing mismatch; the byte says which
    /// ([`SEAL_MISMATCH_NO_KEY`], [`SEAL_MISMATCH_KEY_REQUIRED`], others reserved).
    SealMismatch(u8),
}

impl Record<'_> {
    /// Bytes this record takes on the wire, or why it cannot be encoded. (A [`DatagramWriter`]
    /// writes a `TOKEN` for the slot after its previous token's, of the same incarnation, as a
    /// shorter `TOKEN_NEXT`.)
    #[inline]
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        Ok(1 + match self {
            Record::ReqSlots(r) => {
                varint_len(r.start) + varint_len(r.count.into()) + varint_len(r.lowest)
            }
            Record::Slots(s) => {
                varint_len(s.start) + varint_len(s.incarnation) + varint_len(s.count.into())
            }
            Record::Token(t) => {
                if t.payload.len() > MAX_DATAGRAM_LEN {
                    return Err(EncodeError::BadValue);
                }
                varint_len(t.slot)
                    + varint_len(t.incarnation)
                    + varint_len(t.payload.len() as u64)
                    + t.payload.len()
            }
            Record::Ack(a) => a.encoded_len()?,
            Record::PathChallenge(_) | Record::PathResponse(_) => PATH_DATA_LEN,
            Record::SealMismatch(_) => 1,
        })
    }

    /// Writes the record; the caller has checked that `encoded_len` bytes fit.
    fn write(&self, w: &mut Writer<'_>) {
        match self {
            Record::ReqSlots(r) => {
                w.u8(KIND_REQSLOTS);
                w.varint(r.start);
                w.varint(r.count.into());
                w.varint(r.lowest);
            }
            Record::Slots(s) => {
                w.u8(KIND_SLOTS);
                w.varint(s.start);
                w.varint(s.incarnation);
                w.varint(s.count.into());
            }
            Record::Token(t) => {
                w.u8(KIND_TOKEN);
                w.varint(t.slot);
                w.varint(t.incarnation);
                w.varint(t.payload.len() as u64);
                w.bytes(t.payload);
            }
            Record::Ack(a) => a.write(w),
            Record::PathChallenge(data) => {
                w.u8(KIND_PATH_CHALLENGE);
                w.bytes(data);
            }
            Record::PathResponse(data) => {
                w.u8(KIND_PATH_RESPONSE);
                w.bytes(data);
            }
            Record::SealMismatch(reason) => {
                w.u8(KIND_SEAL_MISMATCH);
                w.u8(*reason);
            }
        }
    }
}

impl Ack<'_> {
    /// Writes the record (kind byte included); out of line for the same reason as
    /// [`Ack::encoded_len`].
    #[inline(never)]
    fn write(&self, w: &mut Writer<'_>) {
        w.u8(KIND_ACK);
        w.varint(self.incarnation);
        w.varint(self.range_count() as u64);
        let mut prev_end = 0;
        for r in self.ranges() {
            w.varint(r.start - prev_end);
            w.varint(r.len() - 1);
            prev_end = r.end;
        }
    }
}

/// Bytes the varint encoding of `v` takes.
#[inline]
pub fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte. `(9 * bits + 64) / 64` is
    // `ceil(bits / 7)` for every `bits` in 1..=64, without a division.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    (bits * 9 + 64) / 64
}

/// Encodes `records` behind `header` into `buf`, as many as fit in order.
///
/// Returns the datagram length and how many records were written; records that did not fit
/// are left for the next datagram. Fails if the header or the first record does not fit.
pub fn encode_datagram(
    buf: &mut [u8],
    header: &Header<'_>,
    records: &[Record<'_>],
) -> Result<Encoded, EncodeError> {
    let mut w = DatagramWriter::new(buf, header)?;
    for record in records {
        match w.push(record) {
            Ok(()) => {}
            Err(EncodeError::BufferTooSmall) if w.record_count() > 0 => break,
            Err(e) => return Err(e),
        }
    }
    if w.record_count() == 0 {
        return Err(EncodeError::BufferTooSmall);
    }
    Ok(w.finish())
}

/// A decoded, fully validated datagram that borrows its input.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// The header.
    pub header: Header<'a>,
    record_count: usize,
    records: &'a [u8],
}

impl<'a> Datagram<'a> {
    /// Number of records.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// The records, in the order they were written.
    pub fn records(&self) -> impl Iterator<Item = Record<'a>> + 'a {
        let mut r = Reader::new(self.records);
        let mut last_token = None;
        // Every record was validated by `decode_datagram`, so `read_record` cannot fail here.
        core::iter::from_fn(move || {
            if r.is_empty() { None } else { read_record(&mut r, &mut last_token).ok() }
        })
    }
}

/// Decodes and validates a plaintext datagram. Any input gives a value or an error, never a
/// panic; a sealed datagram gives [`DecodeError::Sealed`].
pub fn decode_datagram(input: &[u8]) -> Result<Datagram<'_>, DecodeError> {
    let (header, len) = decode_header(input)?;
    if header.flags & FLAG_SEALED != 0 {
        return Err(DecodeError::Sealed);
    }
    decode_records(header, &input[len..])
}

/// Decodes and validates the header of a datagram (plaintext or sealed); returns it and its
/// length in bytes.
pub fn decode_header(input: &[u8]) -> Result<(Header<'_>, usize), DecodeError> {
    if input.len() > MAX_DATAGRAM_LEN {
        return Err(DecodeError::TooLong);
    }
    let mut r = Reader::new(input);
    let magic = r.bytes(2)?;
    if magic != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let flags = r.u8()?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let (src, dst) = r.id_pair(NODE_ID_MAX_LEN)?;
    Ok((Header { src, dst, flags }, r.position()))
}

/// Validates `records` (the bytes after a plaintext header, or the decrypted records of a
/// sealed datagram) and pairs them with `header`.
pub fn decode_records<'a>(
    header: Header<'a>,
    records: &'a [u8],
) -> Result<Datagram<'a>, DecodeError> {
    let mut rr = Reader::new(records);
    let mut record_count = 0;
    let mut last_token = None;
    while !rr.is_empty() {
        if record_count == MAX_RECORDS {
            return Err(DecodeError::TooManyRecords);
        }
        read_record(&mut rr, &mut last_token)?;
        record_count += 1;
    }
    if record_count == 0 {
        return Err(DecodeError::NoRecords);
    }
    Ok(Datagram { header, record_count, records })
}

/// The parts of a sealed datagram, before it is opened (see
/// [Sealed datagrams](self#sealed-datagrams)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedDatagram<'a> {
    /// The header (its flags have [`FLAG_SEALED`]).
    pub header: Header<'a>,
    /// The AEAD algorithm id.
    pub aead: u8,
    /// The key id.
    pub key_id: u8,
    /// The destination's epoch as the sender knows it (0: it knows none yet).
    pub dst_epoch: u64,
    /// The sender's epoch.
    pub epoch: u64,
    /// The sender's counter: the nonce.
    pub counter: u64,
    /// Bytes of associated data: the header and the seal prefix, before the ciphertext.
    pub aad_len: usize,
    /// The encrypted records.
    pub ciphertext: &'a [u8],
    /// The AEAD tag.
    pub tag: [u8; SEAL_TAG_LEN],
}

/// Splits a sealed datagram into its parts, checking only its framing (nothing is
/// authenticated yet). Fails with [`DecodeError::Truncated`] if there is no room for at least
/// one byte of records and the tag.
pub fn decode_sealed(input: &[u8]) -> Result<SealedDatagram<'_>, DecodeError> {
    let (header, len) = decode_header(input)?;
    if header.flags & FLAG_SEALED == 0 {
        return Err(DecodeError::BadValue);
    }
    let mut r = Reader::new(&input[len..]);
    let aead = r.u8()?;
    let key_id = r.u8()?;
    let dst_epoch = r.bytes(8)?;
    let epoch = r.bytes(8)?;
    let counter = r.bytes(8)?;
    let rest = r.rest();
    if rest.len() <= SEAL_TAG_LEN {
        return Err(DecodeError::Truncated);
    }
    let (ciphertext, tag) = rest.split_at(rest.len() - SEAL_TAG_LEN);
    let mut tag_bytes = [0u8; SEAL_TAG_LEN];
    tag_bytes.copy_from_slice(tag);
    let be = |b: &[u8]| b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
    Ok(SealedDatagram {
        header,
        aead,
        key_id,
        dst_epoch: be(dst_epoch),
        epoch: be(epoch),
        counter: be(counter),
        aad_len: len + SEAL_PREFIX_LEN,
        ciphertext,
        tag: tag_bytes,
    })
}

fn read_range(r: &mut Reader<'_>, prev_end: u64) -> Result<SlotRange, DecodeError> {
    let gap = r.varint()?;
    let len_minus_one = r.varint()?;
    let start = prev_end.checked_add(gap).ok_or(DecodeError::BadAckRange)?;
    let end = start
        .checked_add(len_minus_one)
        .and_then(|e| e.checked_add(1))
        .ok_or(DecodeError::BadAckRange)?;
    Ok(SlotRange { start, end })
}

/// Reads one record; `last_token` is the (slot, incarnation) of the datagram's previous token,
/// which a `TOKEN_NEXT` continues.
fn read_record<'a>(
    r: &mut Reader<'a>,
    last_token: &mut Option<(u64, u64)>,
) -> Result<Record<'a>, DecodeError> {
    let kind = r.u8()?;
    Ok(match kind {
        KIND_REQSLOTS => Record::ReqSlots(ReqSlots {
            start: r.varint()?,
            count: r.varint_u32()?,
            lowest: r.varint()?,
        }),
        KIND_SLOTS => Record::Slots(Slots {
            start: r.varint()?,
            incarnation: r.varint()?,
            count: r.varint_u32()?,
        }),
        KIND_TOKEN => {
            let slot = r.varint()?;
            let incarnation = r.varint()?;
            let payload = r.byte_string()?;
            *last_token = Some((slot, incarnation));
            Record::Token(Token { slot, incarnation, payload })
        }
        KIND_TOKEN_NEXT => {
            let (previous, incarnation) = last_token.ok_or(DecodeError::OrphanTokenNext)?;
            let slot = previous.checked_add(1).ok_or(DecodeError::OrphanTokenNext)?;
            let payload = r.byte_string()?;
            *last_token = Some((slot, incarnation));
            Record::Token(Token { slot, incarnation, payload })
        }
        KIND_ACK => read_ack(r)?,
        KIND_PATH_CHALLENGE | KIND_PATH_RESPONSE => {
            let mut data = [0u8; PATH_DATA_LEN];
            data.copy_from_slice(r.bytes(PATH_DATA_LEN)?);
            if kind == KIND_PATH_CHALLENGE {
                Record::PathChallenge(data)
            } else {
                Record::PathResponse(data)
            }
        }
        KIND_SEAL_MISMATCH => Record::SealMismatch(r.u8()?),
        other => return Err(DecodeError::UnknownRecordKind(other)),
    })
}

/// The rest of an `ACK` record after its kind byte; out of line so that the common records
/// do not pay for the range loop's registers.
#[inline(never)]
fn read_ack<'a>(r: &mut Reader<'a>) -> Result<Record<'a>, DecodeError> {
    let incarnation = r.varint()?;
    let count = r.varint()?;
    if count == 0 || count > MAX_ACK_RANGES as u64 {
        return Err(DecodeError::BadAckRangeCount);
    }
    let count = count as usize;
    let start = r.position();
    let mut prev_end = 0;
    for i in 0..count {
        let range = read_range(r, prev_end)?;
        // The encoder refuses touching ranges, so accepting them would let a decoded
        // ACK fail to re-encode.
        if i > 0 && range.start == prev_end {
            return Err(DecodeError::BadAckRange);
        }
        prev_end = range.end;
    }
    let bytes = r.since(start);
    Ok(Record::Ack(Ack { incarnation, ranges: AckRanges::Encoded { count, bytes } }))
}

pub(crate) fn check_node_id(s: &str) -> Result<(), EncodeError> {
    check_id(s, NODE_ID_MAX_LEN).map_err(EncodeError::BadId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rejects_datagrams_longer_than_the_maximum() {
        let long = [0u8; MAX_DATAGRAM_LEN + 1];
        assert_eq!(decode_datagram(&long).err(), Some(DecodeError::TooLong));
    }

    #[test]
    fn varint_len_matches_groups_of_seven_bits() {
        for bits in 0..64 {
            for v in [1u64 << bits, (1u64 << bits) - 1, ((1u64 << bits) - 1) | (1 << bits)] {
                let slow = (64 - (v | 1).leading_zeros() as usize).div_ceil(7);
                assert_eq!(varint_len(v), slow, "{v:#x}");
            }
        }
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn encode_stops_at_the_record_that_does_not_fit() {
        let header = Header { src: "A", dst: "B", flags: 0 };
        let payload = [7u8; 10];
        let token = Record::Token(Token { slot: 1, incarnation: 1, payload: &payload });
        let one = token.encoded_len().unwrap();
        let mut buf = [0u8; 64];
        let size = header.encoded_len() + 2 * one + 1;
        let out = encode_datagram(&mut buf[..size], &header, &[token; 5]).unwrap();
        assert_eq!(out.records, 2);
        assert_eq!(out.len, size - 1);
        assert_eq!(
            encode_datagram(&mut buf[..header.encoded_len() + 1], &header, &[token]),
            Err(EncodeError::BufferTooSmall)
        );
    }

    #[test]
    fn ack_rejects_bad_ranges_when_encoding() {
        let header = Header { src: "A", dst: "B", flags: 0 };
        let mut buf = [0u8; 64];
        let cases: [&[SlotRange]; 4] = [
            &[],
            &[SlotRange { start: 3, end: 3 }],
            &[SlotRange { start: 3, end: 5 }, SlotRange { start: 4, end: 6 }],
            &[SlotRange { start: 3, end: 5 }, SlotRange { start: 5, end: 6 }],
        ];
        for ranges in cases {
            let rec = Record::Ack(Ack::new(1, ranges));
            assert_eq!(encode_datagram(&mut buf, &header, &[rec]), Err(EncodeError::BadValue));
        }
    }
}
