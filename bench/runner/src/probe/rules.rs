//! When the service refreshes a token and until when it hands one out, for
//! tokens of a given lifetime — the numbers every drill's expectation rests
//! on, written here once. The margins come from the library's own defaults
//! (`config/default.toml` → `CachePolicy`), as the bench runs the service on
//! them.

use std::time::Duration;

use anyhow::Context;
use astrada_token_vendor::client_tokens::CachePolicy;
use astrada_token_vendor::config::{CacheSettings, DEFAULTS_TOML, TokenEndpointSettings};
use figment::Figment;
use figment::providers::{Format, Toml};

/// JWT `exp` is whole seconds: a token's real life may be up to this much
/// shorter (or a window this much longer) than its nominal lifetime says.
const EXP_ROUNDING: Duration = Duration::from_secs(1);

/// The service's cache policy with its default `[cache]` settings.
pub fn default_policy() -> anyhow::Result<CachePolicy> {
    let settings: CacheSettings = Figment::from(Toml::string(DEFAULTS_TOML))
        .extract_inner("cache")
        .context("the embedded defaults have no [cache]")?;
    Ok(CachePolicy::from_settings(&settings)?)
}

/// The default `token_endpoint.timeout_ms`: how long one exchange may take.
pub fn default_exchange_timeout() -> anyhow::Result<Duration> {
    let settings: TokenEndpointSettings = Figment::from(Toml::string(DEFAULTS_TOML))
        .extract_inner("token_endpoint")
        .context("the embedded defaults have no [token_endpoint]")?;
    Ok(Duration::from_millis(settings.timeout_ms))
}

pub struct Timing {
    policy: CachePolicy,
}

impl Timing {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            policy: default_policy()?,
        })
    }

    /// After an exchange, when the refresh-ahead loop makes the next one.
    pub fn refresh_after(&self, lifetime: Duration) -> Duration {
        lifetime - self.policy.refresh_ahead_for(lifetime)
    }

    /// How long after it was fetched a token is still handed out, less the
    /// `exp` rounding and half a second for the exchange itself.
    pub fn handed_out_for(&self, lifetime: Duration) -> Duration {
        lifetime
            .saturating_sub(self.policy.min_remaining_for(lifetime))
            .saturating_sub(EXP_ROUNDING + Duration::from_millis(500))
    }

    /// Upstream exchanges one credential set should cause over `span`: one
    /// at start-up, then one per refresh window, a window lasting its nominal
    /// length give or take the `exp` rounding.
    pub fn expected_exchanges(&self, span: Duration, lifetime: Duration) -> (u64, u64) {
        let window = self.refresh_after(lifetime);
        let span = span.as_secs_f64();
        let most = 1 + (span / (window - EXP_ROUNDING).as_secs_f64()).ceil() as u64;
        let least = 1 + (span / (window + EXP_ROUNDING).as_secs_f64()).floor() as u64;
        (least, most)
    }

    /// For an upstream outage of `down` that must fall across a refresh and
    /// end while the token is still handed out (with 10 s to spare): the
    /// shortest token lifetime that allows it, and when (s after ready) the
    /// outage starts — 3 s before the refresh is due.
    pub fn down_while_valid(&self, down: Duration) -> (u64, u64) {
        let needed = down + Duration::from_secs(10);
        let lifetime = (8..)
            .map(Duration::from_secs)
            .find(|&l| {
                self.policy.refresh_ahead_for(l) - self.policy.min_remaining_for(l) >= needed
            })
            .expect("some lifetime is long enough");
        let fault_at = self
            .refresh_after(lifetime)
            .as_secs()
            .saturating_sub(3)
            .max(1);
        (lifetime.as_secs(), fault_at)
    }
}

#[derive(clap::Subcommand)]
pub enum Rule {
    /// `LIFETIME FAULT_AT` (seconds) for an outage of DOWN_SECS across a
    /// refresh that ends while the token is valid.
    DownValidPlan {
        #[arg(long)]
        down_secs: u64,
    },
    /// Milliseconds after start-up that the first token is still handed out.
    ValidMs {
        #[arg(long)]
        lifetime_secs: u64,
    },
    /// `LEAST MOST` upstream exchanges per set over SPAN_MS with tokens of LIFETIME_SECS.
    ExpectExchanges {
        #[arg(long)]
        span_ms: u64,
        #[arg(long)]
        lifetime_secs: u64,
    },
}

impl Rule {
    pub fn print(self) -> anyhow::Result<()> {
        let timing = Timing::new()?;
        match self {
            Rule::DownValidPlan { down_secs } => {
                let (lifetime, at) = timing.down_while_valid(Duration::from_secs(down_secs));
                println!("{lifetime} {at}");
            }
            Rule::ValidMs { lifetime_secs } => {
                let valid = timing.handed_out_for(Duration::from_secs(lifetime_secs));
                println!("{}", valid.as_millis());
            }
            Rule::ExpectExchanges {
                span_ms,
                lifetime_secs,
            } => {
                let (least, most) = timing.expected_exchanges(
                    Duration::from_millis(span_ms),
                    Duration::from_secs(lifetime_secs),
                );
                println!("{least} {most}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_numbers_the_drills_used() {
        let t = Timing::new().unwrap();
        // upstream-down-valid at its default 60 s outage, and a 10 s one.
        assert_eq!(t.down_while_valid(Duration::from_secs(60)), (200, 97));
        assert_eq!(t.down_while_valid(Duration::from_secs(10)), (80, 37));
        // upstream-fault with 20 s tokens: (20 - 5 - 1.5) s.
        assert_eq!(
            t.handed_out_for(Duration::from_secs(20)).as_millis(),
            13_500
        );
        // soak: 600 s of 20 s tokens, windows of 9..11 s.
        assert_eq!(
            t.expected_exchanges(Duration::from_secs(600), Duration::from_secs(20)),
            (55, 68)
        );
    }
}
