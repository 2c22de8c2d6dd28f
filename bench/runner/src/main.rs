//! `atv-bench`: the bench program behind `bench/`. The probe's subcommands
//! (load, verdicts, look-ups) are what the drill and benchmark scripts call.

mod probe;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Load probe, drill verdicts and helpers for bench/")]
struct Cli {
    #[command(subcommand)]
    command: probe::Command,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    probe::run(Cli::parse().command).await
}
