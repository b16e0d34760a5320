//! loom models of the poller: no lost event, close wakes everyone, exclusive and one-shot
//! report each event once.
//!
//! Run with `ci/loom.sh`. A lost wake-up shows up as a loom deadlock.
#![cfg(loom)]

use a3m_core::poll::{Events, Interest, PollError, PollEvent, PollId, PollSource, Poller};
use a3m_core::time::Instant;
use loom::thread;
use std::sync::Arc;

mod loom_support;
use loom_support::LoomSleeper;

type Source = PollSource<2>;

fn wait(poller: &Poller<2>, deadline: Option<Instant>) -> Result<Vec<PollEvent>, PollError> {
    let mut out = [PollEvent::EMPTY; 2];
    let n = poller.wait(&mut out, &LoomSleeper::new(), deadline)?;
    Ok(out[..n].to_vec())
}

fn event(events: Events) -> PollEvent {
    PollEvent { id: PollId(1), events }
}

#[test]
fn event_racing_a_wait_is_not_lost() {
    loom::model(|| {
        let poller = Arc::new(Poller::<2>::with_waiter_capacity());
        let source = Arc::new(Source::new(PollId(1)));
        poller.add(source.clone(), Interest::new(Events::IN).edge_triggered()).unwrap();
        let waiter = {
            let poller = poller.clone();
            thread::spawn(move || wait(&poller, None))
        };
        source.raise(Events::IN);
        assert_eq!(waiter.join().unwrap(), Ok(vec![event(Events::IN)]));
    });
}

#[test]
fn closing_a_pollable_wakes_every_poller_with_hang_up() {
    loom::model(|| {
        let source = Arc::new(Source::new(PollId(1)));
        let waiters: Vec<_> = [Interest::new(Events::IN).exclusive(), Interest::new(Events::OUT)]
            .into_iter()
            .map(|interest| {
                let poller = Poller::<2>::with_waiter_capacity();
                poller.add(source.clone(), interest).unwrap();
                thread::spawn(move || {
                    let reported = wait(&poller, None);
                    (reported, poller.is_empty())
                })
            })
            .collect();
        source.close(false);
        for waiter in waiters {
            let (reported, left_interest_list) = waiter.join().unwrap();
            assert_eq!(reported, Ok(vec![event(Events::HUP)]));
            assert!(left_interest_list);
        }
        assert!(source.queue().is_empty());
    });
}

#[test]
fn closing_the_poller_wakes_every_waiter() {
    loom::model(|| {
        let poller = Arc::new(Poller::<2>::with_waiter_capacity());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let poller = poller.clone();
                thread::spawn(move || wait(&poller, None))
            })
            .collect();
        poller.close();
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Err(PollError::Closed));
        }
    });
}

#[test]
fn exclusive_pollers_share_events_one_each() {
    loom::model(|| {
        let source = Arc::new(Source::new(PollId(1)));
        let pollers: Vec<Poller<2>> = (0..2)
            .map(|_| {
                let poller = Poller::with_waiter_capacity();
                let interest = Interest::new(Events::IN).edge_triggered().exclusive();
                poller.add(source.clone(), interest).unwrap();
                poller
            })
            .collect();
        let raisers: Vec<_> = (0..2)
            .map(|_| {
                let source = source.clone();
                thread::spawn(move || source.raise(Events::IN).exclusive)
            })
            .collect();
        let woke: usize = raisers.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(woke, 2);
        for poller in &pollers {
            let mut out = [PollEvent::EMPTY; 2];
            assert_eq!(poller.try_wait(&mut out), Ok(1));
            assert_eq!(poller.try_wait(&mut out), Ok(0));
        }
    });
}

#[test]
fn oneshot_event_is_reported_exactly_once() {
    loom::model(|| {
        let poller = Arc::new(Poller::<2>::with_waiter_capacity());
        let source = Arc::new(Source::new(PollId(1)));
        poller.add(source.clone(), Interest::new(Events::IN).oneshot()).unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let poller = poller.clone();
                thread::spawn(move || wait(&poller, Some(Instant::ZERO)).unwrap().len())
            })
            .collect();
        // Two events: the second may land while the first is being reported.
        source.raise(Events::IN);
        source.raise(Events::IN);
        let mut reported: usize = waiters.into_iter().map(|t| t.join().unwrap()).sum();
        let mut out = [PollEvent::EMPTY; 2];
        reported += poller.try_wait(&mut out).unwrap();
        assert_eq!(reported, 1);
    });
}
