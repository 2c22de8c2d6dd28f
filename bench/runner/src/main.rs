//! `atv-bench`: every drill and benchmark of astrada-token-vendor behind one
//! command. `list` and `run` drive the scripts under `bench/` from a table
//! (`catalog`), `report` writes `bench/RESULTS.md` and its SVG charts from
//! what the runs recorded, and the probe's subcommands (load, verdicts,
//! look-ups) are what those scripts call.
//!
//! ```sh
//! cargo run --release -p atv-bench -- list
//! cargo run --release -p atv-bench -- run all --repeat 10
//! cargo run --release -p atv-bench -- run upstream-5xx upstream-garbage --short --repeat 2
//! ```

mod catalog;
mod chart;
mod probe;
mod record;
mod report;
mod runner;
mod timeline;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Runs, judges and reports astrada-token-vendor's drills and benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the probe variant's size costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Every drill and benchmark: name, kind, script, the fault it injects.
    List,
    /// Runs drills and benchmarks by name (or `all`), then rewrites
    /// bench/RESULTS.md and its charts.
    Run(runner::Args),
    /// Rewrites bench/RESULTS.md and bench/charts/ from bench/results/.
    Report,
    #[command(flatten)]
    Probe(probe::Command),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::List => {
            catalog::print();
            Ok(())
        }
        Command::Run(args) => runner::run(args),
        Command::Report => report::write(&catalog::repo_root()?),
        Command::Probe(command) => probe::run(command).await,
    }
}
