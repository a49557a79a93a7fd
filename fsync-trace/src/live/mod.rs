//! `--live`: a terminal view while tracing. Files sorted by bytes at risk, the age of their
//! oldest unsynced data, their last sync latency and syncs per second; `q` ends the trace with
//! the full report.
//!
//! - [`model`] (pure): events and the state machine's files, with the kernel's counters read at
//!   each refresh, become a [`model::View`];
//! - [`screen`]: draws a [`model::View`] with ratatui (tested on ratatui's test backend);
//! - [`terminal`]: owns the terminal (raw mode, alternate screen on stderr, keys on a thread)
//!   and restores it on every way out: drop, signals (the event loop ends, the view is dropped
//!   before the report is written) and panics (a hook).
mod model;
mod screen;
mod terminal;

pub use model::LiveModel;
pub use terminal::{LiveError, LiveTerminal};

/// How often the view is redrawn.
pub const REFRESH: std::time::Duration = std::time::Duration::from_millis(500);
