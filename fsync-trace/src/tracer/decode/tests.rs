//! Tests of the decoder: each record kind from bytes as the kernel lays them out.
use super::*;
use fsync_trace_common::{FileKey, PATH_SLACK};

fn as_bytes<T>(v: &T) -> Vec<u8> {
    let p = v as *const T as *const u8;
    unsafe { std::slice::from_raw_parts(p, std::mem::size_of::<T>()) }.to_vec()
}

fn header(kind: RecordKind) -> RecordHeader {
    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"demo");
    RecordHeader {
        kind: kind as u32,
        tgid: 42,
        tid: 43,
        stack: 0,
        ts_ns: 1000,
        comm,
        cgroup_id: 77,
    }
}

#[test]
fn a_dirty_record_of_a_truncate_or_fallocate_is_a_change() {
    let file = FileKey {
        dev: 7,
        gen: 0,
        ino: 9,
    };
    for (source, change) in [
        (DIRTY_BY_TRUNCATE, Change::Truncate),
        (DIRTY_BY_FALLOCATE, Change::Fallocate),
        (DIRTY_BY_METADATA, Change::Metadata),
    ] {
        let r = DirtyRecord {
            hdr: header(RecordKind::Dirty),
            file,
            writes_before: 3,
            bytes_before: 300,
            mapped_pages_before: 1,
            source,
            fd: 5,
            slot: 11,
            _pad: 0,
            prev_extent_lo: 10,
            prev_extent_hi: 20,
        };
        assert_eq!(
            decode(&as_bytes(&r)).unwrap().kind,
            EventKind::Dirty {
                file,
                cause: DirtyCause::Change(change),
                writes_before: 3,
                bytes_before: 300,
                pages_before: 1,
                fd: 5,
                slot: 11,
                prev_extent: Extent::Range { lo: 10, hi: 20 },
            }
        );
    }
}

#[test]
fn decodes_a_truncate_by_path() {
    // SAFETY: all-zero bytes are a valid record (plain integers and arrays).
    let mut r: Box<TruncatePathRecord> = Box::new(unsafe { std::mem::zeroed() });
    r.hdr = header(RecordKind::TruncatePath);
    r.length = 10;
    r.name[..5].copy_from_slice(b"p.dat");
    let cwd = b"/var/tmp";
    r.base.path[PATH_BUF - cwd.len()..PATH_BUF].copy_from_slice(cwd);
    r.base.path_start = (PATH_BUF - cwd.len()) as u32;
    r.base.dir = FileKey {
        dev: 7,
        gen: 1,
        ino: 2,
    };
    r.base.fs_magic = 0xEF53; // ext4
    let e = decode(&as_bytes(&*r)).unwrap();
    assert_eq!(
        e.kind,
        EventKind::TruncatePath {
            path: NameRef {
                base_dir: r.base.dir,
                base_path: "/var/tmp".into(),
                base_durable: true,
                name: "p.dat".into(),
            },
            length: 10,
        }
    );
}

#[test]
fn decodes_a_dirty_record() {
    let r = DirtyRecord {
        hdr: header(RecordKind::Dirty),
        file: FileKey {
            dev: 7,
            gen: 0,
            ino: 9,
        },
        writes_before: 3,
        bytes_before: 300,
        mapped_pages_before: 0,
        source: 0,
        fd: 5,
        slot: 11,
        _pad: 0,
        prev_extent_lo: 4096,
        prev_extent_hi: 8192,
    };
    let e = decode(&as_bytes(&r)).unwrap();
    assert_eq!(e.ts, 1000);
    assert_eq!(cgroup_id(&as_bytes(&r)), 77);
    assert_eq!(cgroup_id(&[0; 8]), 0, "too short: none");
    assert_eq!(
        e.actor,
        Actor {
            pid: 42,
            tid: 43,
            comm: "demo".into(),
            stack: None,
        }
    );
    assert_eq!(
        e.kind,
        EventKind::Dirty {
            file: FileKey {
                dev: 7,
                gen: 0,
                ino: 9
            },
            writes_before: 3,
            bytes_before: 300,
            pages_before: 0,
            cause: DirtyCause::Write,
            fd: 5,
            slot: 11,
            prev_extent: Extent::Range { lo: 4096, hi: 8192 },
        }
    );
}

#[test]
fn decodes_a_backwards_path_and_created_flag() {
    let mut path = [0u8; PATH_BUF + PATH_SLACK];
    let p = b"/var/tmp/x.dat";
    let start = PATH_BUF - p.len();
    path[start..PATH_BUF].copy_from_slice(p);
    let r = OpenRecord {
        hdr: header(RecordKind::Open),
        file: FileKey {
            dev: 1,
            gen: 0,
            ino: 2,
        },
        parent: FileKey {
            dev: 1,
            gen: 0,
            ino: 3,
        },
        mode: 0o100644,
        open_flags: 0o1,
        f_mode: FMODE_CREATED | 2,
        fd: 3,
        path_start: start as u32,
        path_truncated: 0,
        nlink: 1,
        prior_slot: NO_SLOT,
        prior: Default::default(),
        path,
    };
    match decode(&as_bytes(&r)).unwrap().kind {
        EventKind::Open {
            path,
            created,
            is_dir,
            nlink,
            prior,
            ..
        } => {
            assert_eq!(path, "/var/tmp/x.dat");
            assert!(created);
            assert!(!is_dir);
            assert_eq!((nlink, prior), (1, None));
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn namespace(op: NamespaceOp, old: &[u8], new: &[u8]) -> NamespaceRecord {
    let base = |p: &[u8]| {
        let mut b = BaseDir {
            dir: FileKey {
                dev: 1,
                gen: 0,
                ino: 7,
            },
            fs_magic: 0xEF53,
            path_start: (PATH_BUF - p.len()) as u32,
            path_truncated: 0,
            path: [0u8; PATH_BUF + PATH_SLACK],
        };
        b.path[PATH_BUF - p.len()..PATH_BUF].copy_from_slice(p);
        b
    };
    let name = |n: &[u8]| {
        let mut buf = [0u8; fsync_trace_common::NAME_BUF];
        buf[..n.len()].copy_from_slice(n);
        buf
    };
    NamespaceRecord {
        hdr: header(RecordKind::Namespace),
        op: op as u32,
        flags: 0,
        old_base: base(b"/var/tmp/d"),
        old_name: name(old),
        new_base: base(b"/var/tmp/e"),
        new_name: name(new),
    }
}

/// One-name operations arrive cut before `new_base` (the kernel sends only the used part);
/// rename arrives whole. Anything shorter than the cut is refused.
#[test]
fn decodes_namespace_records_cut_to_their_used_part() {
    let unlink = as_bytes(&namespace(NamespaceOp::Unlink, b"s1", b""));
    let cut = &unlink[..NAMESPACE_ONE_NAME_LEN];
    assert!(
        cut.len() < unlink.len() * 3 / 5,
        "about half: {}",
        cut.len()
    );
    match decode(cut).unwrap().kind {
        EventKind::Namespace { op, old, new, .. } => {
            assert_eq!(op, NamespaceOp::Unlink);
            assert_eq!(
                (old.base_path.as_str(), old.name.as_str()),
                ("/var/tmp/d", "s1")
            );
            assert!(new.is_none());
        }
        other => panic!("unexpected {other:?}"),
    }
    let rename = as_bytes(&namespace(NamespaceOp::Rename, b"a.tmp", b"a"));
    match decode(&rename).unwrap().kind {
        EventKind::Namespace { new: Some(new), .. } => {
            assert_eq!(
                (new.base_path.as_str(), new.name.as_str()),
                ("/var/tmp/e", "a")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        decode(&unlink[..NAMESPACE_ONE_NAME_LEN - 8]),
        Err(DecodeError::Size { .. })
    ));
}

#[test]
fn decodes_a_name_record() {
    let mut path = [0u8; PATH_BUF + PATH_SLACK];
    let p = b"/var/tmp/app.log";
    let start = PATH_BUF - p.len();
    path[start..PATH_BUF].copy_from_slice(p);
    let file = FileKey {
        dev: 1,
        gen: 77,
        ino: 5,
    };
    let r = NameRecord {
        hdr: header(RecordKind::Name),
        file,
        nlink: 2,
        open_flags: 0o2001,
        path_start: start as u32,
        path_truncated: 0,
        path,
    };
    assert_eq!(
        decode(&as_bytes(&r)).unwrap().kind,
        EventKind::Name {
            file,
            path: "/var/tmp/app.log".into(),
            nlink: 2,
            open_flags: 0o2001,
        }
    );
}

#[test]
fn decodes_a_device_flush() {
    // As the kernel sends it: the time, no task (tgid, tid, comm and cgroup id zero).
    let r = DeviceFlushRecord {
        hdr: RecordHeader {
            kind: RecordKind::DeviceFlush as u32,
            ts_ns: 1000,
            ..RecordHeader::default()
        },
        dev: (7 << 20) | 3,
        what: fsync_trace_common::DEVICE_FUA_WRITE,
    };
    let ev = decode(&as_bytes(&r)).expect("decodes");
    assert_eq!(ev.ts, 1000);
    assert_eq!(
        ev.kind,
        EventKind::DeviceFlush {
            dev: (7 << 20) | 3,
            fua: true
        }
    );
}

#[test]
fn decodes_a_stack_record_and_the_flag_of_the_next() {
    // SAFETY: a plain-data record; all zeroes is a valid value.
    let mut r: fsync_trace_common::StackRecord = unsafe { std::mem::zeroed() };
    r.hdr = header(RecordKind::Stack);
    r.frames = 2;
    r.ips[..2].copy_from_slice(&[0x10, 0x20]);
    r.sp_words_read = 1;
    r.sp_words[0] = 0x30;
    r.build_id_frames = 2;
    r.build_ids[0].status = BUILD_ID_VALID;
    r.build_ids[0].build_id = [1; 20];
    r.build_ids[0].offset_or_ip = 5;
    r.build_ids[1].offset_or_ip = 0x20; // not valid: a raw address
    let e = decode(&as_bytes(&r)).unwrap();
    assert_eq!(
        e.kind,
        EventKind::Stack {
            ips: vec![0x10, 0x20],
            sp_words: vec![0x30],
            build_ids: vec![Some(([1; 20], 5)), None],
            build_ids_sent: false,
            walk_skipped: false,
        }
    );
    assert_eq!(e.actor.stack, None);
    let mut hdr = header(RecordKind::Exit);
    hdr.stack = 1;
    let e = decode(&as_bytes(&ExitRecord { hdr })).unwrap();
    assert_eq!(e.actor.stack, Some(StackId::PENDING));
}

#[test]
fn decodes_a_stack_record_cut_before_its_build_ids() {
    // SAFETY: a plain-data record; all zeroes is a valid value.
    let mut r: fsync_trace_common::StackRecord = unsafe { std::mem::zeroed() };
    r.hdr = header(RecordKind::Stack);
    r.frames = 1;
    r.ips[0] = 0x10;
    r.sp_words_read = 1;
    r.sp_words[0] = 0x30;
    r.flags = STACK_BUILD_IDS_SENT | STACK_WALK_SKIPPED;
    let bytes = as_bytes(&r);
    let e = decode(&bytes[..STACK_WITHOUT_BUILD_IDS_LEN]).unwrap();
    assert_eq!(
        e.kind,
        EventKind::Stack {
            ips: vec![0x10],
            sp_words: vec![0x30],
            build_ids: vec![],
            build_ids_sent: true,
            walk_skipped: true,
        }
    );
    // Shorter than that: not a stack record.
    assert!(decode(&bytes[..STACK_WITHOUT_BUILD_IDS_LEN - 8]).is_err());
}

#[test]
fn rejects_short_and_unknown_records() {
    assert_eq!(decode(&[0u8; 8]), Err(DecodeError::Short(8)));
    let mut h = header(RecordKind::Exit);
    h.kind = 99;
    assert_eq!(decode(&as_bytes(&h)), Err(DecodeError::UnknownKind(99)));
    let h = header(RecordKind::Sync);
    assert!(matches!(
        decode(&as_bytes(&h)),
        Err(DecodeError::Size { .. })
    ));
}

#[test]
fn decodes_a_uring_unordered_record() {
    let file = FileKey {
        dev: 8,
        gen: 7,
        ino: 12,
    };
    let mut r = UringRecord {
        hdr: header(RecordKind::Uring),
        file,
        what: URING_FSYNC_UNORDERED,
        datasync: 1,
        unordered_writes: 2,
        _pad: 0,
    };
    let e = decode(&as_bytes(&r)).unwrap();
    assert_eq!(
        e.kind,
        EventKind::UringFsyncUnordered {
            file,
            datasync: true,
            writes: 2
        }
    );
    assert_eq!((e.actor.pid, e.ts), (42, 1000));
    r.what = 9;
    assert_eq!(decode(&as_bytes(&r)), Err(DecodeError::BadValue(9)));
}
