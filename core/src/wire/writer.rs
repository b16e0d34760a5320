//! Writing datagrams into caller buffers.

use super::{
    EncodeError, FLAG_SEALED, Header, KIND_TOKEN_NEXT, MAGIC, MAX_DATAGRAM_LEN, MAX_RECORDS,
    Record, SEAL_OVERHEAD, SEAL_TAG_LEN, Token, VERSION, check_node_id, varint_len,
};

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
        let src = s.as_bytes();
        let dst = &mut self.buf[self.pos..self.pos + src.len()];
        copy_short(dst, src);
        self.pos += src.len();
    }
}

/// `dst.copy_from_slice(src)` for the short identifiers (at most 32 bytes) without a call to
/// `memcpy`: two fixed-size copies that overlap in the middle.
#[inline]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    debug_assert_eq!(dst.len(), src.len());
    let n = src.len();
    if n != dst.len() || n > 32 {
        dst.copy_from_slice(src);
    } else if n >= 16 {
        copy_ends::<16>(dst, src);
    } else if n >= 8 {
        copy_ends::<8>(dst, src);
    } else if n >= 4 {
        copy_ends::<4>(dst, src);
    } else if n > 0 {
        // 1 to 3 bytes: first, middle and last cover them all.
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// Copies the first and the last `N` bytes of `src` (at least `N` long) into `dst` (as long).
#[inline]
fn copy_ends<const N: usize>(dst: &mut [u8], src: &[u8]) {
    if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
        *d = *s;
    }
    if let (Some(d), Some(s)) = (dst.last_chunk_mut::<N>(), src.last_chunk::<N>()) {
        *d = *s;
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
    /// The (slot, incarnation) of the last token written: a token for the next slot of the
    /// same incarnation is written as a `TOKEN_NEXT`, without them.
    last_token: Option<(u64, u64)>,
}

/// The seal prefix of a sealed datagram (see [Sealed datagrams](super#sealed-datagrams)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealPrefix {
    /// AEAD algorithm id.
    pub aead: u8,
    /// Key id.
    pub key_id: u8,
    /// The destination's newest epoch the sender authenticated, 0 if none yet.
    pub dst_epoch: u64,
    /// The sender's epoch.
    pub epoch: u64,
    /// The sender's counter (the nonce).
    pub counter: u64,
}

impl<'b> DatagramWriter<'b> {
    /// Writes `header` (flags 0: a plaintext datagram) at the start of `buf`.
    pub fn new(buf: &'b mut [u8], header: &Header<'_>) -> Result<Self, EncodeError> {
        if header.flags != 0 {
            return Err(EncodeError::BadValue);
        }
        Self::start(buf, header)
    }

    /// Writes the header of a sealed datagram (`header`'s flags must be [`FLAG_SEALED`]) and
    /// `prefix` at the start of `buf`, and keeps the last [`SEAL_TAG_LEN`] bytes of `buf`
    /// free for the tag. The records written are plaintext until sealed by
    /// [`crate::seal`]; they start at `header.encoded_len() + SEAL_PREFIX_LEN`.
    pub fn new_sealed(
        buf: &'b mut [u8],
        header: &Header<'_>,
        prefix: &SealPrefix,
    ) -> Result<Self, EncodeError> {
        if header.flags != FLAG_SEALED {
            return Err(EncodeError::BadValue);
        }
        if buf.len() < header.encoded_len() + SEAL_OVERHEAD {
            return Err(EncodeError::BufferTooSmall);
        }
        let end = buf.len() - SEAL_TAG_LEN;
        let mut this = Self::start(&mut buf[..end], header)?;
        this.w.u8(prefix.aead);
        this.w.u8(prefix.key_id);
        this.w.bytes(&prefix.dst_epoch.to_be_bytes());
        this.w.bytes(&prefix.epoch.to_be_bytes());
        this.w.bytes(&prefix.counter.to_be_bytes());
        Ok(this)
    }

    fn start(buf: &'b mut [u8], header: &Header<'_>) -> Result<Self, EncodeError> {
        check_node_id(header.src)?;
        check_node_id(header.dst)?;
        if buf.len() < header.encoded_len() {
            return Err(EncodeError::BufferTooSmall);
        }
        let mut w = Writer::new(buf, 0);
        w.bytes(&MAGIC);
        w.u8(VERSION);
        w.u8(header.flags);
        w.id(header.src);
        w.id(header.dst);
        Ok(Self { w, records: 0, last_token: None })
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
        if let Record::Token(token) = record
            && self.last_token.is_some_and(|(slot, inc)| {
                slot.checked_add(1) == Some(token.slot) && inc == token.incarnation
            })
        {
            return self.push_token_next(token);
        }
        let len = record.encoded_len()?;
        if len > self.remaining() || self.is_full() {
            return Err(EncodeError::BufferTooSmall);
        }
        let before = self.w.position();
        record.write(&mut self.w);
        debug_assert_eq!(self.w.position() - before, len);
        self.records += 1;
        if let Record::Token(token) = record {
            self.last_token = Some((token.slot, token.incarnation));
        }
        Ok(())
    }

    /// A token that continues the last one: `TOKEN_NEXT` and its payload only.
    fn push_token_next(&mut self, token: &Token<'_>) -> Result<(), EncodeError> {
        if token.payload.len() > MAX_DATAGRAM_LEN {
            return Err(EncodeError::BadValue);
        }
        let len = 1 + varint_len(token.payload.len() as u64) + token.payload.len();
        if len > self.remaining() || self.is_full() {
            return Err(EncodeError::BufferTooSmall);
        }
        self.w.u8(KIND_TOKEN_NEXT);
        self.w.varint(token.payload.len() as u64);
        self.w.bytes(token.payload);
        self.records += 1;
        self.last_token = Some((token.slot, token.incarnation));
        Ok(())
    }

    /// The datagram's length and record count.
    pub fn finish(self) -> Encoded {
        Encoded { len: self.w.pos, records: self.records }
    }
}

#[cfg(test)]
mod tests {
    use super::copy_short;

    #[test]
    fn copy_short_copies_every_length() {
        let mut src = [0u8; 40];
        for (i, b) in src.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        for n in 0..=src.len() {
            let mut dst = [0u8; 40];
            copy_short(&mut dst[..n], &src[..n]);
            assert_eq!(dst[..n], src[..n], "length {n}");
            assert!(dst[n..].iter().all(|&b| b == 0), "length {n} wrote past the end");
        }
    }
}
