//! Layered configuration: embedded defaults → optional TOML file → `ATV_*`
//! environment variables, validated once at start-up so that a bad value
//! stops the process with a message naming the key and the fix.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The embedded defaults, also printed by `--help` as the configuration reference.
pub const DEFAULTS_TOML: &str = include_str!("../config/default.toml");

/// Prefix of every environment variable the service reads as configuration.
pub const ENV_PREFIX: &str = "ATV_";

/// The SDK gives up after 5 s; every wait we control must end well before that.
const CALLER_BUDGET: Duration = Duration::from_millis(4500);

/// Everything the service needs to run, after validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub token_endpoint: TokenEndpointSettings,
    pub cache: CacheSettings,
    pub credentials: CredentialSettings,
    pub log: LogSettings,
}

/// Listener addresses and process lifecycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub public_addr: SocketAddr,
    pub internal_addr: SocketAddr,
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
}

/// Where tokens come from and how long we are willing to wait for them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEndpointSettings {
    pub url: String,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub max_response_bytes: usize,
}

/// Token cache timing; see `token_cache` for how each value is used.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    pub refresh_ahead_secs: u64,
    pub min_remaining_secs: u64,
    pub wait_timeout_ms: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

/// Where client credentials are loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSourceKind {
    /// The `credentials.api` / `credentials.sdk` sections (usually from `ATV_*`).
    Inline,
    /// A JSON file, re-read on every reload interval.
    File,
    /// AWS Secrets Manager, re-read on every reload interval and on `invalid_client`.
    AwsSecretsManager,
}

/// Credential source plus per-set client settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSettings {
    pub source: CredentialSourceKind,
    pub file: PathBuf,
    /// One Secrets Manager secret holding both sets (name or ARN).
    pub secret_id: String,
    /// Region for Secrets Manager; empty means the standard AWS chain.
    pub aws_region: String,
    pub reload_interval_secs: u64,
    pub api: ClientSettings,
    pub sdk: ClientSettings,
}

/// How one credential set talks to the token endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    /// This set's own Secrets Manager secret (name or ARN), instead of `credentials.secret_id`.
    pub secret_id: String,
    pub auth_style: AuthStyle,
    pub scope: String,
}

/// How client credentials are presented to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStyle {
    /// Astrada's documented style: a JSON body with id, secret and grant type.
    Json,
    /// RFC 6749 §2.3.1: form body carrying `client_id` and `client_secret`.
    ClientSecretPost,
    /// RFC 6749 §2.3.1: HTTP Basic with the form-encoded id and secret.
    ClientSecretBasic,
}

/// Log output shape and verbosity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

/// JSON lines for log shippers, or human-readable text for a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value could not be read or has the wrong type.
    #[error("configuration could not be read: {}", describe_load_error(.0))]
    Load(Box<figment::Error>),
    /// A value was read but makes no sense.
    #[error("invalid configuration `{key}`: {problem}. Fix: {fix}")]
    Invalid {
        key: &'static str,
        problem: String,
        fix: String,
    },
}

// Not `#[from]`: that would make figment's own (less readable) message the
// error's source and print it a second time.
impl From<Box<figment::Error>> for ConfigError {
    fn from(e: Box<figment::Error>) -> Self {
        ConfigError::Load(e)
    }
}

impl Settings {
    /// Loads defaults, then `file` if given, then `ATV_*` variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let settings = Self::load_unvalidated(None, file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Like [`Settings::load`] with an extra TOML layer right above the
    /// defaults (dev mode's), and without validation so the caller can fill
    /// in values before calling [`Settings::validate`].
    pub fn load_unvalidated(
        overrides: Option<&str>,
        file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        Ok(Self::figment(overrides, file)
            .extract::<Settings>()
            .map_err(Box::new)?)
    }

    fn figment(overrides: Option<&str>, file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Toml::string(DEFAULTS_TOML));
        if let Some(overrides) = overrides {
            figment = figment.merge(Toml::string(overrides));
        }
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // Every setting sits in a section (`ATV_SECTION__KEY`). Prefixed
        // variables without one are not settings but must not be refused as
        // unknown keys: `ATV_CONFIG` names the file, and the test scripts
        // export `ATV_CI_CACHE` and friends.
        figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        )
    }

    /// The embedded defaults alone; tests and dev mode start from here.
    pub fn defaults() -> Result<Self, ConfigError> {
        Ok(Figment::from(Toml::string(DEFAULTS_TOML))
            .extract::<Settings>()
            .map_err(Box::new)?)
    }

    /// Checks relations between values that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_token_url(&self.token_endpoint.url)?;
        let te = &self.token_endpoint;
        if te.connect_timeout_ms == 0 || te.connect_timeout_ms > te.timeout_ms {
            return invalid(
                "token_endpoint.connect_timeout_ms",
                format!(
                    "{} ms must be between 1 and timeout_ms",
                    te.connect_timeout_ms
                ),
                "use a value such as 1000",
            );
        }
        if Duration::from_millis(te.timeout_ms) > CALLER_BUDGET {
            return invalid(
                "token_endpoint.timeout_ms",
                format!(
                    "{} ms leaves the browser SDK no answer inside its 5 s limit",
                    te.timeout_ms
                ),
                "use at most 4500 (default 2500)",
            );
        }
        if te.max_response_bytes < 1024 {
            return invalid(
                "token_endpoint.max_response_bytes",
                format!(
                    "{} bytes is too small for a JWT response",
                    te.max_response_bytes
                ),
                "use at least 1024 (default 65536)",
            );
        }
        let c = &self.cache;
        if Duration::from_millis(c.wait_timeout_ms) > CALLER_BUDGET || c.wait_timeout_ms == 0 {
            return invalid(
                "cache.wait_timeout_ms",
                format!("{} ms is outside 1..=4500", c.wait_timeout_ms),
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
        if c.backoff_initial_ms == 0 || c.backoff_initial_ms > c.backoff_max_ms {
            return invalid(
                "cache.backoff_initial_ms",
                format!(
                    "{} ms must be between 1 and backoff_max_ms",
                    c.backoff_initial_ms
                ),
                "use a value such as 250",
            );
        }
        if self.credentials.reload_interval_secs == 0 {
            return invalid(
                "credentials.reload_interval_secs",
                "0 would re-read credentials in a busy loop".into(),
                "use a value such as 300",
            );
        }
        match self.credentials.source {
            CredentialSourceKind::Inline => {
                validate_not_aws(&self.credentials, "inline")?;
                validate_inline("api", &self.credentials.api)?;
                validate_inline("sdk", &self.credentials.sdk)?;
            }
            CredentialSourceKind::File => {
                validate_not_aws(&self.credentials, "file")?;
                if self.credentials.file.as_os_str().is_empty() {
                    return invalid(
                        "credentials.file",
                        "source is \"file\" but no file is named".into(),
                        "set ATV_CREDENTIALS__FILE to a JSON file (see README, credential formats)",
                    );
                }
            }
            CredentialSourceKind::AwsSecretsManager => validate_aws(&self.credentials)?,
        }
        Ok(())
    }

    /// Connect timeout for the token endpoint.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.token_endpoint.connect_timeout_ms)
    }

    /// Total timeout for one token exchange.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.token_endpoint.timeout_ms)
    }
}

/// One line per problem, naming the key in config-file form, where the bad
/// value came from, and the environment variable that would override it.
fn describe_load_error(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_ascii_lowercase();
            let from = e
                .metadata
                .as_ref()
                .map_or_else(|| "defaults".to_owned(), |m| m.name.to_string());
            if key.is_empty() {
                format!("{} (from {from})", e.kind)
            } else {
                let var = format!(
                    "{ENV_PREFIX}{}",
                    key.replace('.', "__").to_ascii_uppercase()
                );
                format!(
                    "`{key}`: {} (from {from}; environment variable {var})",
                    e.kind
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn invalid(key: &'static str, problem: String, fix: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key,
        problem,
        fix: fix.to_owned(),
    })
}

fn validate_token_url(url: &str) -> Result<(), ConfigError> {
    let parsed = match reqwest::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            return invalid(
                "token_endpoint.url",
                format!("not a URL ({e})"),
                "use e.g. https://api.astrada.co/oauth/token",
            );
        }
    };
    let loopback = matches!(
        parsed.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    );
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => invalid(
            "token_endpoint.url",
            format!(
                "scheme `{}` would send client secrets in clear text",
                parsed.scheme()
            ),
            "use an https:// URL (plain http is accepted for loopback only)",
        ),
    }
}

fn validate_inline(set: &'static str, client: &ClientSettings) -> Result<(), ConfigError> {
    let (id_key, secret_key) = match set {
        "api" => ("credentials.api.client_id", "credentials.api.client_secret"),
        _ => ("credentials.sdk.client_id", "credentials.sdk.client_secret"),
    };
    let upper = set.to_ascii_uppercase();
    if client.client_id.trim().is_empty() {
        return invalid(
            id_key,
            "is empty".into(),
            &format!(
                "set ATV_CREDENTIALS__{upper}__CLIENT_ID, or use credentials.source = \"file\" or \"aws_secrets_manager\""
            ),
        );
    }
    if client.client_secret.expose_secret().trim().is_empty() {
        return invalid(
            secret_key,
            "is empty".into(),
            &format!(
                "set ATV_CREDENTIALS__{upper}__CLIENT_SECRET, or use credentials.source = \"file\" or \"aws_secrets_manager\""
            ),
        );
    }
    Ok(())
}

/// Exactly one layout: one secret for both sets, or one secret per set.
fn validate_aws(c: &CredentialSettings) -> Result<(), ConfigError> {
    let bundle = !c.secret_id.trim().is_empty();
    let api = !c.api.secret_id.trim().is_empty();
    let sdk = !c.sdk.secret_id.trim().is_empty();
    match (bundle, api, sdk) {
        (true, false, false) | (false, true, true) => Ok(()),
        (true, _, _) => invalid(
            "credentials.secret_id",
            "is set together with credentials.api.secret_id / credentials.sdk.secret_id".into(),
            "use either one secret holding both sets (credentials.secret_id) or one secret per set (credentials.api.secret_id and credentials.sdk.secret_id), not both",
        ),
        (false, false, false) => invalid(
            "credentials.secret_id",
            "source is \"aws_secrets_manager\" but no secret is named".into(),
            "set ATV_CREDENTIALS__SECRET_ID to the name or ARN of a secret holding both sets, or ATV_CREDENTIALS__API__SECRET_ID and ATV_CREDENTIALS__SDK__SECRET_ID to one secret each",
        ),
        (false, true, false) => invalid(
            "credentials.sdk.secret_id",
            "is empty while credentials.api.secret_id is set".into(),
            "set ATV_CREDENTIALS__SDK__SECRET_ID too, or name one secret holding both sets in credentials.secret_id",
        ),
        (false, false, true) => invalid(
            "credentials.api.secret_id",
            "is empty while credentials.sdk.secret_id is set".into(),
            "set ATV_CREDENTIALS__API__SECRET_ID too, or name one secret holding both sets in credentials.secret_id",
        ),
    }
}

/// Secrets Manager keys under another source would be silently ignored, and
/// the service would run on credentials the operator did not mean.
fn validate_not_aws(c: &CredentialSettings, source: &str) -> Result<(), ConfigError> {
    let keys: [(&'static str, &str); 4] = [
        ("credentials.secret_id", &c.secret_id),
        ("credentials.api.secret_id", &c.api.secret_id),
        ("credentials.sdk.secret_id", &c.sdk.secret_id),
        ("credentials.aws_region", &c.aws_region),
    ];
    match keys.iter().find(|(_, value)| !value.trim().is_empty()) {
        Some((key, _)) => invalid(
            key,
            format!("is set but credentials.source is \"{source}\", which ignores it"),
            "set ATV_CREDENTIALS__SOURCE=aws_secrets_manager, or remove the key",
        ),
        None => Ok(()),
    }
}
