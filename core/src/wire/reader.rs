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
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            let group = u64::from(b & 0x7f);
            if i == 9 && group > 1 {
                return Err(DecodeError::BadVarint);
            }
            value |= group << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint)
    }

    pub(crate) fn varint_u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint()?).map_err(|_| DecodeError::BadVarint)
    }

    /// A varint length then that many bytes.
    pub(crate) fn byte_string(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let left = (self.buf.len() - self.pos.min(self.buf.len())) as u64;
        if len > left {
            return Err(DecodeError::LengthPastEnd);
        }
        self.bytes(len as usize)
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
        let s = core::str::from_utf8(raw).map_err(|_| DecodeError::BadId(IdError::NotUtf8))?;
        check_id(s, max).map_err(DecodeError::BadId)?;
        Ok(s)
    }
}
