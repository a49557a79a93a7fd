//! Kernel struct offsets from the running kernel's BTF, so no offsets from one kernel's headers
//! are baked into the binary.
use btf_rs::{Btf, Type};
use fsync_trace_common::KernelOffsets;

use super::TracerError;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Reads the offsets the eBPF programs need from `path` (normally [`VMLINUX_BTF`]).
#[cfg(test)]
pub fn kernel_offsets(path: &str) -> Result<KernelOffsets, TracerError> {
    offsets(&open(path)?)
}

/// Parses the kernel BTF at `path`; a missing file is the clear "no BTF" error every tier needs.
pub fn open(path: &str) -> Result<Btf, TracerError> {
    if !std::path::Path::new(path).exists() {
        return Err(TracerError::NoBtf(path.to_string()));
    }
    Btf::from_file(path).map_err(|e| TracerError::Btf(format!("{path}: {e}")))
}

/// Parameter names of kernel function `name`, or None if this kernel's BTF has no such
/// function (never existed, renamed, or inlined everywhere). Function hooks read arguments by
/// position; this is how their positions are checked on each kernel.
pub fn fn_params(btf: &Btf, name: &str) -> Option<Vec<String>> {
    let types = btf.resolve_types_by_name(name).ok()?;
    types.into_iter().find_map(|t| match t {
        Type::Func(func) => match btf.resolve_chained_type(&func).ok()? {
            Type::FuncProto(proto) => Some(
                proto
                    .parameters
                    .iter()
                    .map(|p| btf.resolve_name(p).unwrap_or_default())
                    .collect(),
            ),
            _ => None,
        },
        _ => None,
    })
}

/// The kernel offsets the eBPF programs need, from parsed BTF.
pub fn offsets(btf: &Btf) -> Result<KernelOffsets, TracerError> {
    let o = |s: &str, m: &str| member_offset(btf, s, m);
    Ok(KernelOffsets {
        task_pid: o("task_struct", "pid")?,
        task_tgid: o("task_struct", "tgid")?,
        task_files: o("task_struct", "files")?,
        task_fs: o("task_struct", "fs")?,
        task_signal: o("task_struct", "signal")?,
        signal_live: o("signal_struct", "live")?,
        files_fdt: o("files_struct", "fdt")?,
        fdt_max_fds: o("fdtable", "max_fds")?,
        fdt_fd: o("fdtable", "fd")?,
        file_f_mode: o("file", "f_mode")?,
        file_f_flags: o("file", "f_flags")?,
        file_f_inode: o("file", "f_inode")?,
        file_f_path: o("file", "f_path")?,
        path_mnt: o("path", "mnt")?,
        path_dentry: o("path", "dentry")?,
        inode_i_mode: o("inode", "i_mode")?,
        inode_i_ino: o("inode", "i_ino")?,
        inode_i_sb: o("inode", "i_sb")?,
        sb_s_dev: o("super_block", "s_dev")?,
        sb_s_magic: o("super_block", "s_magic")?,
        dentry_d_parent: o("dentry", "d_parent")?,
        dentry_d_name: o("dentry", "d_name")?,
        dentry_d_inode: o("dentry", "d_inode")?,
        fs_pwd: o("fs_struct", "pwd")?,
        mount_mnt: o("mount", "mnt")?,
        mount_mnt_parent: o("mount", "mnt_parent")?,
        mount_mnt_mountpoint: o("mount", "mnt_mountpoint")?,
        vfsmount_mnt_root: o("vfsmount", "mnt_root")?,
        mapping_host: o("address_space", "host")?,
        task_flags: o("task_struct", "flags")?,
        ready: 1,
    })
}

/// Byte offset of `member` in `struct name`, looking inside anonymous structs and unions
/// (newer kernels wrap some members, e.g. `file.f_path`, in anonymous unions).
pub fn member_offset(btf: &Btf, name: &str, member: &str) -> Result<u32, TracerError> {
    let missing = || TracerError::BtfMember(format!("struct {name}.{member}"));
    let types = btf.resolve_types_by_name(name).map_err(|_| missing())?;
    for t in types {
        if let Type::Struct(s) = t {
            if let Some(bits) = find_member(btf, &s, member) {
                return Ok(bits / 8);
            }
        }
    }
    Err(missing())
}

fn find_member(btf: &Btf, s: &btf_rs::Struct, member: &str) -> Option<u32> {
    for m in &s.members {
        let mname = btf.resolve_name(m).unwrap_or_default();
        if mname == member {
            return Some(m.bit_offset());
        }
        if mname.is_empty() {
            if let Ok(Type::Struct(inner) | Type::Union(inner)) = btf.resolve_chained_type(m) {
                if let Some(off) = find_member(btf, &inner, member) {
                    return Some(m.bit_offset() + off);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_btf_is_a_clear_error() {
        let err = kernel_offsets("/nonexistent/vmlinux").unwrap_err();
        assert!(err.to_string().contains("BTF"), "{err}");
    }

    #[test]
    fn offsets_from_this_kernel_are_plausible() {
        // Every CI machine of this kind has BTF; the test is meaningful without root.
        let o = kernel_offsets(VMLINUX_BTF).expect("BTF of the running kernel");
        assert_eq!(o.path_mnt, 0, "struct path starts with mnt");
        assert_eq!(o.path_dentry, 8);
        assert!(o.task_files > 0 && o.file_f_inode > 0 && o.mount_mnt > 0);
        assert_ne!(o.task_pid, o.task_tgid);
    }

    #[test]
    fn hooked_functions_have_the_expected_prototypes_here() {
        let btf = open(VMLINUX_BTF).expect("BTF of the running kernel");
        let p = fn_params(&btf, "vfs_fsync_range").expect("vfs_fsync_range in BTF");
        assert_eq!(p, ["file", "start", "end", "datasync"]);
        assert_eq!(fn_params(&btf, "vfs_write").expect("vfs_write")[0], "file");
        assert_eq!(fn_params(&btf, "no_such_function_in_any_kernel"), None);
    }
}
