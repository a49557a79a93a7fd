//! The BTF reader against hand-built BTF blobs and this machine's kernel BTF.
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
    // struct request starts with its queue pointer; REQ_FUA is above the 8 op bits.
    assert_eq!(o.block_ready, 1);
    assert!(o.request_cmd_flags > 0 && o.queue_disk > 0 && o.gendisk_part0 > 0);
    assert!(o.req_fua >= 1 << 8, "req_fua {:#x}", o.req_fua);
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
    assert!(parse_err(patched(HEADER_LEN + 4, &union_info.to_ne_bytes())).contains("runs past"));
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
