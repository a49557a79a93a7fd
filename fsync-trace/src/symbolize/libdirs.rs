//! Files for build ids no traced process was seen mapping: the libraries of a short-lived
//! process gone before its mappings could be read (the sqlite3 shell's libsqlite3). The
//! system's library directories are searched once, at report time, and only for the build ids
//! that a finding's stack needs.
use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::Arc,
};

/// Where dynamic loaders find libraries on common layouts (merged-/usr duplicates are skipped).
pub const LIBRARY_DIRS: [&str; 9] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
];

/// A bound on the files read (each costs one ELF header and its notes).
const MAX_FILES: usize = 20_000;

/// The key a build id is kept under (the first 20 bytes: GNU build ids are SHA-1 sized).
pub fn key(id: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 20];
    let n = id.len().min(20);
    k[..n].copy_from_slice(&id[..n]);
    k
}

/// The shared objects directly in `dirs` (not below) whose build id is one of `missing`.
pub fn find(dirs: &[&str], missing: &HashSet<[u8; 20]>) -> HashMap<[u8; 20], Arc<str>> {
    let mut found = HashMap::new();
    let mut read = 0;
    let mut seen = HashSet::new();
    for dir in dirs {
        let Ok(dir) = std::fs::canonicalize(dir) else {
            continue;
        };
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if found.len() == missing.len() || read >= MAX_FILES {
                return found;
            }
            // Links are skipped: the file a library's links name is in the directory too.
            if !e.file_name().to_string_lossy().contains(".so")
                || !e.file_type().is_ok_and(|t| t.is_file())
            {
                continue;
            }
            read += 1;
            if let Some(id) = build_id(&e.path()) {
                if missing.contains(&id) {
                    found
                        .entry(id)
                        .or_insert_with(|| e.path().to_string_lossy().into());
                }
            }
        }
    }
    found
}

/// The build id of the ELF file at `path`, if it has one.
pub fn build_id(path: &Path) -> Option<[u8; 20]> {
    match blazesym::helper::read_elf_build_id(path) {
        Ok(Some(id)) => Some(key(&id)),
        Ok(None) => None,
        Err(e) => {
            log::debug!("reading the build id of {}: {e}", path.display());
            None
        }
    }
}
