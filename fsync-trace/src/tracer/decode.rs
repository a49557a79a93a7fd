//! Ring buffer bytes -> [`Event`]. Pure; tested with records built in Rust.
use fsync_trace_common::{
    open_flags, BaseDir, DeviceFlushRecord, DirtyRecord, ExitRecord, ForkRecord, MmapRecord,
    NameRecord, NamespaceOp, NamespaceRecord, OpenRecord, RecordHeader, RecordKind, StackRecord,
    SyncOp, SyncRecord, TruncatePathRecord, UringRecord, BUILD_ID_VALID, DIRTY_BY_FALLOCATE,
    DIRTY_BY_MAPPED_STORE, DIRTY_BY_METADATA, DIRTY_BY_TRUNCATE, FMODE_CREATED,
    NAMESPACE_ONE_NAME_LEN, NO_SLOT, PATH_BUF, PATH_CHANGE_METADATA, STACK_BUILD_IDS_SENT,
    STACK_WITHOUT_BUILD_IDS_LEN, S_IFDIR, S_IFMT, URING_FSYNC_UNORDERED,
};
use thiserror::Error;

use crate::event::{
    Actor, Change, Comm, DirtyCause, Event, EventKind, NameRef, StackId, SyncCounters,
};
use crate::extent::Extent;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is too short")]
    Short(usize),
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("record of kind {kind} has {len} bytes, expected {expected}")]
    Size {
        kind: u32,
        len: usize,
        expected: usize,
    },
    #[error("unknown value {0} in record")]
    BadValue(u32),
}

fn read<T: aya::Pod>(bytes: &[u8], kind: u32) -> Result<T, DecodeError> {
    let expected = std::mem::size_of::<T>();
    if bytes.len() < expected {
        return Err(DecodeError::Size {
            kind,
            len: bytes.len(),
            expected,
        });
    }
    // SAFETY: T is plain old data (aya::Pod: any bytes are a valid T), the length is checked;
    // read_unaligned copes with any alignment of the ring buffer slice.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const T) })
}

/// Reads a `T` sent cut to at least `min` bytes (the kernel leaves off unused trailing fields,
/// e.g. [`NAMESPACE_ONE_NAME_LEN`]): the missing tail reads as zeroes.
fn read_cut<T: aya::Pod>(bytes: &[u8], kind: u32, min: usize) -> Result<T, DecodeError> {
    let size = std::mem::size_of::<T>();
    if bytes.len() < min {
        return Err(DecodeError::Size {
            kind,
            len: bytes.len(),
            expected: min,
        });
    }
    let mut buf = vec![0u8; size];
    let n = bytes.len().min(size);
    buf[..n].copy_from_slice(&bytes[..n]);
    read(&buf, kind)
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The path assembled backwards in the kernel: `buf[start..PATH_BUF]`, marked if truncated.
fn walked_path(buf: &[u8], start: u32, truncated: u32) -> String {
    let start = (start as usize).min(PATH_BUF);
    let p = String::from_utf8_lossy(&buf[start..PATH_BUF]).into_owned();
    if truncated != 0 {
        format!("…{p}")
    } else if p.is_empty() {
        "/".to_string()
    } else {
        p
    }
}

fn actor(h: &RecordHeader) -> Actor {
    Actor {
        pid: h.tgid,
        tid: h.tid,
        comm: {
            // Borrowed unless the name is not UTF-8: no allocation per record.
            let end = h.comm.iter().position(|&b| b == 0).unwrap_or(h.comm.len());
            Comm::new(&String::from_utf8_lossy(&h.comm[..end]))
        },
        stack: (h.stack != 0).then_some(StackId::PENDING),
    }
}

fn name_ref(base: &BaseDir, name: &[u8]) -> NameRef {
    NameRef {
        base_dir: base.dir,
        base_path: walked_path(&base.path, base.path_start, base.path_truncated),
        base_durable: fsync_trace_common::is_durable_fs(base.fs_magic),
        name: cstr(name),
    }
}

/// Decodes one ring buffer record.
/// The cgroup v2 id in a record's header (0 if the record is too short to have one): kept out
/// of [`Actor`], which state stores by the thousand, as only the event loop's labels use it.
pub fn cgroup_id(bytes: &[u8]) -> u64 {
    read::<RecordHeader>(bytes, 0).map_or(0, |h| h.cgroup_id)
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    if bytes.len() < std::mem::size_of::<RecordHeader>() {
        return Err(DecodeError::Short(bytes.len()));
    }
    let hdr: RecordHeader = read(bytes, 0)?;
    let kind = RecordKind::from_u32(hdr.kind).ok_or(DecodeError::UnknownKind(hdr.kind))?;
    let k = hdr.kind;
    let (ts, actor) = (hdr.ts_ns, actor(&hdr));
    let kind = match kind {
        RecordKind::Dirty => {
            let r: DirtyRecord = read(bytes, k)?;
            let cause = match r.source {
                DIRTY_BY_TRUNCATE => DirtyCause::Change(Change::Truncate),
                DIRTY_BY_FALLOCATE => DirtyCause::Change(Change::Fallocate),
                DIRTY_BY_METADATA => DirtyCause::Change(Change::Metadata),
                DIRTY_BY_MAPPED_STORE => DirtyCause::MappedStore,
                _ => DirtyCause::Write,
            };
            EventKind::Dirty {
                file: r.file,
                writes_before: r.writes_before,
                bytes_before: r.bytes_before,
                pages_before: r.mapped_pages_before,
                cause,
                fd: r.fd,
                slot: r.slot,
                prev_extent: Extent::from_kernel(r.prev_extent_lo, r.prev_extent_hi),
            }
        }
        RecordKind::Sync => {
            let r: SyncRecord = read(bytes, k)?;
            let op = SyncOp::from_u32(r.op).ok_or(DecodeError::BadValue(r.op))?;
            let has_file = r.durable_fs != 0 && (r.file.dev != 0 || r.file.ino != 0);
            EventKind::Sync {
                op,
                enter_ns: r.enter_ns,
                ret: r.ret,
                file: has_file.then_some(r.file),
                is_dir: r.file_mode & S_IFMT == S_IFDIR,
                fd: r.fd,
                addr: r.addr,
                len: r.len,
                flags: r.flags,
                counters: (r.counters_slot != NO_SLOT).then_some(SyncCounters {
                    slot: r.counters_slot,
                    writes: r.writes,
                    bytes: r.bytes,
                    mapped_pages: r.mapped_pages,
                }),
            }
        }
        RecordKind::Open => {
            let r: Box<OpenRecord> = Box::new(read(bytes, k)?);
            EventKind::Open {
                file: r.file,
                parent: r.parent,
                is_dir: r.mode & S_IFMT == S_IFDIR,
                path: walked_path(&r.path, r.path_start, r.path_truncated),
                open_flags: r.open_flags,
                // O_TMPFILE files have no directory entry until linked.
                created: r.f_mode & FMODE_CREATED != 0
                    && r.open_flags & (open_flags::O_TMPFILE & !open_flags::O_DIRECTORY) == 0,
                fd: r.fd,
                nlink: r.nlink,
                prior: (r.prior_slot != NO_SLOT).then_some((r.prior_slot, r.prior)),
            }
        }
        RecordKind::Name => {
            let r: Box<NameRecord> = Box::new(read(bytes, k)?);
            EventKind::Name {
                file: r.file,
                path: walked_path(&r.path, r.path_start, r.path_truncated),
                nlink: r.nlink,
                open_flags: r.open_flags,
            }
        }
        RecordKind::Namespace => {
            let r: Box<NamespaceRecord> = Box::new(read_cut(bytes, k, NAMESPACE_ONE_NAME_LEN)?);
            let op = NamespaceOp::from_u32(r.op).ok_or(DecodeError::BadValue(r.op))?;
            let two = matches!(op, NamespaceOp::Rename | NamespaceOp::Link);
            EventKind::Namespace {
                op,
                old: name_ref(&r.old_base, &r.old_name),
                new: two.then(|| name_ref(&r.new_base, &r.new_name)),
                flags: r.flags,
            }
        }
        RecordKind::TruncatePath => {
            let r: Box<TruncatePathRecord> = Box::new(read(bytes, k)?);
            let path = name_ref(&r.base, &r.name);
            if r.change == PATH_CHANGE_METADATA {
                EventKind::MetadataPath { path }
            } else {
                EventKind::TruncatePath {
                    path,
                    length: r.length,
                }
            }
        }
        RecordKind::Mmap => {
            let r: MmapRecord = read(bytes, k)?;
            EventKind::Mmap {
                file: r.file,
                addr: r.addr,
                len: r.len,
            }
        }
        RecordKind::Fork => {
            let r: ForkRecord = read(bytes, k)?;
            EventKind::Fork {
                child: r.child_tgid,
            }
        }
        RecordKind::Exit => {
            let _r: ExitRecord = read(bytes, k)?;
            EventKind::Exit
        }
        RecordKind::Uring => {
            let r: UringRecord = read(bytes, k)?;
            if r.what != URING_FSYNC_UNORDERED {
                return Err(DecodeError::BadValue(r.what));
            }
            EventKind::UringFsyncUnordered {
                file: r.file,
                datasync: r.datasync != 0,
                writes: r.unordered_writes,
            }
        }
        RecordKind::Ack => {
            let r: fsync_trace_common::wal::AckRecord = read(bytes, k)?;
            EventKind::Ack {
                file: r.file,
                write_ns: r.write_ns,
                fd: r.fd,
            }
        }
        RecordKind::DeviceFlush => {
            let r: DeviceFlushRecord = read(bytes, k)?;
            EventKind::DeviceFlush {
                dev: r.dev,
                fua: r.what == fsync_trace_common::DEVICE_FUA_WRITE,
            }
        }
        RecordKind::Stack => {
            // Cut before `build_ids` when the process sent these frames with them before.
            let r: Box<StackRecord> = Box::new(read_cut(bytes, k, STACK_WITHOUT_BUILD_IDS_LEN)?);
            let frames = (r.frames as usize).min(r.ips.len());
            let words = (r.sp_words_read as usize).min(r.sp_words.len());
            let ids = (r.build_id_frames as usize).min(r.build_ids.len());
            EventKind::Stack {
                ips: r.ips[..frames].to_vec(),
                sp_words: r.sp_words[..words].to_vec(),
                build_ids: r.build_ids[..ids]
                    .iter()
                    .map(|f| (f.status == BUILD_ID_VALID).then_some((f.build_id, f.offset_or_ip)))
                    .collect(),
                build_ids_sent: r.flags & STACK_BUILD_IDS_SENT != 0,
            }
        }
    };
    Ok(Event { ts, actor, kind })
}

#[cfg(test)]
mod tests {
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
        let r = DeviceFlushRecord {
            hdr: header(RecordKind::DeviceFlush),
            dev: (7 << 20) | 3,
            what: fsync_trace_common::DEVICE_FUA_WRITE,
        };
        let ev = decode(&as_bytes(&r)).expect("decodes");
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
        r.flags = STACK_BUILD_IDS_SENT;
        let bytes = as_bytes(&r);
        let e = decode(&bytes[..STACK_WITHOUT_BUILD_IDS_LEN]).unwrap();
        assert_eq!(
            e.kind,
            EventKind::Stack {
                ips: vec![0x10],
                sp_words: vec![0x30],
                build_ids: vec![],
                build_ids_sent: true,
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
}
