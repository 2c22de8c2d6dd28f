//! A standalone, controllable fake Astra (OAuth module + token endpoint) for
//! the multi-process drills in `bench/drills/astra-*.sh`.
//! NOT FOR PRODUCTION: unauthenticated control route, loopback only.
//!
//! ```sh
//! cargo run --release -p atv-bench --bin fake_astra -- --addr 127.0.0.1:7071 \
//!     --client-id bench-astra --client-secret astra-secret \
//!     --redirect-uri http://127.0.0.1:8080/astra/callback --latency-ms 20
//! curl -s localhost:7071/_control                     # counters, refreshes_by_user
//! curl -s localhost:7071/_control -H 'content-type: application/json' \
//!     -d '{"latency_ms":0,"fault":"none"}'            # latency and faults
//! curl -s localhost:7071/_control -H 'content-type: application/json' \
//!     -d '{"reset_peak":true}'                        # token_requests_peak_1s from 0
//! curl -s 'localhost:7071/_control?by_user=false'     # counters only
//! ```
//!
//! Users are seeded over HTTP through the OAuth module page
//! (`POST /login/oauth/authorize` → 302 with a `code`), see `atv-bench astra seed`,
//! or in bulk with tokens derived from a nonce
//! (`{"seed":{"prefix":"u","count":100000,"nonce":"…","refresh_issued_ago_secs":0}}`),
//! see `atv-bench astra seed-direct`, which writes the matching rows.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use astrada_token_vendor::app::shutdown_signal;
use atv_dev_fakes::fake_astra::{FakeAstra, FakeAstraConfig, FakeAstraFault};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Controllable fake Astra for multi-process drills (not for production)")]
struct Args {
    /// Where to listen (loopback only; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    #[arg(long, default_value = "bench-astra")]
    client_id: String,
    #[arg(long, default_value = "bench-astra-secret-not-real")]
    client_secret: String,
    /// The one registered redirect URI (exact string match, as Astra does).
    #[arg(long)]
    redirect_uri: url::Url,
    /// Added before every API answer, as a network round trip would be.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Initial fault as JSON, e.g. `"none"` or `{"server_error":503}`.
    #[arg(long, default_value = r#""none""#)]
    fault: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fault: FakeAstraFault =
        serde_json::from_str(&args.fault).context("--fault is not a fault")?;
    let mut config = FakeAstraConfig::new(args.client_id, args.client_secret, args.redirect_uri);
    config.latency = Duration::from_millis(args.latency_ms);
    let fake = FakeAstra::start_with_control(args.addr, config)
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    fake.set_fault(fault);
    println!("fake_astra ready: {} (NOT FOR PRODUCTION)", fake.base_url());
    shutdown_signal().await;
    fake.stop().await;
    Ok(())
}
