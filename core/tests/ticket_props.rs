//! Property tests of the credit ledger (`a3m_core::ticket::Ledger`) against a model of the
//! credits each link was given, the reservations each waiter holds and the wakes delivered.
//!
//! Checked after every operation of random sequences:
//! * credits are conserved: `balance + reserved + acquired == credits given` per link, and
//!   reservations match the model (acquire/release fail exactly when none is held);
//! * a signalled request can always make progress (it is unsettled or failed, never new),
//!   and a link never has more unsettled requests than credits;
//! * no lost wake-up: an unsettled or failed request was woken since its waiter last looked;
//! * no idle credit: a link with a free credit has no new request that could use it;
//! * cancelling (a timeout) never moves a credit out of the balances;
//! * fair-ish mode earmarks credits in ticket order.

use a3m_core::ticket::{
    Admission, CreditError, Fairness, Ledger, RequestKey, RequestState, Target,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::task::Poll;
use std::vec::Vec;

const LINKS: usize = 3;
const REQUESTS: usize = 6;
/// Waker = the model's number of the request, so drained signals name requests.
type TestLedger = Ledger<u8, u64, LINKS, REQUESTS>;

#[derive(Debug, Clone)]
enum Op {
    AddLink(u8, i64),
    RemoveLink(u8),
    AddCredits(u8, i64),
    Request(Option<u8>, bool),
    Poll(usize),
    Cancel(usize),
    Acquire(u8),
    Release(u8),
    Close,
}

/// Operations that keep requests from returning to waiting (no link removal, no cut, no
/// close): the ones under which fair-ish mode must keep strict ticket order.
fn orderly_op() -> impl Strategy<Value = Op> {
    let key = 0u8..4;
    prop_oneof![
        1 => (key.clone(), 0i64..3).prop_map(|(k, c)| Op::AddLink(k, c)),
        3 => (key.clone(), 1i64..4).prop_map(|(k, d)| Op::AddCredits(k, d)),
        4 => (proptest::option::of(key.clone()), any::<bool>()).prop_map(|(t, n)| Op::Request(t, n)),
        4 => any::<usize>().prop_map(Op::Poll),
        2 => any::<usize>().prop_map(Op::Cancel),
        2 => key.clone().prop_map(Op::Acquire),
        2 => key.prop_map(Op::Release),
    ]
}

fn any_op() -> impl Strategy<Value = Op> {
    let key = 0u8..4;
    prop_oneof![
        8 => orderly_op(),
        1 => key.clone().prop_map(Op::RemoveLink),
        2 => (key, -3i64..0).prop_map(|(k, d)| Op::AddCredits(k, d)),
        1 => Just(Op::Close),
    ]
}

#[derive(Debug, Default)]
struct ModelLink {
    /// Sum of every credit change.
    given: i64,
    /// Credits taken by waits and not yet acquired or released.
    reserved: u64,
    /// Credits acquired (spent on messages).
    acquired: u64,
}

#[derive(Debug)]
struct Waiter {
    key: RequestKey,
    id: u64,
    target: Target<u8>,
    /// Woken since its waiter last polled and found nothing.
    woken: bool,
}

struct Model {
    ledger: TestLedger,
    links: BTreeMap<u8, ModelLink>,
    waiters: Vec<Waiter>,
    next_id: u64,
    closed: bool,
}

impl Model {
    fn new(fairness: Fairness) -> Self {
        Self {
            ledger: Ledger::new(fairness),
            links: BTreeMap::new(),
            waiters: Vec::new(),
            next_id: 0,
            closed: false,
        }
    }

    fn state_of(&self, key: RequestKey) -> RequestState<u8> {
        self.ledger.request_info(key).expect("model waiter missing from the ledger").state
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::AddLink(k, credits) => {
                let result = self.ledger.add_link(k, credits);
                if self.links.contains_key(&k) {
                    prop_assert_eq!(result, Err(CreditError::DuplicateLink));
                } else if self.links.len() == LINKS {
                    prop_assert_eq!(result, Err(CreditError::LinksFull));
                } else {
                    prop_assert_eq!(result, Ok(()));
                    self.links.insert(k, ModelLink { given: credits, ..ModelLink::default() });
                }
            }
            Op::RemoveLink(k) => {
                let result = self.ledger.remove_link(k);
                match self.links.remove(&k) {
                    None => prop_assert_eq!(result.err(), Some(CreditError::UnknownLink)),
                    Some(model) => {
                        let info = result.map_err(|e| TestCaseError::fail(format!("{e}")))?;
                        prop_assert_eq!(info.reserved, model.reserved);
                        prop_assert_eq!(
                            info.balance + info.reserved as i64 + model.acquired as i64,
                            model.given
                        );
                        for w in self.waiters.iter().filter(|w| w.target == Target::Link(k)) {
                            prop_assert!(matches!(self.state_of(w.key), RequestState::Failed(_)));
                        }
                    }
                }
            }
            Op::AddCredits(k, delta) => {
                let result = self.ledger.add_credits(k, delta);
                match self.links.get_mut(&k) {
                    None => prop_assert_eq!(result, Err(CreditError::UnknownLink)),
                    Some(model) => {
                        prop_assert!(result.is_ok());
                        model.given += delta;
                    }
                }
            }
            Op::Request(target, notify_if_none) => {
                let target = target.map_or(Target::Any, Target::Link);
                let id = self.next_id;
                self.next_id += 1;
                let result = self.ledger.request(target, notify_if_none, id);
                match result {
                    Ok(Admission::Granted(k)) => {
                        prop_assert!(target == Target::Any || target == Target::Link(k));
                        let model = self.links.get_mut(&k);
                        prop_assert!(model.is_some(), "granted an unknown link");
                        if let Some(model) = model {
                            model.reserved += 1;
                        }
                    }
                    Ok(Admission::Queued(key)) => {
                        prop_assert!(!self.closed);
                        prop_assert!(self.waiters.len() < REQUESTS);
                        self.waiters.push(Waiter { key, id, target, woken: false });
                    }
                    Err(CreditError::Closed) => prop_assert!(self.closed),
                    Err(CreditError::UnknownLink) => {
                        prop_assert!(
                            matches!(target, Target::Link(k) if !self.links.contains_key(&k))
                        );
                    }
                    Err(CreditError::NoLinks) => {
                        prop_assert!(
                            notify_if_none && target == Target::Any && self.links.is_empty()
                        );
                    }
                    Err(CreditError::WaitersFull) => prop_assert_eq!(self.waiters.len(), REQUESTS),
                    Err(e) => prop_assert!(false, "unexpected request error {e}"),
                }
            }
            Op::Poll(i) => {
                if self.waiters.is_empty() {
                    return Ok(());
                }
                let i = i % self.waiters.len();
                let before = self.state_of(self.waiters[i].key);
                let result = self.ledger.poll(self.waiters[i].key);
                match (before, result) {
                    (RequestState::New, Poll::Pending) => self.waiters[i].woken = false,
                    (RequestState::Unsettled(k), Poll::Ready(Ok(got))) => {
                        prop_assert_eq!(k, got);
                        if let Some(model) = self.links.get_mut(&k) {
                            model.reserved += 1;
                        }
                        self.waiters.swap_remove(i);
                    }
                    (RequestState::Failed(e), Poll::Ready(Err(got))) => {
                        prop_assert_eq!(e, got);
                        self.waiters.swap_remove(i);
                    }
                    (before, result) => {
                        prop_assert!(false, "poll of a {before:?} request gave {result:?}")
                    }
                }
            }
            Op::Cancel(i) => {
                if self.waiters.is_empty() {
                    return Ok(());
                }
                let i = i % self.waiters.len();
                let totals = |ledger: &TestLedger| {
                    ledger.links().map(|l| (l.key, l.balance, l.reserved)).collect::<Vec<_>>()
                };
                let before = totals(&self.ledger);
                prop_assert!(self.ledger.cancel(self.waiters[i].key));
                prop_assert!(!self.ledger.cancel(self.waiters[i].key), "cancelled twice");
                prop_assert_eq!(before, totals(&self.ledger), "a cancel moved credits");
                self.waiters.swap_remove(i);
            }
            Op::Acquire(k) | Op::Release(k) => {
                let result = match op {
                    Op::Acquire(_) => self.ledger.acquire(k),
                    _ => self.ledger.release(k),
                };
                match self.links.get_mut(&k) {
                    None => prop_assert_eq!(result, Err(CreditError::UnknownLink)),
                    Some(model) if model.reserved == 0 => {
                        prop_assert_eq!(result, Err(CreditError::NoReservation));
                    }
                    Some(model) => {
                        prop_assert_eq!(result, Ok(()));
                        model.reserved -= 1;
                        if matches!(op, Op::Acquire(_)) {
                            model.acquired += 1;
                        }
                    }
                }
            }
            Op::Close => {
                self.ledger.close();
                self.closed = true;
            }
        }
        self.deliver_wakes()?;
        self.check()
    }

    /// Drains the ledger's signals: each must name a waiter that can make progress.
    fn deliver_wakes(&mut self) -> Result<(), TestCaseError> {
        let mut woken = Vec::new();
        self.ledger.drain_signals(|&id| woken.push(id));
        prop_assert!(!self.ledger.has_signals());
        for id in woken {
            let waiter = self.waiters.iter().position(|w| w.id == id);
            prop_assert!(waiter.is_some(), "signalled a request that is gone");
            let Some(i) = waiter else { continue };
            let state = self.state_of(self.waiters[i].key);
            prop_assert!(state != RequestState::New, "woke a waiter that has no credit");
            self.waiters[i].woken = true;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let links: Vec<_> = self.ledger.links().collect();
        prop_assert_eq!(links.len(), self.links.len());
        let requests: Vec<_> = self.ledger.requests().collect();
        prop_assert_eq!(requests.len(), self.waiters.len());
        for link in &links {
            let model = self.links.get(&link.key);
            prop_assert!(model.is_some(), "ledger has a link the model lacks");
            let Some(model) = model else { continue };
            prop_assert_eq!(link.reserved, model.reserved);
            prop_assert_eq!(
                link.balance + link.reserved as i64 + model.acquired as i64,
                model.given,
                "credits not conserved on link {}",
                link.key
            );
            let unsettled =
                requests.iter().filter(|r| r.state == RequestState::Unsettled(link.key)).count();
            prop_assert_eq!(unsettled, link.unsettled as usize);
            prop_assert!(
                i64::from(link.unsettled) <= link.balance.max(0),
                "more woken than credits"
            );
            if link.free() > 0 {
                let idle = requests.iter().any(|r| {
                    r.state == RequestState::New
                        && (r.target == Target::Any || r.target == Target::Link(link.key))
                });
                prop_assert!(!idle, "free credit on link {} while a waiter sleeps", link.key);
            }
        }
        for waiter in &self.waiters {
            let state = self.state_of(waiter.key);
            if state != RequestState::New {
                prop_assert!(waiter.woken, "lost wake-up: {:?} request not woken", state);
            }
            if self.closed {
                prop_assert!(matches!(state, RequestState::Failed(_)), "waits outlive close");
            }
        }
        Ok(())
    }

    /// Fair-ish order: on each link, every unsettled request is older than every new
    /// request that the link could serve.
    fn check_ticket_order(&self) -> Result<(), TestCaseError> {
        let requests: Vec<_> = self.ledger.requests().collect();
        for link in self.ledger.links() {
            let newest_unsettled = requests
                .iter()
                .filter(|r| r.state == RequestState::Unsettled(link.key))
                .map(|r| r.key.ticket())
                .max();
            let oldest_waiting = requests
                .iter()
                .filter(|r| {
                    r.state == RequestState::New
                        && (r.target == Target::Any || r.target == Target::Link(link.key))
                })
                .map(|r| r.key.ticket())
                .min();
            if let (Some(unsettled), Some(waiting)) = (newest_unsettled, oldest_waiting) {
                prop_assert!(
                    unsettled < waiting,
                    "link {} woke ticket {} before ticket {}",
                    link.key,
                    unsettled,
                    waiting
                );
            }
        }
        Ok(())
    }
}

fn fairness() -> impl Strategy<Value = Fairness> {
    prop_oneof![Just(Fairness::FairIsh), Just(Fairness::Unfair)]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_in_both_modes(fairness in fairness(), ops in prop::collection::vec(any_op(), 1..80)) {
        let mut model = Model::new(fairness);
        for op in &ops {
            model.apply(op)?;
        }
    }

    #[test]
    fn fair_ish_mode_serves_tickets_in_order(ops in prop::collection::vec(orderly_op(), 1..80)) {
        let mut model = Model::new(Fairness::FairIsh);
        for op in &ops {
            model.apply(op)?;
            model.check_ticket_order()?;
        }
    }

    /// Waking is exact: adding `n` credits to a link wakes `min(n, waiters)` of its waiters.
    #[test]
    fn credits_wake_exactly_as_many_waiters(fairness in fairness(), waiters in 0usize..REQUESTS, credits in 0i64..8) {
        let mut ledger = TestLedger::new(fairness);
        ledger.add_link(0, 0).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        for id in 0..waiters as u64 {
            let target = if id % 2 == 0 { Target::Any } else { Target::Link(0) };
            let admitted = ledger.request(target, false, id);
            prop_assert!(matches!(admitted, Ok(Admission::Queued(_))));
        }
        prop_assert_eq!(ledger.add_credits(0, credits), Ok(credits));
        let mut woken = 0usize;
        ledger.drain_signals(|_| woken += 1);
        prop_assert_eq!(woken, waiters.min(credits as usize));
    }
}
