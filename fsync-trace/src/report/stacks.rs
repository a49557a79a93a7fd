//! Findings' call sites: the symbolized user stacks put on the report's findings.
use std::{collections::BTreeMap, fmt::Write as _, sync::Arc};

use super::{FindingEntry, Report};
use crate::symbolize::{call_site, Frame, StackStats};

impl Report {
    /// The stacks findings (bugs, advice, suppressed) refer to: the only ones to symbolize.
    pub fn stack_ids(&self) -> std::collections::HashSet<crate::event::StackId> {
        self.findings
            .iter()
            .chain(&self.advice)
            .chain(self.suppressed_findings.iter().map(|s| &s.finding))
            .filter_map(|e| e.finding.stack_id)
            .collect()
    }

    /// Gives every finding (bugs, advice, suppressed) the frames of its stack (`resolved`:
    /// every stack of the trace, by id).
    pub fn attach_stacks(&mut self, resolved: &[Arc<[Frame]>], stats: StackStats) {
        let entries = self
            .findings
            .iter_mut()
            .chain(self.advice.iter_mut())
            .chain(self.suppressed_findings.iter_mut().map(|s| &mut s.finding));
        for e in entries {
            e.stack = e
                .finding
                .stack_id
                .and_then(|id| resolved.get(id.0 as usize))
                .map(|s| s.to_vec());
        }
        self.stacks = stats;
    }
}

/// `at src/kv.c:88 in put_record()`: the finding's call site (its first frame in the program's
/// own code), with the file relative to the current directory when it is under it; None
/// without a stack.
pub fn call_site_text(e: &FindingEntry) -> Option<String> {
    let f = call_site(e.stack.as_deref()?)?;
    Some(format!("at {}", place(f)))
}

/// `src/kv.c:88 in put_record()`, or what is known of the frame (`module+offset`).
pub fn place(f: &Frame) -> String {
    let at = match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{}:{line}", relative(file)),
        _ => format!("{}+{}", f.module.as_deref().unwrap_or("?"), f.offset),
    };
    match &f.function {
        Some(func) => format!("{at} in {func}()"),
        None => at,
    }
}

/// `path` relative to the current directory if it is under it.
fn relative(path: &str) -> String {
    let cwd = std::env::current_dir().ok();
    cwd.as_deref()
        .and_then(|d| std::path::Path::new(path).strip_prefix(d).ok())
        .map_or_else(|| path.to_string(), |p| p.display().to_string())
}

/// Call sites that made several findings of one kind: one line each ("12 unsynced_write
/// findings from kv.c:88 in put_record(): /a, /b, /c and 9 more"), so a loop's many files read
/// as the one line of code they are.
pub fn by_call_site(out: &mut String, entries: &[FindingEntry]) {
    let mut sites: BTreeMap<(&str, String), Vec<&str>> = BTreeMap::new();
    for e in entries {
        if let Some(f) = e.stack.as_deref().and_then(call_site) {
            sites
                .entry((e.finding.kind.name(), place(f)))
                .or_default()
                .push(&e.finding.path);
        }
    }
    let shared: Vec<_> = sites.into_iter().filter(|(_, v)| v.len() > 1).collect();
    if shared.is_empty() {
        return;
    }
    let _ = writeln!(out, "  by call site:");
    for ((kind, at), paths) in shared {
        let shown: Vec<&str> = paths.iter().take(3).copied().collect();
        let more = if paths.len() > 3 {
            format!(" and {} more", paths.len() - 3)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "    {} {kind} findings from {at}: {}{more}",
            paths.len(),
            shown.join(", ")
        );
    }
}
