//! Command line (a public interface: keep flags stable and documented in README.md).
use std::{ffi::OsString, path::PathBuf};

use clap::Parser;

use crate::{state::FindingKind, tracer::Tier};

#[derive(Debug, Parser)]
#[command(
    name = "fsync-trace",
    version,
    about = "Shows where a program's data is not yet durable: unsynced writes and directory entries, renames before fsync, fsync errors, fsync latency.",
    override_usage = "fsync-trace [OPTIONS] -p PID [-p PID ...]\n       fsync-trace [OPTIONS] -- COMMAND [ARGS ...]\n       fsync-trace [OPTIONS] --all [--metrics ADDR]",
    after_help = "Finding kinds for --fail-on: unsynced_write, unsynced_parent_dir, rename_before_fsync, fsync_error, fsync_retry_after_error, uring_fsync_unordered, ack_before_durable (with --wal), sync_without_flush, or \"any\" (all of these); the advice kinds sync_per_write and redundant_sync only when named.\nMetrics (--metrics): OpenMetrics on http://ADDR/metrics while tracing, all named fsync_trace_*: sync_latency_seconds{op,device}, dirty_window_seconds, writes_per_sync, redundant_syncs_total, writes_total, written_bytes_total, unsynced_bytes, oldest_unsynced_age_seconds, findings_total{kind}, lost_events_total{reason}, ack_durability_lag_seconds (--wal), build_info; with --metrics-labels also by cgroup/container/pod (at most --metrics-top label sets, the rest as \"other\").\nSuppressions (--suppress, --profile): suppressed findings are counted and listed apart and never match --fail-on.\nExit status: the command's own with --, 0 with -p or --all; 3 if --fail-on matched; 2 on usage errors; 1 on other errors; 127 if COMMAND was not found."
)]
pub struct Cli {
    /// Trace this running process (all its threads); repeat for several.
    // allow_negative_numbers: `-p -1` is a bad PID, not an unknown flag (clap's hint for that
    // would suggest `-- -1`, which runs "-1" as a command).
    #[arg(short = 'p', long = "pid", value_name = "PID", allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=4_194_304))]
    pub pids: Vec<u32>,

    /// Trace every process in this cgroup (a directory under the cgroup v2 mount, or a path as
    /// /proc/PID/cgroup shows it) and below it, and their children (the way to watch one
    /// container). Processes moved into it later, not forked there, are not seen.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["all", "command"])]
    pub cgroup: Option<String>,

    /// Also trace children forked after tracing starts (always on with --).
    #[arg(short = 'f', long)]
    pub follow: bool,

    /// Trace every process on the machine but fsync-trace itself (daemon mode), until
    /// Ctrl-C / SIGTERM (or --duration), then report. Usually with --metrics.
    #[arg(long, conflicts_with_all = ["pids", "command"])]
    pub all: bool,

    /// Show a live view while tracing (on stderr, which must be a terminal): files by bytes
    /// at risk, age of their oldest unsynced data, last sync latency, syncs/s. `q` ends the
    /// trace with the full report.
    #[arg(long)]
    pub live: bool,

    /// Write the final report as JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Where the report goes (default: stdout; a traced command keeps its own stdout).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write the findings as SARIF 2.1.0 to FILE (for code-scanning CI), each at its
    /// call site.
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,

    /// With --sarif: call sites under DIR get URIs relative to it (else absolute file://).
    #[arg(long, value_name = "DIR", requires = "sarif")]
    pub source_root: Option<PathBuf>,

    /// Take no user stacks: findings get no call site (`stack`), and the acts that make
    /// findings cost a stack walk less.
    #[arg(long)]
    pub no_stacks: bool,

    /// Track where unsynced data lies (`dirty_extent`) in every report. On by itself with
    /// --crash-at, --html and --live, the outputs about what a power cut loses; costs the write
    /// path one kernel read per write (the write storm: about 1.27x -> 1.43x untraced).
    #[arg(long, conflicts_with = "no_dirty_extent")]
    pub dirty_extent: bool,

    /// Never track where unsynced data lies (`dirty_extent` is null everywhere), not even with
    /// --crash-at, --html or --live.
    #[arg(long)]
    pub no_dirty_extent: bool,

    /// Stop after SECS and report (with -p or --all; Ctrl-C / SIGTERM also stop and report).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<f64>,

    /// Exit with status 3 if any finding of these kinds is reported (comma list, or "any").
    #[arg(long, value_name = "KINDS", value_parser = parse_kinds)]
    pub fail_on: Option<FailOn>,

    /// Serve Prometheus metrics (OpenMetrics) on http://ADDR/metrics while tracing. ADDR is
    /// PORT (= 127.0.0.1:PORT), IP:PORT or [IPv6]:PORT; all interfaces only as 0.0.0.0:PORT.
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::server::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,

    /// With --metrics: also export the N files with the most unsynced data, by path (at most
    /// 1000; off by default: paths make many series).
    #[arg(long, value_name = "N", requires = "metrics", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub metrics_top_files: Option<u16>,

    /// With --metrics: label the metrics of known processes with their workload, a comma list
    /// of cgroup, container, pod (cardinality bounded by --metrics-top).
    #[arg(long, value_name = "LIST", requires = "metrics", value_parser = crate::metrics::LabelChoice::parse)]
    pub metrics_labels: Option<crate::metrics::LabelChoice>,

    /// With --metrics-labels: at most N workload label sets get series of their own (the first
    /// N to be active keep them for the whole run), the rest are summed as "other" (default 20,
    /// at most 1000).
    #[arg(long, value_name = "N", requires = "metrics_labels", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub metrics_top: Option<u16>,

    /// Size of the kernel's per-file table (files counted at once; slots of removed files, and
    /// of durable idle files when it fills, are reused). 112 bytes of kernel memory per slot.
    #[arg(long, value_name = "N", default_value_t = fsync_trace_common::names::FILE_SLOTS_MAX, value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    pub file_slots: u32,

    /// Size of the kernel-to-tracer event buffer in MiB (a power of two, 1 to 1024; default 4).
    /// Raise it for bursts of many thousand file creations, renames or removals per second:
    /// records that do not fit are lost (counted and reported). Costs up to twice as much
    /// resident memory once the buffer has been filled.
    #[arg(long, value_name = "MIB", default_value_t = 4, value_parser = parse_ring_buffer)]
    pub ring_buffer_mib: u32,

    /// Keep at most N file states in memory: beyond, durable idle files (no unsynced data or
    /// entries) are released, least recently active first, and counted in the report
    /// (`released_files`). Default: 200000, or 20000 with --all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(100..=100_000_000))]
    pub max_files: Option<u64>,

    /// Suppress the findings the rules of FILE mark as by design (TOML `[[rule]]` tables with
    /// kind, path glob, optional role, and a required reason); repeatable.
    #[arg(long = "suppress", value_name = "FILE")]
    pub suppress: Vec<PathBuf>,

    /// Load the shipped rules for a program's by-design findings: postgresql, redis, sqlite
    /// or git; repeatable.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,

    /// List suppressed findings in the text report too (JSON always lists them).
    #[arg(long)]
    pub show_suppressed: bool,

    /// Report more than N findings of one kind in one directory as one finding with every
    /// name (`entries`); 0 never groups.
    #[arg(long, value_name = "N", default_value_t = crate::analysis::DEFAULT_GROUP_OVER)]
    pub group_over: usize,

    /// Also write the timeline as one self-contained HTML page to FILE: a lane per file and
    /// directory, a crash control (what a power cut at any instant loses), the worst moment.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Also report what a power cut S seconds after tracing started would have lost: the files
    /// with unsynced data (bytes read from the kernel at that moment) and the directory entries
    /// not yet durable (comma list of offsets, repeatable).
    #[arg(long, value_name = "S[,S...]", value_delimiter = ',', value_parser = parse_offset)]
    pub crash_at: Vec<f64>,

    /// Record at most N timeline items (dirty intervals, counter readings, syncs, entry
    /// changes, files): later ones are left out and counted in the report. 0: no timeline
    /// (and no exposure peak).
    #[arg(long, value_name = "N", default_value_t = crate::state::timeline::DEFAULT_MAX_ITEMS)]
    pub timeline_limit: usize,

    /// Treat files whose absolute path matches GLOB as write-ahead logs and flag replies (data
    /// sent to a socket) made before the sender's log writes were durable
    /// (`ack_before_durable`). `*` stays within one path component, `**` spans components;
    /// repeatable.
    #[arg(long = "wal", value_name = "GLOB")]
    pub wal: Vec<String>,

    /// Say what is being attached and why (and log details).
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Kernel hooks to use: fentry, kprobe or tracepoint (default: the best that works here).
    #[arg(long, value_name = "TIER", value_parser = parse_tier)]
    pub tier: Option<Tier>,

    /// Command to run under trace.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailOn(pub Vec<FindingKind>);

impl FailOn {
    pub fn matches(&self, kind: FindingKind) -> bool {
        self.0.contains(&kind)
    }
}

fn parse_duration(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v <= 31_536_000.0) {
        return Err("must be more than 0 and at most one year (31536000)".into());
    }
    Ok(v)
}

fn parse_offset(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=31_536_000.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not an offset in seconds from 0 to one year (31536000)"
        )),
    }
}

fn parse_ring_buffer(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) && n.is_power_of_two() => Ok(n),
        _ => Err(format!("{s:?} is not a power of two from 1 to 1024")),
    }
}

fn parse_tier(s: &str) -> Result<Tier, String> {
    Tier::from_name(s).ok_or_else(|| {
        format!(
            "unknown tier {s:?} (expected {})",
            Tier::ALL.map(|t| t.name()).join(", ")
        )
    })
}

fn parse_kinds(s: &str) -> Result<FailOn, String> {
    // Advice kinds (what durability costs) are not durability bugs: only when named.
    if s.trim() == "any" {
        return Ok(FailOn(FindingKind::BUGS.to_vec()));
    }
    let mut kinds = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let k = FindingKind::from_name(part).ok_or_else(|| {
            format!(
                "unknown finding kind {part:?} (expected {} or \"any\")",
                FindingKind::ALL.map(|k| k.name()).join(", ")
            )
        })?;
        kinds.push(k);
    }
    if kinds.is_empty() {
        return Err("empty list of finding kinds".into());
    }
    Ok(FailOn(kinds))
}

/// What to trace, once the arguments are checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Pids(Vec<u32>),
    Command(Vec<OsString>),
    /// Every process but fsync-trace itself.
    All,
}

impl Cli {
    /// Whether the kernel keeps write positions: asked for, or an output about what a power
    /// cut loses (--crash-at, --html, --live), unless --no-dirty-extent.
    pub fn dirty_extent_on(&self) -> bool {
        !self.no_dirty_extent
            && (self.dirty_extent || !self.crash_at.is_empty() || self.html.is_some() || self.live)
    }

    /// `--cgroup PATH` becomes `-p` for every process in it, with children followed (the
    /// kernel side's process filter, fed from `cgroup.procs` and the fork hook: a cgroup-id
    /// check would cost every hook of every process a helper call).
    pub fn resolve_cgroup(&mut self) -> Result<(), String> {
        if let Some(path) = &self.cgroup {
            self.pids.extend(crate::cgroup::processes(path)?);
            self.follow = true;
        }
        Ok(())
    }

    pub fn target(&self) -> Result<Target, String> {
        if self.all {
            // clap refuses --all with -p or COMMAND; kept here for callers that build a Cli.
            if !self.pids.is_empty() || !self.command.is_empty() {
                return Err("--all traces every process: give no -p PID or COMMAND with it".into());
            }
            return Ok(Target::All);
        }
        match (self.pids.is_empty(), self.command.is_empty()) {
            (false, false) => Err("give either -p PID or -- COMMAND, not both".into()),
            (true, true) => {
                Err("nothing to trace: give -p PID, -- COMMAND or --all (see --help)".into())
            }
            (false, true) => Ok(Target::Pids(self.pids.clone())),
            (true, false) => {
                if self.duration.is_some() {
                    return Err(
                        "--duration applies to -p; a command is traced until it exits".into(),
                    );
                }
                Ok(Target::Command(self.command.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("fsync-trace").chain(args.iter().copied()))
    }

    #[test]
    fn dirty_extent_is_on_for_the_what_if_outputs_or_when_asked() {
        let on = |args: &[&str]| {
            let mut v = vec!["fsync-trace"];
            v.extend_from_slice(args);
            v.extend_from_slice(&["--", "true"]);
            Cli::try_parse_from(v).expect("parses").dirty_extent_on()
        };
        assert!(!on(&[]));
        assert!(on(&["--dirty-extent"]));
        assert!(on(&["--crash-at", "1"]));
        assert!(on(&["--html", "x.html"]));
        assert!(!on(&["--crash-at", "1", "--no-dirty-extent"]));
        assert!(Cli::try_parse_from([
            "fsync-trace",
            "--dirty-extent",
            "--no-dirty-extent",
            "--",
            "true"
        ])
        .is_err());
    }

    #[test]
    fn crash_at_takes_a_comma_list_of_offsets() {
        let c = parse(&["--crash-at", "0.5,1.25", "--crash-at", "3", "--", "true"]).unwrap();
        assert_eq!(c.crash_at, vec![0.5, 1.25, 3.0]);
        assert!(parse(&["--crash-at", "-1", "--", "true"]).is_err());
        assert!(parse(&["--crash-at", "soon", "--", "true"]).is_err());
        assert_eq!(parse(&["--", "true"]).unwrap().timeline_limit, 100_000);
    }

    #[test]
    fn pids_and_command_are_exclusive() {
        let c = parse(&["-p", "1", "--", "true"]).unwrap();
        assert!(c.target().is_err());
        assert!(parse(&[]).unwrap().target().is_err());
        assert_eq!(
            parse(&["-p", "5", "-p", "6"]).unwrap().target(),
            Ok(Target::Pids(vec![5, 6]))
        );
        assert_eq!(
            parse(&["--json", "--", "ls", "-l"]).unwrap().target(),
            Ok(Target::Command(vec!["ls".into(), "-l".into()]))
        );
    }

    #[test]
    fn ring_buffer_is_a_power_of_two() {
        assert_eq!(parse(&["--all"]).unwrap().ring_buffer_mib, 4);
        assert_eq!(
            parse(&["--all", "--ring-buffer-mib", "32"])
                .unwrap()
                .ring_buffer_mib,
            32
        );
        for bad in ["0", "3", "2048", "x"] {
            assert!(
                parse(&["--all", "--ring-buffer-mib", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn all_is_exclusive_with_pids_and_command() {
        assert_eq!(parse(&["--all"]).unwrap().target(), Ok(Target::All));
        assert_eq!(
            parse(&["--all", "--duration", "5"]).unwrap().target(),
            Ok(Target::All)
        );
        assert!(parse(&["--all", "-p", "1"]).is_err());
        assert!(parse(&["--all", "--", "true"]).is_err());
        let err = parse(&[]).unwrap().target().unwrap_err();
        assert!(err.contains("--all"), "{err}");
    }

    #[test]
    fn metrics_options() {
        let c = parse(&["--all", "--metrics", "9464"]).unwrap();
        assert_eq!(c.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        let c = parse(&[
            "-p",
            "1",
            "--metrics",
            "0.0.0.0:9464",
            "--metrics-top-files",
            "20",
        ])
        .unwrap();
        assert_eq!(c.metrics, Some("0.0.0.0:9464".parse().unwrap()));
        assert_eq!(c.metrics_top_files, Some(20));
        assert!(parse(&["-p", "1", "--metrics", ":9464"]).is_err());
        assert!(
            parse(&["-p", "1", "--metrics-top-files", "20"]).is_err(),
            "needs --metrics"
        );
        assert!(parse(&[
            "-p",
            "1",
            "--metrics",
            "9464",
            "--metrics-top-files",
            "1001"
        ])
        .is_err());
        assert!(parse(&["-p", "1", "--metrics", "9464", "--metrics-top-files", "0"]).is_err());
        let c = parse(&[
            "--all",
            "--metrics",
            "9464",
            "--metrics-labels",
            "container,pod",
            "--metrics-top",
            "5",
        ])
        .unwrap();
        let l = c.metrics_labels.unwrap();
        assert_eq!((l.cgroup, l.container, l.pod), (false, true, true));
        assert_eq!(c.metrics_top, Some(5));
        assert!(
            parse(&["--all", "--metrics-labels", "pod"]).is_err(),
            "needs --metrics"
        );
        assert!(
            parse(&["--all", "--metrics", "9464", "--metrics-top", "5"]).is_err(),
            "needs --metrics-labels"
        );
        for bad in ["namespace", "pod,node", ",", "Pod"] {
            let e = parse(&["--all", "--metrics", "9464", "--metrics-labels", bad])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("expected") && e.contains("cgroup, container, pod"),
                "{bad}: {e}"
            );
        }
        assert_eq!(parse(&["-p", "1"]).unwrap().metrics, None);
    }

    #[test]
    fn bounded_arguments() {
        assert!(parse(&["-p", "0"]).is_err());
        assert!(parse(&["-p", "abc"]).is_err());
        assert!(parse(&["-p", "1", "--duration", "0"]).is_err());
        assert!(parse(&["-p", "1", "--duration", "-3"]).is_err());
        assert!(parse(&["-p", "1", "--duration", "1.5"]).is_ok());
        assert!(parse(&["--duration", "2", "--", "true"])
            .unwrap()
            .target()
            .is_err());
    }

    #[test]
    fn tier_is_checked() {
        assert_eq!(
            parse(&["--tier", "kprobe", "-p", "1"]).unwrap().tier,
            Some(Tier::Kprobe)
        );
        assert_eq!(parse(&["-p", "1"]).unwrap().tier, None);
        let err = parse(&["--tier", "uprobe", "-p", "1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected fentry, kprobe, tracepoint"), "{err}");
    }

    #[test]
    fn fail_on_kinds() {
        let c = parse(&["--fail-on", "unsynced_write,fsync_error", "-p", "1"]).unwrap();
        let f = c.fail_on.unwrap();
        assert!(f.matches(FindingKind::UnsyncedWrite) && f.matches(FindingKind::FsyncError));
        assert!(!f.matches(FindingKind::RenameBeforeFsync));
        assert_eq!(
            parse(&["--fail-on", "any", "-p", "1"])
                .unwrap()
                .fail_on
                .unwrap()
                .0
                .len(),
            8
        );
        assert!(parse(&["--fail-on", "ack_before_durable", "-p", "1"])
            .unwrap()
            .fail_on
            .unwrap()
            .matches(FindingKind::AckBeforeDurable));
        assert_eq!(
            parse(&["--wal", "**/pg_wal/*", "--wal", "/a/*", "-p", "1"])
                .unwrap()
                .wal,
            ["**/pg_wal/*", "/a/*"]
        );
        // Advice is never part of "any", only when named.
        let any = parse(&["--fail-on", "any", "-p", "1"])
            .unwrap()
            .fail_on
            .unwrap();
        assert!(
            !any.matches(FindingKind::SyncPerWrite) && !any.matches(FindingKind::RedundantSync)
        );
        let named = parse(&["--fail-on", "any_bug_free", "-p", "1"]);
        assert!(named.is_err());
        let named = parse(&["--fail-on", "redundant_sync,unsynced_write", "-p", "1"])
            .unwrap()
            .fail_on
            .unwrap();
        assert!(
            named.matches(FindingKind::RedundantSync) && !named.matches(FindingKind::SyncPerWrite)
        );
        let err = parse(&["--fail-on", "bogus", "-p", "1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown finding kind"), "{err}");
    }
}
