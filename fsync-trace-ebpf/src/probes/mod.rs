//! Tracepoint-tier programs, one file per hook family.
mod mmap;
mod namespace;
mod opens;
mod process;
mod syncs;
mod syscalls;
mod writeback;
