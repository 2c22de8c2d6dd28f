//! HTTP clients for the service's own outbound calls.

use std::time::Duration;

/// The `User-Agent` the service sends to Astrada and Astra.
pub const USER_AGENT: &str = concat!("astrada-token-vendor/", env!("CARGO_PKG_VERSION"));

/// A client builder for an outbound call that carries a secret (client
/// credentials, a signed body): bounded in time, and never following a
/// redirect, which would resend the secret to wherever it points.
pub fn outbound_client(connect_timeout: Duration, timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
}
