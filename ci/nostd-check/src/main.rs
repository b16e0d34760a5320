//! A `#![no_std]` program that encodes and decodes a datagram with a3m-core.
//!
//! It proves that a3m-core's dependency graph never pulls in `std`: if anything did, std's own
//! panic handler would clash with the one below (duplicate lang item `panic_impl`) and this
//! would not link. The C runtime calls `main`; its result is the exit status (0 = round trip
//! ok).
#![no_std]
#![no_main]

use a3m_core::seal::{Aead, KeySchedule, Psk};
use a3m_core::wire::{
    self, Ack, DatagramWriter, Header, Record, ReqSlots, SealPrefix, SlotRange, Token,
};

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

// SAFETY: `no_mangle` is unsafe because the symbol could clash; only std defines
// `rust_eh_personality`, and std is not linked. The precompiled libcore is built for unwinding
// and refers to it; with `panic = "abort"` nothing unwinds, so it is never called.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// Encodes three records, decodes them and compares; 0 if they match. `slot` comes from the
/// command line so the optimizer cannot compute the result at compile time.
fn round_trip(slot: u64) -> i32 {
    let ranges = [SlotRange { start: 5, end: 8 }, SlotRange { start: 10, end: 11 }];
    let records = [
        Record::ReqSlots(ReqSlots { start: 0, count: 16, lowest: 0 }),
        Record::Token(Token { slot, incarnation: 1, payload: b"no_std" }),
        Record::Ack(Ack::new(1, &ranges)),
    ];
    let header = Header { src: "A", dst: "B", flags: 0 };
    let mut buf = [0u8; 128];
    let Ok(out) = wire::encode_datagram(&mut buf, &header, &records) else { return 1 };
    let Ok(datagram) = wire::decode_datagram(&buf[..out.len]) else { return 2 };
    if datagram.header != header || !datagram.records().eq(records.iter().copied()) {
        return 3;
    }
    sealed_round_trip(slot)
}

/// Seals a datagram with both AEADs, opens it and compares: the crypto needs no std and no
/// heap. 0 if it round-trips and a flipped bit is refused.
fn sealed_round_trip(slot: u64) -> i32 {
    let keys = KeySchedule::new(&Psk::new([slot as u8; 32]));
    for aead in [Aead::ChaCha20Poly1305, Aead::Aes256Gcm] {
        let header = Header { src: "A", dst: "B", flags: wire::FLAG_SEALED };
        let prefix = SealPrefix {
            aead: aead.id(),
            key_id: keys.id(),
            dst_epoch: 2,
            epoch: 1,
            counter: slot,
        };
        let mut buf = [0u8; 128];
        let Ok(mut w) = DatagramWriter::new_sealed(&mut buf, &header, &prefix) else { return 4 };
        let token = Record::Token(Token { slot, incarnation: 1, payload: b"sealed" });
        if w.push(&token).is_err() {
            return 5;
        }
        let len = w.finish().len;
        let aad_len = header.encoded_len() + wire::SEAL_PREFIX_LEN;
        let cipher = keys.cipher(aead, 1, "A", "B");
        let Ok(len) = cipher.seal(slot, &mut buf, aad_len, len) else { return 6 };
        let Ok(sealed) = wire::decode_sealed(&buf[..len]) else { return 7 };
        let mut body = [0u8; 64];
        let n = sealed.ciphertext.len();
        body[..n].copy_from_slice(sealed.ciphertext);
        let mut bad = body;
        bad[0] ^= 1;
        let aad = &buf[..sealed.aad_len];
        if cipher.open(sealed.counter, aad, &mut bad[..n], &sealed.tag).is_ok() {
            return 8;
        }
        if cipher.open(sealed.counter, aad, &mut body[..n], &sealed.tag).is_err() {
            return 9;
        }
        let Ok(d) = wire::decode_records(sealed.header, &body[..n]) else { return 10 };
        if !d.records().eq([token]) {
            return 11;
        }
    }
    0
}

// SAFETY: `no_mangle` is unsafe because the symbol could clash with another `main`; this is the
// only `main` in the program (no std, so no Rust runtime defines one), and the C runtime's
// startup code calls it with the C signature declared here.
#[unsafe(no_mangle)]
pub extern "C" fn main(argc: i32, _argv: *const *const u8) -> i32 {
    round_trip(argc.unsigned_abs().into())
}
