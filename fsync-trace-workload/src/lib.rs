//! The scenario table shared by the VM suite (xtask) and the root integration tests: which
//! `fsync-trace-workload` subcommands to run and the exact counts and findings each must
//! produce, plus the comparison of a JSON report against them. One source of truth, so an
//! expectation is changed in one place.
pub mod facts;
pub mod scenarios;
