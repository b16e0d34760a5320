//! A socket type defined outside the crate through the public `Protocol` trait: a
//! synchronized fan-out (every message to every linked collector, only when all of them have
//! a credit) with handshake metadata checked by the collector and a custom control message
//! sent when a link is established.
#![cfg(feature = "alloc")]

mod socket_sim;

use a3m_core::id::{LinkIncarnation, SocketId};
use a3m_core::link::RefusalCode;
use a3m_core::socket::{
    Control, LinkSet, LinkView, Protocol, ProtocolId, RoundRobin, Route, SocketError, SocketEvent,
    SocketOptions,
};
use socket_sim::{Net, sid, tag};
use std::sync::{Arc, Mutex};

const FANOUT: ProtocolId = 0x8001;
const COLLECTOR: ProtocolId = 0x8002;
const HELLO: u8 = 0x41;

/// Sends every message to all its links at once.
struct Fanout {
    team: &'static [u8],
}

impl Protocol for Fanout {
    fn id(&self) -> ProtocolId {
        FANOUT
    }
    fn name(&self) -> &str {
        "fanout"
    }
    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == COLLECTOR
    }
    fn sends(&self) -> bool {
        true
    }
    fn receives(&self) -> bool {
        false
    }
    fn metadata(&self) -> &[u8] {
        self.team
    }
    fn route_send(&mut self, links: &LinkSet<'_>, _payload: &[u8]) -> Route {
        if links.iter().any(|l| l.is_established()) { Route::Every } else { Route::Blocked }
    }
    fn route_recv(&mut self, _links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        None
    }
    fn writable(&self, links: &LinkSet<'_>) -> bool {
        let mut established = links.iter().filter(|l| l.is_established()).peekable();
        established.peek().is_some() && established.all(|l| l.can_send())
    }
    fn on_link_established(&mut self, link: LinkView<'_>, control: &mut Control) {
        let greeting = format!("hello {}", link.peer());
        control.send(link.key(), HELLO, greeting.as_bytes()).unwrap();
    }
}

#[derive(Default)]
struct Log {
    greetings: Vec<String>,
    closed: Vec<LinkIncarnation>,
}

/// Receives from fan-outs of its own team only.
struct Collector {
    team: &'static [u8],
    log: Arc<Mutex<Log>>,
    next: RoundRobin,
}

impl Protocol for Collector {
    fn id(&self) -> ProtocolId {
        COLLECTOR
    }
    fn name(&self) -> &str {
        "collector"
    }
    fn is_compatible(&self, peer: ProtocolId) -> bool {
        peer == FANOUT
    }
    fn sends(&self) -> bool {
        false
    }
    fn receives(&self) -> bool {
        true
    }
    fn accept_link(
        &mut self,
        _peer: &SocketId,
        _protocol: ProtocolId,
        metadata: &[u8],
    ) -> Result<(), String> {
        if metadata == self.team { Ok(()) } else { Err("wrong team".into()) }
    }
    fn route_send(&mut self, _links: &LinkSet<'_>, _payload: &[u8]) -> Route {
        Route::Blocked
    }
    fn route_recv(&mut self, links: &LinkSet<'_>) -> Option<LinkIncarnation> {
        self.next.pick(links, |l| l.has_message())
    }
    fn on_control(&mut self, link: LinkView<'_>, kind: u8, body: &[u8], _control: &mut Control) {
        assert_eq!(kind, HELLO);
        assert_eq!(link.peer_protocol(), FANOUT);
        self.log.lock().unwrap().greetings.push(String::from_utf8(body.to_vec()).unwrap());
    }
    fn on_link_closed(&mut self, link: LinkIncarnation) {
        self.log.lock().unwrap().closed.push(link);
    }
}

fn collector(team: &'static [u8]) -> (Box<dyn Protocol>, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log::default()));
    (Box::new(Collector { team, log: log.clone(), next: RoundRobin::new() }), log)
}

#[test]
fn a_user_defined_fanout_reaches_every_collector_in_step() {
    for seed in 0..50 {
        let mut net = Net::new(seed, &["F", "C1", "C2"]);
        let f = net.layer(0).create_socket(tag("out"), Box::new(Fanout { team: b"blue" })).unwrap();
        let options = SocketOptions { capacity: 3, ..SocketOptions::DEFAULT };
        let mut collectors = Vec::new();
        for n in 1..=2 {
            let (proto, log) = collector(b"blue");
            let c = net.layer(n).create_socket_with(tag("in"), proto, options).unwrap();
            collectors.push((n, c, log));
        }
        net.layer(0).link(f, sid("C1/in")).unwrap();
        net.layer(0).link(f, sid("C2/in")).unwrap();
        net.settle();
        for (n, _, log) in &collectors {
            assert_eq!(
                log.lock().unwrap().greetings,
                vec![format!("hello C{n}/in")],
                "seed {seed}"
            );
        }
        // Three credits per collector: three messages go, the fourth waits for both.
        for i in 0..3u8 {
            net.layer(0).send(f, &[i]).unwrap();
        }
        assert_eq!(net.layer(0).send(f, &[3]), Err(SocketError::WouldBlock));
        net.settle();
        let (n1, c1, _) = collectors[0];
        for i in 0..3u8 {
            assert_eq!(net.layer(n1).recv(c1).unwrap().payload, [i]);
        }
        net.settle();
        // One collector caught up; the other did not: still blocked.
        assert_eq!(net.layer(0).send(f, &[3]), Err(SocketError::WouldBlock));
        let (n2, c2, _) = collectors[1];
        for i in 0..3u8 {
            assert_eq!(net.layer(n2).recv(c2).unwrap().payload, [i]);
        }
        net.settle();
        net.layer(0).send(f, &[3]).unwrap();
        net.settle();
        for &(n, c, _) in &collectors {
            assert_eq!(net.layer(n).recv(c).unwrap().payload, [3]);
        }
        // Closing the fan-out ends both links; the collectors' hooks see it.
        let now = net.now;
        net.layer(0).close(now, f).unwrap();
        net.settle();
        for (n, c, log) in &collectors {
            assert_eq!(net.layer(*n).recv(*c), Err(SocketError::NoLinks));
            assert_eq!(log.lock().unwrap().closed.len(), 1);
        }
    }
}

#[test]
fn the_collector_refuses_another_team_with_its_reason() {
    let mut net = Net::new(4, &["F", "C"]);
    let f = net.layer(0).create_socket(tag("out"), Box::new(Fanout { team: b"red" })).unwrap();
    let (proto, log) = collector(b"blue");
    let c = net.layer(1).create_socket(tag("in"), proto).unwrap();
    net.layer(0).link(f, sid("C/in")).unwrap();
    net.settle();
    let refusal = net
        .take_events(0)
        .into_iter()
        .find_map(|e| match e {
            SocketEvent::LinkRefused { refusal, .. } => Some(refusal),
            _ => None,
        })
        .expect("refused");
    assert_eq!(refusal.code, RefusalCode::Rejected);
    assert_eq!(refusal.reason, "wrong team");
    assert!(!net.layers[1].has_links(c));
    assert!(log.lock().unwrap().greetings.is_empty());
}
