//! The cache's timing rules, from `[cache]`, checked once: when a token is
//! refreshed ahead of expiry, when it is too close to expiry to hand out,
//! how long a caller may wait, and how failures back off.

use std::time::Duration;

use crate::config::{CALLER_BUDGET, CacheSettings, ConfigError, invalid};

/// Timing rules for one cache, from `[cache]`.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    pub refresh_ahead: Duration,
    pub min_remaining: Duration,
    pub wait_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl CachePolicy {
    /// Checks `[cache]`: every wait must end inside the SDK's budget, and
    /// refreshes must start before callers would have to wait for them.
    pub fn from_settings(c: &CacheSettings) -> Result<Self, ConfigError> {
        let wait_timeout = Duration::from_millis(c.wait_timeout_ms);
        if wait_timeout > CALLER_BUDGET || wait_timeout.is_zero() {
            return invalid(
                "cache.wait_timeout_ms",
                format!(
                    "{} ms is outside 1..={}",
                    c.wait_timeout_ms,
                    CALLER_BUDGET.as_millis()
                ),
                "use a value below the SDK's 5 s limit (default 3000)",
            );
        }
        if c.refresh_ahead_secs <= c.min_remaining_secs {
            return invalid(
                "cache.refresh_ahead_secs",
                format!(
                    "{} s is not above cache.min_remaining_secs ({} s), so callers would wait on refreshes",
                    c.refresh_ahead_secs, c.min_remaining_secs
                ),
                "raise refresh_ahead_secs or lower min_remaining_secs",
            );
        }
        super::check_ms_within(
            "cache.backoff_initial_ms",
            c.backoff_initial_ms,
            ("backoff_max_ms", c.backoff_max_ms),
            "use a value such as 250",
        )?;
        Ok(Self {
            refresh_ahead: Duration::from_secs(c.refresh_ahead_secs),
            min_remaining: Duration::from_secs(c.min_remaining_secs),
            wait_timeout,
            backoff_initial: Duration::from_millis(c.backoff_initial_ms),
            backoff_max: Duration::from_millis(c.backoff_max_ms),
        })
    }

    /// How long before expiry a token of `lifetime` is refreshed. Both margins
    /// shrink for short-lived tokens, so a token that lives less than the
    /// configured margins is still served and refreshed at mid-life rather
    /// than refreshed in a loop (benchmarks derive their expectations here).
    pub fn refresh_ahead_for(&self, lifetime: Duration) -> Duration {
        self.refresh_ahead.min(lifetime / 2)
    }

    /// The least life a token of `lifetime` must have left to be handed out.
    pub fn min_remaining_for(&self, lifetime: Duration) -> Duration {
        self.min_remaining.min(lifetime / 4)
    }
}
