//! Astrada `client_credentials` vending: where the client credentials come
//! from ([`credentials`]), the exchange with the token endpoint
//! ([`oauth_client`]), and one cached, refreshed-ahead token per credential
//! set ([`token_cache`]).

mod cache_policy;
pub mod credentials;
pub mod oauth_client;
pub mod token_cache;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use cache_policy::CachePolicy;

use crate::config::{ClientSettings, ConfigError, Settings, invalid};
use crate::core::{CredentialSet, PerSet};
use crate::observability::Metrics;
use credentials::{CredentialSource, CredentialStore};
use oauth_client::{ExchangeRequest, OAuthClient};
use token_cache::{TokenCache, UpstreamExchanger};

/// Both token caches and the credentials they exchange.
pub struct ClientTokens {
    pub caches: PerSet<Arc<TokenCache>>,
    pub credentials: Arc<CredentialStore>,
    reload_interval: Duration,
}

impl ClientTokens {
    /// Checks `[token_endpoint]` and `[cache]` and builds both caches over
    /// `source` (built from `[credentials]` by
    /// [`credentials::source_from_settings`], or given by a test).
    pub fn from_settings(
        settings: &Settings,
        source: Arc<dyn CredentialSource>,
        metrics: &Metrics,
    ) -> Result<Self, ConfigError> {
        let client = OAuthClient::from_settings(&settings.token_endpoint)?;
        let policy = CachePolicy::from_settings(&settings.cache)?;
        // One forced re-read per max backoff window keeps invalid_client storms cheap.
        let credentials = Arc::new(CredentialStore::new(
            source,
            policy.backoff_max,
            metrics.clone(),
        ));
        let exchanger = Arc::new(UpstreamExchanger {
            client,
            credentials: Arc::clone(&credentials),
            requests: PerSet {
                api: exchange_request(&settings.credentials.api),
                sdk: exchange_request(&settings.credentials.sdk),
            },
        });
        let caches = PerSet::from_fn(|set: CredentialSet| {
            TokenCache::new(set, policy.clone(), exchanger.clone(), metrics.clone())
        });
        Ok(Self {
            caches,
            credentials,
            reload_interval: Duration::from_secs(settings.credentials.reload_interval_secs),
        })
    }

    /// Whether this replica can hand out tokens: credentials are loaded and
    /// both sets have obtained a token once (see `TokenCache::has_succeeded`).
    pub fn is_ready(&self) -> Result<(), &'static str> {
        if !self.credentials.is_loaded() {
            return Err("Client credentials are not loaded yet.");
        }
        if !self.caches.iter().all(|(_, cache)| cache.has_succeeded()) {
            return Err("Waiting for the first token of both credential sets.");
        }
        Ok(())
    }

    /// Starts the credential reload loop and both refresh-ahead loops.
    pub fn spawn_background(&self) -> Vec<JoinHandle<()>> {
        let mut tasks = vec![tokio::spawn(
            Arc::clone(&self.credentials).run_reload_loop(self.reload_interval),
        )];
        for (_, cache) in self.caches.iter() {
            tasks.push(tokio::spawn(
                Arc::clone(cache).run_refresh_loop(self.credentials.subscribe()),
            ));
        }
        tasks
    }
}

fn exchange_request(client: &ClientSettings) -> ExchangeRequest {
    ExchangeRequest {
        auth_style: client.auth_style,
        scope: Some(client.scope.clone()).filter(|s| !s.trim().is_empty()),
    }
}

/// Checks that setting `key`, `ms` milliseconds, lies between 1 and the
/// setting `max_key` (`max_ms`), which bounds it; `fix` suggests a value.
fn check_ms_within(
    key: &'static str,
    ms: u64,
    (max_key, max_ms): (&str, u64),
    fix: &str,
) -> Result<(), ConfigError> {
    if ms == 0 || ms > max_ms {
        return invalid(key, format!("{ms} ms must be between 1 and {max_key}"), fix);
    }
    Ok(())
}
