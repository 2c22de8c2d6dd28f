//! An access token as the service holds it: the value behind a secret, and
//! when it stops being usable.

use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;

/// An access token and when it stops being usable.
pub struct AccessToken {
    pub value: SecretString,
    /// Always `Bearer`; kept so the response mirrors the upstream's.
    pub token_type: &'static str,
    pub expires_at: Instant,
    /// The lifetime granted at issue, used to scale refresh-ahead for short-lived tokens.
    pub lifetime: Duration,
    /// First 12 hex digits of the token's SHA-256: names it in audit lines and
    /// lets operators match it against Astrada's logs without revealing it.
    /// Computed once per token, not once per request.
    pub fingerprint: String,
}

impl AccessToken {
    /// Time left before the token expires (zero once expired).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}
