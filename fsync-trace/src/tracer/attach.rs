//! The real [`HookAttacher`]: loads and attaches the programs of one function-level hook, and
//! says in one line why it could not.
use std::path::Path;

use aya::{
    programs::{FEntry, FExit, KProbe, Program, ProgramError},
    Btf as AyaBtf, Ebpf,
};
use fsync_trace_common::names;

use super::{
    btf::{fn_params, func_id, Btf},
    probe,
    tier::{Hook, HookAttacher, Tier},
};

#[derive(Clone, Copy, Debug)]
enum Kind {
    FEntry,
    FExit,
    KProbe,
    KRetProbe,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::FEntry => "fentry",
            Kind::FExit => "fexit",
            Kind::KProbe => "kprobe",
            Kind::KRetProbe => "kretprobe",
        }
    }
}

/// The programs of `hook` at function-level `tier`, attached in this order. Writes need no
/// fentry program: fexit sees the arguments and the return value together.
fn programs(tier: Tier, hook: Hook) -> &'static [(&'static str, Kind)] {
    use Kind::*;
    match (tier, hook) {
        (Tier::Fentry, Hook::Write) => &[(names::PROG_FEXIT_WRITE, FExit)],
        (Tier::Fentry, Hook::VectoredWrite) => &[(names::PROG_FEXIT_VECTORED_WRITE, FExit)],
        (Tier::Fentry, Hook::FsyncRange) => &[
            (names::PROG_FENTRY_FSYNC_RANGE, FEntry),
            (names::PROG_FEXIT_FSYNC_RANGE, FExit),
        ],
        (Tier::Kprobe, Hook::Write) => &[
            (names::PROG_KPROBE_WRITE, KProbe),
            (names::PROG_KRETPROBE_WRITE, KRetProbe),
        ],
        (Tier::Kprobe, Hook::VectoredWrite) => &[
            (names::PROG_KPROBE_VECTORED_WRITE, KProbe),
            (names::PROG_KRETPROBE_VECTORED_WRITE, KRetProbe),
        ],
        (Tier::Kprobe, Hook::FsyncRange) => &[
            (names::PROG_KPROBE_FSYNC_RANGE, KProbe),
            (names::PROG_KRETPROBE_FSYNC_RANGE, KRetProbe),
        ],
        (Tier::Tracepoint, _) => &[],
    }
}

/// Arguments the programs of `hook` read, by position, as the kernel's prototype names them
/// (the kprobe programs read them from the x86_64 argument registers by position).
fn expected_args(hook: Hook, function: &str) -> &'static [(usize, &'static str)] {
    match hook {
        // `pos`: where the write ended (the dirty extent); do_iter_write has no `vlen`.
        Hook::VectoredWrite if function == "do_iter_write" => &[(0, "file"), (2, "pos")],
        Hook::Write | Hook::VectoredWrite => &[(0, "file"), (3, "pos")],
        Hook::FsyncRange => &[(0, "file"), (3, "datasync")],
    }
}

/// Checks `function`'s prototype in this kernel's BTF against what the programs read.
pub fn check_prototype(btf: &Btf, hook: Hook, function: &str) -> Result<(), String> {
    let params = fn_params(btf, function)
        .ok_or_else(|| format!("{function} is not a function in this kernel's BTF"))?;
    for &(i, name) in expected_args(hook, function) {
        if params.get(i).map(String::as_str) != Some(name) {
            return Err(format!(
                "{function}({}) does not have `{name}` as argument {}",
                params.join(", "),
                i + 1
            ));
        }
    }
    Ok(())
}

const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";

pub struct ProgramAttacher<'a> {
    ebpf: &'a mut Ebpf,
    btf: &'a Btf,
    /// aya's view of the kernel BTF (fentry/fexit attach targets), parsed on first use.
    aya_btf: Option<Result<AyaBtf, String>>,
}

impl<'a> ProgramAttacher<'a> {
    pub fn new(ebpf: &'a mut Ebpf, btf: &'a Btf) -> Self {
        Self {
            ebpf,
            btf,
            aya_btf: None,
        }
    }

    fn attach_one(&mut self, name: &str, kind: Kind, function: &str) -> Result<(), String> {
        let what = |verb: &str, e: &ProgramError| {
            format!("{verb} {}/{function} failed: {}", kind.label(), explain(e))
        };
        let program = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| format!("program {name} is missing from the eBPF object"))?;
        match kind {
            Kind::FEntry | Kind::FExit => {
                // A do-nothing program first: where fentry cannot load at all, this avoids
                // aya's parse of the whole kernel BTF (see `probe`).
                let attach_type = match kind {
                    Kind::FEntry => probe::BPF_TRACE_FENTRY,
                    _ => probe::BPF_TRACE_FEXIT,
                };
                let id = func_id(self.btf, function)
                    .ok_or_else(|| format!("{function} is not a function in this kernel's BTF"))?;
                probe::load_tracing_program(attach_type, id).map_err(|e| {
                    format!(
                        "loading {}/{function} failed: {}",
                        kind.label(),
                        errno_text(&e)
                    )
                })?;
                let btf = self
                    .aya_btf
                    .get_or_insert_with(|| {
                        AyaBtf::from_sys_fs().map_err(|e| {
                            format!(
                                "{} needs the kernel's BTF (/sys/kernel/btf/vmlinux): {e}",
                                kind.label()
                            )
                        })
                    })
                    .as_ref()
                    .map_err(Clone::clone)?;
                if let Kind::FEntry = kind {
                    let p: &mut FEntry = program.try_into().map_err(|e| what("loading", &e))?;
                    p.load(function, btf).map_err(|e| what("loading", &e))?;
                    p.attach().map_err(|e| what("attaching", &e))?;
                } else {
                    let p: &mut FExit = program.try_into().map_err(|e| what("loading", &e))?;
                    p.load(function, btf).map_err(|e| what("loading", &e))?;
                    p.attach().map_err(|e| what("attaching", &e))?;
                }
            }
            Kind::KProbe | Kind::KRetProbe => {
                if !Path::new(KPROBE_PMU).exists() {
                    return Err(format!(
                        "attaching {}/{function} failed: this kernel has no kprobe support ({KPROBE_PMU} is missing: CONFIG_KPROBES is off)",
                        kind.label()
                    ));
                }
                let p: &mut KProbe = program.try_into().map_err(|e| what("loading", &e))?;
                p.load().map_err(|e| what("loading", &e))?;
                p.attach(function, 0).map_err(|e| what("attaching", &e))?;
            }
        }
        log::debug!("attached {name} as {}/{function}", kind.label());
        Ok(())
    }

    /// Detaches and unloads `name` if it is loaded (so it can be loaded again for another
    /// function: fentry programs are bound to their target at load time).
    fn unload(&mut self, name: &str) {
        let Some(program) = self.ebpf.program_mut(name) else {
            return;
        };
        let _ = match program {
            Program::FEntry(p) => p.unload(),
            Program::FExit(p) => p.unload(),
            Program::KProbe(p) => p.unload(),
            _ => Ok(()),
        };
    }
}

impl HookAttacher for ProgramAttacher<'_> {
    fn attach(&mut self, tier: Tier, hook: Hook, function: &'static str) -> Result<(), String> {
        check_prototype(self.btf, hook, function)?;
        let programs = programs(tier, hook);
        for (i, &(name, kind)) in programs.iter().enumerate() {
            if let Err(e) = self.attach_one(name, kind, function) {
                for &(done, _) in &programs[..=i] {
                    self.unload(done);
                }
                log::debug!("{tier} {hook:?} on {function}: {e}");
                return Err(e);
            }
        }
        Ok(())
    }

    fn detach(&mut self, tier: Tier, hook: Hook) {
        for &(name, _) in programs(tier, hook) {
            self.unload(name);
        }
    }
}

/// The cause of a load/attach failure in a few words: the errno text, or the verifier's verdict
/// (its full log goes to the debug log).
fn explain(e: &ProgramError) -> String {
    if let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = e
    {
        let log = verifier_log.to_string();
        if io_error.raw_os_error() != Some(libc::EPERM) && !log.trim().is_empty() {
            log::debug!("verifier log:\n{log}");
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return format!(
                "rejected by the verifier ({}): {last}",
                errno_text(io_error)
            );
        }
        return errno_text(io_error);
    }
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return format!("{e}: {}", errno_text(io));
        }
        src = s.source();
    }
    e.to_string()
}

/// "Operation not permitted", without the "(os error 1)" tail.
fn errno_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_tier_hook_has_programs() {
        for tier in [Tier::Fentry, Tier::Kprobe] {
            for hook in Hook::ALL {
                assert!(!programs(tier, hook).is_empty(), "{tier} {hook:?}");
            }
        }
    }

    #[test]
    fn prototypes_of_this_kernel() {
        let btf = super::super::btf::open(super::super::VMLINUX_BTF).expect("BTF");
        assert_eq!(check_prototype(&btf, Hook::Write, "vfs_write"), Ok(()));
        assert_eq!(
            check_prototype(&btf, Hook::FsyncRange, "vfs_fsync_range"),
            Ok(())
        );
        let e =
            check_prototype(&btf, Hook::VectoredWrite, "surely_not_a_kernel_function").unwrap_err();
        assert!(e.contains("not a function in this kernel's BTF"), "{e}");
        // vfs_fsync_range's first argument is the file, but its 4th is not named `file`.
        let e = check_prototype(&btf, Hook::FsyncRange, "vfs_write").unwrap_err();
        assert!(e.contains("datasync"), "{e}");
    }

    #[test]
    fn errno_text_drops_the_os_error_tail() {
        assert_eq!(
            errno_text(&std::io::Error::from_raw_os_error(libc::EPERM)),
            "Operation not permitted"
        );
    }
}
