//! Names: the index of live names, the names each file has, and the namespace operations that
//! change them (link, unlink, rename, mkdir, rmdir, symlink) together with the directory entry
//! changes they leave pending until the directory is synced.
//!
//! Every operation costs time independent of the directory's size: pending entries are kept by
//! name, and the names under a renamed directory are one range of the ordered index.
use std::sync::Arc;

use fsync_trace_common::{FileKey, NamespaceOp};
use smallvec::SmallVec;

use super::{
    join, normalize, split_parent, timeline::NO_SEQ, DurabilityState, PendingEntry, Resolver,
};
use crate::{
    event::{Actor, NameRef},
    state::{Finding, FindingKind},
};

/// renameat2 flag: atomically swap the two names.
const RENAME_EXCHANGE: u32 = 2;

/// A change of one directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryOp {
    Create,
    Mkdir,
    Link,
    Symlink,
    /// The new name of a rename.
    Rename,
    Unlink,
    Rmdir,
    /// The old name of a rename.
    RenameOldName,
}

impl EntryOp {
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Mkdir => "mkdir",
            Self::Link => "link",
            Self::Symlink => "symlink",
            Self::Rename => "rename",
            Self::Unlink => "unlink",
            Self::Rmdir => "rmdir",
            Self::RenameOldName => "rename (old name)",
        }
    }

    /// The change adds a name (else it removes one).
    pub fn adds(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Mkdir | Self::Link | Self::Symlink | Self::Rename
        )
    }
}

impl std::fmt::Display for EntryOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl<R: Resolver> DurabilityState<R> {
    /// `key` has the name `name` (an open, a link, a rename, a kernel-walked path). A name is
    /// one file's at a time: if the index gave it to another file, that file lost it (replaced
    /// by something this trace did not see).
    pub(super) fn add_name(&mut self, key: FileKey, name: Arc<str>, is_dir: bool) {
        if let Some(&other) = self.paths.get(&name) {
            if other != key {
                self.drop_name(other, &name);
            }
        }
        let f = self.file(key);
        f.is_dir |= is_dir;
        f.change_names(|names| {
            if !names.contains(&name) {
                names.push(name.clone());
            }
        });
        f.removed = false;
        f.set_path(f.names().first().cloned());
        self.paths.insert(name, key);
        self.compact_paths();
    }

    /// Rebuilds the name index with full nodes each time it doubled. Names mostly come in
    /// order (a program creating file after file), and a B-tree grown at its right edge keeps
    /// its nodes about half full: with 100,000 names, rebuilt at 65,536, 1.3 MB less.
    fn compact_paths(&mut self) {
        let n = self.paths.len();
        if n < COMPACT_PATHS_FROM || n < self.paths_compacted.saturating_mul(2) {
            return;
        }
        self.paths_compacted = n;
        // Collected in order (one array of the entries, freed at once), then built bottom-up.
        self.paths = std::mem::take(&mut self.paths).into_iter().collect();
    }

    /// The name `name` no longer leads to `key`. With no name left and no name the kernel
    /// counted that this trace never saw, the file is removed.
    fn drop_name(&mut self, key: FileKey, name: &str) {
        if self.paths.get(name) == Some(&key) {
            self.paths.remove(name);
        }
        let Some(f) = self.files.get_mut(&key) else {
            return;
        };
        let before = f.names().len();
        f.change_names(|names| names.retain(|n| &**n != name));
        if f.names().len() == before && !f.names().is_empty() {
            return;
        }
        if let Some(first) = f.names().first().cloned() {
            f.set_path(Some(first));
        } else if f.rare.other_links > 0 {
            // Another name made before tracing still holds the file; its name is unknown.
            f.rare.other_links -= 1;
        } else if !f.removed {
            f.removed = true;
            self.slot_work.detach(key);
            if let Some(t) = &mut self.timeline {
                t.removed(key);
            }
        }
    }

    /// Records an entry change of `dir`.
    pub(super) fn pending(
        &mut self,
        dir: FileKey,
        name: &str,
        op: EntryOp,
        ts: u64,
        actor: &Actor,
    ) {
        self.touched(actor.pid, dir);
        let d = self.file_at(dir, ts);
        d.is_dir = true;
        d.changed_since_durable();
        let seq = match &mut self.timeline {
            Some(t) => {
                let files = &self.files;
                let path = || files.get(&dir).and_then(|d| d.path().cloned());
                t.entry(dir, path, ts, name, op)
            }
            None => NO_SEQ,
        };
        let Some(d) = self.files.get_mut(&dir) else {
            return;
        };
        let changes = d.rare.pending.entry(name.into()).or_default();
        // Removing a name that was itself added since the last directory sync leaves the durable
        // state of the directory as it was: the two changes cancel out.
        if !op.adds() {
            let before = changes.len();
            let mut undone: SmallVec<[u32; 2]> = SmallVec::new();
            changes.retain(|e| {
                if e.op.adds() {
                    undone.push(e.seq);
                }
                !e.op.adds()
            });
            if changes.len() != before {
                if changes.is_empty() {
                    d.rare.pending.remove(name);
                }
                if let Some(t) = &mut self.timeline {
                    for s in undone.into_iter().chain([seq]) {
                        t.entry_cancelled(dir, s, ts);
                    }
                }
                return;
            }
        }
        let shared = super::shared_actor(&mut self.entry_actor, actor);
        changes.push(PendingEntry {
            op,
            ts,
            actor: shared,
            seq,
        });
    }

    /// (directory, directory path, entry name) of a name used by a namespace operation.
    pub(super) fn entry_of(&mut self, pid: u32, n: &NameRef) -> Option<(FileKey, String, String)> {
        let name = n.name.trim_end_matches('/');
        if name.is_empty() {
            return None;
        }
        let abs = if name.starts_with('/') {
            normalize(name)
        } else {
            join(&n.base_path, name)
        };
        let (dir_path, entry) = split_parent(&abs);
        let (dir_path, entry) = (dir_path.to_string(), entry.to_string());
        if !name.contains('/') {
            if !n.base_durable {
                return None;
            }
            return Some((n.base_dir, dir_path, entry));
        }
        if let Some(&k) = self.paths.get(dir_path.as_str()) {
            if self.files.get(&k).is_some_and(|f| f.is_dir) {
                return Some((k, dir_path, entry));
            }
        }
        let (k, durable) = self.resolver.dir_of_path(pid, &dir_path)?;
        durable.then_some((k, dir_path, entry))
    }

    /// Makes sure directory `dir` has its name.
    fn name_dir(&mut self, dir: FileKey, path: &str) {
        if self.files.get(&dir).is_none_or(|d| d.path().is_none()) {
            self.add_name(dir, path.into(), true);
        }
    }

    pub(super) fn on_namespace(
        &mut self,
        ts: u64,
        actor: &Actor,
        op: NamespaceOp,
        old: NameRef,
        new: Option<NameRef>,
        flags: u32,
    ) {
        let Some((odir, odir_path, oentry)) = self.entry_of(actor.pid, &old) else {
            // Not on a durable filesystem (or unresolvable): nothing to track.
            return;
        };
        let old_abs = join(&odir_path, &oentry);
        self.name_dir(odir, &odir_path);
        match op {
            NamespaceOp::Unlink | NamespaceOp::Rmdir => {
                let entry_op = if op == NamespaceOp::Unlink {
                    EntryOp::Unlink
                } else {
                    EntryOp::Rmdir
                };
                self.pending(odir, &oentry, entry_op, ts, actor);
                if let Some(&k) = self.paths.get(old_abs.as_str()) {
                    self.file_at(k, ts);
                    self.drop_name(k, &old_abs);
                }
            }
            NamespaceOp::Mkdir => self.pending(odir, &oentry, EntryOp::Mkdir, ts, actor),
            NamespaceOp::Symlink => self.pending(odir, &oentry, EntryOp::Symlink, ts, actor),
            NamespaceOp::Link | NamespaceOp::Rename => {
                let Some(new) = new else { return };
                let Some((ndir, ndir_path, nentry)) = self.entry_of(actor.pid, &new) else {
                    return;
                };
                self.name_dir(ndir, &ndir_path);
                let new_abs = join(&ndir_path, &nentry);
                if op == NamespaceOp::Link {
                    self.pending(ndir, &nentry, EntryOp::Link, ts, actor);
                    let linked = self
                        .paths
                        .get(old_abs.as_str())
                        .copied()
                        .or_else(|| self.resolver.file_of_path(actor.pid, &new_abs));
                    if let Some(k) = linked {
                        self.file_at(k, ts);
                        self.add_name(k, new_abs.into(), false);
                    }
                    return;
                }
                self.pending(odir, &oentry, EntryOp::RenameOldName, ts, actor);
                self.pending(ndir, &nentry, EntryOp::Rename, ts, actor);
                self.on_rename(ts, actor, &old_abs, &new_abs, flags & RENAME_EXCHANGE != 0);
            }
        }
    }

    fn on_rename(&mut self, ts: u64, actor: &Actor, old_abs: &str, new_abs: &str, exchange: bool) {
        let moved = self.paths.get(old_abs).copied().or_else(|| {
            if exchange {
                None
            } else {
                self.resolver.file_of_path(actor.pid, new_abs)
            }
        });
        let replaced = self.paths.get(new_abs).copied();
        if moved.is_some() && moved == replaced {
            // Two names of one file: rename(2) does nothing and succeeds.
            return;
        }
        if let Some(k) = moved {
            let f = self.file_at(k, ts);
            // A mode change alone (Git makes its packs read-only before renaming them) does
            // not make the renamed file empty or partial after a crash.
            if !f.is_dir && f.holds_unsynced_data() {
                self.findings.push(Finding {
                    kind: FindingKind::RenameBeforeFsync,
                    path: new_abs.to_string(),
                    pid: actor.pid,
                    comm: actor.comm.to_string(),
                    ts,
                    message: format!(
                        "{old_abs} was renamed to {new_abs} while its data was not yet durable: after a crash {new_abs} can be empty or hold partial data"
                    ),
                    fix: format!("fsync (or fdatasync) the file before renaming it over {new_abs}, then fsync the directory"),
                    source: Some(old_abs.to_string()),
                    stack_id: actor.stack,
                    ..Finding::blank()
                });
            }
        }
        let moved_is_dir = moved.is_some_and(|k| self.files.get(&k).is_some_and(|f| f.is_dir));
        if exchange {
            if let Some(k) = moved {
                self.drop_name_quietly(k, old_abs);
            }
            if let Some(k) = replaced {
                self.drop_name_quietly(k, new_abs);
            }
            if let Some(k) = moved {
                self.add_name(k, new_abs.into(), false);
            }
            if let Some(k) = replaced {
                self.add_name(k, old_abs.into(), false);
            }
            // Both subtrees swap places.
            self.move_subtree(old_abs, "\u{0}swap");
            self.move_subtree(new_abs, old_abs);
            self.move_subtree("\u{0}swap", new_abs);
            return;
        }
        if let Some(r) = replaced {
            self.drop_name(r, new_abs);
        }
        if let Some(k) = moved {
            self.drop_name_quietly(k, old_abs);
            self.add_name(k, new_abs.into(), false);
        }
        // Everything under a renamed directory moves with it. A file's rename has no names
        // under it; only look when it may be a directory.
        if moved.is_none() || moved_is_dir {
            self.move_subtree(old_abs, new_abs);
        }
    }

    /// `key` gives up `name` because it is taking another at once (rename): it is not removed
    /// in between.
    fn drop_name_quietly(&mut self, key: FileKey, name: &str) {
        if self.paths.get(name) == Some(&key) {
            self.paths.remove(name);
        }
        if let Some(f) = self.files.get_mut(&key) {
            f.change_names(|names| names.retain(|n| &**n != name));
        }
    }

    /// Renames every indexed name below `from/` to the same name below `to/`.
    fn move_subtree(&mut self, from: &str, to: &str) {
        let prefix = format!("{from}/");
        let under: Vec<(Arc<str>, FileKey)> = self
            .paths
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, k)| (p.clone(), *k))
            .collect();
        for (p, k) in under {
            let moved_path: Arc<str> = format!("{to}/{}", &p[prefix.len()..]).into();
            self.paths.remove(&p);
            if let Some(f) = self.files.get_mut(&k) {
                f.change_names(|names| {
                    for n in names.iter_mut() {
                        if *n == p {
                            *n = moved_path.clone();
                        }
                    }
                });
                let path = f.names().first().cloned().or_else(|| f.path().cloned());
                f.set_path(path);
            }
            self.paths.insert(moved_path, k);
        }
    }
}

/// The name index is first rebuilt at this size (see `compact_paths`).
const COMPACT_PATHS_FROM: usize = 4096;

/// Entry names of a directory's pending changes with their last change and change count,
/// sorted by name.
pub fn pending_by_name(pending: &super::file::PendingMap) -> Vec<(&str, &PendingEntry, u64)> {
    let mut v: Vec<(&str, &PendingEntry, u64)> = pending
        .iter()
        .filter_map(|(name, changes)| Some((&**name, changes.last()?, changes.len() as u64)))
        .collect();
    v.sort_unstable_by(|a, b| a.0.cmp(b.0));
    v
}
