//! The Markdown page (docs/soak.md) and the summary table on stdout.
use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    load::{CHURN_BATCH, CHURN_BYTES, CHURN_DIRS, LOG_FILES, LOG_RECORD, NEW_FILE_LIFETIME},
    phase::PhaseResult,
    Load, Phase, Soak, SoakArgs,
};
use crate::util::{fs_of, mem_total, mib, read_trim, thousands, utc_now, MIB};

/// The change from `from` to `to` kB, as "+1.2 MiB" or "−1.2 MiB".
fn signed_mib(from: u64, to: u64) -> String {
    let d = to as f64 - from as f64;
    format!(
        "{}{:.1} MiB",
        if d >= 0.0 { "+" } else { "−" },
        d.abs() / 1024.0
    )
}

/// A report field that may be absent (older builds), as JSON would show it.
fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

/// The load's progress for the log lines.
pub(super) fn progress_text(p: &BTreeMap<String, u64>) -> String {
    let g = |k: &str| p.get(k).copied().unwrap_or(0);
    if p.contains_key("appends") {
        format!(
            "appends {} new files {}",
            thousands(g("appends")),
            thousands(g("files_created"))
        )
    } else if p.contains_key("created") {
        format!(
            "created {} removed {}",
            thousands(g("created")),
            thousands(g("removed"))
        )
    } else {
        String::new()
    }
}

impl PhaseResult {
    fn get(&self, k: &str) -> u64 {
        self.done.get(k).copied().unwrap_or(0)
    }

    fn secs(&self) -> f64 {
        self.get("elapsed_ms") as f64 / 1000.0
    }

    fn rate(&self, k: &str) -> f64 {
        self.get(k) as f64 / self.secs().max(1e-9)
    }

    /// Files the load created (the ones the tracer could have to remember).
    fn files_created(&self) -> u64 {
        match self.load {
            Load::Steady => self.get("files_created"),
            Load::Churn => self.get("created"),
        }
    }

    fn end_peak(&self) -> u64 {
        self.ru_maxrss.max(self.stop_max_hwm)
    }

    fn operations(&self) -> String {
        match self.load {
            Load::Steady => format!(
                "{} appends + fdatasync ({:.0}/s); {} new files ({:.1}/s), {} unlinked; {} directory fsyncs; largest lag behind schedule {} ms",
                thousands(self.get("appends")),
                self.rate("appends"),
                thousands(self.get("files_created")),
                self.rate("files_created"),
                thousands(self.get("files_removed")),
                thousands(self.get("dir_fsyncs")),
                thousands(self.get("max_lag_ms")),
            ),
            Load::Churn => {
                let c = self.get("created");
                let per = |n: u64, ms: u64| n as f64 / (ms as f64 / 1000.0).max(1e-9);
                format!(
                    "{} files created + written + closed ({:.0}/s while creating), {} unlinked ({:.0}/s while unlinking); {:.0} files/s overall",
                    thousands(c),
                    per(c, self.get("create_ms")),
                    thousands(self.get("removed")),
                    per(self.get("removed"), self.get("remove_ms")),
                    self.rate("created"),
                )
            }
        }
    }
}

pub(super) fn summary_table(results: &[PhaseResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<7} {:>8} {:>10} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>6} {:>8} {:>9} {:>9}",
        "phase",
        "time",
        "files",
        "RSS start",
        "RSS end",
        "RSS max",
        "VmHWM",
        "end peak",
        "growth",
        "lost",
        "complete",
        "released",
        "reclaimed"
    );
    for r in results {
        let (lost, complete, rel, rec) = match &r.report {
            Ok(x) => (
                opt(x.lost_events),
                opt(x.complete),
                opt(x.released_files),
                opt(x.reclaimed_slots),
            ),
            Err(_) => ("?".into(), "?".into(), "?".into(), "?".into()),
        };
        let _ = writeln!(
            s,
            "{:<7} {:>7.0}s {:>10} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>6} {:>8} {:>9} {:>9}",
            r.load.name(),
            r.secs(),
            thousands(r.files_created()),
            mib(r.start.rss),
            mib(r.end.rss),
            mib(r.max_rss.rss),
            mib(r.max_hwm),
            mib(r.end_peak()),
            signed_mib(r.start.rss, r.end.rss),
            lost,
            complete,
            rel,
            rec
        );
    }
    s
}

pub(super) fn markdown(
    args: &SoakArgs,
    soak: &Soak,
    results: &[PhaseResult],
    failures: &[String],
    build: &str,
) -> String {
    let mut s = String::new();
    let date = utc_now();
    let mut cmdline = "cargo xtask soak".to_string();
    match args.phase {
        Phase::Both => {}
        Phase::Steady => cmdline.push_str(" --phase steady"),
        Phase::Churn => cmdline.push_str(" --phase churn"),
    }
    if args.phase != Phase::Churn && args.minutes != 10.0 {
        let _ = write!(cmdline, " --minutes {}", args.minutes);
    }
    if args.phase != Phase::Steady && args.files != 500_000 {
        let _ = write!(cmdline, " --files {}", args.files);
    }
    if args.fsync_rate != 1000 {
        let _ = write!(cmdline, " --fsync-rate {}", args.fsync_rate);
    }
    if args.file_rate != 100 {
        let _ = write!(cmdline, " --file-rate {}", args.file_rate);
    }
    if let Some(t) = &soak.tier {
        let _ = write!(cmdline, " --tier {t}");
    }
    let tier = results
        .iter()
        .find_map(|r| r.report.as_ref().ok().map(|x| x.tier.clone()))
        .unwrap_or_else(|| "?".into());
    s.push_str("# Memory soak of the daemon mode (`fsync-trace --all`)\n\n");
    let _ = writeln!(
        s,
        "Does `fsync-trace --all` stay under a fixed memory ceiling while the machine keeps \
         syncing and creating files? Generated by `{cmdline}` (xtask/src/soak/) on {date}; run it \
         again (as root) to refresh this page.\n"
    );
    s.push_str("| | |\n| --- | --- |\n");
    let _ = writeln!(s, "| date | {date} |");
    let _ = writeln!(
        s,
        "| kernel | Linux {} |",
        read_trim("/proc/sys/kernel/osrelease")
    );
    let _ = writeln!(s, "| tier | {tier} |");
    let _ = writeln!(s, "| fsync-trace build | {build} |");
    let _ = writeln!(
        s,
        "| machine | {} cores, {} |",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        mem_total()
    );
    let _ = writeln!(
        s,
        "| load directory | {} ({}) |",
        soak.scratch.display(),
        fs_of(&soak.scratch)
    );
    s.push('\n');

    if !results.is_empty() {
        s.push_str("## Summary\n\n");
        s.push_str(
            "| phase | duration | files created | RSS at start | RSS at end | RSS max | VmHWM while loaded | end-of-run peak | growth start → end | lost events | complete | released_files | reclaimed_slots |\n",
        );
        s.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |\n");
        for r in results {
            let (lost, complete, rel, rec) = match &r.report {
                Ok(x) => (
                    opt(x.lost_events),
                    opt(x.complete),
                    opt(x.released_files),
                    opt(x.reclaimed_slots),
                ),
                Err(_) => ("?".into(), "?".into(), "?".into(), "?".into()),
            };
            let _ = writeln!(
                s,
                "| {} | {:.0} s | {} | {} | {} | {} | {} | {} | {} | {lost} | {complete} | {rel} | {rec} |",
                r.load.name(),
                r.secs(),
                thousands(r.files_created()),
                mib(r.start.rss),
                mib(r.end.rss),
                mib(r.max_rss.rss),
                mib(r.max_hwm),
                mib(r.end_peak()),
                signed_mib(r.start.rss, r.end.rss),
            );
        }
        s.push('\n');
        s.push_str(
            "*RSS at start*: the tracer's VmRSS 3 s after it said it traces every process, before the \
             load starts. *RSS at end*: the last reading while the load ran, before SIGINT. *RSS max* and \
             *VmHWM*: over the readings (every second) while the load ran. *End-of-run peak*: the \
             tracer's peak over its whole life, report writing after SIGINT included (wait4 `ru_maxrss`, \
             or VmHWM polled every 50 ms after SIGINT if larger). `released_files` and \
             `reclaimed_slots` are the report's counters of file states dropped and kernel counter slots \
             reused; `null`: this build's report has no such field.\n\n",
        );
    }

    for r in results {
        let _ = writeln!(s, "## {}\n", r.load.name());
        let what = match r.load {
            Load::Steady => format!(
                "For {} min: {} × (append {LOG_RECORD} B + fdatasync) per second over {LOG_FILES} log files, \
                 and {} new files per second (create, write 1 KiB, fsync, close; unlinked once older than \
                 {} s; the directory fsynced once a second), each on a sleep-based schedule in its own \
                 thread. A well-behaved program: everything it keeps is synced.",
                args.minutes,
                args.fsync_rate,
                args.file_rate,
                NEW_FILE_LIFETIME.as_secs()
            ),
            Load::Churn => format!(
                "{} files created, written ({CHURN_BYTES} B) and closed in {CHURN_DIRS} subdirectories, then \
                 unlinked, in batches of {}, as fast as it goes. Nothing is synced (the data and the entries \
                 are gone before any sync would matter), so every file is a new (device, inode) the tracer \
                 sees dirtied and removed.",
                thousands(args.files),
                thousands(CHURN_BATCH)
            ),
        };
        let _ = writeln!(s, "{what}\n");
        s.push_str("| | |\n| --- | ---: |\n");
        let _ = writeln!(s, "| load duration | {:.1} s |", r.secs());
        let _ = writeln!(s, "| operations | {} |", r.operations());
        let _ = writeln!(s, "| tracer attached after | {:.1} s |", r.attach_s);
        let _ = writeln!(
            s,
            "| tracer VmRSS at start (after attach) | {} (anon {}, file {}) |",
            mib(r.start.rss),
            mib(r.start.anon),
            mib(r.start.file)
        );
        let _ = writeln!(
            s,
            "| tracer VmRSS at end (before SIGINT) | {} (anon {}, file {}) |",
            mib(r.end.rss),
            mib(r.end.anon),
            mib(r.end.file)
        );
        let _ = writeln!(
            s,
            "| growth start → end | {}{} |",
            signed_mib(r.start.rss, r.end.rss),
            if r.files_created() > 0 {
                format!(
                    " ({:.2} KiB per 1,000 files created)",
                    (r.end.rss as f64 - r.start.rss as f64) / (r.files_created() as f64 / 1000.0)
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "| tracer VmRSS min – max while loaded | {} – {} (max at {:.0} s) |",
            mib(r.min_rss),
            mib(r.max_rss.rss),
            r.max_rss.t
        );
        let _ = writeln!(s, "| tracer VmHWM while loaded | {} |", mib(r.max_hwm));
        let _ = writeln!(
            s,
            "| end of run (SIGINT → exit) | {:.1} s{}, VmRSS up to {}, exit {} |",
            r.stop_s,
            if r.stop_timed_out {
                " (timed out: killed)"
            } else {
                ""
            },
            mib(r.stop_max_rss),
            r.exit
        );
        let _ = writeln!(s, "| end-of-run peak (ru_maxrss) | {} |", mib(r.end_peak()));
        if !r.memory_log.is_empty() {
            let _ = writeln!(
                s,
                "| tracer's own memory log (end phases) | {} |",
                r.memory_log.join("; ")
            );
        }
        let _ = writeln!(
            s,
            "| BPF map memory (memlock, kernel) | {} |",
            mib(r.memlock_kb)
        );
        let _ = writeln!(
            s,
            "| tracer CPU (user + system) | {:.1} s |",
            r.tracer_cpu_s
        );
        match &r.report {
            Ok(x) => {
                let _ = writeln!(
                    s,
                    "| lost events | {}{} |",
                    opt(x.lost_events),
                    if x.lost.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", x.lost)
                    }
                );
                let _ = writeln!(s, "| complete | {} |", opt(x.complete));
                let _ = writeln!(s, "| released_files | {} |", opt(x.released_files));
                let _ = writeln!(s, "| reclaimed_slots | {} |", opt(x.reclaimed_slots));
                let _ = writeln!(
                    s,
                    "| files in the report | {} ({} under the load directory, {} marked removed) |",
                    thousands(x.files as u64),
                    thousands(x.files_in_load_dir as u64),
                    thousands(x.removed_files as u64)
                );
                let findings = if x.findings.is_empty() {
                    "none".to_string()
                } else {
                    x.findings
                        .iter()
                        .map(|(k, v)| format!("{k} {}", thousands(*v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let _ = writeln!(s, "| findings | {findings} |");
                let _ = writeln!(s, "| JSON report size | {:.1} MiB |", x.bytes as f64 / MIB);
            }
            Err(e) => {
                let _ = writeln!(s, "| report | unreadable: {e} |");
            }
        }
        let _ = writeln!(
            s,
            "| 1-min load before / after | {:.2} / {:.2} |",
            r.load1_before, r.load1_after
        );
        if !r.foreign_bpf.is_empty() {
            let _ = writeln!(
                s,
                "| other BPF users at start | {} |",
                r.foreign_bpf.join("; ")
            );
        }
        s.push('\n');
        s.push_str("Tracer memory over time (t = seconds since the load started):\n\n");
        let (c1, c2) = match r.load {
            Load::Steady => ("appends", "new files"),
            Load::Churn => ("created", "removed"),
        };
        let _ = writeln!(
            s,
            "| t | VmRSS | RssAnon | RssFile | VmHWM | {c1} | {c2} |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for p in &r.series {
            let g = |k: &str| p.progress.get(k).copied().unwrap_or(0);
            let (a, b) = match r.load {
                Load::Steady => (g("appends"), g("files_created")),
                Load::Churn => (g("created"), g("removed")),
            };
            let _ = writeln!(
                s,
                "| {:.0} | {} | {} | {} | {} | {} | {} |",
                p.t,
                mib(p.rss),
                mib(p.anon),
                mib(p.file),
                mib(p.hwm),
                thousands(a),
                thousands(b)
            );
        }
        s.push('\n');
    }
    if !failures.is_empty() {
        s.push_str("## Failures\n\n");
        for f in failures {
            let _ = writeln!(s, "- {}", f.replace('\n', " "));
        }
        s.push('\n');
    }
    s.push_str(
        "## How it runs\n\n\
         Each phase starts its own tracer, `fsync-trace --all --json -v -o report.json` \
         (`RUST_LOG=warn,fsync_trace::run=debug` for its end-of-run memory log), waits for it to say it \
         traces every process, lets it settle for 3 s, then starts the load (this xtask again, as a \
         child process) in a fresh directory on the scratch filesystem. The tracer's `/proc/PID/status` \
         is read every second while the load runs (every 10th reading is in the tables above). When the \
         load has exited, the tracer gets SIGINT and is given up to 120 s for its report. Everything \
         else the machine does meanwhile is traced too (it is `--all`): the report's file count says \
         how many files were not the load's.\n",
    );
    s
}
