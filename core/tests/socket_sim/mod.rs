//! A deterministic test network for socket layers: every message is delivered exactly once,
//! in a random order chosen by a seeded generator, with arbitrary delay.
#![allow(dead_code)]

use a3m_core::id::{NodeId, SocketId, TagId};
use a3m_core::socket::{LayerConfig, SocketEvent, SocketLayer};
use a3m_core::time::Instant;
use std::collections::BTreeMap;
use std::time::Duration;

/// xorshift64*: small, seeded, good enough to shuffle deliveries.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }
}

pub fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

pub fn tag(name: &str) -> TagId {
    TagId::new(name).unwrap()
}

pub fn sid(s: &str) -> SocketId {
    s.parse().unwrap()
}

#[derive(Debug)]
struct Packet {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

/// Several nodes' socket layers joined by an exactly-once, unordered network.
pub struct Net {
    pub now: Instant,
    pub layers: Vec<SocketLayer>,
    pub events: Vec<Vec<SocketEvent>>,
    names: BTreeMap<NodeId, usize>,
    in_flight: Vec<Packet>,
    pub rng: Rng,
    pub delivered: u64,
}

impl Net {
    pub fn new(seed: u64, nodes: &[&str]) -> Self {
        Self::with_config(seed, nodes, LayerConfig::DEFAULT)
    }

    pub fn with_config(seed: u64, nodes: &[&str], config: LayerConfig) -> Self {
        let mut names = BTreeMap::new();
        let mut layers = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            names.insert(node(n), i);
            layers.push(SocketLayer::new(node(n), config));
        }
        let events = nodes.iter().map(|_| Vec::new()).collect();
        Net {
            now: Instant::from_micros(1_000_000),
            layers,
            events,
            names,
            in_flight: Vec::new(),
            rng: Rng::new(seed),
            delivered: 0,
        }
    }

    pub fn layer(&mut self, i: usize) -> &mut SocketLayer {
        &mut self.layers[i]
    }

    /// Moves every queued outgoing message into the network and every event into `events`.
    pub fn collect(&mut self) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            while let Some(out) = layer.poll_outgoing() {
                let to = *self.names.get(&out.to).expect("message to an unknown node");
                self.in_flight.push(Packet { from: i, to, bytes: out.bytes.clone() });
                layer.recycle(out.bytes);
            }
            while let Some(ev) = layer.poll_event() {
                self.events[i].push(ev);
            }
            while layer.poll_ready().is_some() {}
        }
    }

    /// Messages in the network (after collecting what the layers queued).
    pub fn in_flight(&mut self) -> usize {
        self.collect();
        self.in_flight.len()
    }

    /// Delivers one message picked at random (so any order and any delay happen).
    pub fn deliver_one(&mut self) -> bool {
        self.collect();
        if self.in_flight.is_empty() {
            return false;
        }
        let i = self.rng.below(self.in_flight.len());
        let p = self.in_flight.swap_remove(i);
        let from = self.layers[p.from].node().clone();
        self.now += Duration::from_micros(1 + self.rng.below(500) as u64);
        self.layers[p.to].handle_payload(self.now, &from, &p.bytes).expect("undecodable message");
        self.delivered += 1;
        self.run_timers();
        self.collect();
        true
    }

    pub fn run_timers(&mut self) {
        for layer in &mut self.layers {
            if layer.poll_timeout().is_some_and(|t| t <= self.now) {
                layer.handle_timeout(self.now);
            }
        }
    }

    /// The earliest timer of any layer.
    pub fn next_timer(&self) -> Option<Instant> {
        self.layers.iter().filter_map(|l| l.poll_timeout()).min()
    }

    /// Jumps to the next timer and runs it; false if there is none.
    pub fn fire_next_timer(&mut self) -> bool {
        match self.next_timer() {
            Some(t) => {
                if t > self.now {
                    self.now = t;
                }
                self.run_timers();
                self.collect();
                true
            }
            None => false,
        }
    }

    /// One random step: mostly deliveries, sometimes a time jump to the next timer.
    pub fn step(&mut self) -> bool {
        self.collect();
        if !self.in_flight.is_empty() && !self.rng.chance(1, 20) {
            return self.deliver_one();
        }
        if self.fire_next_timer() {
            return true;
        }
        self.deliver_one()
    }

    /// Delivers everything and runs timers until nothing is left (bounded).
    pub fn settle(&mut self) {
        for _ in 0..1_000_000 {
            self.collect();
            if self.in_flight.is_empty() && self.next_timer().is_none() {
                return;
            }
            if !self.step() {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// Delivers everything in flight (and whatever that triggers), without firing timers
    /// unless nothing is in flight and `timers` is set.
    pub fn drain(&mut self) {
        for _ in 0..1_000_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("network did not drain");
    }

    pub fn take_events(&mut self, i: usize) -> Vec<SocketEvent> {
        self.collect();
        std::mem::take(&mut self.events[i])
    }
}
