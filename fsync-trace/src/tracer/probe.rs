//! Can this kernel load an fentry/fexit program at all? Asked with the smallest real program
//! (`r0 = 0; exit`) loaded through the raw `bpf(2)` syscall, before aya parses the whole kernel
//! BTF for the real programs: where fentry is refused (kernel lockdown, no trampolines) that
//! parse would cost tens of MiB of peak memory for nothing.
use std::os::fd::{FromRawFd, OwnedFd};

/// `union bpf_attr` for BPF_PROG_LOAD, up to `attach_btf_obj_fd` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    core_relo_cnt: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_TRACING: u32 = 26;
pub const BPF_TRACE_FENTRY: u32 = 24;
pub const BPF_TRACE_FEXIT: u32 = 25;

/// Loads (and immediately unloads) a do-nothing tracing program of `attach_type`
/// ([`BPF_TRACE_FENTRY`] or [`BPF_TRACE_FEXIT`]) on the vmlinux function with BTF type id
/// `func_btf_id`. The error is the kernel's errno.
pub fn load_tracing_program(attach_type: u32, func_btf_id: u32) -> std::io::Result<()> {
    // r0 = 0; exit
    let insns: [u64; 2] = [u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]), 0x95];
    let license = b"GPL\0";
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_TRACING,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: attach_type,
        attach_btf_id: func_btf_id,
        ..Default::default()
    };
    // SAFETY: `attr` is a valid BPF_PROG_LOAD attribute block that outlives the call, and the
    // pointers in it (instructions, license) point at live locals.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>() as u32,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    Ok(())
}
