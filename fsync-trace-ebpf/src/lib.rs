//! Empty on purpose: this library target exists only so `fsync-trace` can name this crate as a
//! build dependency (cargo then rebuilds the eBPF object when it changes), as aya-template does.
//! The programs are the `fsync-trace` binary of this crate (`main.rs`), built by aya-build.
#![no_std]
