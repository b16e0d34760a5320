//! A bounds-checked cursor over input bytes. Every read returns an error instead of panicking.

use super::DecodeError;
use crate::id::{IdError, check_id};

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The bytes read since position `start`.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or(&[])
    }

    /// Everything not read yet; consumes it.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        rest
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// Unsigned LEB128, at most 10 bytes, rejecting bits past 64.
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        // Most varints on the wire (lengths, small counters) take one byte.
        if let Some(&b) = rest.first()
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        // Up to 8 bytes at once, without a loop, when 8 bytes are left to look at.
        if let Some(word) = rest.first_chunk::<8>() {
            let word = u64::from_le_bytes(*word);
            let stops = !word & 0x8080_8080_8080_8080;
            if stops != 0 {
                // `bits` is 8 times the varint's length: its last byte has the first stop bit.
                let bits = stops.trailing_zeros() + 1;
                let x = word & (u64::MAX >> (64 - bits)) & 0x7f7f_7f7f_7f7f_7f7f;
                // Squeeze out the high bit of every byte: 8 x 7 bits into 56 bits.
                let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
                let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
                let x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
                self.pos += (bits / 8) as usize;
                return Ok(x);
            }
        }
        self.varint_slow()
    }

    /// [`Self::varint`] for what its fast paths leave: varints of 9 or 10 bytes, malformed
    /// ones, and varints in the last 8 bytes of the input.
    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let mut value = 0u64;
        for (i, &b) in rest.iter().take(10).enumerate() {
            let group = u64::from(b & 0x7f);
            if i == 9 && group > 1 {
                return Err(DecodeError::BadVarint);
            }
            value |= group << (7 * i);
            if b & 0x80 == 0 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        // Ten continuation bytes is too long; fewer means the input ended inside the varint.
        Err(if rest.len() >= 10 { DecodeError::BadVarint } else { DecodeError::Truncated })
    }

    pub(crate) fn varint_u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint()?).map_err(|_| DecodeError::BadVarint)
    }

    /// A varint length then that many bytes.
    #[inline]
    pub(crate) fn byte_string(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        if len > rest.len() as u64 {
            return Err(DecodeError::LengthPastEnd);
        }
        let out = rest.get(..len as usize).unwrap_or(&[]);
        self.pos += out.len();
        Ok(out)
    }

    /// A length byte then that many bytes of UTF-8, 1 to `max` long.
    pub(crate) fn id(&mut self, max: usize) -> Result<&'a str, DecodeError> {
        let len = usize::from(self.u8()?);
        if len > max {
            return Err(DecodeError::BadId(IdError::TooLong { len, max }));
        }
        if len == 0 {
            return Err(DecodeError::BadId(IdError::Empty));
        }
        let raw = self.bytes(len)?;
        let s = utf8(raw).ok_or(DecodeError::BadId(IdError::NotUtf8))?;
        check_id(s, max).map_err(DecodeError::BadId)?;
        Ok(s)
    }

    /// Two identifiers in a row (as [`Self::id`] twice), validated as UTF-8 in one pass.
    ///
    /// The length byte between them is ASCII (at most `max`, which is below 0x80), so the two
    /// strings are valid UTF-8 exactly when the bytes from the first string to the end of the
    /// second are; `str::get` re-checks both split points anyway. Any failure falls back to
    /// reading them one by one, which gives the exact error of the first bad field.
    #[inline]
    pub(crate) fn id_pair(&mut self, max: usize) -> Result<(&'a str, &'a str), DecodeError> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        if let Some((a, b, used)) = id_pair_fast(rest, max) {
            self.pos += used;
            return Ok((a, b));
        }
        let a = self.id(max)?;
        let b = self.id(max)?;
        Ok((a, b))
    }
}

/// The happy path of [`Reader::id_pair`]: both identifiers and the bytes they take, or `None`
/// if anything is wrong (the caller then finds out what).
#[inline]
fn id_pair_fast(rest: &[u8], max: usize) -> Option<(&str, &str, usize)> {
    let (&first, tail) = rest.split_first()?;
    let first = usize::from(first);
    if first == 0 || first > max {
        return None;
    }
    let second = usize::from(*tail.get(first)?);
    if second == 0 || second > max {
        return None;
    }
    let total = first + 1 + second;
    let both = utf8(tail.get(..total)?)?;
    Some((both.get(..first)?, both.get(first + 1..)?, 1 + total))
}

/// `bytes` as a string if it is valid UTF-8 (the same check as `core::str::from_utf8`).
///
/// `utf8_chunks` walks ASCII a byte at a time with no per-byte alignment bookkeeping, which is
/// markedly cheaper than `from_utf8` on short identifiers; its first chunk is all of `bytes`
/// exactly when `bytes` is valid.
#[inline]
fn utf8(bytes: &[u8]) -> Option<&str> {
    match bytes.utf8_chunks().next() {
        None => Some(""),
        Some(chunk) if chunk.valid().len() == bytes.len() => Some(chunk.valid()),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The varint decoder as it was before the fast paths: one byte at a time.
    fn reference_varint(buf: &[u8]) -> (Result<u64, DecodeError>, usize) {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = buf.get(i) else { return (Err(DecodeError::Truncated), i) };
            let group = u64::from(b & 0x7f);
            if i == 9 && group > 1 {
                return (Err(DecodeError::BadVarint), i + 1);
            }
            value |= group << (7 * i);
            if b & 0x80 == 0 {
                return (Ok(value), i + 1);
            }
        }
        (Err(DecodeError::BadVarint), 10)
    }

    fn check(input: &[u8]) {
        let (want, used) = reference_varint(input);
        let mut r = Reader::new(input);
        let got = r.varint();
        assert_eq!(got, want, "{input:02x?}");
        if want.is_ok() {
            assert_eq!(r.position(), used, "{input:02x?}");
        }
    }

    #[test]
    fn varint_fast_paths_agree_with_the_byte_loop() {
        let mut values = [0u64; 2 + 3 * 64];
        values[1] = u64::MAX;
        for bits in 0..64 {
            values[2 + 3 * bits] = 1u64 << bits;
            values[3 + 3 * bits] = (1u64 << bits) - 1;
            values[4 + 3 * bits] = (1u64 << bits) | 0x55;
        }
        for v in values {
            let mut input = [0xffu8; 24];
            let mut len = 0;
            let mut x = v;
            while x >= 0x80 {
                input[len] = x as u8 | 0x80;
                len += 1;
                x >>= 7;
            }
            input[len] = x as u8;
            len += 1;
            for pad in 0..12 {
                check(&input[..len + pad]);
            }
            // Every truncation too.
            for cut in 0..len {
                check(&input[..cut]);
            }
        }
        // Overlong and overflowing forms, with and without room after them.
        for tenth in [0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xff] {
            let mut input = [0u8; 18];
            input[..9].fill(0x80);
            input[9] = tenth;
            for pad in [0usize, 1, 8] {
                check(&input[..10 + pad]);
            }
        }
        let all_cont = [0xffu8; 20];
        for len in 0..all_cont.len() {
            check(&all_cont[..len]);
        }
    }

    #[test]
    fn utf8_agrees_with_from_utf8() {
        let cases: [&[u8]; 12] = [
            b"",
            b"sink",
            "h\u{e9}llo".as_bytes(),
            "\u{1f600}x".as_bytes(),
            b"\xff",
            b"ab\xc3",
            b"\xc3\x28",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"abc\x80def",
            b"\x01\x02\x7f",
        ];
        for bytes in cases {
            assert_eq!(utf8(bytes), core::str::from_utf8(bytes).ok(), "{bytes:02x?}");
        }
    }
}
