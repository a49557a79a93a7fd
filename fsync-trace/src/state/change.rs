//! A file announced dirty: by a write or mapped store, or by a change that writes no data but
//! still needs a sync to be durable (`Dirty` with a `DirtyCause::Change`: ftruncate, fallocate,
//! a metadata change through a descriptor; `TruncatePath`, `MetadataPath`: truncate(2), chmod,
//! chown, utimes or xattrs by path, whose file is found here among the names the trace knows).
//! Such a change makes the next sync of the file not redundant and, left unsynced, is at risk
//! like unsynced data (0 bytes, the change named in `unsynced_changes`). One exception: an
//! unsynced metadata change (`Change::Metadata`) alone is listed but is not an `unsynced_write`
//! finding (chmod after create is common, and flagging it would flood real programs with
//! advice); with unsynced data, a truncate or a fallocate beside it, the finding is theirs.
//! A directory's own metadata change is ignored: the state knows directories only by their
//! entries.
use fsync_trace_common::{FileKey, PAGE_SIZE};

use super::{join, timeline, DirtySpan, DurabilityState, Resolver};
use crate::event::{Actor, Change, NameRef};
use crate::extent::Extent;

impl<R: Resolver> DurabilityState<R> {
    /// File `file` got dirty at `ts`: `before` (writes, bytes, mapped pages) are the kernel
    /// slot `slot`'s counters before the act; `changes` the `Change::bit`s of a change that
    /// wrote no data (0 for a write or a mapped store); `prev_extent` the extent of the kernel
    /// segment the record closed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_dirty(
        &mut self,
        ts: u64,
        actor: Actor,
        file: FileKey,
        before: (u64, u64, u64),
        slot: u32,
        changes: u8,
        prev_extent: Extent,
    ) {
        let f = self.file_at(file, ts);
        f.has_slot = true;
        // The segment this record closed, then what is at risk before its act.
        f.close_segment(prev_extent);
        // The counters are the slot's: place them on this life's absolute scale.
        let base = f.base_for_slot(slot);
        let before = (
            base.writes + before.0,
            base.bytes + before.1,
            base.mapped_dirty_pages + before.2,
        );
        self.push_span(ts, actor, file, before, changes, None, prev_extent);
    }

    /// Adds a dirty span to `file` (counters absolute for this life); `extent` None: the span
    /// is the kernel's open segment (its extent comes with the record that closes it);
    /// `prev_extent` the segment a kernel record closed (for the timeline).
    #[allow(clippy::too_many_arguments)]
    fn push_span(
        &mut self,
        ts: u64,
        actor: Actor,
        file: FileKey,
        (writes_before, bytes_before, pages_before): (u64, u64, u64),
        changes: u8,
        extent: Option<Extent>,
        prev_extent: Extent,
    ) {
        self.touched(actor.pid, file);
        let actor_pid = actor.pid;
        let span = DirtySpan {
            since: ts,
            writes_before,
            bytes_before,
            pages_before,
            actor,
            changes,
            extent,
        };
        let abs = timeline::Count {
            writes: span.writes_before,
            bytes: span.bytes_before + span.pages_before * PAGE_SIZE,
        };
        let f = self.file_at(file, ts);
        let known = f.closed_extent();
        // Exact capacity: most files have one open span, and a Vec's first push would
        // reserve four (100k files: 24 MiB).
        f.dirty.push(span);
        if let Some(t) = &mut self.timeline {
            let files = &self.files;
            let path = || files.get(&file).and_then(|f| f.path().cloned());
            t.dirty(file, path, ts, actor_pid, abs, changes, prev_extent, known);
        }
    }

    /// truncate(2) of `path` to `length` bytes succeeded: the file is looked up among the
    /// names the trace knows (else, while the process lives, through /proc). A path that is
    /// not a tracked file (another filesystem, a file never seen) is ignored.
    pub(super) fn on_truncate_path(&mut self, ts: u64, actor: Actor, path: &NameRef, length: u64) {
        let Some(key) = self.path_change_file(ts, &actor, path) else {
            return;
        };
        if let Some(f) = self.files.get_mut(&key) {
            f.rare.path_truncates += 1;
            f.rare.last_path_truncate_len = length;
        }
        self.push_path_span(ts, actor, key, Change::Truncate);
    }

    /// A metadata change (chmod, chown, utimes, xattrs) of `path` succeeded: found as for
    /// truncate(2). Directories are ignored (as through a descriptor).
    pub(super) fn on_metadata_path(&mut self, ts: u64, actor: Actor, path: &NameRef) {
        let Some(key) = self.path_change_file(ts, &actor, path) else {
            return;
        };
        if let Some(f) = self.files.get_mut(&key) {
            f.rare.path_metadata_changes += 1;
        }
        self.push_path_span(ts, actor, key, Change::Metadata);
    }

    /// The regular file a path change named, among the names the trace knows (else, while the
    /// process lives, through /proc); None for a directory or a path that is not a tracked
    /// file (another filesystem, a file never seen).
    fn path_change_file(&mut self, ts: u64, actor: &Actor, path: &NameRef) -> Option<FileKey> {
        let (_, dir_path, entry) = self.entry_of(actor.pid, path)?;
        let abs = join(&dir_path, &entry);
        let key = if let Some(&k) = self.paths.get(abs.as_str()) {
            k
        } else {
            let k = self.resolver.file_of_path(actor.pid, &abs)?;
            self.add_name(k, abs.into(), false);
            k
        };
        (!self.file_at(key, ts).is_dir).then_some(key)
    }

    /// A dirty span for a path change of `key` (no kernel record, so no kernel counters).
    fn push_path_span(&mut self, ts: u64, actor: Actor, key: FileKey, change: Change) {
        let f = self.file_at(key, ts);
        // The kernel counters are not read here: the span starts where the file's unsynced
        // data starts (its oldest open span), or, clean, where its last sync's reading left it
        // (all it had written was durable then; unknown after a durable point without a
        // reading, such as syncfs: then it counts from zero).
        let before = match (f.dirty.first(), f.cost.last()) {
            (Some(d), _) => (d.writes_before, d.bytes_before, d.pages_before),
            (None, Some(last)) => (last.writes, last.bytes, last.mapped_pages),
            (None, None) => (0, 0, 0),
        };
        // No kernel record: the kernel's extent segment goes on (in whichever span holds it
        // open), and this span wrote nothing.
        let nothing = Some(Extent::Empty);
        self.push_span(ts, actor, key, before, change.bit(), nothing, Extent::Empty);
    }
}
