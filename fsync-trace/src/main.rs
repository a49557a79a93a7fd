//! fsync-trace: shows where a program's data is not yet durable.
//!
//! The path of one fact: `tracer` (kernel hooks -> ring buffer -> decoded [`event::Event`]s and
//! per-file counters) -> `state` (the durability state machine) -> `report` (text / JSON).
mod analysis;
mod cli;
mod error;
mod event;
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
    let cli = cli::Cli::parse();
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
