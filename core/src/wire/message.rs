//! The a3m socket message: what one `TOKEN` record carries (thesis §4.5).
//!
//! | bytes | field |
//! |---|---|
//! | 1 | message kind (see below) |
//! | 1 + n | source tag id (1..=[`TAG_ID_MAX_LEN`] bytes of UTF-8) |
//! | 1 + n | destination tag id |
//! | varint | link incarnation id (u32) |
//! | ... | body, by kind |
//!
//! Node ids are not repeated: the datagram header already names both nodes.
//!
//! | kind | name | body |
//! |---|---|---|
//! | `01` | ERROR | code (1 byte: `01` socket not found, `02` incompatible protocol, `03` refused), detail (rest, UTF-8 text or empty) |
//! | `02` | LINK | protocol id (varint, u16), capacity (varint, u32), metadata (rest) |
//! | `03` | LINKREPLY | flags (bit 0 accept, bit 1 metadata present), protocol id (varint, u16), capacity (varint, u32), metadata (byte string, only if bit 1), reason (rest) |
//! | `04` | UNLINK | number of DATA messages sent on this link (varint) |
//! | `05` | FLOW | credits returned (varint, u32), capacity change (zigzag varint, i32) |
//! | `06` | DATA | sequence number on the link (varint), payload (rest) |
//! | `07` | DATA_MORE | as DATA, and more fragments of the same socket message follow |
//! | `08` | DATA_FANOUT | one DATA for several links to one node (see below) |
//! | `40`..=`FF` | custom control | body (rest), defined by the socket protocol |
//!
//! Kinds `09`..=`3F` are reserved for the core; decoding them is an error.
//!
//! # Fan-out
//!
//! A socket sending the same message on several links whose peers are on one node (a
//! publisher with several subscribers in one process) may send it once, as a DATA_FANOUT
//! ([`encode_fanout`], [`decode_fanout`]), instead of one DATA per link: the receiving
//! layer handles it as the DATA messages it stands for, each on its own link with its own
//! sequence number and credit. Its layout differs after the kind byte:
//!
//! | bytes | field |
//! |---|---|
//! | 1 + n | source tag id |
//! | varint | number of destinations, 2..=[`MAX_FANOUT`] |
//! | per destination | destination tag id (1 + n), link incarnation (varint), sequence number (varint) |
//! | rest | payload | Kind `00` is never a
//! socket message: a TOKEN payload starting with [`RAW_PAYLOAD`] carries raw bytes of the
//! node-to-node datagram service instead.
//!
//! # Fragments
//!
//! A socket message larger than one transport payload travels as consecutive DATA messages
//! of one link (consecutive sequence numbers): every fragment but the last is a DATA_MORE,
//! the last one a DATA. DATA_MORE is DATA with the low bit of its kind set, so a message
//! that fits one fragment (a plain DATA) costs no byte more than before fragments existed.
//! A DATA_MORE is never empty; a DATA may be (an empty message).
//!
//! A refusing LINKREPLY (accept bit clear) has no capacity to give: its capacity field carries
//! the refusal code instead (see `link::RefusalCode`), and its reason field the text.
//!
//! ```
//! use a3m_core::id::LinkIncarnation;
//! use a3m_core::wire::message::{self, Message, Body};
//! let msg = Message {
//!     src_tag: "src", dst_tag: "sink", link: LinkIncarnation(7),
//!     body: Body::Data { seq: 1, payload: b"hi" },
//! };
//! let mut buf = [0u8; 32];
//! let n = message::encode(&msg, &mut buf).unwrap();
//! assert_eq!(&buf[..n], b"\x06\x03src\x04sink\x07\x01hi");
//! assert_eq!(message::decode(&buf[..n]).unwrap(), msg);
//! ```

use super::reader::Reader;
use super::writer::Writer;
use super::{DecodeError, EncodeError, TAG_ID_MAX_LEN, varint_len};
use crate::id::{LinkIncarnation, check_id};

const KIND_ERROR: u8 = 0x01;
const KIND_LINK: u8 = 0x02;
const KIND_LINKREPLY: u8 = 0x03;
const KIND_UNLINK: u8 = 0x04;
const KIND_FLOW: u8 = 0x05;
const KIND_DATA: u8 = 0x06;
/// DATA with the "more fragments follow" bit ([`MORE`]) set.
const KIND_DATA_MORE: u8 = KIND_DATA | MORE;
/// The bit of a DATA kind byte that marks a fragment other than the last.
const MORE: u8 = 0x01;
/// First byte of a TOKEN payload that is not a socket message but raw bytes of the
/// node-to-node datagram service ([`decode`] rejects it as an unknown kind).
pub const RAW_PAYLOAD: u8 = 0x00;
/// Whether `bytes` (an encoded message) is link management (ERROR, LINK, LINKREPLY,
/// UNLINK): the messages that may start a timer of the socket layer, so a runtime that
/// hands most messages a cheap, coarse time gives these the precise one.
pub fn starts_timers(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(&(KIND_ERROR | KIND_LINK | KIND_LINKREPLY | KIND_UNLINK)))
}

/// DATA for several links of one node: see "Fan-out" in the module docs.
const KIND_DATA_FANOUT: u8 = 0x08;

/// Most destinations of one DATA_FANOUT.
pub const MAX_FANOUT: usize = 255;

/// First message kind available to socket protocols for their own control messages.
pub const FIRST_CUSTOM_KIND: u8 = 0x40;

const REPLY_ACCEPT: u8 = 0x01;
const REPLY_HAS_METADATA: u8 = 0x02;

/// The reason carried by an ERROR message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No socket with the destination tag exists on the receiving node.
    SocketNotFound,
    /// The sockets' protocols cannot talk to each other.
    IncompatibleProtocol,
    /// The destination socket refused the request for another reason.
    Refused,
}

impl ErrorCode {
    fn to_byte(self) -> u8 {
        match self {
            ErrorCode::SocketNotFound => 1,
            ErrorCode::IncompatibleProtocol => 2,
            ErrorCode::Refused => 3,
        }
    }

    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        match b {
            1 => Ok(ErrorCode::SocketNotFound),
            2 => Ok(ErrorCode::IncompatibleProtocol),
            3 => Ok(ErrorCode::Refused),
            _ => Err(DecodeError::BadValue),
        }
    }
}

/// The kind-specific part of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// Something went wrong with a message sent to the source tag.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Human-readable detail (may be empty).
        detail: &'a [u8],
    },
    /// A request to establish a link.
    Link {
        /// The requesting socket's protocol id.
        protocol: u16,
        /// How many DATA messages the requester can take before returning credits.
        capacity: u32,
        /// The requesting socket's metadata.
        metadata: &'a [u8],
    },
    /// The answer to a link request.
    LinkReply {
        /// True if the link is accepted.
        accept: bool,
        /// The replying socket's protocol id.
        protocol: u16,
        /// How many DATA messages the replier can take; when refusing, the refusal code.
        capacity: u32,
        /// The replier's metadata, if it had not sent it yet.
        metadata: Option<&'a [u8]>,
        /// Why the link was refused (UTF-8 text; empty when accepted).
        reason: &'a [u8],
    },
    /// Ends the link once the given number of DATA messages have been delivered.
    Unlink {
        /// How many DATA messages the sender sent on this link.
        sent: u64,
    },
    /// Flow control: credits handed back and a relative capacity change.
    Flow {
        /// Credits returned (messages the application took).
        credits: u32,
        /// Change of the receiver's capacity (relative, so FLOW messages commute).
        capacity_delta: i32,
    },
    /// Application data: a whole socket message, or the last fragment of one.
    Data {
        /// Sequence number on the link, from 0, for FIFO delivery.
        seq: u64,
        /// The application's bytes.
        payload: &'a [u8],
    },
    /// A fragment of a socket message other than its last (kind DATA_MORE): the next DATA
    /// or DATA_MORE of the link continues the message. Exactly like [`Body::Data`]
    /// otherwise (one credit, one sequence number).
    DataMore {
        /// Sequence number on the link, from 0, for FIFO delivery.
        seq: u64,
        /// The fragment's bytes (never empty).
        payload: &'a [u8],
    },
    /// A control message of a socket protocol.
    Custom {
        /// The kind, at least [`FIRST_CUSTOM_KIND`].
        kind: u8,
        /// The protocol-defined body.
        body: &'a [u8],
    },
}

/// One a3m socket message, borrowing its strings and payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The sending socket's tag.
    pub src_tag: &'a str,
    /// The receiving socket's tag.
    pub dst_tag: &'a str,
    /// The link incarnation this message belongs to.
    pub link: LinkIncarnation,
    /// The kind-specific part.
    pub body: Body<'a>,
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn unzigzag(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

impl Message<'_> {
    /// Bytes this message takes when encoded, or why it cannot be.
    #[inline]
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        check_id(self.src_tag, TAG_ID_MAX_LEN).map_err(EncodeError::BadId)?;
        check_id(self.dst_tag, TAG_ID_MAX_LEN).map_err(EncodeError::BadId)?;
        let head = 1 + 1 + self.src_tag.len() + 1 + self.dst_tag.len();
        let head = head + varint_len(self.link.0.into());
        let body = match self.body {
            Body::Error { detail, .. } => 1 + detail.len(),
            Body::Link { protocol, capacity, metadata } => {
                varint_len(protocol.into()) + varint_len(capacity.into()) + metadata.len()
            }
            Body::LinkReply { protocol, capacity, metadata, reason, .. } => {
                1 + varint_len(protocol.into())
                    + varint_len(capacity.into())
                    + metadata.map_or(0, |m| varint_len(m.len() as u64) + m.len())
                    + reason.len()
            }
            Body::Unlink { sent } => varint_len(sent),
            Body::Flow { credits, capacity_delta } => {
                varint_len(credits.into()) + varint_len(zigzag(capacity_delta))
            }
            Body::Data { seq, payload } => varint_len(seq) + payload.len(),
            Body::DataMore { seq, payload } => {
                if payload.is_empty() {
                    return Err(EncodeError::BadValue);
                }
                varint_len(seq) + payload.len()
            }
            Body::Custom { kind, body } => {
                if kind < FIRST_CUSTOM_KIND {
                    return Err(EncodeError::BadValue);
                }
                body.len()
            }
        };
        Ok(head + body)
    }

    fn kind(&self) -> u8 {
        match self.body {
            Body::Error { .. } => KIND_ERROR,
            Body::Link { .. } => KIND_LINK,
            Body::LinkReply { .. } => KIND_LINKREPLY,
            Body::Unlink { .. } => KIND_UNLINK,
            Body::Flow { .. } => KIND_FLOW,
            Body::Data { .. } => KIND_DATA,
            Body::DataMore { .. } => KIND_DATA_MORE,
            Body::Custom { kind, .. } => kind,
        }
    }
}

/// Encodes `msg` at the start of `buf`; returns the bytes written.
pub fn encode(msg: &Message<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let len = msg.encoded_len()?;
    let Some(buf) = buf.get_mut(..len) else {
        return Err(EncodeError::BufferTooSmall);
    };
    let mut w = Writer::new(buf, 0);
    w.u8(msg.kind());
    w.id(msg.src_tag);
    w.id(msg.dst_tag);
    w.varint(msg.link.0.into());
    match msg.body {
        Body::Error { code, detail } => {
            w.u8(code.to_byte());
            w.bytes(detail);
        }
        Body::Link { protocol, capacity, metadata } => {
            w.varint(protocol.into());
            w.varint(capacity.into());
            w.bytes(metadata);
        }
        Body::LinkReply { accept, protocol, capacity, metadata, reason } => {
            let mut flags = 0;
            if accept {
                flags |= REPLY_ACCEPT;
            }
            if metadata.is_some() {
                flags |= REPLY_HAS_METADATA;
            }
            w.u8(flags);
            w.varint(protocol.into());
            w.varint(capacity.into());
            if let Some(m) = metadata {
                w.varint(m.len() as u64);
                w.bytes(m);
            }
            w.bytes(reason);
        }
        Body::Unlink { sent } => w.varint(sent),
        Body::Flow { credits, capacity_delta } => {
            w.varint(credits.into());
            w.varint(zigzag(capacity_delta));
        }
        Body::Data { seq, payload } | Body::DataMore { seq, payload } => {
            w.varint(seq);
            w.bytes(payload);
        }
        Body::Custom { body, .. } => w.bytes(body),
    }
    debug_assert_eq!(w.position(), len);
    Ok(len)
}

/// Decodes one message that fills `input` exactly. Never panics or allocates.
pub fn decode(input: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader::new(input);
    let kind = r.u8()?;
    if kind > KIND_DATA_MORE && kind < FIRST_CUSTOM_KIND || kind == 0 {
        return Err(DecodeError::UnknownMessageKind(kind));
    }
    let (src_tag, dst_tag) = r.id_pair(TAG_ID_MAX_LEN)?;
    let link = LinkIncarnation(r.varint_u32()?);
    let body = match kind {
        KIND_ERROR => Body::Error { code: ErrorCode::from_byte(r.u8()?)?, detail: r.rest() },
        KIND_LINK => Body::Link {
            protocol: u16::try_from(r.varint()?).map_err(|_| DecodeError::BadVarint)?,
            capacity: r.varint_u32()?,
            metadata: r.rest(),
        },
        KIND_LINKREPLY => {
            let flags = r.u8()?;
            if flags & !(REPLY_ACCEPT | REPLY_HAS_METADATA) != 0 {
                return Err(DecodeError::BadValue);
            }
            let protocol = u16::try_from(r.varint()?).map_err(|_| DecodeError::BadVarint)?;
            let capacity = r.varint_u32()?;
            let metadata =
                if flags & REPLY_HAS_METADATA != 0 { Some(r.byte_string()?) } else { None };
            Body::LinkReply {
                accept: flags & REPLY_ACCEPT != 0,
                protocol,
                capacity,
                metadata,
                reason: r.rest(),
            }
        }
        KIND_UNLINK => Body::Unlink { sent: r.varint()? },
        KIND_FLOW => {
            Body::Flow { credits: r.varint_u32()?, capacity_delta: unzigzag(r.varint_u32()?) }
        }
        KIND_DATA => Body::Data { seq: r.varint()?, payload: r.rest() },
        KIND_DATA_MORE => {
            let seq = r.varint()?;
            let payload = r.rest();
            if payload.is_empty() {
                return Err(DecodeError::BadValue);
            }
            Body::DataMore { seq, payload }
        }
        custom => Body::Custom { kind: custom, body: r.rest() },
    };
    if !r.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(Message { src_tag, dst_tag, link, body })
}

/// Longest header of a DATA message before its sequence number: kind, two length-prefixed
/// ids and the link incarnation.
pub const DATA_PREFIX_MAX: usize = 1 + 2 * (1 + TAG_ID_MAX_LEN) + 5;

/// The bytes every DATA message from `src_tag` to `dst_tag` on `link` starts with (up to the
/// sequence number), written to `out`; returns their length, or `None` if a tag is invalid.
/// A receiver that finds these bytes at the start of a message knows its kind, tags and
/// link without decoding them again ([`decode_data_tail`] reads the rest).
pub fn data_prefix(
    src_tag: &str,
    dst_tag: &str,
    link: LinkIncarnation,
    out: &mut [u8; DATA_PREFIX_MAX + 1],
) -> Option<usize> {
    let msg = Message { src_tag, dst_tag, link, body: Body::Data { seq: 0, payload: &[] } };
    // Sequence number 0 takes one byte and the payload none: the prefix is the rest.
    encode(&msg, out).ok().map(|n| n - 1)
}

/// The sequence number and payload of a DATA message whose [`data_prefix`] was already
/// matched: `rest` is what follows the prefix. `None` if the sequence number is malformed
/// (then [`decode`] of the whole message reports why).
pub fn decode_data_tail(rest: &[u8]) -> Option<(u64, &[u8])> {
    let mut r = Reader::new(rest);
    let seq = r.varint().ok()?;
    Some((seq, r.rest()))
}

/// The body of a DATA or DATA_MORE message whose [`data_prefix`] is `prefix` (only from
/// [`data_prefix`]): `None` if `bytes` does not start with it (a DATA_MORE matches it too:
/// only the low bit of its kind differs) or if what follows is malformed (then [`decode`] of
/// the whole message reports why). Whatever it reads, [`decode`] reads alike.
#[inline]
pub fn decode_routed_data<'a>(prefix: &[u8], bytes: &'a [u8]) -> Option<Body<'a>> {
    if prefix.first() != Some(&KIND_DATA) {
        return None;
    }
    if let Some(rest) = bytes.strip_prefix(prefix) {
        let (seq, payload) = decode_data_tail(rest)?;
        return Some(Body::Data { seq, payload });
    }
    decode_routed_fragment(prefix, bytes)
}

/// [`decode_routed_data`] of anything but a DATA: a DATA_MORE, or not this route's data.
fn decode_routed_fragment<'a>(prefix: &[u8], bytes: &'a [u8]) -> Option<Body<'a>> {
    let (_, tags) = prefix.split_first()?;
    let (&kind, rest) = bytes.split_first()?;
    if kind != KIND_DATA_MORE {
        return None;
    }
    let (seq, payload) = decode_data_tail(rest.strip_prefix(tags)?)?;
    (!payload.is_empty()).then_some(Body::DataMore { seq, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_payload_is_never_taken_for_a_socket_message() {
        let raw = [RAW_PAYLOAD, 3, b'a', b'b', b'c', 1, b'x', 0];
        assert_eq!(decode(&raw), Err(DecodeError::UnknownMessageKind(RAW_PAYLOAD)));
    }

    #[test]
    fn a_data_message_is_its_prefix_then_its_tail() {
        let long = "t".repeat(TAG_ID_MAX_LEN);
        for (src, dst, link, seq) in [
            ("a", "b", 1, 0),
            (long.as_str(), long.as_str(), u32::MAX, u64::MAX),
            ("src", "dst", 300, 70_000),
        ] {
            let link = LinkIncarnation(link);
            let payload = b"payload";
            let msg =
                Message { src_tag: src, dst_tag: dst, link, body: Body::Data { seq, payload } };
            let mut bytes = [0u8; 200];
            let n = encode(&msg, &mut bytes).unwrap();
            let mut prefix = [0u8; DATA_PREFIX_MAX + 1];
            let len = data_prefix(src, dst, link, &mut prefix).unwrap();
            assert!(bytes[..n].starts_with(&prefix[..len]));
            assert_eq!(decode_data_tail(&bytes[len..n]), Some((seq, &payload[..])));
        }
        // Another link, tag or kind does not share the prefix.
        let mut a = [0u8; DATA_PREFIX_MAX + 1];
        let mut b = [0u8; DATA_PREFIX_MAX + 1];
        let la = data_prefix("s", "d", LinkIncarnation(1), &mut a).unwrap();
        let lb = data_prefix("s", "d", LinkIncarnation(2), &mut b).unwrap();
        assert_ne!(a[..la], b[..lb]);
        let flow = Message {
            src_tag: "s",
            dst_tag: "d",
            link: LinkIncarnation(1),
            body: Body::Flow { credits: 1, capacity_delta: 0 },
        };
        let mut bytes = [0u8; 64];
        let n = encode(&flow, &mut bytes).unwrap();
        assert!(!bytes[..n].starts_with(&a[..la]));
        assert_eq!(data_prefix("", "d", LinkIncarnation(1), &mut a), None);
        assert_eq!(decode_data_tail(&[0x80]), None);
    }

    #[test]
    fn a_fragment_differs_from_data_only_in_the_low_bit_of_its_kind() {
        let link = LinkIncarnation(9);
        let mut prefix = [0u8; DATA_PREFIX_MAX + 1];
        let len = data_prefix("s", "d", link, &mut prefix).unwrap();
        let prefix = &prefix[..len];
        let mut data = [0u8; 32];
        let mut more = [0u8; 32];
        let body = Body::Data { seq: 3, payload: b"xy" };
        let n = encode(&Message { src_tag: "s", dst_tag: "d", link, body }, &mut data).unwrap();
        let fragment = Body::DataMore { seq: 3, payload: b"xy" };
        let m = encode(&Message { src_tag: "s", dst_tag: "d", link, body: fragment }, &mut more)
            .unwrap();
        assert_eq!(n, m);
        assert_eq!(data[0] ^ more[0], MORE);
        assert_eq!(data[1..n], more[1..m]);
        assert_eq!(decode_routed_data(prefix, &data[..n]), Some(body));
        assert_eq!(decode_routed_data(prefix, &more[..m]), Some(fragment));
        // An empty fragment is malformed, routed or not.
        let len = prefix.len() + 1;
        assert_eq!(decode_routed_data(prefix, &more[..len]), None);
        assert_eq!(decode(&more[..len]), Err(DecodeError::BadValue));
        assert_eq!(
            decode_routed_data(prefix, &data[..len]),
            Some(Body::Data { seq: 3, payload: b"" })
        );
        // Another kind, tag or link is not this route's data.
        let mut flow = [0u8; 32];
        let body = Body::Flow { credits: 3, capacity_delta: 0 };
        let k = encode(&Message { src_tag: "s", dst_tag: "d", link, body }, &mut flow).unwrap();
        assert_eq!(decode_routed_data(prefix, &flow[..k]), None);
        assert_eq!(decode_routed_data(prefix, &data[..2]), None);
        assert_eq!(decode_routed_data(&[], &data[..n]), None);
    }

    #[test]
    fn zigzag_round_trips_extremes() {
        for v in [0, 1, -1, i32::MAX, i32::MIN, 12345, -12345] {
            assert_eq!(unzigzag(zigzag(v) as u32), v);
        }
    }
}

/// One destination of a DATA_FANOUT: the tag of the receiving socket, the sender's
/// incarnation of the link, and the message's sequence number on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutDestination<'a> {
    /// The receiving socket's tag.
    pub dst_tag: &'a str,
    /// The sender's incarnation of the link.
    pub link: LinkIncarnation,
    /// The message's sequence number on that link.
    pub seq: u64,
}

/// The length of a DATA_FANOUT of `payload` from `src_tag` to `destinations`.
pub fn fanout_len(src_tag: &str, destinations: &[FanoutDestination<'_>], payload: &[u8]) -> usize {
    let each: usize = destinations
        .iter()
        .map(|d| 1 + d.dst_tag.len() + varint_len(u64::from(d.link.0)) + varint_len(d.seq))
        .sum();
    2 + src_tag.len() + varint_len(destinations.len() as u64) + each + payload.len()
}

/// Encodes a DATA_FANOUT into `buf` (at least [`fanout_len`] long); returns its length.
/// Needs 2..=[`MAX_FANOUT`] destinations and tags of 1..=[`TAG_ID_MAX_LEN`] bytes.
pub fn encode_fanout(
    src_tag: &str,
    destinations: &[FanoutDestination<'_>],
    payload: &[u8],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    if !(2..=MAX_FANOUT).contains(&destinations.len()) {
        return Err(EncodeError::BadValue);
    }
    check_id(src_tag, TAG_ID_MAX_LEN).map_err(|_| EncodeError::BadValue)?;
    for d in destinations {
        check_id(d.dst_tag, TAG_ID_MAX_LEN).map_err(|_| EncodeError::BadValue)?;
    }
    let len = fanout_len(src_tag, destinations, payload);
    if buf.len() < len {
        return Err(EncodeError::BufferTooSmall);
    }
    let mut w = Writer::new(buf, 0);
    w.u8(KIND_DATA_FANOUT);
    w.id(src_tag);
    w.varint(destinations.len() as u64);
    for d in destinations {
        w.id(d.dst_tag);
        w.varint(u64::from(d.link.0));
        w.varint(d.seq);
    }
    w.bytes(payload);
    Ok(w.position())
}

/// A decoded DATA_FANOUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fanout<'a> {
    /// The sending socket's tag.
    pub src_tag: &'a str,
    /// The encoded destinations (see [`Fanout::destinations`]).
    destinations: &'a [u8],
    count: usize,
    /// The payload every destination gets.
    pub payload: &'a [u8],
}

impl<'a> Fanout<'a> {
    /// The destinations, in order (checked when decoded).
    pub fn destinations(&self) -> impl Iterator<Item = FanoutDestination<'a>> + 'a {
        let mut r = Reader::new(self.destinations);
        (0..self.count).map_while(move |_| read_destination(&mut r).ok())
    }

    /// How many destinations it has.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never true: a fan-out has at least two destinations.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

fn read_destination<'a>(r: &mut Reader<'a>) -> Result<FanoutDestination<'a>, DecodeError> {
    let dst_tag = r.id(TAG_ID_MAX_LEN)?;
    let link = LinkIncarnation(r.varint_u32()?);
    let seq = r.varint()?;
    Ok(FanoutDestination { dst_tag, link, seq })
}

/// Whether `bytes` (an encoded socket message) is a DATA_FANOUT.
#[inline]
pub fn is_fanout(bytes: &[u8]) -> bool {
    bytes.first() == Some(&KIND_DATA_FANOUT)
}

/// Decodes a DATA_FANOUT, checking every destination.
pub fn decode_fanout(input: &[u8]) -> Result<Fanout<'_>, DecodeError> {
    let mut r = Reader::new(input);
    if r.u8()? != KIND_DATA_FANOUT {
        return Err(DecodeError::BadValue);
    }
    let src_tag = r.id(TAG_ID_MAX_LEN)?;
    let count = usize::try_from(r.varint()?).map_err(|_| DecodeError::BadValue)?;
    if !(2..=MAX_FANOUT).contains(&count) {
        return Err(DecodeError::BadValue);
    }
    let start = r.position();
    for _ in 0..count {
        read_destination(&mut r)?;
    }
    let destinations = r.since(start);
    Ok(Fanout { src_tag, destinations, count, payload: r.rest() })
}
