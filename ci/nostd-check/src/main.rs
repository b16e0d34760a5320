//! A `#![no_std]` program that encodes and decodes a datagram with a3m-core.
//!
//! It proves that a3m-core's dependency graph never pulls in `std`: if anything did, std's own
//! panic handler would clash with the one below (duplicate lang item `panic_impl`) and this
//! would not link. The C runtime calls `main`; its result is the exit status (0 = round trip
//! ok).
#![no_std]
#![no_main]

use a3m_core::wire::{self, Ack, Header, Record, ReqSlots, SlotRange, Token};

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
    0
}

// SAFETY: `no_mangle` is unsafe because the symbol could clash with another `main`; this is the
// only `main` in the program (no std, so no Rust runtime defines one), and the C runtime's
// startup code calls it with the C signature declared here.
#[unsafe(no_mangle)]
pub extern "C" fn main(argc: i32, _argv: *const *const u8) -> i32 {
    round_trip(argc.unsigned_abs().into())
}
