//! Event and interest flags (thesis §4.4.4, "Poll Flags").

use core::fmt;
use core::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign};

/// A set of readiness events of a pollable.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Events(u32);

impl Events {
    /// Readable: a receive would not block.
    pub const IN: Events = Events(1 << 0);
    /// Writable: a send would not block.
    pub const OUT: Events = Events(1 << 1);
    /// An error condition. Always reported, asked for or not.
    pub const ERR: Events = Events(1 << 2);
    /// Hang-up: the pollable closed (or its peer did). Always reported, asked for or not.
    pub const HUP: Events = Events(1 << 3);
    /// The events reported whatever the interest.
    pub const ALWAYS: Events = Events(Self::ERR.0 | Self::HUP.0);
    /// Every event.
    pub const ALL: Events = Events(Self::IN.0 | Self::OUT.0 | Self::ERR.0 | Self::HUP.0);

    /// No event.
    pub const fn empty() -> Self {
        Events(0)
    }

    /// The raw bits (also the interest mask of wait-queue entries).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The events among `bits`; unknown bits are dropped.
    pub const fn from_bits_truncate(bits: u32) -> Self {
        Events(bits & Self::ALL.0)
    }

    /// Whether no event is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every event of `other` is set.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any event of `other` is set.
    pub const fn intersects(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }

    /// The events set in either.
    pub const fn union(self, other: Events) -> Self {
        Events(self.0 | other.0)
    }

    /// The events set in both.
    pub const fn intersection(self, other: Events) -> Self {
        Events(self.0 & other.0)
    }

    /// The events of `self` not in `other`.
    pub const fn difference(self, other: Events) -> Self {
        Events(self.0 & !other.0)
    }

    /// What a poller reports for `interest` when the pollable has `self`: the asked-for events
    /// plus [`Events::ALWAYS`].
    pub const fn reported_for(self, interest: Events) -> Self {
        self.intersection(interest.union(Self::ALWAYS))
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        self.union(rhs)
    }
}

impl BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        *self = self.union(rhs);
    }
}

impl BitAnd for Events {
    type Output = Events;
    fn bitand(self, rhs: Events) -> Events {
        self.intersection(rhs)
    }
}

impl BitAndAssign for Events {
    fn bitand_assign(&mut self, rhs: Events) {
        *self = self.intersection(rhs);
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [(Self::IN, "IN"), (Self::OUT, "OUT"), (Self::ERR, "ERR"), (Self::HUP, "HUP")];
        let mut first = true;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("(empty)")?;
        }
        Ok(())
    }
}

/// What a poller watches a pollable for, and how (the thesis's mode flags).
///
/// Level-triggered by default: the pollable is reported by every wait while it has an event
/// of interest. [`Interest::edge_triggered`] reports it once per wake-up of the pollable (a
/// new event), [`Interest::oneshot`] once until re-armed with `modify`, and
/// [`Interest::exclusive`] registers the poller as an exclusive waiter of the pollable, so
/// one event wakes one of the exclusive pollers instead of all (thundering herd). Exclusive
/// cannot be combined with one-shot, and cannot be added or removed by `modify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest {
    events: Events,
    edge_triggered: bool,
    oneshot: bool,
    exclusive: bool,
}

impl Interest {
    /// Level-triggered interest in `events` ([`Events::ALWAYS`] is added when reporting).
    pub const fn new(events: Events) -> Self {
        Self { events, edge_triggered: false, oneshot: false, exclusive: false }
    }

    /// The same interest, edge-triggered.
    pub const fn edge_triggered(mut self) -> Self {
        self.edge_triggered = true;
        self
    }

    /// The same interest, disarmed after one report until re-armed by `modify`.
    pub const fn oneshot(mut self) -> Self {
        self.oneshot = true;
        self
    }

    /// The same interest, as an exclusive waiter of the pollable.
    pub const fn exclusive(mut self) -> Self {
        self.exclusive = true;
        self
    }

    /// The events asked for.
    pub const fn events(self) -> Events {
        self.events
    }

    /// The events that wake and are reported: those asked for plus [`Events::ALWAYS`].
    pub const fn mask(self) -> Events {
        self.events.union(Events::ALWAYS)
    }

    /// Whether edge-triggered.
    pub const fn is_edge_triggered(self) -> bool {
        self.edge_triggered
    }

    /// Whether one-shot.
    pub const fn is_oneshot(self) -> bool {
        self.oneshot
    }

    /// Whether exclusive.
    pub const fn is_exclusive(self) -> bool {
        self.exclusive
    }

    /// Whether the flags go together (exclusive excludes one-shot).
    pub const fn is_valid(self) -> bool {
        !(self.exclusive && self.oneshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let rw = Events::IN | Events::OUT;
        assert!(rw.contains(Events::IN));
        assert!(!rw.contains(Events::IN | Events::ERR));
        assert!(rw.intersects(Events::OUT | Events::HUP));
        assert_eq!(rw.difference(Events::IN), Events::OUT);
        assert_eq!(rw & Events::OUT, Events::OUT);
        assert_eq!(Events::from_bits_truncate(u32::MAX), Events::ALL);
        assert!(Events::empty().is_empty());
        let mut e = Events::IN;
        e |= Events::HUP;
        e &= Events::HUP | Events::OUT;
        assert_eq!(e, Events::HUP);
    }

    #[test]
    fn hang_up_and_error_are_always_reported() {
        let ready = Events::ALL;
        assert_eq!(ready.reported_for(Events::IN), Events::IN | Events::ERR | Events::HUP);
        assert_eq!(Events::OUT.reported_for(Events::IN), Events::empty());
        assert_eq!(Interest::new(Events::OUT).mask(), Events::OUT | Events::ALWAYS);
    }

    #[test]
    fn exclusive_excludes_oneshot() {
        assert!(Interest::new(Events::IN).exclusive().edge_triggered().is_valid());
        assert!(!Interest::new(Events::IN).exclusive().oneshot().is_valid());
        let i = Interest::new(Events::IN).oneshot().edge_triggered();
        assert!(i.is_oneshot() && i.is_edge_triggered() && !i.is_exclusive());
    }

    #[test]
    fn debug_names_the_flags() {
        use core::fmt::Write;
        let mut s = heapless::String::<32>::new();
        write!(s, "{:?}/{:?}", Events::IN | Events::HUP, Events::empty()).unwrap();
        assert_eq!(s, "IN | HUP/(empty)");
    }
}
