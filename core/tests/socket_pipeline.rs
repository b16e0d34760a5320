//! The scatter-gather pipeline of thesis §7.3 over a network that reorders everything:
//! a source pushes to two workers (pull, transform, push) that push to a sink. Nobody counts
//! messages: the source closes after its last send, and each stage sees the end of the
//! stream when its pull socket becomes link-free (`recv` fails with `NoLinks`).
#![cfg(feature = "alloc")]

mod socket_sim;

use a3m_core::socket::{Pull, Push, SocketError, SocketEvent, SocketKey, SocketOptions};
use socket_sim::{Net, sid, tag};

const SOURCE: usize = 0;
const WORKERS: [usize; 2] = [1, 2];
const SINK: usize = 3;

fn established(net: &mut Net, node: usize, socket: SocketKey, seen: &mut usize) {
    for ev in net.take_events(node) {
        if matches!(ev, SocketEvent::LinkEstablished { socket: s, .. } if s == socket) {
            *seen += 1;
        }
    }
}

struct Worker {
    node: usize,
    input: SocketKey,
    output: SocketKey,
    input_links: usize,
    pending: Option<Vec<u8>>,
    done: bool,
    handled: usize,
}

fn run_pipeline(seed: u64, messages: u64) {
    let mut net = Net::new(seed, &["S", "W1", "W2", "K"]);
    let small = SocketOptions { capacity: 1 + (seed % 5) as u32, ..SocketOptions::DEFAULT };

    let source = net.layer(SOURCE).create_socket(tag("src"), Box::new(Push::new())).unwrap();
    let mut workers: Vec<Worker> = WORKERS
        .iter()
        .map(|&n| {
            let layer = net.layer(n);
            let input = layer.create_socket_with(tag("in"), Box::new(Pull::new()), small).unwrap();
            let output = layer.create_socket(tag("out"), Box::new(Push::new())).unwrap();
            Worker {
                node: n,
                input,
                output,
                input_links: 0,
                pending: None,
                done: false,
                handled: 0,
            }
        })
        .collect();
    for w in &workers {
        net.layer(w.node).link(w.output, sid("K/sink")).unwrap();
    }
    for name in ["W1/in", "W2/in"] {
        net.layer(SOURCE).link(source, sid(name)).unwrap();
    }
    // The sink appears late: the workers' link requests are retried until it exists.
    let sink_after = net.rng.below(30);
    let mut sink: Option<SocketKey> = None;
    let mut sink_links = 0;
    let mut source_links = 0;
    let mut sent = 0u64;
    let mut source_closed = false;
    let mut results = Vec::new();
    let mut eof = false;

    for step in 0..2_000_000usize {
        if step == sink_after {
            sink = Some(
                net.layer(SINK)
                    .create_socket_with(tag("sink"), Box::new(Pull::new()), small)
                    .unwrap(),
            );
        }
        // Source: wait until both workers are linked, send everything, close.
        established(&mut net, SOURCE, source, &mut source_links);
        if source_links == 2 && !source_closed {
            while sent < messages && net.layer(SOURCE).send(source, &sent.to_le_bytes()).is_ok() {
                sent += 1;
            }
            if sent == messages {
                let now = net.now;
                net.layer(SOURCE).close(now, source).unwrap();
                source_closed = true;
            }
        }
        // Workers: once their input was linked, forward until the input is link-free.
        for w in workers.iter_mut().filter(|w| !w.done) {
            established(&mut net, w.node, w.input, &mut w.input_links);
            if w.input_links == 0 {
                continue;
            }
            loop {
                if let Some(msg) = w.pending.take() {
                    match net.layer(w.node).send(w.output, &msg) {
                        Ok(()) => w.handled += 1,
                        Err(SocketError::WouldBlock | SocketError::NoLinks) => {
                            w.pending = Some(msg);
                            break;
                        }
                        Err(e) => panic!("worker send: {e}"),
                    }
                }
                match net.layer(w.node).recv(w.input) {
                    Ok(m) => {
                        let n = u64::from_le_bytes(m.payload.as_slice().try_into().unwrap());
                        w.pending = Some((n * 10 + w.node as u64).to_le_bytes().to_vec());
                    }
                    Err(SocketError::WouldBlock) => break,
                    Err(SocketError::NoLinks) => {
                        // End of stream: pass it on by closing the output.
                        let now = net.now;
                        net.layer(w.node).close(now, w.output).unwrap();
                        net.layer(w.node).close(now, w.input).unwrap();
                        w.done = true;
                        break;
                    }
                    Err(e) => panic!("worker recv: {e}"),
                }
            }
        }
        // Sink: once both workers were linked, collect until link-free.
        if let Some(k) = sink {
            established(&mut net, SINK, k, &mut sink_links);
            if sink_links == 2 {
                loop {
                    match net.layer(SINK).recv(k) {
                        Ok(m) => results
                            .push(u64::from_le_bytes(m.payload.as_slice().try_into().unwrap())),
                        Err(SocketError::WouldBlock) => break,
                        Err(SocketError::NoLinks) => {
                            eof = true;
                            break;
                        }
                        Err(e) => panic!("sink recv: {e}"),
                    }
                }
            }
        }
        if eof {
            break;
        }
        net.step();
    }
    assert!(eof, "seed {seed}: the sink never saw the end of the stream");
    // Every message once, through one of the workers, and the workers split the work.
    let mut inputs: Vec<u64> = results.iter().map(|r| r / 10).collect();
    inputs.sort_unstable();
    assert_eq!(inputs, (0..messages).collect::<Vec<_>>(), "seed {seed}");
    for w in &workers {
        assert!(w.done && w.handled > 0, "seed {seed}: worker {} idle", w.node);
        assert!(results.iter().any(|r| r % 10 == w.node as u64));
    }
    // Everyone closed cleanly.
    net.settle();
    assert!(net.layers[SOURCE].socket_by_tag(&tag("src")).is_none(), "seed {seed}");
    for w in &workers {
        assert!(net.layers[w.node].socket_by_tag(&tag("out")).is_none(), "seed {seed}");
        assert!(net.layers[w.node].socket_by_tag(&tag("in")).is_none(), "seed {seed}");
    }
}

#[test]
fn pipeline_ends_by_link_free_notification() {
    for seed in 0..60 {
        run_pipeline(seed, 40 + seed % 50);
    }
}
