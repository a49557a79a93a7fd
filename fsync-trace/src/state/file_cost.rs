//! A file's [`SyncCost`] in as little memory as its history needs. Most synced files are
//! synced once (the bench's 100,000 files each are): such a file keeps that one sync's figures
//! in a [`OneSync`] (about half a `SyncCost`), and the full `SyncCost` is built from them,
//! by replaying that sync, at its second sync call. Every figure read is the same as if the
//! full `SyncCost` had been kept from the start.
use std::{borrow::Cow, sync::Arc};

use super::cost::{covered, Reading, SyncCost};
use crate::event::Actor;

/// What a file's syncs cost: nothing before its first sync call, one sync's figures, then
/// the full account. One pointer in every file state (the figures are boxed either way).
#[derive(Clone, Debug, Default)]
pub struct FileCost(Option<Box<Kind>>);

#[derive(Clone, Debug)]
enum Kind {
    Once(OneSync),
    Many(Box<SyncCost>),
}

/// The figures of a file's only sync call so far.
#[derive(Clone, Debug)]
pub struct OneSync {
    enter: u64,
    /// Who made the call, once it read the file's counters when it returned (a successful
    /// fsync/fdatasync; shared with the state's other records of that actor: 8 bytes, not
    /// 32); None: no reading.
    by: Option<Arc<Actor>>,
    /// `exit - enter` (ns): u32, as a call of 4.3 s or more starts with the full account.
    took: u32,
    /// That reading (writes, bytes, mapped pages; what the call covered: nothing was read
    /// before it), u32 each: a larger one starts the full account.
    reading: [u32; 3],
    durable_known: bool,
    changed: bool,
    /// u16 (the full account takes over beyond): 40 bytes fit a 48-byte block.
    device_flushes: u16,
    syncs_without_flush: u16,
}

impl OneSync {
    fn exit(&self) -> u64 {
        self.enter + u64::from(self.took)
    }

    /// The reading the call made, and who made it.
    fn reading(&self) -> Option<(Reading, &Arc<Actor>)> {
        let [writes, bytes, pages] = self.reading.map(u64::from);
        self.by.as_ref().map(|by| {
            let r = Reading {
                writes,
                bytes,
                mapped_pages: pages,
            };
            (r, by)
        })
    }

    /// The full account this one sync call makes, as [`SyncCost`] would have recorded it.
    fn expand(&self) -> SyncCost {
        let mut c = SyncCost::default();
        c.call(self.enter, self.exit());
        if let Some((now, actor)) = self.reading() {
            let (writes, bytes, _) = covered(&Reading::default(), &now);
            c.writes_per_sync.record(writes);
            c.bytes_per_sync.record(bytes);
            c.first_sync = Some((self.exit(), Actor::clone(actor)));
            c.last = now;
        }
        c.durable_known = self.durable_known;
        c.changed = self.changed;
        c.device_flushes = self.device_flushes.into();
        c.syncs_without_flush = self.syncs_without_flush.into();
        c
    }
}

impl FileCost {
    /// A sync call that ran from `enter` to `exit` (see [`SyncCost::call`]).
    pub fn call(&mut self, enter: u64, exit: u64) {
        let took = exit.checked_sub(enter).and_then(|t| u32::try_from(t).ok());
        match (self.0.as_deref_mut(), took) {
            (None, Some(took)) => {
                self.0 = Some(Box::new(Kind::Once(OneSync {
                    enter,
                    by: None,
                    took,
                    reading: [0; 3],
                    durable_known: false,
                    changed: false,
                    device_flushes: 0,
                    syncs_without_flush: 0,
                })));
            }
            (Some(Kind::Many(c)), _) => c.call(enter, exit),
            (None | Some(Kind::Once(_)), _) => self.full_mut().call(enter, exit),
        }
    }

    /// The full account, built from the compact one if need be (the file's next sync call).
    pub fn full_mut(&mut self) -> &mut SyncCost {
        let kind = self
            .0
            .get_or_insert_with(|| Box::new(Kind::Many(Box::default())));
        if let Kind::Once(one) = &**kind {
            **kind = Kind::Many(Box::new(one.expand()));
        }
        match &mut **kind {
            Kind::Many(c) => c,
            Kind::Once(_) => unreachable!("expanded above"),
        }
    }

    /// The file's first successful fsync/fdatasync with a reading (`now`) returned at
    /// `exit`, right after its only sync call: kept compact, it covered the reading itself and
    /// was not redundant (nothing was known durable before). Returns (writes, bytes) covered,
    /// or None if this is not that case (then the caller records on [`FileCost::full_mut`]).
    pub fn first_reading(
        &mut self,
        exit: u64,
        actor: &Arc<Actor>,
        now: Reading,
    ) -> Option<(u64, u64)> {
        let Some(Kind::Once(one)) = self.0.as_deref_mut() else {
            return None;
        };
        if one.by.is_some() || one.exit() != exit {
            return None;
        }
        let compact = |n: u64| u32::try_from(n).ok();
        let (Some(w), Some(b), Some(p)) = (
            compact(now.writes),
            compact(now.bytes),
            compact(now.mapped_pages),
        ) else {
            return None;
        };
        let (writes, bytes, _) = covered(&Reading::default(), &now);
        one.reading = [w, b, p];
        one.by = Some(Arc::clone(actor));
        one.durable_known = true;
        one.changed = false;
        Some((writes, bytes))
    }

    /// True if a reading now could be kept compact ([`Self::first_reading`] may take it).
    pub fn awaits_first_reading(&self) -> bool {
        matches!(self.0.as_deref(), Some(Kind::Once(one)) if one.by.is_none())
    }

    /// Nothing is known to be durable any more (a failure, a durable point without a reading).
    pub fn forget_durable(&mut self) {
        match self.0.as_deref_mut() {
            None => {}
            Some(Kind::Once(one)) => one.durable_known = false,
            Some(Kind::Many(c)) => c.durable_known = false,
        }
    }

    /// Something the counters do not show changed since the durable point.
    pub fn mark_changed(&mut self) {
        match self.0.as_deref_mut() {
            None => {}
            Some(Kind::Once(one)) => one.changed = true,
            Some(Kind::Many(c)) => c.changed = true,
        }
    }

    /// Device flushes seen while a durable-point sync of the file ran (nothing before its
    /// first sync call).
    pub fn flushes(&mut self, n: u64, without: u64) {
        if let Some(Kind::Once(one)) = self.0.as_deref_mut() {
            let sum = |a: u16, b: u64| u16::try_from(u64::from(a) + b).ok();
            if let (Some(f), Some(w)) = (
                sum(one.device_flushes, n),
                sum(one.syncs_without_flush, without),
            ) {
                (one.device_flushes, one.syncs_without_flush) = (f, w);
                return;
            }
        }
        if self.0.is_none() {
            return;
        }
        let c = self.full_mut();
        c.device_flushes += n;
        c.syncs_without_flush += without;
    }

    /// The counters at the last durable point a sync record read (zero if none).
    pub fn last(&self) -> Option<Reading> {
        match self.0.as_deref()? {
            Kind::Once(one) => Some(one.reading().map(|r| r.0).unwrap_or_default()),
            Kind::Many(c) => Some(c.last),
        }
    }

    /// The full account, for the report and the advice (None: never synced).
    pub fn get(&self) -> Option<Cow<'_, SyncCost>> {
        match self.0.as_deref()? {
            Kind::Once(one) => Some(Cow::Owned(one.expand())),
            Kind::Many(c) => Some(Cow::Borrowed(c)),
        }
    }

    /// Kept compact (one sync call so far)?
    #[cfg(test)]
    fn is_once(&self) -> bool {
        matches!(self.0.as_deref(), Some(Kind::Once(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor() -> Actor {
        Actor {
            pid: 7,
            tid: 8,
            comm: "db".into(),
            stack: None,
        }
    }

    /// What `SyncCost` recorded for a sync call with a reading (as `sync_covered` did before
    /// the compact form).
    fn full_sync(c: &mut SyncCost, enter: u64, exit: u64, now: Reading) {
        c.call(enter, exit);
        let (w, b, _) = covered(&c.last, &now);
        c.writes_per_sync.record(w);
        c.bytes_per_sync.record(b);
        c.first_sync.get_or_insert((exit, actor()));
        c.last = now;
        c.durable_known = true;
        c.changed = false;
    }

    fn reading(writes: u64) -> Reading {
        Reading {
            writes,
            bytes: writes * 100,
            mapped_pages: 1,
        }
    }

    #[test]
    fn one_sync_is_compact_and_reads_as_the_full_account() {
        // 40 + 8 bytes of allocator header: a 48-byte block (the variant's tag fits in it).
        assert!(std::mem::size_of::<Kind>() <= 40);
        assert_eq!(std::mem::size_of::<FileCost>(), 8);
        let mut f = FileCost::default();
        assert!(f.get().is_none() && f.last().is_none());
        f.call(10, 30);
        f.flushes(2, 0);
        assert_eq!(
            f.first_reading(30, &Arc::new(actor()), reading(3)),
            Some((3, 300 + 4096))
        );
        f.mark_changed();
        assert!(f.is_once());
        let mut want = SyncCost::default();
        full_sync(&mut want, 10, 30, reading(3));
        want.device_flushes = 2;
        want.changed = true;
        assert_eq!(format!("{:?}", f.get().unwrap()), format!("{want:?}"));
        assert_eq!(f.last(), Some(reading(3)));
    }

    #[test]
    fn a_reading_beyond_u32_starts_the_full_account() {
        let big = Reading {
            writes: 1,
            bytes: 1 << 32,
            mapped_pages: 0,
        };
        let mut f = FileCost::default();
        f.call(10, 30);
        assert!(f.awaits_first_reading());
        assert_eq!(f.first_reading(30, &Arc::new(actor()), big), None);
        assert!(f.is_once(), "the caller records it on the full account");
    }

    #[test]
    fn the_second_call_builds_the_full_account_from_the_first() {
        let mut f = FileCost::default();
        f.call(10, 30);
        f.first_reading(30, &Arc::new(actor()), reading(3));
        f.flushes(0, 1);
        f.call(20, 50);
        assert!(!f.is_once() && f.get().is_some());
        assert_eq!(f.first_reading(50, &Arc::new(actor()), reading(5)), None);
        let mut want = SyncCost::default();
        full_sync(&mut want, 10, 30, reading(3));
        want.syncs_without_flush = 1;
        want.call(20, 50);
        assert_eq!(format!("{:?}", f.get().unwrap()), format!("{want:?}"));
        assert_eq!(want.in_flight.max(), 2);
    }

    #[test]
    fn a_call_without_reading_stays_unknown() {
        // A failed sync: one call, no reading, nothing known durable.
        let mut f = FileCost::default();
        f.call(1, 2);
        f.forget_durable();
        let c = f.get().unwrap();
        assert_eq!(
            (c.calls, c.writes_per_sync.count(), c.durable_known),
            (1, 0, false)
        );
        assert!(c.first_sync.is_none());
        assert_eq!(f.last(), Some(Reading::default()));
        // A reading for another call (exit differs) goes to the full account.
        let mut g = FileCost::default();
        g.call(1, 2);
        assert_eq!(g.first_reading(3, &Arc::new(actor()), reading(1)), None);
    }

    #[test]
    fn flushes_beyond_the_compact_fields_go_to_the_full_account() {
        let mut f = FileCost::default();
        f.flushes(1, 1);
        assert!(f.get().is_none(), "nothing before the first sync call");
        f.call(1, 2);
        f.flushes(u64::from(u16::MAX), 1);
        assert!(f.is_once());
        f.flushes(1, 0);
        assert!(!f.is_once() && f.get().is_some());
        let c = f.get().unwrap();
        assert_eq!(
            (c.device_flushes, c.syncs_without_flush),
            (u64::from(u16::MAX) + 1, 1)
        );
    }

    #[test]
    fn a_call_too_long_for_the_compact_form_starts_the_full_account() {
        let long = u64::from(u32::MAX) + 1;
        let mut f = FileCost::default();
        f.call(10, 10 + long);
        assert!(!f.is_once() && f.get().is_some());
        let mut want = SyncCost::default();
        want.call(10, 10 + long);
        assert_eq!(format!("{:?}", f.get().unwrap()), format!("{want:?}"));
        // The longest that fits stays compact and reads the same.
        let mut g = FileCost::default();
        g.call(10, 10 + long - 1);
        assert!(g.is_once());
        let mut want = SyncCost::default();
        want.call(10, 10 + long - 1);
        assert_eq!(format!("{:?}", g.get().unwrap()), format!("{want:?}"));
    }
}
