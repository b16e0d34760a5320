//! Encodes a datagram carrying a few records, decodes it again and prints both.
//!
//! `cargo run --example wire_demo`

use a3m_core::id::LinkIncarnation;
use a3m_core::wire::message::{self, Body, Message};
use a3m_core::wire::{self, Ack, Header, Record, ReqSlots, SlotRange, Token};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Message {
        src_tag: "source",
        dst_tag: "sink",
        link: LinkIncarnation(1),
        body: Body::Data { seq: 0, payload: b"hello, exactly once" },
    };
    let mut msg_buf = [0u8; 128];
    let msg_len = message::encode(&data, &mut msg_buf)?;

    let acked = [SlotRange { start: 0, end: 4 }, SlotRange { start: 6, end: 7 }];
    let records = [
        Record::ReqSlots(ReqSlots { start: 8, count: 16, lowest: 0 }),
        Record::Token(Token { slot: 7, incarnation: 42, payload: &msg_buf[..msg_len] }),
        Record::Ack(Ack::new(42, &acked)),
    ];
    let header = Header { src: "A", dst: "B", flags: 0 };
    let mut datagram = [0u8; 1400];
    let out = wire::encode_datagram(&mut datagram, &header, &records)?;
    println!("encoded {} records into {} bytes:", out.records, out.len);
    for chunk in datagram[..out.len].chunks(16) {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        println!("  {}", hex.join(" "));
    }

    let decoded = wire::decode_datagram(&datagram[..out.len])?;
    println!("decoded {} -> {}:", decoded.header.src, decoded.header.dst);
    for record in decoded.records() {
        match record {
            Record::Token(t) => {
                println!("  TOKEN slot={} incarnation={}", t.slot, t.incarnation);
                println!("    {:?}", message::decode(t.payload)?);
            }
            other => println!("  {other:?}"),
        }
    }
    Ok(())
}
