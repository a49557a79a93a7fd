//! Kernel struct offsets and function prototypes from the running kernel's BTF, so no offsets
//! from one kernel's headers are baked into the binary.
//!
//! A deliberately small BTF reader: a general BTF library builds a type graph of the whole of
//! vmlinux (tens of MiB of heap), while the tracer needs ~30 member offsets and a few function
//! prototypes. Here the file stays raw bytes, plus one `u32` per type saying where that type
//! starts; lookups walk the bytes. Every read is bounds-checked, so malformed BTF is an error,
//! never a panic. Format: <https://docs.kernel.org/bpf/btf.html>.
use std::ops::Range;

use fsync_trace_common::KernelOffsets;

use super::TracerError;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
/// `struct btf_header`: magic, version, flags, hdr_len, type_off/len, str_off/len.
const HEADER_LEN: usize = 24;
/// `struct btf_type`: name_off, info, size-or-type; kind-specific data follows.
const TYPE_LEN: usize = 12;
/// `struct btf_member` (STRUCT/UNION): name_off, type, offset.
const MEMBER_LEN: usize = 12;
/// `struct btf_param` (FUNC_PROTO): name_off, type.
const PARAM_LEN: usize = 8;

// The kinds this reader looks into; the others are only stepped over.
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_TYPE_TAG: u32 = 18;

/// Bound on anonymous struct/union nesting and modifier chains: real kernels need a handful,
/// and a cycle in malformed BTF must not recurse forever.
const MAX_DEPTH: u32 = 32;

/// The kernel BTF, kept as its raw bytes plus an index of where each type starts.
pub struct Btf {
    data: Vec<u8>,
    /// The type and string sections, as ranges of `data`.
    types: Range<usize>,
    strings: Range<usize>,
    /// `index[id - 1]`: offset of type `id` in the type section (id 0 is `void`).
    index: Vec<u32>,
}

/// The fixed part of one type record.
struct Type {
    name_off: u32,
    kind: u32,
    kind_flag: bool,
    vlen: usize,
    /// `size` for STRUCT/UNION, the referred type for FUNC, PTR, TYPEDEF, modifiers, ...
    size_or_type: u32,
    /// Where the kind-specific data (members, params, ...) starts in `data`.
    body: usize,
}

fn malformed(what: impl std::fmt::Display) -> TracerError {
    TracerError::Btf(what.to_string())
}

impl Btf {
    /// Validates the header and indexes the type section of BTF `data` (native byte order, as
    /// the kernel exports it).
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, TracerError> {
        let u32_at = |pos: usize| read_u32(&data, pos);
        let magic = data
            .get(0..2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .ok_or_else(|| malformed("truncated header"))?;
        if magic == MAGIC.swap_bytes() {
            return Err(malformed("BTF of the other byte order"));
        }
        if magic != MAGIC {
            return Err(malformed(format!("bad magic {magic:#06x}")));
        }
        match data.get(2) {
            Some(1) => {}
            v => return Err(malformed(format!("unsupported version {v:?}"))),
        }
        let hdr_len = u32_at(4)? as usize;
        if hdr_len < HEADER_LEN || hdr_len > data.len() {
            return Err(malformed(format!("bad header length {hdr_len}")));
        }
        // Section offsets count from the end of the header.
        let section = |off_pos: usize, what: &str| -> Result<Range<usize>, TracerError> {
            let start = hdr_len.checked_add(u32_at(off_pos)? as usize);
            let end = start.and_then(|s| s.checked_add(u32_at(off_pos + 4).ok()? as usize));
            match (start, end) {
                (Some(s), Some(e)) if e <= data.len() => Ok(s..e),
                _ => Err(malformed(format!("{what} section out of bounds"))),
            }
        };
        let types = section(8, "type")?;
        let strings = section(16, "string")?;

        // One pass over the type section: each record's length follows from its kind and vlen.
        let mut index = Vec::new();
        let mut pos = types.start;
        while pos < types.end {
            let id = index.len() + 1;
            if types.end - pos < TYPE_LEN {
                return Err(malformed(format!("type {id} truncated")));
            }
            let info = u32_at(pos + 4)?;
            let (kind, vlen) = (info_kind(info), info_vlen(info));
            let extra = match kind {
                1 => 4,                     // INT: encoding
                3 => 12,                    // ARRAY: btf_array
                4 | 5 => MEMBER_LEN * vlen, // STRUCT, UNION: members
                6 => 8 * vlen,              // ENUM: btf_enum
                13 => PARAM_LEN * vlen,     // FUNC_PROTO: params
                14 => 4,                    // VAR: linkage
                15 => 12 * vlen,            // DATASEC: btf_var_secinfo
                17 => 4,                    // DECL_TAG: component_idx
                19 => 12 * vlen,            // ENUM64: btf_enum64
                2 | 7..=12 | 16 | 18 => 0,  // PTR, FWD, TYPEDEF, modifiers, FUNC, FLOAT, TYPE_TAG
                _ => return Err(malformed(format!("type {id} has unknown kind {kind}"))),
            };
            let end = pos + TYPE_LEN + extra; // cannot overflow: both terms are small
            if end > types.end {
                return Err(malformed(format!("type {id} runs past the type section")));
            }
            // The type section is below 4 GiB (its length is a u32), so its offsets fit too.
            index.push((pos - types.start) as u32);
            pos = end;
        }
        index.shrink_to_fit();
        Ok(Self {
            data,
            types,
            strings,
            index,
        })
    }

    fn u32_at(&self, pos: usize) -> Result<u32, TracerError> {
        read_u32(&self.data, pos)
    }

    /// Type `id`, which the index guarantees lies entirely inside the type section.
    fn ty(&self, id: u32) -> Result<Type, TracerError> {
        let off = id
            .checked_sub(1)
            .and_then(|i| self.index.get(i as usize))
            .ok_or_else(|| malformed(format!("reference to missing type {id}")))?;
        let pos = self.types.start + *off as usize;
        let info = self.u32_at(pos + 4)?;
        Ok(Type {
            name_off: self.u32_at(pos)?,
            kind: info_kind(info),
            kind_flag: info >> 31 == 1,
            vlen: info_vlen(info),
            size_or_type: self.u32_at(pos + 8)?,
            body: pos + TYPE_LEN,
        })
    }

    /// The NUL-terminated string at `off` in the string section (empty for anonymous).
    fn name(&self, off: u32) -> Result<&[u8], TracerError> {
        let start = self.strings.start.saturating_add(off as usize);
        let rest = self
            .data
            .get(start..self.strings.end)
            .ok_or_else(|| malformed(format!("name offset {off} out of bounds")))?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(format!("name at {off} not terminated")))?;
        Ok(&rest[..len])
    }

    /// Ids of the types of `kind` named `names[i]`, for each `i`, in one scan of all types.
    fn ids_named(&self, kind: u32, names: &[&str]) -> Result<Vec<Vec<u32>>, TracerError> {
        let mut found = vec![Vec::new(); names.len()];
        for id in 1..=self.index.len() as u32 {
            let t = self.ty(id)?;
            if t.kind != kind {
                continue;
            }
            let name = self.name(t.name_off)?;
            for (wanted, ids) in names.iter().zip(found.iter_mut()) {
                if name == wanted.as_bytes() {
                    ids.push(id);
                }
            }
        }
        Ok(found)
    }

    /// Follows typedefs and const/volatile/restrict/type-tag modifiers to the underlying type.
    fn strip_modifiers(&self, mut id: u32) -> Result<Option<Type>, TracerError> {
        for _ in 0..MAX_DEPTH {
            if id == 0 {
                return Ok(None); // void
            }
            let t = self.ty(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Ok(Some(t)),
            }
        }
        Err(malformed(format!("modifier chain too long at type {id}")))
    }

    /// Bit offset of `member` in struct/union `t`, looking inside anonymous members.
    fn member_bits(&self, t: &Type, member: &str, depth: u32) -> Result<Option<u32>, TracerError> {
        if depth > MAX_DEPTH {
            return Err(malformed("anonymous members nested too deep"));
        }
        for i in 0..t.vlen {
            let m = t.body + i * MEMBER_LEN;
            let name = self.name(self.u32_at(m)?)?;
            let offset = self.u32_at(m + 8)?;
            // With kind_flag, the top 8 bits are the bitfield size and the rest the offset.
            let bits = if t.kind_flag {
                offset & 0xff_ffff
            } else {
                offset
            };
            if !name.is_empty() {
                if name == member.as_bytes() {
                    return Ok(Some(bits));
                }
                continue;
            }
            // Anonymous struct or union: its members are members of `t`, shifted by `bits`.
            let inner = match self.strip_modifiers(self.u32_at(m + 4)?)? {
                Some(inner) if matches!(inner.kind, KIND_STRUCT | KIND_UNION) => inner,
                _ => continue,
            };
            if let Some(off) = self.member_bits(&inner, member, depth + 1)? {
                return bits
                    .checked_add(off)
                    .map(Some)
                    .ok_or_else(|| malformed("member offset overflows"));
            }
        }
        Ok(None)
    }

    /// Byte offset of `member` in the first struct among `ids` that has it.
    fn member_offset_in(&self, ids: &[u32], name: &str, member: &str) -> Result<u32, TracerError> {
        for &id in ids {
            if let Some(bits) = self.member_bits(&self.ty(id)?, member, 0)? {
                return Ok(bits / 8);
            }
        }
        Err(TracerError::BtfMember(format!("struct {name}.{member}")))
    }

    /// Value of enumerator `name` in the 32-bit enum named `enum_name` (None if absent).
    fn enum_value(&self, enum_name: &str, name: &str) -> Result<Option<u32>, TracerError> {
        let ids = self.ids_named(KIND_ENUM, &[enum_name])?;
        for &id in ids.first().map_or(&[][..], Vec::as_slice) {
            let t = self.ty(id)?;
            for i in 0..t.vlen {
                let m = t.body + i * 8; // btf_enum: name_off, val
                if self.name(self.u32_at(m)?)? == name.as_bytes() {
                    return Ok(Some(self.u32_at(m + 4)?));
                }
            }
        }
        Ok(None)
    }

    /// Parameter names of FUNC type `id`, via its FUNC_PROTO.
    fn params(&self, id: u32) -> Result<Option<Vec<String>>, TracerError> {
        let proto = self.ty(self.ty(id)?.size_or_type)?;
        if proto.kind != KIND_FUNC_PROTO {
            return Ok(None);
        }
        (0..proto.vlen)
            .map(|i| {
                let name = self.name(self.u32_at(proto.body + i * PARAM_LEN)?)?;
                Ok(String::from_utf8_lossy(name).into_owned())
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

fn info_kind(info: u32) -> u32 {
    (info >> 24) & 0x1f
}

fn info_vlen(info: u32) -> usize {
    (info & 0xffff) as usize
}

fn read_u32(data: &[u8], pos: usize) -> Result<u32, TracerError> {
    pos.checked_add(4)
        .and_then(|end| data.get(pos..end))
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| malformed(format!("read past the end at {pos}")))
}

/// Reads the offsets the eBPF programs need from `path` (normally [`VMLINUX_BTF`]).
#[cfg(test)]
pub fn kernel_offsets(path: &str) -> Result<KernelOffsets, TracerError> {
    offsets(&open(path)?)
}

/// Reads the kernel BTF at `path`; a missing file is the clear "no BTF" error every tier needs.
pub fn open(path: &str) -> Result<Btf, TracerError> {
    let data = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TracerError::NoBtf(path.to_string()),
        _ => TracerError::BtfRead {
            path: path.to_string(),
            source: e,
        },
    })?;
    Btf::from_bytes(data).map_err(|e| match e {
        TracerError::Btf(msg) => TracerError::Btf(format!("{path}: {msg}")),
        e => e,
    })
}

/// Parameter names of kernel function `name`, or None if this kernel's BTF has no such
/// function (never existed, renamed, or inlined everywhere). Function hooks read arguments by
/// position; this is how their positions are checked on each kernel.
pub fn fn_params(btf: &Btf, name: &str) -> Option<Vec<String>> {
    let ids = btf.ids_named(KIND_FUNC, &[name]).ok()?;
    ids.first()?
        .iter()
        .find_map(|&id| btf.params(id).ok().flatten())
}

/// BTF type id of kernel function `name` (what fentry/fexit programs attach to).
pub fn func_id(btf: &Btf, name: &str) -> Option<u32> {
    btf.ids_named(KIND_FUNC, &[name])
        .ok()?
        .first()?
        .first()
        .copied()
}

/// The kernel offsets the eBPF programs need, from parsed BTF.
pub fn offsets(btf: &Btf) -> Result<KernelOffsets, TracerError> {
    // Find all the structs below in one scan of the types rather than one scan per member.
    const STRUCTS: &[&str] = &[
        "task_struct",
        "signal_struct",
        "files_struct",
        "fdtable",
        "file",
        "path",
        "inode",
        "super_block",
        "dentry",
        "fs_struct",
        "mount",
        "vfsmount",
        "address_space",
        "request",
        "request_queue",
        "gendisk",
        "block_device",
    ];
    let ids = btf.ids_named(KIND_STRUCT, STRUCTS)?;
    let o = |s: &str, m: &str| match STRUCTS
        .iter()
        .position(|&n| n == s)
        .and_then(|i| ids.get(i))
    {
        Some(ids) => btf.member_offset_in(ids, s, m),
        None => member_offset(btf, s, m), // not listed above: scan for it
    };
    // The block hook is optional: without these (a kernel without the block layer, or a
    // renamed member) device flushes are not counted, and the report says so.
    let block = || -> Result<[u32; 6], TracerError> {
        let fua_bit = btf
            .enum_value("req_flag_bits", "__REQ_FUA")?
            .filter(|&b| b < 32)
            .ok_or_else(|| TracerError::BtfMember("enum req_flag_bits.__REQ_FUA".into()))?;
        Ok([
            o("request", "cmd_flags")?,
            o("request", "q")?,
            o("request_queue", "disk")?,
            o("gendisk", "part0")?,
            o("block_device", "bd_dev")?,
            1 << fua_bit,
        ])
    };
    let (block, block_ready) = match block() {
        Ok(b) => (b, 1),
        Err(_) => ([0; 6], 0),
    };
    let [request_cmd_flags, request_q, queue_disk, gendisk_part0, bdev_bd_dev, req_fua] = block;
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
        inode_i_generation: o("inode", "i_generation")?,
        inode_i_nlink: o("inode", "__i_nlink")?,
        ready: 1,
        request_cmd_flags,
        request_q,
        queue_disk,
        gendisk_part0,
        bdev_bd_dev,
        req_fua,
        block_ready,
        file_f_pos: o("file", "f_pos")?,
        inode_i_size: o("inode", "i_size")?,
        req_ki_pos: uring_pos(btf),
        ..uring_offsets(btf).unwrap_or_default()
    })
}

/// The io_uring offsets of [`KernelOffsets`] (the rest default), or None on a kernel without
/// io_uring (or with a request layout these programs do not know): its programs are then not
/// attached.
fn uring_offsets(btf: &Btf) -> Option<KernelOffsets> {
    let o = |s: &str, m: &str| member_offset(btf, s, m).ok();
    let cqe = o("io_kiocb", "cqe")?;
    Some(KernelOffsets {
        req_opcode: o("io_kiocb", "opcode")?,
        req_flags: o("io_kiocb", "flags")?,
        req_file: o("io_kiocb", "file")?,
        req_ctx: o("io_kiocb", "ctx")?,
        req_res: cqe + o("io_cqe", "res")?,
        req_fd: cqe + o("io_cqe", "fd")?,
        sync_flags: o("io_sync", "flags")?,
        sync_off: o("io_sync", "off")?,
        sync_len: o("io_sync", "len")?,
        open_file_slot: o("io_open", "file_slot")?,
        open_how: o("io_open", "how")?,
        ren_old_dfd: o("io_rename", "old_dfd")?,
        ren_new_dfd: o("io_rename", "new_dfd")?,
        ren_oldpath: o("io_rename", "oldpath")?,
        ren_newpath: o("io_rename", "newpath")?,
        ren_flags: o("io_rename", "flags")?,
        unlink_dfd: o("io_unlink", "dfd")?,
        unlink_flags: o("io_unlink", "flags")?,
        unlink_filename: o("io_unlink", "filename")?,
        mkdir_dfd: o("io_mkdir", "dfd")?,
        mkdir_filename: o("io_mkdir", "filename")?,
        link_old_dfd: o("io_link", "old_dfd")?,
        link_new_dfd: o("io_link", "new_dfd")?,
        link_oldpath: o("io_link", "oldpath")?,
        link_newpath: o("io_link", "newpath")?,
        link_flags: o("io_link", "flags")?,
        uring_ready: 1,
        ..KernelOffsets::default()
    })
}

/// `io_rw.kiocb.ki_pos` inside `io_kiocb` (its `cmd` area holds the `io_rw` of a read or
/// write), or 0 where this kernel's BTF does not describe it.
fn uring_pos(btf: &Btf) -> u32 {
    let o = |s: &str, m: &str| member_offset(btf, s, m).ok();
    let pos = || Some(o("io_kiocb", "cmd")? + o("io_rw", "kiocb")? + o("kiocb", "ki_pos")?);
    pos().unwrap_or(0)
}

/// Byte offset of `member` in `struct name`, looking inside anonymous structs and unions
/// (newer kernels wrap some members, e.g. `file.f_path`, in anonymous unions).
pub fn member_offset(btf: &Btf, name: &str, member: &str) -> Result<u32, TracerError> {
    let ids = btf.ids_named(KIND_STRUCT, &[name])?;
    btf.member_offset_in(ids.first().map_or(&[], Vec::as_slice), name, member)
}

#[cfg(test)]
mod tests;
