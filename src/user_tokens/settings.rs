//! `[astra]`, checked once: every value the per-user token service runs on,
//! or a [`ConfigError`] that names the key and the fix. Nothing here
//! connects anywhere.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::astra_client::AstraClientConfig;
use super::crypto::TokenCipher;
use super::store::StoreOptions;
use super::webhook::Webhook;
use crate::config::{AstraSettings, ConfigError, https_url, invalid, required};

/// Astra's refresh tokens live 10 days; the scheduler must act well before.
pub const REFRESH_TOKEN_LIFETIME_SECS: i64 = 10 * 24 * 3600;

/// Timing rules, in the units the store and the clock use.
#[derive(Debug, Clone)]
pub struct Policy {
    pub refresh_token_max_age: i64,
    pub access_margin: i64,
    pub lease_secs: i64,
    pub wait_timeout: Duration,
    pub state_ttl: i64,
    pub scheduler_interval: Duration,
    pub scheduler_batch: u32,
    /// Longest a token request waits on the store before answering 503.
    pub store_timeout: Duration,
}

/// The checked `[astra]` section.
pub struct AstraConfig {
    pub policy: Policy,
    pub client: AstraClientConfig,
    pub cipher: TokenCipher,
    /// May carry a password: a secret, never echoed.
    pub store_url: SecretString,
    pub store_options: StoreOptions,
    pub completion_url: Option<Url>,
    pub pkce: bool,
    pub webhook: Option<Webhook>,
    pub cache_capacity: usize,
    pub max_calls_per_sec: u32,
}

impl AstraConfig {
    /// `None` when `astra.enabled` is false.
    pub fn from_settings(s: &AstraSettings) -> Result<Option<Self>, ConfigError> {
        if !s.enabled {
            return Ok(None);
        }
        let policy = Policy::from_settings(s)?;
        let store_timeout = policy.store_timeout;
        Ok(Some(Self {
            client: client_config(s)?,
            cipher: cipher(s)?,
            store_url: store_url(s)?,
            store_options: StoreOptions {
                max_connections: s.store_max_connections.max(1),
                acquire_timeout: store_timeout,
                statement_timeout: store_timeout,
                ..StoreOptions::default()
            },
            completion_url: optional_https(
                "astra.completion_url",
                &s.completion_url,
                "would be an unprotected page",
                "use e.g. https://app.example.com/astra/done",
            )?,
            pkce: s.pkce,
            webhook: Webhook::from_settings(s)?,
            cache_capacity: s.cache_capacity,
            max_calls_per_sec: s.max_calls_per_sec,
            policy,
        }))
    }
}

impl Policy {
    /// Checks the timing keys of `[astra]` against each other and Astra's lifetimes.
    pub fn from_settings(s: &AstraSettings) -> Result<Self, ConfigError> {
        let max_age = i64::try_from(s.refresh_token_max_age_secs).unwrap_or(i64::MAX);
        // The scheduler needs room for retries before day 10: at most 9 days.
        if max_age == 0 || max_age > REFRESH_TOKEN_LIFETIME_SECS - 24 * 3600 {
            return invalid(
                "astra.refresh_token_max_age_secs",
                format!(
                    "{max_age} s leaves no room to refresh before Astra's 10-day refresh tokens expire"
                ),
                "use at most 777600 (9 days); the default is 604800 (7 days)",
            );
        }
        if s.access_refresh_margin_secs >= 3600 {
            return invalid(
                "astra.access_refresh_margin_secs",
                format!(
                    "{} s would refresh Astra's 2-hour access tokens almost constantly",
                    s.access_refresh_margin_secs
                ),
                "use e.g. 300",
            );
        }
        if s.lease_secs * 1000 <= s.timeout_ms {
            return invalid(
                "astra.lease_secs",
                format!(
                    "{} s does not outlast one Astra call (astra.timeout_ms = {})",
                    s.lease_secs, s.timeout_ms
                ),
                "use a lease longer than the timeout, e.g. 30",
            );
        }
        if s.store_timeout_ms == 0 || s.store_timeout_ms > 30_000 {
            return invalid(
                "astra.store_timeout_ms",
                format!("{} ms is not between 1 and 30000", s.store_timeout_ms),
                "use e.g. 1000, so callers get a quick 503 while the database is down",
            );
        }
        if s.max_calls_per_sec == 0 || s.scheduler_batch == 0 || s.scheduler_interval_secs == 0 {
            return invalid(
                "astra.max_calls_per_sec",
                "max_calls_per_sec, scheduler_batch and scheduler_interval_secs must be at least 1"
                    .into(),
                "use e.g. max_calls_per_sec = 20, scheduler_batch = 100, scheduler_interval_secs = 60",
            );
        }
        Ok(Self {
            refresh_token_max_age: max_age,
            access_margin: i64::try_from(s.access_refresh_margin_secs).unwrap_or(0),
            lease_secs: i64::try_from(s.lease_secs).unwrap_or(30),
            wait_timeout: Duration::from_millis(s.wait_timeout_ms.max(1)),
            state_ttl: i64::try_from(s.state_ttl_secs.max(1)).unwrap_or(600),
            scheduler_interval: Duration::from_secs(s.scheduler_interval_secs),
            scheduler_batch: s.scheduler_batch,
            store_timeout: Duration::from_millis(s.store_timeout_ms),
        })
    }
}

/// Who we are to Astra and where it is.
fn client_config(s: &AstraSettings) -> Result<AstraClientConfig, ConfigError> {
    required(
        "astra.client_id",
        &s.client_id,
        "your Astra OAuth client id",
    )?;
    if s.client_secret.expose_secret().trim().is_empty() {
        return invalid(
            "astra.client_secret",
            "is empty".into(),
            "set ATV_ASTRA__CLIENT_SECRET to your Astra OAuth client secret",
        );
    }
    required(
        "astra.redirect_uri",
        &s.redirect_uri,
        "the redirect URI registered with Astra, normally https://YOUR-HOST/astra/callback",
    )?;
    if s.timeout_ms == 0 || s.connect_timeout_ms == 0 || s.connect_timeout_ms > s.timeout_ms {
        return invalid(
            "astra.connect_timeout_ms",
            format!(
                "{} ms must be between 1 and astra.timeout_ms ({} ms)",
                s.connect_timeout_ms, s.timeout_ms
            ),
            "use e.g. connect_timeout_ms = 1000, timeout_ms = 5000",
        );
    }
    Ok(AstraClientConfig {
        api_base: https_url(
            "astra.api_url",
            &s.api_url,
            "would send client secrets and tokens in clear text",
            "use https://api.astra.finance (or the sandbox)",
        )?,
        authorize_base: https_url(
            "astra.authorize_url",
            &s.authorize_url,
            "would send users to an unprotected login page",
            "use https://app.astra.finance (or the sandbox)",
        )?,
        client_id: s.client_id.clone(),
        client_secret: s.client_secret.clone(),
        redirect_uri: https_url(
            "astra.redirect_uri",
            &s.redirect_uri,
            "would carry authorization codes in clear text",
            "use e.g. https://tokens.example.com/astra/callback",
        )?,
        connect_timeout: Duration::from_millis(s.connect_timeout_ms),
        timeout: Duration::from_millis(s.timeout_ms),
        max_response_bytes: s.max_response_bytes,
    })
}

/// An https URL, or `None` for an empty setting.
fn optional_https(
    key: &'static str,
    value: &str,
    risk: &'static str,
    fix: &'static str,
) -> Result<Option<Url>, ConfigError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    https_url(key, value, risk, fix).map(Some)
}

/// `astra.store_url`, or the text of `astra.store_url_file`.
fn store_url(s: &AstraSettings) -> Result<SecretString, ConfigError> {
    if s.store_url_file.as_os_str().is_empty() {
        return Ok(s.store_url.clone());
    }
    match std::fs::read_to_string(&s.store_url_file) {
        Ok(text) if !text.trim().is_empty() => Ok(SecretString::from(text.trim().to_owned())),
        Ok(_) => invalid(
            "astra.store_url_file",
            format!("{} is empty", s.store_url_file.display()),
            "put the postgres:// URL in the Secret the file is mounted from",
        ),
        Err(e) => invalid(
            "astra.store_url_file",
            format!("cannot read {}: {}", s.store_url_file.display(), e.kind()),
            "mount the Secret holding the store URL at that path, or set it to \"\"",
        ),
    }
}

/// The keyring from `astra.encryption_keys` and `astra.active_key_id`.
fn cipher(s: &AstraSettings) -> Result<TokenCipher, ConfigError> {
    const KEY: &str = "astra.encryption_keys";
    const FIX: &str = "set ATV_ASTRA__ENCRYPTION_KEYS to ID:BASE64 pairs separated by commas, each a 32-byte key (openssl rand -base64 32), and astra.active_key_id to one of the ids";
    let listed = s.encryption_keys.expose_secret();
    let mut keys = Vec::new();
    for (index, entry) in listed
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .enumerate()
    {
        let Some((id, key)) = entry.trim().split_once(':') else {
            // Never echo the entry: it is key material.
            return invalid(KEY, format!("entry {} is not ID:BASE64", index + 1), FIX);
        };
        keys.push((
            id.trim().to_owned(),
            SecretString::from(key.trim().to_owned()),
        ));
    }
    if keys.is_empty() {
        return invalid(KEY, "is empty".into(), FIX);
    }
    match TokenCipher::new(keys, s.active_key_id.trim()) {
        Ok(cipher) => Ok(cipher),
        Err(e) => invalid(KEY, e.to_string(), FIX),
    }
}
