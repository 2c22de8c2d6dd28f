//! astrada-token-vendor: exchanges Astrada client credentials for access
//! tokens, caches them, and hands them out — the SDK token to browsers on a
//! public listener, the API token to services on an internal one.

pub mod audit;
pub mod caller_auth;
pub mod config;
pub mod cors;
pub mod credentials;
pub mod dev;
pub mod fake_astrada;
pub mod metrics;
pub mod oauth_client;
pub mod problem;
pub mod rate_limit;
pub mod routes;
pub mod startup;
pub mod telemetry;
pub mod token_cache;
pub mod user_tokens;

use config::Settings;
use startup::{Application, StartupError, shutdown_signal};

/// Runs the service until SIGTERM or SIGINT, then drains and returns.
pub async fn run(settings: Settings) -> Result<(), StartupError> {
    let app = Application::build(settings).await?;
    tracing::info!(
        public_port = app.public_port(),
        internal_port = app.internal_port(),
        "listening"
    );
    app.run_until(shutdown_signal()).await?;
    Ok(())
}
