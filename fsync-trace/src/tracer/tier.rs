//! Attach tiers: the same facts from different kernel hooks, and the choice between them.
//!
//! Every tier attaches the syscall, scheduler and writeback tracepoints: opens, namespace
//! changes, mmap, processes, writeback and syscall-level syncs (with their latency and errno)
//! are tracepoint facts everywhere. A function-level tier also takes writes and in-kernel syncs
//! from kernel functions:
//!
//! | tier       | write, pwrite64 / writev, pwritev(2) | syncs                                        |
//! |------------|--------------------------------------|----------------------------------------------|
//! | fentry     | fexit on vfs_write / vfs_writev      | syscalls + fentry/fexit on vfs_fsync_range   |
//! | kprobe     | kprobe+kretprobe on the same         | syscalls + kprobe/kretprobe on vfs_fsync_range |
//! | tracepoint | sys_exit of the write syscalls       | syscalls only                                |
//!
//! io_uring requests (writes, fsync, sync_file_range, close) are seen by the same io_uring
//! tracepoints on every tier (`tracer/uring.rs`); the function tiers leave the vfs_fsync_range
//! calls of io workers to them.
//!
//! The tier is chosen by trying ([`select`]): fentry, then kprobe, then tracepoint; the first
//! whose required hooks load and attach wins. An optional hook that does not work at the chosen
//! tier falls back on its own (to kprobe, then to the syscall tracepoints).
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// fentry/fexit on kernel functions (BPF trampolines): cheapest function hooks, need BTF
    /// and a kernel that allows them (lockdown may refuse them).
    Fentry,
    /// kprobe/kretprobe on the same kernel functions: needs CONFIG_KPROBES.
    Kprobe,
    /// Raw syscall, scheduler and writeback tracepoints only: works wherever BPF tracing does,
    /// but does not see in-kernel syncs outside the sync syscalls and io_uring.
    Tracepoint,
}

impl Tier {
    /// Best first: the order auto-selection tries.
    pub const ALL: [Tier; 3] = [Tier::Fentry, Tier::Kprobe, Tier::Tracepoint];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Fentry => "fentry",
            Tier::Kprobe => "kprobe",
            Tier::Tracepoint => "tracepoint",
        }
    }

    pub fn from_name(s: &str) -> Option<Tier> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    fn is_function_level(self) -> bool {
        self != Tier::Tracepoint
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fact a function-level tier takes from a kernel function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// write(2), pwrite64(2): vfs_write.
    Write,
    /// Syncs outside the sync syscalls and io_uring (other in-kernel callers): vfs_fsync_range.
    FsyncRange,
    /// writev(2), pwritev(2), pwritev2(2): they bypass vfs_write.
    VectoredWrite,
}

impl Hook {
    /// In the order they are tried: required hooks first.
    pub const ALL: [Hook; 3] = [Hook::Write, Hook::FsyncRange, Hook::VectoredWrite];

    /// Kernel functions that deliver this fact, best first (which exist depends on the kernel:
    /// do_iter_write is gone in 6.8+, and a static function may be inlined away).
    pub fn functions(self) -> &'static [&'static str] {
        match self {
            Hook::Write => &["vfs_write"],
            Hook::FsyncRange => &["vfs_fsync_range"],
            Hook::VectoredWrite => &["vfs_writev", "do_iter_write"],
        }
    }

    /// A tier is used only if its required hooks work; an optional hook falls back alone.
    pub fn required(self) -> bool {
        self != Hook::VectoredWrite
    }

    /// The `names::FN_*` bit telling the kernel side that this hook is attached.
    pub fn config_bit(self) -> u64 {
        use fsync_trace_common::names;
        match self {
            Hook::Write => names::FN_WRITE,
            Hook::FsyncRange => names::FN_FSYNC_RANGE,
            Hook::VectoredWrite => names::FN_VECTORED_WRITE,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Hook::Write => "write/pwrite64",
            Hook::FsyncRange => "in-kernel syncs (vfs_fsync_range)",
            Hook::VectoredWrite => "writev/pwritev/pwritev2",
        }
    }
}

/// Where a hook ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Function {
        tier: Tier,
        function: &'static str,
    },
    /// Left to the syscall tracepoints (for FsyncRange: not seen at all).
    Syscall,
}

/// The outcome of [`select`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub tier: Tier,
    pub hooks: Vec<(Hook, Placement)>,
    /// Why better tiers or functions were not used, in the order they were tried.
    pub skipped: Vec<String>,
}

impl Selection {
    /// `CONFIG_FN_HOOKS` value for the kernel side.
    pub fn config_mask(&self) -> u64 {
        self.hooks.iter().fold(0, |m, (h, p)| match p {
            // do_iter_write takes `loff_t *pos` as its third argument, vfs_writev as its fourth.
            Placement::Function {
                function: "do_iter_write",
                ..
            } => m | h.config_bit() | fsync_trace_common::names::FN_VECTORED_POS_ARG2,
            Placement::Function { .. } => m | h.config_bit(),
            Placement::Syscall => m,
        })
    }

    /// One line per hook, for `--verbose`.
    pub fn describe(&self) -> Vec<String> {
        self.hooks
            .iter()
            .map(|(hook, p)| match p {
                Placement::Function {
                    tier: Tier::Fentry,
                    function,
                } => {
                    let kind = if *hook == Hook::FsyncRange {
                        "fentry+fexit"
                    } else {
                        "fexit"
                    };
                    format!("{}: {kind} on {function}", hook.describe())
                }
                Placement::Function { function, .. } => {
                    format!("{}: kprobe+kretprobe on {function}", hook.describe())
                }
                Placement::Syscall if *hook == Hook::FsyncRange => {
                    format!("{}: not seen (sync syscalls only)", hook.describe())
                }
                Placement::Syscall => format!("{}: syscall tracepoints", hook.describe()),
            })
            .collect()
    }
}

/// The effects [`select`] needs: real ones load BPF programs, tests use fakes.
pub trait HookAttacher {
    /// Loads and attaches the programs of `hook` at function-level `tier` on kernel function
    /// `function`. On failure nothing of this attempt stays loaded; the error says what failed
    /// (e.g. "loading fexit/vfs_write failed: Operation not permitted").
    fn attach(&mut self, tier: Tier, hook: Hook, function: &'static str) -> Result<(), String>;
    /// Undoes a successful `attach` of `hook` at `tier` (the tier was abandoned).
    fn detach(&mut self, tier: Tier, hook: Hook);
}

/// A forced tier that cannot work here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    pub tier: Tier,
    pub reason: String,
}

/// Chooses the tier by trying: `forced`, or fentry, kprobe, tracepoint in that order. The
/// tracepoint tier needs no extra hook, so auto-selection always succeeds.
pub fn select(
    forced: Option<Tier>,
    attacher: &mut impl HookAttacher,
) -> Result<Selection, Unavailable> {
    let candidates: Vec<Tier> = match forced {
        Some(t) => vec![t],
        None => Tier::ALL.to_vec(),
    };
    let mut skipped = Vec::new();
    for tier in candidates {
        if !tier.is_function_level() {
            let hooks = Hook::ALL.iter().map(|&h| (h, Placement::Syscall)).collect();
            return Ok(Selection {
                tier,
                hooks,
                skipped,
            });
        }
        let mut hooks = Vec::new();
        let mut failure = None;
        for hook in Hook::ALL.into_iter().filter(|h| h.required()) {
            match try_hook(attacher, tier, hook) {
                Ok(function) => hooks.push((hook, Placement::Function { tier, function })),
                Err(reason) => {
                    failure = Some(reason);
                    break;
                }
            }
        }
        if let Some(reason) = failure {
            for (hook, _) in hooks.iter().rev() {
                attacher.detach(tier, *hook);
            }
            if forced.is_some() {
                return Err(Unavailable { tier, reason });
            }
            skipped.push(format!("tier {tier} skipped: {reason}"));
            continue;
        }
        for hook in Hook::ALL.into_iter().filter(|h| !h.required()) {
            let mut placement = Placement::Syscall;
            // This tier, then the lower function-level tiers, then the syscall tracepoints.
            for lower in Tier::ALL
                .into_iter()
                .skip_while(|&t| t != tier)
                .filter(|t| t.is_function_level())
            {
                match try_hook(attacher, lower, hook) {
                    Ok(function) => {
                        placement = Placement::Function {
                            tier: lower,
                            function,
                        };
                        break;
                    }
                    Err(reason) => {
                        skipped.push(format!("{} at tier {lower}: {reason}", hook.describe()))
                    }
                }
            }
            hooks.push((hook, placement));
        }
        return Ok(Selection {
            tier,
            hooks,
            skipped,
        });
    }
    unreachable!("the candidate list ends with the tracepoint tier or is a single forced tier")
}

/// Tries each kernel function of `hook` in turn.
fn try_hook(
    attacher: &mut impl HookAttacher,
    tier: Tier,
    hook: Hook,
) -> Result<&'static str, String> {
    let mut reasons = Vec::new();
    for &function in hook.functions() {
        match attacher.attach(tier, hook, function) {
            Ok(()) => return Ok(function),
            Err(e) => reasons.push(e),
        }
    }
    Err(reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Answers from a table: (tier, function) -> error; everything else attaches. Records what
    /// is attached at the end, so leaks after an abandoned tier show up.
    #[derive(Default)]
    struct Fake {
        fails: HashMap<(Tier, &'static str), &'static str>,
        attached: Vec<(Tier, Hook)>,
        tried: Vec<(Tier, &'static str)>,
    }

    impl Fake {
        fn failing(list: &[(Tier, &'static str, &'static str)]) -> Self {
            Fake {
                fails: list.iter().map(|&(t, f, e)| ((t, f), e)).collect(),
                ..Default::default()
            }
        }
        fn fail_tier(tier: Tier, why: &'static str) -> Vec<(Tier, &'static str, &'static str)> {
            [
                "vfs_write",
                "vfs_writev",
                "do_iter_write",
                "vfs_fsync_range",
            ]
            .map(|f| (tier, f, why))
            .to_vec()
        }
    }

    impl HookAttacher for Fake {
        fn attach(&mut self, tier: Tier, hook: Hook, function: &'static str) -> Result<(), String> {
            self.tried.push((tier, function));
            if let Some(e) = self.fails.get(&(tier, function)) {
                return Err(format!("{function}: {e}"));
            }
            self.attached.push((tier, hook));
            Ok(())
        }
        fn detach(&mut self, tier: Tier, hook: Hook) {
            let i = self
                .attached
                .iter()
                .position(|a| *a == (tier, hook))
                .expect("detach of something attached");
            self.attached.remove(i);
        }
    }

    fn placement(s: &Selection, hook: Hook) -> Placement {
        s.hooks.iter().find(|(h, _)| *h == hook).unwrap().1
    }

    #[test]
    fn fentry_everywhere_picks_fentry() {
        let mut fake = Fake::default();
        let s = select(None, &mut fake).unwrap();
        assert_eq!(s.tier, Tier::Fentry);
        assert!(s.skipped.is_empty());
        assert_eq!(
            placement(&s, Hook::VectoredWrite),
            Placement::Function {
                tier: Tier::Fentry,
                function: "vfs_writev"
            }
        );
        assert_eq!(s.config_mask(), 7);
        assert_eq!(fake.attached.len(), 3);
    }

    #[test]
    fn this_host_lockdown_no_kprobes_picks_tracepoint() {
        let mut fails = Fake::fail_tier(
            Tier::Fentry,
            "loading fexit/vfs_write failed: Operation not permitted",
        );
        fails.extend(Fake::fail_tier(Tier::Kprobe, "no kprobe support"));
        let mut fake = Fake::failing(&fails);
        let s = select(None, &mut fake).unwrap();
        assert_eq!(s.tier, Tier::Tracepoint);
        assert_eq!(s.config_mask(), 0);
        assert_eq!(s.skipped.len(), 2);
        assert!(
            s.skipped[0].starts_with("tier fentry skipped: vfs_write: loading fexit"),
            "{:?}",
            s.skipped
        );
        assert!(
            s.skipped[1].starts_with("tier kprobe skipped:"),
            "{:?}",
            s.skipped
        );
        assert!(fake.attached.is_empty());
    }

    #[test]
    fn forced_tier_that_cannot_work_is_an_error() {
        let fails = Fake::fail_tier(Tier::Fentry, "Operation not permitted");
        let mut fake = Fake::failing(&fails);
        let e = select(Some(Tier::Fentry), &mut fake).unwrap_err();
        assert_eq!(e.tier, Tier::Fentry);
        assert_eq!(e.reason, "vfs_write: Operation not permitted");
        // Forced: kprobe was never tried.
        assert!(fake.tried.iter().all(|(t, _)| *t == Tier::Fentry));
    }

    #[test]
    fn forced_tracepoint_attaches_nothing() {
        let mut fake = Fake::default();
        let s = select(Some(Tier::Tracepoint), &mut fake).unwrap();
        assert_eq!(s.tier, Tier::Tracepoint);
        assert!(fake.tried.is_empty());
        assert!(s.hooks.iter().all(|(_, p)| *p == Placement::Syscall));
    }

    #[test]
    fn partial_tier_is_undone_before_falling_back() {
        // fexit on vfs_write loads, vfs_fsync_range does not: the vfs_write hook must go.
        let mut fake = Fake::failing(&[(Tier::Fentry, "vfs_fsync_range", "not in BTF")]);
        let s = select(None, &mut fake).unwrap();
        assert_eq!(s.tier, Tier::Kprobe);
        assert_eq!(
            s.skipped,
            vec!["tier fentry skipped: vfs_fsync_range: not in BTF".to_string()]
        );
        assert!(
            fake.attached.iter().all(|(t, _)| *t == Tier::Kprobe),
            "{:?}",
            fake.attached
        );
        assert_eq!(fake.attached.len(), 3);
    }

    #[test]
    fn optional_hook_falls_back_per_function_then_per_tier() {
        // 6.1-like: vfs_writev inlined away for fentry, do_iter_write works.
        let mut fake = Fake::failing(&[(Tier::Fentry, "vfs_writev", "not in BTF")]);
        let s = select(None, &mut fake).unwrap();
        assert_eq!(
            placement(&s, Hook::VectoredWrite),
            Placement::Function {
                tier: Tier::Fentry,
                function: "do_iter_write"
            }
        );

        // Neither works at fentry: kprobe on vfs_writev.
        let mut fake = Fake::failing(&[
            (Tier::Fentry, "vfs_writev", "x"),
            (Tier::Fentry, "do_iter_write", "y"),
        ]);
        let s = select(Some(Tier::Fentry), &mut fake).unwrap();
        assert_eq!(s.tier, Tier::Fentry);
        assert_eq!(
            placement(&s, Hook::VectoredWrite),
            Placement::Function {
                tier: Tier::Kprobe,
                function: "vfs_writev"
            }
        );
        assert_eq!(
            s.skipped,
            vec![
                "writev/pwritev/pwritev2 at tier fentry: vfs_writev: x; do_iter_write: y"
                    .to_string()
            ]
        );

        // Nowhere: the syscall tracepoints count vectored writes; the mask leaves them to sys_exit.
        let mut fails = Fake::fail_tier(Tier::Kprobe, "no");
        fails.extend([
            (Tier::Fentry, "vfs_writev", "x"),
            (Tier::Fentry, "do_iter_write", "y"),
        ]);
        let mut fake = Fake::failing(&fails);
        let s = select(None, &mut fake).unwrap();
        assert_eq!(s.tier, Tier::Fentry);
        assert_eq!(placement(&s, Hook::VectoredWrite), Placement::Syscall);
        assert_eq!(
            s.config_mask(),
            fsync_trace_common::names::FN_WRITE | fsync_trace_common::names::FN_FSYNC_RANGE
        );
    }

    #[test]
    fn kprobe_tier_never_falls_back_to_fentry() {
        let mut fake = Fake::failing(&[
            (Tier::Kprobe, "vfs_writev", "x"),
            (Tier::Kprobe, "do_iter_write", "y"),
        ]);
        let s = select(Some(Tier::Kprobe), &mut fake).unwrap();
        assert_eq!(placement(&s, Hook::VectoredWrite), Placement::Syscall);
        assert!(fake.tried.iter().all(|(t, _)| *t == Tier::Kprobe));
    }

    #[test]
    fn names_round_trip() {
        for t in Tier::ALL {
            assert_eq!(Tier::from_name(t.name()), Some(t));
        }
        assert_eq!(Tier::from_name("uprobe"), None);
    }
}
