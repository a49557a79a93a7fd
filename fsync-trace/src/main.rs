//! fsync-trace: shows where a program's data is not yet durable.
//!
//! The path of one fact: `tracer` (kernel hooks -> ring buffer -> decoded [`event::Event`]s and
//! per-file counters) -> `state` (the durability state machine) -> `report` (text / JSON).
mod analysis;
mod cgroup;
mod cli;
mod error;
mod event;
#[cfg(test)]
mod event_fixtures;
mod extent;
mod live;
mod metrics;
mod procfs;
mod reclaim;
mod report;
mod run;
mod state;
mod symbolize;
mod tracer;

use clap::Parser;

fn main() {
    let mut cli = cli::Cli::parse();
    if let Err(e) = cli.resolve_cgroup() {
        eprintln!("fsync-trace: {e}");
        std::process::exit(2);
    }
    let level = if cli.verbose { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let code = match run::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fsync-trace: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
