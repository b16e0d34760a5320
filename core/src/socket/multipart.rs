//! Multipart messages: several frames, and an envelope of routing ids, in one data message
//! (thesis §5.5 asked for them; §5.3.4's `RRMsg` is the envelope).
//!
//! A multipart message travels as one data message of a link, so it is sent and received
//! atomically: one call carries all its frames, whatever other threads do on the socket.
//! The request-reply sockets ([`super::Req`], [`super::Rep`], [`super::Dealer`],
//! [`super::Router`]) and the publish-subscribe sockets carry every message in this form;
//! push and pull carry raw bytes.
//!
//! # Format
//!
//! | bytes | field |
//! |---|---|
//! | varint + n | routing id (1..=[`MAX_ROUTE_LEN`] bytes), zero or more times: the envelope |
//! | 1 | `00`: end of the envelope |
//! | varint | number of frames, at least 1 |
//! | varint + n | every frame but the last: its length, then its bytes |
//! | rest | the last frame |
//!
//! A message of one frame and no routing id costs two bytes more than its payload. A router
//! pushes the routing id of the link a message came on at the head of the envelope and
//! pops the head to choose the link a message leaves on, so replies retrace the links the
//! request took, through any number of routers and dealers (the routing id of a link is
//! [`link_route`]: a `00` byte and the link's incarnation, big endian).
//!
//! ```
//! use a3m_core::socket::multipart::{self, Multipart};
//! let mut buf = Vec::new();
//! multipart::encode(&[b"r1"], &[&b"topic"[..], b"body"], &mut buf);
//! assert_eq!(buf, b"\x02r1\x00\x02\x05topicbody");
//! let m = Multipart::parse(&buf).unwrap();
//! assert!(m.routes().eq([&b"r1"[..]]));
//! assert!(m.frames().eq([&b"topic"[..], b"body"]));
//! ```

use alloc::vec::Vec;

use crate::id::LinkIncarnation;

/// The longest routing id.
pub const MAX_ROUTE_LEN: usize = 255;

/// Why bytes are not a multipart message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MultipartError {
    /// The bytes end inside a field.
    Truncated,
    /// A routing id is longer than [`MAX_ROUTE_LEN`], or the frame count is zero.
    BadValue,
}

impl core::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MultipartError::Truncated => "multipart message truncated",
            MultipartError::BadValue => "multipart message has a bad routing id or frame count",
        })
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*pos`, advancing it.
fn get_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, MultipartError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos).ok_or(MultipartError::Truncated)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(value);
        }
    }
    Err(MultipartError::BadValue)
}

fn take<'a>(bytes: &'a [u8], pos: &mut usize, len: u64) -> Result<&'a [u8], MultipartError> {
    let len = usize::try_from(len).map_err(|_| MultipartError::Truncated)?;
    let end = pos.checked_add(len).ok_or(MultipartError::Truncated)?;
    let out = bytes.get(*pos..end).ok_or(MultipartError::Truncated)?;
    *pos = end;
    Ok(out)
}

/// Appends the encoding of a message with envelope `routes` and `frames` to `out`. An empty
/// `frames` is sent as one empty frame; routing ids must be 1..=[`MAX_ROUTE_LEN`] bytes
/// (longer ones are cut, empty ones skipped: callers check with [`check_route`]).
pub fn encode<R: AsRef<[u8]>, F: AsRef<[u8]>>(routes: &[R], frames: &[F], out: &mut Vec<u8>) {
    for route in routes {
        let route = route.as_ref();
        let route = &route[..route.len().min(MAX_ROUTE_LEN)];
        if !route.is_empty() {
            put_varint(out, route.len() as u64);
            out.extend_from_slice(route);
        }
    }
    out.push(0);
    encode_frames(frames, out);
}

/// Appends the body part of the encoding (frame count and frames, no envelope) to `out`.
pub fn encode_frames<F: AsRef<[u8]>>(frames: &[F], out: &mut Vec<u8>) {
    let Some((last, rest)) = frames.split_last() else {
        out.push(1);
        return;
    };
    put_varint(out, frames.len() as u64);
    for frame in rest {
        put_varint(out, frame.as_ref().len() as u64);
        out.extend_from_slice(frame.as_ref());
    }
    out.extend_from_slice(last.as_ref());
}

/// The length of [`encode`]'s output.
pub fn encoded_len<R: AsRef<[u8]>, F: AsRef<[u8]>>(routes: &[R], frames: &[F]) -> usize {
    let varint = |v: usize| crate::wire::varint_len(v as u64);
    let envelope: usize = routes
        .iter()
        .map(|r| r.as_ref().len().min(MAX_ROUTE_LEN))
        .filter(|&n| n > 0)
        .map(|n| varint(n) + n)
        .sum();
    let body = match frames.split_last() {
        None => 1,
        Some((last, rest)) => {
            varint(frames.len())
                + rest.iter().map(|f| varint(f.as_ref().len()) + f.as_ref().len()).sum::<usize>()
                + last.as_ref().len()
        }
    };
    envelope + 1 + body
}

/// Whether `route` can be a routing id (1..=[`MAX_ROUTE_LEN`] bytes).
pub fn check_route(route: &[u8]) -> Result<(), MultipartError> {
    if route.is_empty() || route.len() > MAX_ROUTE_LEN {
        return Err(MultipartError::BadValue);
    }
    Ok(())
}

/// The routing id a router gives the link `link`: `00` then the incarnation, big endian.
pub fn link_route(link: LinkIncarnation) -> [u8; 5] {
    let b = link.0.to_be_bytes();
    [0, b[0], b[1], b[2], b[3]]
}

/// The link a routing id made by [`link_route`] names.
pub fn parse_link_route(route: &[u8]) -> Option<LinkIncarnation> {
    match *route {
        [0, a, b, c, d] => Some(LinkIncarnation(u32::from_be_bytes([a, b, c, d]))),
        _ => None,
    }
}

/// Puts `route` at the head of the envelope of the encoded message in `payload`.
pub fn push_route(route: &[u8], payload: &mut Vec<u8>) {
    let mut head = [0u8; 10 + MAX_ROUTE_LEN];
    let mut n = 0;
    let mut len = route.len().min(MAX_ROUTE_LEN) as u64;
    while len >= 0x80 {
        head[n] = (len as u8) | 0x80;
        len >>= 7;
        n += 1;
    }
    head[n] = len as u8;
    n += 1;
    let route = &route[..route.len().min(MAX_ROUTE_LEN)];
    head[n..n + route.len()].copy_from_slice(route);
    n += route.len();
    payload.splice(0..0, head[..n].iter().copied());
}

/// A parsed multipart message, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multipart<'a> {
    bytes: &'a [u8],
    /// Where the `00` ending the envelope is.
    envelope_end: usize,
    /// Where the frame count starts.
    frames_at: usize,
    routes: usize,
    frames: usize,
}

impl<'a> Multipart<'a> {
    /// Parses and checks a whole message.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MultipartError> {
        let mut pos = 0;
        let mut routes = 0;
        loop {
            let len = get_varint(bytes, &mut pos)?;
            if len == 0 {
                break;
            }
            if len > MAX_ROUTE_LEN as u64 {
                return Err(MultipartError::BadValue);
            }
            take(bytes, &mut pos, len)?;
            routes += 1;
        }
        let envelope_end = pos - 1;
        let frames_at = pos;
        let count = get_varint(bytes, &mut pos)?;
        if count == 0 {
            return Err(MultipartError::BadValue);
        }
        for _ in 1..count {
            let len = get_varint(bytes, &mut pos)?;
            take(bytes, &mut pos, len)?;
        }
        let frames = usize::try_from(count).map_err(|_| MultipartError::BadValue)?;
        Ok(Self { bytes, envelope_end, frames_at, routes, frames })
    }

    /// The routing ids of the envelope, head first.
    pub fn routes(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bytes = self.bytes;
        let mut pos = 0;
        core::iter::from_fn(move || {
            let len = get_varint(bytes, &mut pos).ok().filter(|&l| l > 0)?;
            take(bytes, &mut pos, len).ok()
        })
    }

    /// How many routing ids the envelope holds.
    pub fn route_count(&self) -> usize {
        self.routes
    }

    /// The routing id at the head of the envelope and the bytes it takes (with its length).
    pub fn first_route(&self) -> Option<(&'a [u8], usize)> {
        let mut pos = 0;
        let len = get_varint(self.bytes, &mut pos).ok().filter(|&l| l > 0)?;
        let route = take(self.bytes, &mut pos, len).ok()?;
        Some((route, pos))
    }

    /// The encoded envelope without its end byte (the routing ids as they are on the wire).
    pub fn envelope(&self) -> &'a [u8] {
        &self.bytes[..self.envelope_end]
    }

    /// The encoded message without its envelope (starts with the `00` end byte).
    pub fn without_envelope(&self) -> &'a [u8] {
        &self.bytes[self.envelope_end..]
    }

    /// The frames, in order.
    pub fn frames(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bytes = self.bytes;
        let mut pos = self.frames_at;
        let count = get_varint(bytes, &mut pos).unwrap_or(0);
        let mut left = count;
        core::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            if left == 0 {
                let rest = bytes.get(pos..)?;
                pos = bytes.len();
                return Some(rest);
            }
            let len = get_varint(bytes, &mut pos).ok()?;
            take(bytes, &mut pos, len).ok()
        })
    }

    /// How many frames the message has (at least 1).
    pub fn frame_count(&self) -> usize {
        self.frames
    }

    /// The first frame (a publish-subscribe message's topic).
    pub fn first_frame(&self) -> &'a [u8] {
        self.frames().next().unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn round_trips_routes_and_frames() {
        let routes: [&[u8]; 2] = [b"a", &[7u8; 200]];
        let frames: [&[u8]; 3] = [b"", &[1u8; 300], b"last"];
        let mut buf = Vec::new();
        encode(&routes, &frames, &mut buf);
        assert_eq!(buf.len(), encoded_len(&routes, &frames));
        let m = Multipart::parse(&buf).unwrap();
        assert_eq!(m.route_count(), 2);
        assert!(m.routes().eq(routes.iter().copied()));
        assert_eq!(m.frame_count(), 3);
        assert!(m.frames().eq(frames.iter().copied()));
        assert_eq!(m.first_route().unwrap().0, b"a");
        assert_eq!(&buf[m.first_route().unwrap().1..][..1], &[200, 1][..1]);
    }

    #[test]
    fn push_route_prepends_to_the_envelope() {
        let mut buf = Vec::new();
        encode::<&[u8], _>(&[], &[b"x"], &mut buf);
        let link = link_route(LinkIncarnation(0x0102_0304));
        push_route(&link, &mut buf);
        let m = Multipart::parse(&buf).unwrap();
        assert_eq!(
            m.routes().next().map(parse_link_route),
            Some(Some(LinkIncarnation(0x0102_0304)))
        );
        assert!(m.frames().eq([&b"x"[..]]));
        assert_eq!(m.without_envelope(), b"\x00\x01x");
    }

    #[test]
    fn empty_frames_is_one_empty_frame() {
        let mut buf = Vec::new();
        encode::<&[u8], &[u8]>(&[], &[], &mut buf);
        assert_eq!(buf, vec![0, 1]);
        assert!(Multipart::parse(&buf).unwrap().frames().eq([&b""[..]]));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Multipart::parse(b""), Err(MultipartError::Truncated));
        assert_eq!(Multipart::parse(b"\x00"), Err(MultipartError::Truncated));
        assert_eq!(Multipart::parse(b"\x00\x00"), Err(MultipartError::BadValue));
        assert_eq!(Multipart::parse(b"\x05ab"), Err(MultipartError::Truncated));
        assert_eq!(Multipart::parse(b"\x00\x03\x01a"), Err(MultipartError::Truncated));
    }
}
