//! Root tests of `--live` in a real terminal: tmux runs the tracer on a workload whose data at
//! risk is known (`hold`: big.dat 8 KiB, mid.dat 4 KiB, small.dat 100 B never synced, log.dat
//! synced ~10 times a second), `capture-pane` reads the screen, `send-keys q` ends the trace.
//! The screen must list the files in that order with their bytes; the report must follow on a
//! terminal given back (main screen, the same stty settings as before). Screens are saved
//! under target/live-*.txt for people to look at.
//!
//! Run as root: `cargo xtask integration`. Needs tmux.
#![allow(clippy::zombie_processes)]

#[path = "support/mod.rs"]
mod support;

use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

use support::*;

/// A tmux server of this test's own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str) -> Tmux {
        let t = Tmux {
            socket: format!("fsync-trace-live-{name}-{}", std::process::id()),
        };
        let out = t.cmd(&["new-session", "-d", "-s", "t", "-x", "120", "-y", "30"]);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A plain shell prompt, so captures are easy to read.
        t.keys("PS1='$ '");
        t.cmd(&["send-keys", "-t", "t", "Enter"]);
        t
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("running tmux (installed by scripts/setup.sh)")
    }

    /// Types `text` (literally) and Enter.
    fn keys(&self, text: &str) {
        self.cmd(&["send-keys", "-t", "t", "-l", text]);
        self.cmd(&["send-keys", "-t", "t", "Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-t", "t", "-p", "-J"]).stdout)
            .into_owned()
    }

    /// The whole scrollback, for the report printed after the view.
    fn history(&self) -> String {
        String::from_utf8_lossy(
            &self
                .cmd(&["capture-pane", "-t", "t", "-p", "-J", "-S", "-2000"])
                .stdout,
        )
        .into_owned()
    }

    fn alternate_screen(&self) -> bool {
        let out = self.cmd(&["display", "-p", "-t", "t", "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Waits until `ok(screen)`; panics with the last screen after `secs`.
    fn wait_for(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "waited {secs} s for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

fn save(name: &str, text: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let _ = std::fs::write(dir.join(format!("live-{name}.txt")), text);
}

/// The screen lines naming files in `dir`, in screen order: (at-risk cell, file name).
fn file_rows(screen: &str, dir: &str) -> Vec<(String, String)> {
    screen
        .lines()
        .filter_map(|l| {
            let (_, name) = l.rsplit_once(&format!("{dir}/"))?;
            let cells: Vec<&str> = l.split_whitespace().collect();
            let risk = match cells.as_slice() {
                [n, unit, ..] if unit.ends_with('B') => format!("{n} {unit}"),
                [word, ..] => (*word).to_string(),
                [] => String::new(),
            };
            Some((risk, name.to_string()))
        })
        .collect()
}

/// The shell printed the tracer's exit status (not just the typed command line).
fn exited(screen: &str) -> bool {
    screen.lines().any(|l| l.starts_with("EXIT="))
}

fn kill_workload(dir: &str) {
    let _ = Command::new("pkill").args(["-f", dir]).status();
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn live_view_lists_files_by_bytes_at_risk_and_q_ends_with_the_report() {
    let (_g, dir) = tempdir();
    let tmux = Tmux::start("q");
    tmux.keys("stty -g > stty.before");
    tmux.keys(&format!(
        "{TRACER} --live -- {} hold {dir} --seconds 60; echo EXIT=$?; stty -g > stty.after",
        workload()
    ));
    let screen = tmux.wait_for("the four files on the live view", 30, |s| {
        file_rows(s, &dir).len() == 4 && s.contains("syncs/s: ") && !s.contains("syncs/s: 0.0")
    });
    save("view", &screen);
    assert!(
        tmux.alternate_screen(),
        "the view is on the alternate screen"
    );
    assert_eq!(
        file_rows(&screen, &dir),
        [
            ("8.0 KiB".to_string(), "big.dat".to_string()),
            ("4.0 KiB".to_string(), "mid.dat".to_string()),
            ("100 B".to_string(), "small.dat".to_string()),
            ("durable".to_string(), "log.dat".to_string()),
        ],
        "{screen}"
    );
    assert!(
        screen.contains("at risk: 12.1 KiB in 3 file(s), 1 directory entry not synced"),
        "{screen}"
    );
    assert!(
        screen.contains("tracepoint tier")
            || screen.contains("fentry tier")
            || screen.contains("kprobe tier"),
        "{screen}"
    );
    tmux.cmd(&["send-keys", "-t", "t", "q"]);
    let after = tmux.wait_for("the report after q", 30, exited);
    kill_workload(&dir);
    let history = tmux.history();
    save("report", &history);
    assert!(
        !tmux.alternate_screen(),
        "back on the main screen:\n{after}"
    );
    assert!(after.lines().any(|l| l == "EXIT=0"), "{after}");
    for f in ["big.dat", "mid.dat", "small.dat"] {
        assert!(
            history.contains(&format!("[unsynced_write] {dir}/{f}")),
            "{f} in the report:\n{history}"
        );
    }
    assert!(
        history.contains("the trace was ended from the live view while the command"),
        "{history}"
    );
    // The shell in tmux started in this test's working directory.
    let cwd = std::env::current_dir().unwrap();
    let before = std::fs::read_to_string(cwd.join("stty.before")).unwrap_or_default();
    let after_stty = std::fs::read_to_string(cwd.join("stty.after")).unwrap_or_default();
    let _ = std::fs::remove_file(cwd.join("stty.before"));
    let _ = std::fs::remove_file(cwd.join("stty.after"));
    assert!(!before.is_empty(), "stty -g before");
    assert_eq!(before, after_stty, "terminal settings restored");
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn sigterm_gives_the_terminal_back_and_writes_the_report() {
    let (_g, dir) = tempdir();
    let report = format!("{dir}/report.json");
    let tmux = Tmux::start("term");
    tmux.keys(&format!(
        "{TRACER} --live --json -o {report} -- {} hold {dir} --seconds 60; echo EXIT=$?",
        workload()
    ));
    tmux.wait_for("the live view", 30, |s| file_rows(s, &dir).len() >= 3);
    let pids = Command::new("pgrep")
        .args(["-f", &format!("{TRACER} --live --json -o {report}")])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pids.stdout)
        .split_whitespace()
        .next()
        .expect("the tracer's pid")
        .to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let after = tmux.wait_for("the shell after SIGTERM", 30, exited);
    kill_workload(&dir);
    assert!(
        !tmux.alternate_screen(),
        "back on the main screen:\n{after}"
    );
    let r = read_report(&report);
    r.assert_complete();
    // The three files left unsynced; log.dat is written then fdatasync'ed every 100 ms, so
    // SIGTERM may land between the two and leave its last record unsynced too.
    let mut unsynced: Vec<String> = r.0["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "unsynced_write")
        .filter_map(|f| f["path"].as_str())
        .filter(|p| !p.ends_with("/log.dat"))
        .map(str::to_owned)
        .collect();
    unsynced.sort();
    assert_eq!(
        unsynced,
        ["big.dat", "mid.dat", "small.dat"].map(|f| format!("{dir}/{f}")),
        "{}",
        r.pretty()
    );
}

#[test]
#[ignore = "needs root: cargo xtask integration"]
fn live_without_a_terminal_is_refused_in_one_sentence() {
    let out = Command::new(TRACER)
        .args(["--live", "--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim(),
        "fsync-trace: --live needs a terminal on stderr (it draws there; the report still goes to stdout or -o)"
    );
}
