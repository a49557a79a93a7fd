//! The workloads (`fsync-trace-workload` scenarios; their exact syscalls are documented in
//! fsync-trace-workload/src/main.rs) and the check of a fsync-trace report against them.
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use fsync_trace_workload::scenarios::{fsync_bound_log, thread_file, THREADS_FSYNC_EVERY};
use serde_json::Value;

use crate::util::thousands;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Kind {
    Storm,
    FsyncBound,
    ManyFiles,
    Threads,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Workload {
    pub(super) kind: Kind,
    pub(super) n: u64,
}

/// See [`Workload::reps_factor`].
pub(super) const FSYNC_BOUND_REPS_FACTOR: usize = 4;

impl Workload {
    pub(super) fn set(quick: bool) -> Vec<Workload> {
        let s = |full: u64, small: u64| if quick { small } else { full };
        vec![
            Workload {
                kind: Kind::Storm,
                n: s(200_000, 20_000),
            },
            Workload {
                kind: Kind::FsyncBound,
                n: s(2_000, 200),
            },
            Workload {
                kind: Kind::ManyFiles,
                n: s(10_000, 1_000),
            },
            Workload {
                kind: Kind::Threads,
                n: s(20_000, 2_000),
            },
        ]
    }

    /// Repetitions of this workload per `--reps`: fsync-bound waits on the virtual disk, whose
    /// fsync latency varies by ±20% from run to run, so its medians need more samples to show
    /// a difference of a few percent.
    pub(super) fn reps_factor(&self) -> usize {
        match self.kind {
            Kind::FsyncBound => FSYNC_BOUND_REPS_FACTOR,
            _ => 1,
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self.kind {
            Kind::Storm => "write storm",
            Kind::FsyncBound => "fsync-bound",
            Kind::ManyFiles => "many files",
            Kind::Threads => "two threads",
        }
    }

    pub(super) fn describe(&self) -> String {
        let n = thousands(self.n);
        match self.kind {
            Kind::Storm => format!("{n} × write(2) of 64 B to one file, no sync"),
            Kind::FsyncBound => format!("{n} × (append 4 KiB + fdatasync)"),
            Kind::ManyFiles => format!(
                "{n} files each created, written (128 B), fsynced; then the directory fsynced"
            ),
            Kind::Threads => format!(
                "2 threads × {n} writes of 64 B to their own file, fsync every {THREADS_FSYNC_EVERY} writes"
            ),
        }
    }

    pub(super) fn args(&self, dir: &Path) -> Vec<String> {
        let (scenario, flag) = match self.kind {
            Kind::Storm => ("write-storm", "--writes"),
            Kind::FsyncBound => ("fsync-bound", "--records"),
            Kind::ManyFiles => ("many-files", "--files"),
            Kind::Threads => ("threads", "--records"),
        };
        vec![
            scenario.into(),
            dir.display().to_string(),
            flag.into(),
            self.n.to_string(),
            "--report-elapsed".into(),
        ]
    }

    /// write(2) calls the workload makes to its data files.
    pub(super) fn writes(&self) -> u64 {
        match self.kind {
            Kind::Threads => 2 * self.n,
            _ => self.n,
        }
    }

    /// Checks a fsync-trace JSON report against the workload's exact syscalls.
    pub(super) fn check(&self, r: &Value, dir: &Path) -> Result<()> {
        let lost = num(r, "lost_events")?;
        if lost != 0 || r.get("complete") != Some(&Value::Bool(true)) {
            bail!(
                "{lost} lost event(s): {}",
                r.get("lost")
                    .map(std::string::ToString::to_string)
                    .unwrap_or_default()
            );
        }
        let n = self.n;
        match self.kind {
            Kind::Storm => {
                expect_file(
                    r,
                    &dir.join("storm.dat"),
                    &[
                        ("writes", n),
                        ("bytes_written", 64 * n),
                        ("fsyncs", 0),
                        ("fdatasyncs", 0),
                    ],
                )?;
            }
            Kind::FsyncBound => {
                expect_file(r, &dir.join("wal.log"), &fsync_bound_log(n).fields())?;
                expect_sync(r, "fdatasync", n)?;
            }
            Kind::ManyFiles => {
                let prefix = format!("{}/f", dir.display());
                let files = array(r, "files")?;
                let mut seen = 0;
                for f in files {
                    let path = f.get("path").and_then(Value::as_str).unwrap_or("");
                    if path.starts_with(&prefix) && path.ends_with(".dat") {
                        seen += 1;
                        for (k, want) in [("writes", 1), ("bytes_written", 128), ("fsyncs", 1)] {
                            let got = num(f, k)?;
                            if got != want {
                                bail!("{path}: {k} = {got}, expected {want}");
                            }
                        }
                    }
                }
                if seen != n {
                    bail!("{seen} files f*.dat in the report, expected {n}");
                }
                expect_file(r, dir, &[("fsyncs", 1)])?;
                expect_sync(r, "fsync", n + 1)?;
            }
            Kind::Threads => {
                let file = thread_file(n);
                for i in 0..2 {
                    expect_file(r, &dir.join(format!("thread{i}.dat")), &file.fields())?;
                }
                expect_sync(r, "fsync", 2 * file.fsyncs + 1)?;
            }
        }
        Ok(())
    }
}

fn num(v: &Value, key: &str) -> Result<u64> {
    v.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("report has no number {key:?}"))
}

fn array<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("report has no array {key:?}"))
}

fn expect_file(r: &Value, path: &Path, want: &[(&str, u64)]) -> Result<()> {
    let p = path.display().to_string();
    let f = array(r, "files")?
        .iter()
        .find(|f| f.get("path").and_then(Value::as_str) == Some(p.as_str()))
        .ok_or_else(|| anyhow!("{p} is not in the report"))?;
    for &(k, w) in want {
        let got = num(f, k)?;
        if got != w {
            bail!("{p}: {k} = {got}, expected {w}");
        }
    }
    Ok(())
}

fn expect_sync(r: &Value, op: &str, calls: u64) -> Result<()> {
    let s = array(r, "syncs")?
        .iter()
        .find(|s| s.get("op").and_then(Value::as_str) == Some(op))
        .ok_or_else(|| anyhow!("no {op} in the report's syncs"))?;
    let (got, errors) = (num(s, "calls")?, num(s, "errors")?);
    if got != calls || errors != 0 {
        bail!("{op}: {got} calls ({errors} errors), expected {calls} (0 errors)");
    }
    Ok(())
}
