//! Binary edge: parse the command line and configuration, set up logging,
//! hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use astrada_token_vendor::app::dev;
use astrada_token_vendor::config::Settings;
use astrada_token_vendor::observability::telemetry;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    subcommand_required = true,
    arg_required_else_help = true,
    about = "Exchanges Astrada client credentials for tokens, caches them, and serves them.",
    after_long_help = concat!(
        "CONFIGURATION\n\n",
        "Layers: embedded defaults < --config FILE < environment. Every key below can be set as\n",
        "ATV_<SECTION>__<KEY>, e.g. ATV_CACHE__REFRESH_AHEAD_SECS=90 or\n",
        "ATV_CREDENTIALS__SDK__CLIENT_SECRET=... Defaults:\n\n",
        include_str!("../config/default.toml")
    )
)]
struct Cli {
    /// TOML file layered over the defaults (environment variables still win).
    #[arg(long, short, env = "ATV_CONFIG", global = true)]
    config: Option<PathBuf>,

    /// Required: running with no subcommand is refused, so that a missing
    /// `serve` in a deployment never quietly starts dev mode.
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Clone, Copy)]
enum Command {
    /// Run with a built-in fake token endpoint and throw-away credentials (development only).
    Dev,
    /// Run against the real token endpoint with the configured credentials.
    Serve,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with causes), not a backtrace: this is what operators see.
            eprintln!("astrada-token-vendor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let settings = Settings::load(cli.config.as_deref())?;
            let _telemetry = telemetry::init(&settings.log)?;
            astrada_token_vendor::run(settings)
                .await
                .context("service failed")?;
        }
        Command::Dev => {
            let settings = dev::settings(cli.config.as_deref())?;
            let _telemetry = telemetry::init(&settings.log)?;
            dev::run(settings).await.context("dev mode failed")?;
        }
    }
    Ok(())
}
