//! Ring buffer bytes -> [`Event`]. Pure; tested with records built in Rust.
use fsync_trace_common::{
    open_flags, BaseDir, DeviceFlushRecord, DirtyRecord, ExitRecord, ForkRecord, MmapRecord,
    NameRecord, NamespaceOp, NamespaceRecord, OpenRecord, RecordHeader, RecordKind, StackRecord,
    SyncOp, SyncRecord, TruncatePathRecord, UringRecord, BUILD_ID_VALID, DIRTY_BY_FALLOCATE,
    DIRTY_BY_MAPPED_STORE, DIRTY_BY_METADATA, DIRTY_BY_TRUNCATE, FMODE_CREATED,
    NAMESPACE_ONE_NAME_LEN, NO_SLOT, PATH_BUF, PATH_CHANGE_METADATA, STACK_BUILD_IDS_SENT,
    STACK_WALK_SKIPPED, STACK_WITHOUT_BUILD_IDS_LEN, S_IFDIR, S_IFMT, URING_FSYNC_UNORDERED,
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
                walk_skipped: r.flags & STACK_WALK_SKIPPED != 0,
            }
        }
    };
    Ok(Event { ts, actor, kind })
}

#[cfg(test)]
mod tests;
