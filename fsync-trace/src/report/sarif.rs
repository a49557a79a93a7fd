//! `--sarif FILE`: the findings as SARIF 2.1.0 (types from `serde-sarif`, generated from the
//! standard's schema) for code-scanning CI: one rule per finding kind, one result per finding,
//! located at its call site (the first frame in the program's own code).
use std::{collections::BTreeMap, path::Path};

use serde_sarif::sarif::{
    ArtifactLocation, Location, Message, MultiformatMessageString, PhysicalLocation, Region,
    ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif, Tool, ToolComponent,
    SCHEMA_URL,
};

use super::{FindingEntry, Report};
use crate::{state::FindingKind, symbolize::call_site};

/// `uriBaseId` of call sites under `--source-root`.
const SRCROOT: &str = "SRCROOT";
/// Key of the fingerprint in `partialFingerprints` (versioned: a change of what it hashes
/// gets a new key rather than silently new values).
const FINGERPRINT: &str = "fsyncTrace/v1";

/// (short description, full description, help) of each kind's rule.
fn rule_text(kind: FindingKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        FindingKind::FsyncRetryAfterError => (
            "A sync was retried after it failed, and its success trusted",
            "After fsync fails the kernel may have dropped the dirty pages and cleared the error: a later fsync can succeed although the data from before the failure is lost.",
            "Treat a failed fsync as fatal for the file: rewrite the data from your own copy (or crash and recover from a log) instead of retrying.",
        ),
        FindingKind::FsyncError => (
            "A sync call failed",
            "fsync, fdatasync, msync or syncfs returned an error: data written before it may never reach the disk.",
            "Handle the error: do not continue as if the data were durable; rewrite it from your own copy or recover from a log.",
        ),
        FindingKind::RenameBeforeFsync => (
            "A file was renamed over another before its data was durable",
            "The rename can reach the disk before the data: after a crash the new name can point to an empty or partial file.",
            "fsync (or fdatasync) the file before renaming it, then fsync the directory.",
        ),
        FindingKind::UnsyncedWrite => (
            "Data was written and never made durable",
            "Writes dirty the page cache; without fsync, fdatasync or msync(MS_SYNC) afterwards they can vanish in a crash. So can a truncate, ftruncate or fallocate (the size, freed or allocated blocks).",
            "fsync or fdatasync the file (or msync(MS_SYNC) the mapping) before relying on the data; closing it is not enough.",
        ),
        FindingKind::UnsyncedParentDir => (
            "A directory entry changed and the directory was never synced",
            "Creating, renaming, linking or removing a name changes the directory: until the directory is fsynced the change can vanish in a crash.",
            "Open the directory with O_RDONLY|O_DIRECTORY and fsync it after creating, renaming or removing entries.",
        ),
        FindingKind::AckBeforeDurable => (
            "A reply was sent before the write-ahead log was durable",
            "The process answered a client while data it had written to its write-ahead log was not yet synced: a power cut in that window loses transactions the client was told were committed.",
            "Sync the log (fsync/fdatasync) before replying; if syncs are too slow, group commit across clients.",
        ),
        FindingKind::SyncWithoutFlush => (
            "Syncs returned without flushing the device's volatile write cache",
            "The device reports a volatile write cache but no cache flush or FUA write was issued while the syncs ran (e.g. ext4 mounted nobarrier): a power cut can still lose data the program was told was durable.",
            "Mount with barriers (the default), or disable the device's write cache if it has no power-loss protection.",
        ),
        FindingKind::UringFsyncUnordered => (
            "An io_uring fsync was not ordered after the writes it should cover",
            "A fsync submitted in the same batch as unlinked writes can run before them: the writes it was meant to make durable may not be.",
            "Link the fsync after the writes (IOSQE_IO_LINK) or submit it with IOSQE_IO_DRAIN.",
        ),
        FindingKind::SyncPerWrite => (
            "A file was synced after nearly every write",
            "Each sync waits for the device: syncing after every small write multiplies the cost of durability.",
            "Batch writes and sync once per transaction or group commit.",
        ),
        FindingKind::RedundantSync => (
            "A sync had nothing to make durable",
            "The file had no new data or entry since its last durable point: the call costs time and achieves nothing.",
            "Skip the sync when nothing changed since the last one.",
        ),
    }
}

/// The SARIF log of `report`'s findings and advice (suppressed findings are left out: they are
/// by design). `source_root`: call sites under it get a relative URI.
pub fn render(report: &Report, source_root: Option<&Path>) -> Sarif {
    let rules: Vec<ReportingDescriptor> = FindingKind::ALL
        .iter()
        .map(|&k| {
            let (short, full, help) = rule_text(k);
            ReportingDescriptor::builder()
                .id(k.name().to_string())
                // A readable name, distinct from the opaque id (SARIF 3.49.7).
                .name(camel(k.name()))
                .short_description(text(short))
                .full_description(text(full))
                .help(text(help))
                .build()
        })
        .collect();
    let results: Vec<SarifResult> = report
        .findings
        .iter()
        .chain(report.advice.iter())
        .map(|e| result(e, source_root))
        .collect();
    let mut driver = ToolComponent::builder()
        .name("fsync-trace".to_string())
        .version(env!("CARGO_PKG_VERSION").to_string())
        .rules(rules)
        .build();
    // The project's home, once the package names one (`repository` in Cargo.toml).
    let home = env!("CARGO_PKG_REPOSITORY");
    if !home.is_empty() {
        driver.information_uri = Some(home.to_string());
    }
    let mut run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .results(results)
        .build();
    if let Some(root) = source_root {
        let mut bases = BTreeMap::new();
        bases.insert(
            SRCROOT.to_string(),
            ArtifactLocation::builder().uri(dir_uri(root)).build(),
        );
        run.original_uri_base_ids = Some(bases);
    }
    Sarif::builder()
        .schema(SCHEMA_URL.to_string())
        .version(serde_json::json!("2.1.0"))
        .runs(vec![run])
        .build()
}

/// `unsynced_write` -> `UnsyncedWrite`.
fn camel(id: &str) -> String {
    id.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn text(s: &str) -> MultiformatMessageString {
    MultiformatMessageString::builder()
        .text(s.to_string())
        .build()
}

/// One finding: its message (with the file and kind), its call site, its fingerprint.
fn result(e: &FindingEntry, source_root: Option<&Path>) -> SarifResult {
    let f = &e.finding;
    let kind = f.kind;
    let rule_index = FindingKind::ALL
        .iter()
        .position(|&k| k == kind)
        .unwrap_or(0);
    let level = match kind {
        FindingKind::FsyncRetryAfterError | FindingKind::FsyncError => ResultLevel::Error,
        k if k.is_advice() => ResultLevel::Note,
        _ => ResultLevel::Warning,
    };
    let site = e.stack.as_deref().and_then(call_site);
    let place = site.and_then(|s| Some((s.file.as_deref()?, s.line?, s.function.as_deref())));
    let message = format!(
        "{} [{}: {}]{}",
        f.message,
        kind.name(),
        f.path,
        site.map(|s| format!(" at {}", super::stacks::place(s)))
            .unwrap_or_default()
    );
    let mut fingerprint = format!("{}\n{}", kind.name(), f.path);
    let mut locations = Vec::new();
    if let Some((file, line, function)) = place {
        let artifact = match source_root.and_then(|r| Path::new(file).strip_prefix(r).ok()) {
            Some(rel) => ArtifactLocation::builder()
                .uri(encode(&rel.to_string_lossy()))
                .uri_base_id(SRCROOT.to_string())
                .build(),
            None => ArtifactLocation::builder()
                .uri(file_uri(Path::new(file)))
                .build(),
        };
        // The function and the file relative to the source root, not the line: a finding
        // stays the same finding when code above it moves.
        let rel = source_root
            .and_then(|r| Path::new(file).strip_prefix(r).ok())
            .map_or_else(|| file.to_string(), |p| p.to_string_lossy().into_owned());
        fingerprint.push_str(&format!("\n{rel}\n{}", function.unwrap_or("")));
        locations.push(
            Location::builder()
                .physical_location(
                    PhysicalLocation::builder()
                        .artifact_location(artifact)
                        .region(Region::builder().start_line(i64::from(line)).build())
                        .build(),
                )
                .build(),
        );
    }
    let mut fingerprints = BTreeMap::new();
    fingerprints.insert(
        FINGERPRINT.to_string(),
        format!("{:016x}", fnv1a(&fingerprint)),
    );
    let r = SarifResult::builder()
        .rule_id(kind.name().to_string())
        .rule_index(rule_index as i64)
        .level(level)
        .message(Message::builder().text(message).build())
        .partial_fingerprints(fingerprints);
    if locations.is_empty() {
        r.build()
    } else {
        r.locations(locations).build()
    }
}

/// 64-bit FNV-1a: a fingerprint must not change between runs or builds (std's hasher may).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `file://` URI of an absolute path.
fn file_uri(p: &Path) -> String {
    format!("file://{}", encode(&p.to_string_lossy()))
}

/// `file://` URI of directory `p`, ending in `/` (a base that relative URIs resolve against).
fn dir_uri(p: &Path) -> String {
    let mut s = p.to_string_lossy().into_owned();
    if !s.ends_with('/') {
        s.push('/');
    }
    format!("file://{}", encode(&s))
}

/// Percent-encodes what a URI path may not hold as is.
fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_fingerprints_are_stable() {
        assert_eq!(file_uri(Path::new("/src/my kv.c")), "file:///src/my%20kv.c");
        assert_eq!(encode("a/b_c-1.c"), "a/b_c-1.c");
        assert_eq!(dir_uri(Path::new("/")), "file:///");
        assert_eq!(dir_uri(Path::new("/src/app")), "file:///src/app/");
        assert_eq!(camel("unsynced_parent_dir"), "UnsyncedParentDir");
        // FNV-1a test vectors.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
