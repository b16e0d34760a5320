//! Property tests of per-link credit flow control (`a3m_core::flow`) and the per-link FIFO
//! queue, with an unordered channel between sender and receiver:
//! * credits are conserved: `balance + DATA in flight + queued + owed + FLOW in flight ==
//!   capacity` after every step, whatever is delivered when;
//! * with a constant capacity the receive queue never exceeds it, and the sender never gets
//!   beyond the receiver's window bound even while capacity changes;
//! * owed credits never stall the link: they stay below the batch threshold, and a quiet
//!   link with capacity always lets the sender send;
//! * FLOW updates converge: any order of application gives the same balance;
//! * the FIFO queue hands out any arrival order in sequence.
#![cfg(feature = "alloc")]

use a3m_core::flow::{BatchPercent, FlowUpdate, RecvCredits, SendCredits};
use a3m_core::link::{FifoError, InOrderQueue};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Send,
    DeliverData,
    Take,
    DeliverFlow(usize),
    SetCapacity(u32),
    AdjustCapacity(i32),
    SetBatch(u8),
}

fn op(capacity_changes: bool) -> impl Strategy<Value = Op> {
    let base = prop_oneof![
        4 => Just(Op::Send),
        4 => Just(Op::DeliverData),
        3 => Just(Op::Take),
        3 => any::<usize>().prop_map(Op::DeliverFlow),
    ];
    if capacity_changes {
        prop_oneof![
            10 => base,
            1 => (0u32..40).prop_map(Op::SetCapacity),
            1 => (-20i32..20).prop_map(Op::AdjustCapacity),
            1 => (1u8..=100).prop_map(Op::SetBatch),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

struct Model {
    tx: SendCredits,
    rx: RecvCredits,
    data_in_flight: u64,
    queued: u64,
    flows: Vec<FlowUpdate>,
    sent: u64,
}

impl Model {
    fn new(capacity: u32, batch: u8) -> Self {
        Model {
            tx: SendCredits::new(capacity),
            rx: RecvCredits::new(capacity, BatchPercent::new(batch).unwrap()),
            data_in_flight: 0,
            queued: 0,
            flows: Vec::new(),
            sent: 0,
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Send => {
                if self.tx.try_consume() {
                    self.data_in_flight += 1;
                    self.sent += 1;
                }
            }
            Op::DeliverData => {
                if self.data_in_flight > 0 {
                    self.data_in_flight -= 1;
                    self.queued += 1;
                }
            }
            Op::Take => {
                if self.queued > 0 {
                    self.queued -= 1;
                    self.flows.extend(self.rx.on_taken());
                }
            }
            Op::DeliverFlow(i) => {
                if !self.flows.is_empty() {
                    let u = self.flows.swap_remove(i % self.flows.len());
                    self.tx.apply(u);
                }
            }
            Op::SetCapacity(c) => self.flows.extend(self.rx.set_capacity(c)),
            Op::AdjustCapacity(d) => self.flows.extend(self.rx.adjust_capacity(d)),
            Op::SetBatch(b) => self.flows.extend(self.rx.set_batch(BatchPercent::new(b).unwrap())),
        }
    }

    fn flow_in_flight(&self) -> i64 {
        self.flows.iter().map(|u| u.net()).sum()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let total = self.tx.balance()
            + self.data_in_flight as i64
            + self.queued as i64
            + i64::from(self.rx.owed())
            + self.flow_in_flight();
        prop_assert_eq!(total, i64::from(self.rx.capacity()), "credits not conserved");
        prop_assert!(self.rx.owed() < self.rx.threshold(), "owed credits stuck at the receiver");
        prop_assert!(
            self.queued + self.data_in_flight <= self.rx.window_bound(),
            "sender beyond the window bound"
        );
        let quiet = self.data_in_flight == 0 && self.queued == 0 && self.flows.is_empty();
        if quiet && self.rx.capacity() > 0 {
            prop_assert!(self.tx.can_send(), "a quiet link with capacity cannot send");
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn constant_capacity_bounds_the_queue_and_conserves_credits(
        capacity in 0u32..30,
        batch in 1u8..=100,
        ops in proptest::collection::vec(op(false), 0..400),
    ) {
        let mut m = Model::new(capacity, batch);
        for op in &ops {
            m.apply(op);
            m.check()?;
            prop_assert!(m.queued + m.data_in_flight <= u64::from(capacity));
        }
    }

    #[test]
    fn capacity_changes_conserve_credits_in_any_delivery_order(
        capacity in 0u32..30,
        batch in 1u8..=100,
        ops in proptest::collection::vec(op(true), 0..400),
    ) {
        let mut m = Model::new(capacity, batch);
        for op in &ops {
            m.apply(op);
            m.check()?;
        }
        // Deliver and take everything: the sender ends with exactly the final capacity
        // minus what the receiver still owes.
        while m.data_in_flight > 0 || m.queued > 0 || !m.flows.is_empty() {
            m.apply(&Op::DeliverData);
            m.apply(&Op::Take);
            m.apply(&Op::DeliverFlow(0));
            m.check()?;
        }
        prop_assert_eq!(m.tx.balance() + i64::from(m.rx.owed()), i64::from(m.rx.capacity()));
    }

    #[test]
    fn flow_updates_converge_whatever_the_order(
        initial in 0u32..1000,
        updates in proptest::collection::vec((0u32..100, -50i32..50), 0..50),
        seed in any::<u64>(),
    ) {
        let updates: Vec<FlowUpdate> = updates
            .into_iter()
            .map(|(credits, capacity_delta)| FlowUpdate { credits, capacity_delta })
            .collect();
        let mut in_order = SendCredits::new(initial);
        for u in &updates {
            in_order.apply(*u);
        }
        // A seeded shuffle of the same updates.
        let mut shuffled = updates.clone();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut other = SendCredits::new(initial);
        for u in &shuffled {
            let before = other.balance();
            let edge = other.apply(*u);
            // A writable edge exactly when the balance crosses into positive.
            prop_assert_eq!(edge, before <= 0 && other.balance() > 0);
        }
        let expected = i64::from(initial) + updates.iter().map(|u| u.net()).sum::<i64>();
        prop_assert_eq!(in_order.balance(), expected);
        prop_assert_eq!(other.balance(), expected);
    }

    #[test]
    fn fifo_hands_out_any_arrival_order_in_sequence(
        perm in Just((0u64..64).collect::<Vec<u64>>()).prop_shuffle(),
    ) {
        let mut q = InOrderQueue::new();
        let mut out = Vec::new();
        for &seq in &perm {
            let became_ready = q.insert(seq, seq, 64).unwrap();
            prop_assert_eq!(became_ready, seq == q.next_seq());
            prop_assert_eq!(q.insert(seq, seq, 64), Err((FifoError::Duplicate, seq)));
            // Take what is ready now, as an application would.
            while let Some(v) = q.pop() {
                out.push(v);
            }
        }
        prop_assert_eq!(out, (0..64).collect::<Vec<_>>());
        prop_assert!(q.is_empty());
        prop_assert_eq!(q.insert(3, 3, 64), Err((FifoError::Stale, 3)));
    }
}
