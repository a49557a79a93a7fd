//! Did a sync reach the device? Cache flushes and FUA writes issued on each block device
//! (`block_rq_issue`, from any task: jbd2 or a kworker often issues them for the syncing task)
//! are counted against the syncs in flight on that device: a flush issued between a sync's
//! entry and its return counts for it (one flush can count for several syncs when the
//! filesystem batches their commits: flushes per sync says so). A device that reports a
//! volatile write cache and saw syncs complete with no flush (ext4 mounted `nobarrier`) gets
//! `sync_without_flush`.
use std::collections::{BTreeMap, VecDeque};

use fsync_trace_common::FileKey;

use super::{Finding, FindingKind};
use crate::event::Actor;

/// Flushes remembered per device to match against syncs still running (a few per commit; a
/// sync spanning more than this many flushes counts only the newest).
const RECENT_FLUSHES: usize = 1024;

/// A block device's volatile write cache, as `/sys/block/DEV/queue/write_cache` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteCache {
    /// `write back`: acknowledged writes may sit in the device's cache until a flush.
    WriteBack,
    /// `write through`: no volatile cache (flushes are not needed).
    WriteThrough,
}

impl WriteCache {
    /// From the sysfs text (None for anything else).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "write back" => Some(Self::WriteBack),
            "write through" => Some(Self::WriteThrough),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::WriteBack => "write back",
            Self::WriteThrough => "write through",
        }
    }
}

/// Flushes and syncs seen on one block device.
#[derive(Clone, Debug, Default)]
pub struct DeviceState {
    /// Cache flush requests and FUA writes issued on it during the trace (by any task).
    pub flushes: u64,
    pub fua_writes: u64,
    /// Durable-point syncs of traced files on it that returned successfully.
    pub syncs: u64,
    /// Of those, syncs of regular files with no flush or FUA write issued while they ran.
    /// Directories are left out: ext4 commits a new entry with the transaction of the file's
    /// own sync, so the directory's fsync after it often has nothing left to flush.
    pub syncs_without_flush: u64,
    /// Flushes and FUA writes issued while at least one of those syncs ran (each once).
    pub flushes_in_syncs: u64,
    /// The first sync without a flush: when it returned, who made it, of which file.
    pub first_without: Option<(u64, Actor, FileKey)>,
    /// From sysfs at the end of the trace (None: not a block device, or unreadable).
    pub write_cache: Option<WriteCache>,
    /// The device's name (`loop0`, `nvme0n1p2`), from sysfs.
    pub name: Option<String>,
    /// Issue times of recent flushes, oldest first, and whether a sync counted it already.
    recent: VecDeque<(u64, bool)>,
}

impl DeviceState {
    fn flush(&mut self, ts: u64, fua: bool) {
        if fua {
            self.fua_writes += 1;
        } else {
            self.flushes += 1;
        }
        if self.recent.len() >= RECENT_FLUSHES {
            self.recent.pop_front();
        }
        self.recent.push_back((ts, false));
    }

    /// A sync that ran from `enter` to `exit` returned: the flushes issued meanwhile (`judged`:
    /// a regular file's, counted in `syncs_without_flush` if none).
    fn sync(&mut self, enter: u64, exit: u64, judged: bool) -> u64 {
        let mut n = 0;
        for (ts, counted) in self.recent.iter_mut().rev() {
            if *ts < enter {
                break;
            }
            if *ts <= exit {
                n += 1;
                if !*counted {
                    *counted = true;
                    self.flushes_in_syncs += 1;
                }
            }
        }
        self.syncs += 1;
        if n == 0 && judged {
            self.syncs_without_flush += 1;
        }
        n
    }
}

/// Every block device that saw a flush or a sync of a traced file.
#[derive(Clone, Debug, Default)]
pub struct Devices {
    /// The block hook is attached: without it nothing is counted or judged.
    pub counting: bool,
    /// By whole disk (flushes carry no partition).
    pub by_dev: BTreeMap<u32, DeviceState>,
    /// A filesystem's device -> its whole disk, where they differ (partitions; from sysfs).
    pub disk_of: BTreeMap<u32, u32>,
}

impl Devices {
    pub fn flush(&mut self, dev: u32, ts: u64, fua: bool) {
        if self.counting {
            self.by_dev.entry(dev).or_default().flush(ts, fua);
        }
    }

    /// A successful durable-point sync of `file` (a directory if `is_dir`) from `enter` to
    /// `exit`: the flushes and FUA writes issued on its device meanwhile (None when not
    /// counting).
    pub fn sync(
        &mut self,
        file: FileKey,
        is_dir: bool,
        actor: &Actor,
        enter: u64,
        exit: u64,
    ) -> Option<u64> {
        if !self.counting {
            return None;
        }
        let disk = self.disk_of.get(&file.dev).copied().unwrap_or(file.dev);
        let d = self.by_dev.entry(disk).or_default();
        let n = d.sync(enter, exit, !is_dir);
        if n == 0 && !is_dir && d.first_without.is_none() {
            d.first_without = Some((exit, actor.clone(), file));
        }
        Some(n)
    }

    /// Devices with syncs of traced files, and nothing else (flushes elsewhere are noise).
    pub fn with_syncs(&self) -> impl Iterator<Item = (u32, &DeviceState)> {
        self.by_dev
            .iter()
            .filter(|(_, d)| d.syncs > 0)
            .map(|(&k, d)| (k, d))
    }
}

/// `sync_without_flush` for device `dev`, if it reports a volatile write cache and syncs on it
/// returned with no flush issued; `path` names the file of the first such sync.
pub fn sync_without_flush(dev: u32, d: &DeviceState, path: &str) -> Option<Finding> {
    if d.syncs_without_flush == 0 || d.write_cache != Some(WriteCache::WriteBack) {
        return None;
    }
    let (ts, actor, _) = d.first_without.clone()?;
    let name = device_label(dev, d.name.as_deref());
    Some(Finding {
        kind: FindingKind::SyncWithoutFlush,
        path: path.to_string(),
        pid: actor.pid,
        comm: actor.comm.to_string(),
        ts,
        message: format!(
            "{} of {} sync(s) on device {name} returned with no cache flush or FUA write issued on it (first: {path}), and the device reports a volatile write cache (write_cache = write back): a power cut can still lose data these syncs reported durable",
            d.syncs_without_flush, d.syncs
        ),
        fix: "mount the filesystem with write barriers (drop nobarrier / barrier=0); only if the cache is battery- or capacitor-backed, tell the kernel so (echo \"write through\" > /sys/block/DEV/queue/write_cache)".into(),
        syncs: Some(d.syncs_without_flush),
        count: d.syncs_without_flush,
        ..Finding::blank()
    })
}

/// `loop0 (7:0)`, or the numbers alone without a name.
pub fn device_label(dev: u32, name: Option<&str>) -> String {
    let nums = format!(
        "{}:{}",
        fsync_trace_common::kdev_major(dev),
        fsync_trace_common::kdev_minor(dev)
    );
    match name {
        Some(n) => format!("{n} ({nums})"),
        None => nums,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: u32 = (7 << 20) | 1;

    fn key(ino: u64) -> FileKey {
        FileKey {
            dev: DEV,
            gen: 0,
            ino,
        }
    }

    #[test]
    fn a_flush_counts_for_every_sync_it_falls_in() {
        let mut d = Devices {
            counting: true,
            ..Default::default()
        };
        let a = Actor::default();
        d.flush(DEV, 5, false); // before both syncs
        d.flush(DEV, 15, false); // in both (jbd2 batching two fsyncs in one commit)
        d.flush(DEV, 16, true);
        d.flush(DEV + 1, 17, false); // another device
        assert_eq!(d.sync(key(1), false, &a, 10, 20), Some(2));
        assert_eq!(d.sync(key(2), false, &a, 12, 18), Some(2));
        assert_eq!(d.sync(key(1), false, &a, 30, 40), Some(0));
        let s = &d.by_dev[&DEV];
        assert_eq!(
            (
                s.flushes,
                s.fua_writes,
                s.syncs,
                s.syncs_without_flush,
                s.flushes_in_syncs
            ),
            (2, 1, 3, 1, 2)
        );
        assert_eq!(
            s.first_without.as_ref().map(|f| (f.0, f.2)),
            Some((40, key(1)))
        );
        assert_eq!(d.with_syncs().count(), 1, "the other device had no sync");
    }

    #[test]
    fn nothing_is_counted_or_judged_without_the_hook() {
        let mut d = Devices::default();
        d.flush(DEV, 5, false);
        assert_eq!(d.sync(key(1), false, &Actor::default(), 1, 10), None);
        assert!(d.by_dev.is_empty());
    }

    #[test]
    fn only_a_volatile_cache_without_flushes_is_a_finding() {
        let mut d = Devices {
            counting: true,
            ..Default::default()
        };
        let a = Actor {
            pid: 9,
            ..Default::default()
        };
        d.sync(key(1), false, &a, 1, 2);
        d.sync(key(1), false, &a, 3, 4);
        d.sync(key(2), true, &a, 5, 6); // a directory: not judged
        let mut s = d.by_dev[&DEV].clone();
        assert!(
            sync_without_flush(DEV, &s, "/f").is_none(),
            "cache mode unknown"
        );
        s.write_cache = Some(WriteCache::WriteThrough);
        assert!(
            sync_without_flush(DEV, &s, "/f").is_none(),
            "no volatile cache"
        );
        s.write_cache = Some(WriteCache::WriteBack);
        s.name = Some("loop1".into());
        let f = sync_without_flush(DEV, &s, "/f").expect("finding");
        assert_eq!(
            (f.kind, f.count, f.pid, f.ts),
            (FindingKind::SyncWithoutFlush, 2, 9, 2)
        );
        assert!(
            f.message
                .starts_with("2 of 3 sync(s) on device loop1 (7:1)"),
            "{}",
            f.message
        );
    }

    #[test]
    fn write_cache_from_sysfs() {
        assert_eq!(
            WriteCache::parse("write back\n"),
            Some(WriteCache::WriteBack)
        );
        assert_eq!(
            WriteCache::parse("write through"),
            Some(WriteCache::WriteThrough)
        );
        assert_eq!(WriteCache::parse("?"), None);
    }
}
