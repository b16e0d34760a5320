//! Writing datagrams into caller buffers.

use super::{EncodeError, Header, MAGIC, MAX_RECORDS, Record, VERSION, check_node_id};

/// A cursor that writes into a buffer; callers check room first.
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    pub(crate) fn new(buf: &'b mut [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn u8(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }

    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.u8(v as u8);
    }

    /// A length byte then the identifier's bytes; the caller has checked the length.
    pub(crate) fn id(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.bytes(s.as_bytes());
    }
}

/// What [`encode_datagram`](super::encode_datagram) or [`DatagramWriter::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// Length of the datagram in bytes.
    pub len: usize,
    /// Number of records it carries.
    pub records: usize,
}

/// Fills a caller's buffer with one datagram, record by record, until it is full.
///
/// The buffer's length is the datagram size limit: pass `&mut buf[..1400]` for a path MTU
/// of 1400 bytes.
pub struct DatagramWriter<'b> {
    w: Writer<'b>,
    records: usize,
}

impl<'b> DatagramWriter<'b> {
    /// Writes `header` at the start of `buf`.
    pub fn new(buf: &'b mut [u8], header: &Header<'_>) -> Result<Self, EncodeError> {
        check_node_id(header.src)?;
        check_node_id(header.dst)?;
        if header.flags != 0 {
            return Err(EncodeError::BadValue);
        }
        if buf.len() < header.encoded_len() {
            return Err(EncodeError::BufferTooSmall);
        }
        let mut w = Writer::new(buf, 0);
        w.bytes(&MAGIC);
        w.u8(VERSION);
        w.u8(header.flags);
        w.id(header.src);
        w.id(header.dst);
        Ok(Self { w, records: 0 })
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.w.buf.len() - self.w.pos
    }

    /// Records written so far.
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// True if no further record can be added (record limit reached).
    pub fn is_full(&self) -> bool {
        self.records >= MAX_RECORDS
    }

    /// Appends `record` if it fits; otherwise writes nothing and returns
    /// [`EncodeError::BufferTooSmall`] (or [`EncodeError::BadValue`] for an invalid record).
    pub fn push(&mut self, record: &Record<'_>) -> Result<(), EncodeError> {
        let len = record.encoded_len()?;
        if len > self.remaining() || self.is_full() {
            return Err(EncodeError::BufferTooSmall);
        }
        let before = self.w.position();
        record.write(&mut self.w);
        debug_assert_eq!(self.w.position() - before, len);
        self.records += 1;
        Ok(())
    }

    /// The datagram's length and record count.
    pub fn finish(self) -> Encoded {
        Encoded { len: self.w.pos, records: self.records }
    }
}
