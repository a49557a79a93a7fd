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
    })
}

/// Byte offset of `member` in `struct name`, looking inside anonymous structs and unions
/// (newer kernels wrap some members, e.g. `file.f_path`, in anonymous unions).
pub fn member_offset(btf: &Btf, name: &str, member: &str) -> Result<u32, TracerError> {
    let ids = btf.ids_named(KIND_STRUCT, &[name])?;
    btf.member_offset_in(ids.first().map_or(&[], Vec::as_slice), name, member)
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

    // Kinds used only by the hand-built blobs below.
    const KIND_INT: u32 = 1;
    const KIND_PTR: u32 = 2;

    /// Builds small BTF blobs by hand: types are appended in id order (first is id 1).
    struct Blob {
        types: Vec<u8>,
        strings: Vec<u8>,
        count: u32,
    }

    impl Blob {
        fn new() -> Self {
            Self {
                types: Vec::new(),
                strings: vec![0], // offset 0 is the empty name
                count: 0,
            }
        }

        fn name(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }

        fn words(&mut self, words: &[u32]) {
            for w in words {
                self.types.extend_from_slice(&w.to_ne_bytes());
            }
        }

        /// Appends a type record (kind-specific data must follow); returns its id.
        fn ty(&mut self, name: &str, kind: u32, flag: bool, vlen: u32, size_or_type: u32) -> u32 {
            let name = self.name(name);
            self.words(&[name, (flag as u32) << 31 | kind << 24 | vlen, size_or_type]);
            self.count += 1;
            self.count
        }

        fn int(&mut self, name: &str) -> u32 {
            let id = self.ty(name, KIND_INT, false, 0, 4);
            self.words(&[32]); // encoding: 32 bits
            id
        }

        /// A struct or union with `(name, type, offset)` members.
        fn aggregate(
            &mut self,
            kind: u32,
            name: &str,
            flag: bool,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let id = self.ty(name, kind, flag, members.len() as u32, 64);
            for &(m, ty, off) in members {
                let m = self.name(m);
                self.words(&[m, ty, off]);
            }
            id
        }

        fn func(&mut self, name: &str, ret: u32, params: &[(&str, u32)]) -> u32 {
            let proto = self.ty("", KIND_FUNC_PROTO, false, params.len() as u32, ret);
            for &(p, ty) in params {
                let p = self.name(p);
                self.words(&[p, ty]);
            }
            self.ty(name, KIND_FUNC, false, 0, proto)
        }

        fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_ne_bytes());
            out.extend_from_slice(&[1, 0]); // version, flags
            let (tl, sl) = (self.types.len() as u32, self.strings.len() as u32);
            for w in [HEADER_LEN as u32, 0, tl, tl, sl] {
                out.extend_from_slice(&w.to_ne_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }

        fn btf(&self) -> Btf {
            Btf::from_bytes(self.bytes()).expect("valid hand-built BTF")
        }
    }

    /// `struct file { int f_mode; int f_flags; const union { int a; struct { int pad;
    /// struct path inner; }; }; }` at bit offsets 0, 32, 128; the anonymous struct at 0 in the
    /// union; `inner` at 64 in it. Also a forward declaration named `file`, which is skipped.
    fn nested_blob() -> Blob {
        let mut b = Blob::new();
        let int = b.int("int");
        let ptr = b.ty("", KIND_PTR, false, 0, int);
        let path = b.aggregate(
            KIND_STRUCT,
            "path",
            false,
            &[("mnt", ptr, 0), ("dentry", ptr, 64)],
        );
        let anon_s = b.aggregate(
            KIND_STRUCT,
            "",
            false,
            &[("pad", int, 0), ("inner", path, 64)],
        );
        let anon_u = b.aggregate(KIND_UNION, "", false, &[("a", int, 0), ("", anon_s, 0)]);
        let const_u = b.ty("", KIND_CONST, false, 0, anon_u);
        b.ty("file", 7, false, 0, 0); // FWD
        b.aggregate(
            KIND_STRUCT,
            "file",
            false,
            &[("f_mode", int, 0), ("f_flags", int, 32), ("", const_u, 128)],
        );
        b
    }

    #[test]
    fn members_inside_anonymous_unions_and_structs() {
        let btf = nested_blob().btf();
        let off = |s, m| member_offset(&btf, s, m).ok();
        assert_eq!(off("path", "dentry"), Some(8));
        assert_eq!(off("file", "f_mode"), Some(0));
        assert_eq!(off("file", "f_flags"), Some(4));
        assert_eq!(off("file", "a"), Some(16), "in the anonymous union");
        assert_eq!(
            off("file", "pad"),
            Some(16),
            "in the union's anonymous struct"
        );
        assert_eq!(off("file", "inner"), Some(24), "offsets add up");
        // Members of a named member's type are not members of the outer struct.
        assert_eq!(off("file", "dentry"), None);
        let err = member_offset(&btf, "file", "f_nope").unwrap_err();
        assert!(matches!(err, TracerError::BtfMember(_)), "{err}");
        let err = member_offset(&btf, "no_struct", "x").unwrap_err();
        assert!(err.to_string().contains("struct no_struct.x"), "{err}");
    }

    #[test]
    fn kind_flag_member_offsets_are_the_low_24_bits() {
        let mut b = Blob::new();
        let int = b.int("unsigned int");
        // Bitfields: `a:3` at bit 0, `b:5` at bit 3, `c:8` at bit 40; top 8 bits = size.
        let members = [
            ("a", int, 3 << 24),
            ("b", int, 5 << 24 | 3),
            ("c", int, 8 << 24 | 40),
        ];
        b.aggregate(KIND_STRUCT, "bits", true, &members);
        // Without kind_flag all 32 bits are the offset.
        b.aggregate(KIND_STRUCT, "big", false, &[("far", int, 1 << 25)]);
        let btf = b.btf();
        assert_eq!(member_offset(&btf, "bits", "a").ok(), Some(0));
        assert_eq!(member_offset(&btf, "bits", "b").ok(), Some(0));
        assert_eq!(member_offset(&btf, "bits", "c").ok(), Some(5));
        assert_eq!(member_offset(&btf, "big", "far").ok(), Some(1 << 22));
    }

    #[test]
    fn func_params_come_from_the_func_proto() {
        let mut b = Blob::new();
        let int = b.int("int");
        b.func(
            "vfs_fsync_range",
            int,
            &[
                ("file", int),
                ("start", int),
                ("end", int),
                ("datasync", int),
            ],
        );
        b.func("printk", int, &[("fmt", int), ("", 0)]); // variadic: trailing nameless void
        b.func("no_params", int, &[]);
        b.ty("not_a_proto", KIND_FUNC, false, 0, int); // FUNC pointing at an INT
        b.ty("dangling", KIND_FUNC, false, 0, 999); // FUNC pointing at no type
        b.aggregate(KIND_STRUCT, "a_struct", false, &[]);
        let btf = b.btf();
        assert_eq!(
            fn_params(&btf, "vfs_fsync_range").unwrap(),
            ["file", "start", "end", "datasync"]
        );
        assert_eq!(fn_params(&btf, "printk").unwrap(), ["fmt", ""]);
        assert_eq!(fn_params(&btf, "no_params").unwrap(), Vec::<String>::new());
        assert_eq!(fn_params(&btf, "not_a_proto"), None);
        assert_eq!(fn_params(&btf, "dangling"), None);
        assert_eq!(
            fn_params(&btf, "a_struct"),
            None,
            "only FUNCs are functions"
        );
        assert_eq!(fn_params(&btf, "missing"), None);
    }

    fn parse_err(bytes: Vec<u8>) -> String {
        match Btf::from_bytes(bytes) {
            Err(e @ TracerError::Btf(_)) => e.to_string(),
            Err(e) => panic!("not a BTF error: {e}"),
            Ok(_) => panic!("malformed BTF accepted"),
        }
    }

    #[test]
    fn malformed_headers_and_sections_are_errors() {
        let good = nested_blob().bytes();
        let patched = |pos: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[pos..pos + bytes.len()].copy_from_slice(bytes);
            b
        };
        assert!(parse_err(Vec::new()).contains("truncated header"));
        assert!(parse_err(b"not BTF at all, just text".to_vec()).contains("magic"));
        assert!(parse_err(patched(0, &MAGIC.swap_bytes().to_ne_bytes())).contains("byte order"));
        assert!(parse_err(patched(2, &[2])).contains("version"));
        assert!(parse_err(patched(4, &8u32.to_ne_bytes())).contains("header length"));
        assert!(parse_err(patched(12, &u32::MAX.to_ne_bytes())).contains("type section"));
        assert!(parse_err(patched(16, &u32::MAX.to_ne_bytes())).contains("string section"));
        // Type section ending inside a record.
        assert!(parse_err(patched(12, &17u32.to_ne_bytes())).contains("type 2 truncated"));
        // First type (INT) claims 60000 members' worth of kind UNION: runs past the section.
        let union_info = KIND_UNION << 24 | 60000;
        assert!(
            parse_err(patched(HEADER_LEN + 4, &union_info.to_ne_bytes())).contains("runs past")
        );
        assert!(
            parse_err(patched(HEADER_LEN + 4, &(20u32 << 24).to_ne_bytes()))
                .contains("unknown kind 20")
        );
        assert!(parse_err(patched(HEADER_LEN + 4, &0u32.to_ne_bytes())).contains("unknown kind 0"));
        // Every truncation of a valid blob is an error (its header promises more bytes).
        for len in 0..good.len() {
            parse_err(good[..len].to_vec());
        }
    }

    #[test]
    fn bad_references_are_errors_not_panics() {
        // A struct whose anonymous member is itself: a cycle must not recurse forever.
        let mut b = Blob::new();
        b.aggregate(KIND_STRUCT, "loop", false, &[("", 1, 0)]);
        let e = member_offset(&b.btf(), "loop", "x").unwrap_err();
        assert!(e.to_string().contains("too deep"), "{e}");
        // A typedef chain that loops.
        let mut b = Blob::new();
        b.aggregate(KIND_STRUCT, "s", false, &[("", 2, 0)]);
        b.ty("t", KIND_TYPEDEF, false, 0, 2);
        let e = member_offset(&b.btf(), "s", "x").unwrap_err();
        assert!(e.to_string().contains("modifier chain"), "{e}");
        // An anonymous member of a type id that does not exist.
        let mut b = Blob::new();
        b.aggregate(KIND_STRUCT, "s", false, &[("", 77, 0)]);
        let e = member_offset(&b.btf(), "s", "x").unwrap_err();
        assert!(e.to_string().contains("missing type 77"), "{e}");
        // Name offsets past the string section, and a string section with no final NUL.
        let mut b = Blob::new();
        b.ty("s", KIND_STRUCT, false, 1, 8);
        b.words(&[1000, 0, 0]);
        let e = member_offset(&b.btf(), "s", "x").unwrap_err();
        assert!(e.to_string().contains("out of bounds"), "{e}");
        let mut b = Blob::new();
        b.aggregate(KIND_STRUCT, "s", false, &[]);
        b.strings.pop();
        let e = member_offset(&b.btf(), "s", "x").unwrap_err();
        assert!(e.to_string().contains("not terminated"), "{e}");
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        // Overwrite each byte of a valid blob with a few values; whatever parses is queried.
        let good = nested_blob().bytes();
        for pos in 0..good.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[pos] = v;
                if let Ok(btf) = Btf::from_bytes(bytes) {
                    let _ = member_offset(&btf, "file", "inner");
                    let _ = member_offset(&btf, "path", "dentry");
                    let _ = fn_params(&btf, "file");
                    let _ = offsets(&btf);
                }
            }
        }
    }
}
