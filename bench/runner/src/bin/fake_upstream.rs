//! A standalone, controllable fake Astrada token endpoint for `bench/`.
//! NOT FOR PRODUCTION: random signing key, unauthenticated control route.
//!
//! ```sh
//! cargo run --release -p atv-bench --bin fake_upstream -- --addr 127.0.0.1:7070 \
//!     --client bench-api:api-secret --client bench-sdk:sdk-secret \
//!     --lifetime-secs 20 --latency-ms 80
//! curl -s localhost:7070/_control                                   # counters
//! curl -s localhost:7070/_control -d '{"mode":"slow","ms":4000}' \
//!     -H 'content-type: application/json'                           # switch mode
//! ```
//!
//! Modes: `ok`, `unavailable` (503), `slow` (+`ms`), `garbage` (200, not
//! JSON), `invalid_client` (401). "Down" in the drills is this process
//! stopped (connection refused) and restarted on the same port.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use astrada_token_vendor::app::shutdown_signal;
use atv_dev_fakes::fake_astrada::{FakeAstrada, FakeAstradaConfig, FakeMode};
use clap::Parser;
use secrecy::SecretString;

#[derive(Parser)]
#[command(about = "Controllable fake Astrada token endpoint for benchmarks (not for production)")]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:7070")]
    addr: SocketAddr,
    /// Accepted credentials as `client_id:client_secret` (repeat for each set).
    #[arg(long = "client", required = true)]
    clients: Vec<String>,
    /// Token lifetime (`expires_in` and JWT `exp`).
    #[arg(long, default_value_t = 300)]
    lifetime_secs: u64,
    /// Added before every answer, as a network round trip would be.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Initial mode as JSON, e.g. `{"mode":"unavailable"}`.
    #[arg(long, default_value = r#"{"mode":"ok"}"#)]
    mode: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let clients = args
        .clients
        .iter()
        .map(|pair| {
            pair.split_once(':')
                .map(|(id, secret)| (id.to_owned(), SecretString::from(secret.to_owned())))
                .context("--client must be client_id:client_secret")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mode: FakeMode = serde_json::from_str(&args.mode).context("--mode is not a mode")?;
    let fake = FakeAstrada::start_with_control(
        args.addr,
        FakeAstradaConfig {
            clients,
            lifetime: Duration::from_secs(args.lifetime_secs),
            latency: Duration::from_millis(args.latency_ms),
        },
    )
    .with_context(|| format!("cannot listen on {}", args.addr))?;
    fake.set_mode(mode);
    println!(
        "fake_upstream ready: {} (NOT FOR PRODUCTION)",
        fake.token_url
    );
    shutdown_signal().await;
    fake.stop().await;
    Ok(())
}
