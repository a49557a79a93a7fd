//! Command line (a public interface: keep flags stable and documented in README.md).
use std::{ffi::OsString, path::PathBuf};

use clap::Parser;

use crate::state::FindingKind;

#[derive(Debug, Parser)]
#[command(
    name = "fsync-trace",
    version,
    about = "Shows where a program's data is not yet durable: unsynced writes and directory entries, renames before fsync, fsync errors, fsync latency.",
    override_usage = "fsync-trace [OPTIONS] -p PID [-p PID ...]\n       fsync-trace [OPTIONS] -- COMMAND [ARGS ...]",
    after_help = "Finding kinds for --fail-on: unsynced_write, unsynced_parent_dir, rename_before_fsync, fsync_error, fsync_retry_after_error, or \"any\".\nExit status: the command's own with --, 0 with -p; 3 if --fail-on matched; 1 on errors; 127 if COMMAND was not found."
)]
pub struct Cli {
    /// Trace this running process (all its threads); repeat for several.
    #[arg(short = 'p', long = "pid", value_name = "PID", value_parser = clap::value_parser!(u32).range(1..=4_194_304))]
    pub pids: Vec<u32>,

    /// Also trace children forked after tracing starts (always on with --).
    #[arg(short = 'f', long)]
    pub follow: bool,

    /// Write the final report as JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// Where the report goes (default: stdout; a traced command keeps its own stdout).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Stop after SECS and report (with -p; Ctrl-C / SIGTERM also stop and report).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<f64>,

    /// Exit with status 3 if any finding of these kinds is reported (comma list, or "any").
    #[arg(long, value_name = "KINDS", value_parser = parse_kinds)]
    pub fail_on: Option<FailOn>,

    /// Say what is being attached and why (and log details).
    #[arg(short = 'v', long)]
    pub verbose: bool,

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
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v <= 31_536_000.0) {
        return Err("must be more than 0 and at most one year (31536000)".into());
    }
    Ok(v)
}

fn parse_kinds(s: &str) -> Result<FailOn, String> {
    if s.trim() == "any" {
        return Ok(FailOn(FindingKind::ALL.to_vec()));
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
}

impl Cli {
    pub fn target(&self) -> Result<Target, String> {
        match (self.pids.is_empty(), self.command.is_empty()) {
            (false, false) => Err("give either -p PID or -- COMMAND, not both".into()),
            (true, true) => Err("nothing to trace: give -p PID or -- COMMAND (see --help)".into()),
            (false, true) => Ok(Target::Pids(self.pids.clone())),
            (true, false) => {
                if self.duration.is_some() {
                    return Err("--duration applies to -p; a command is traced until it exits".into());
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
    fn pids_and_command_are_exclusive() {
        let c = parse(&["-p", "1", "--", "true"]).unwrap();
        assert!(c.target().is_err());
        assert!(parse(&[]).unwrap().target().is_err());
        assert_eq!(parse(&["-p", "5", "-p", "6"]).unwrap().target(), Ok(Target::Pids(vec![5, 6])));
        assert_eq!(
            parse(&["--json", "--", "ls", "-l"]).unwrap().target(),
            Ok(Target::Command(vec!["ls".into(), "-l".into()]))
        );
    }

    #[test]
    fn bounded_arguments() {
        assert!(parse(&["-p", "0"]).is_err());
        assert!(parse(&["-p", "abc"]).is_err());
        assert!(parse(&["-p", "1", "--duration", "0"]).is_err());
        assert!(parse(&["-p", "1", "--duration", "-3"]).is_err());
        assert!(parse(&["-p", "1", "--duration", "1.5"]).is_ok());
        assert!(parse(&["--duration", "2", "--", "true"]).unwrap().target().is_err());
    }

    #[test]
    fn fail_on_kinds() {
        let c = parse(&["--fail-on", "unsynced_write,fsync_error", "-p", "1"]).unwrap();
        let f = c.fail_on.unwrap();
        assert!(f.matches(FindingKind::UnsyncedWrite) && f.matches(FindingKind::FsyncError));
        assert!(!f.matches(FindingKind::RenameBeforeFsync));
        assert_eq!(parse(&["--fail-on", "any", "-p", "1"]).unwrap().fail_on.unwrap().0.len(), 5);
        let err = parse(&["--fail-on", "bogus", "-p", "1"]).unwrap_err().to_string();
        assert!(err.contains("unknown finding kind"), "{err}");
    }
}
