//! Client credentials: where they come from, how they are held, and how a
//! rotated secret reaches the next token exchange without a restart.
//!
//! Secrets live only in [`SecretString`]; nothing here formats a secret value
//! into a log line, an error or a `Debug` string.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::core::{CredentialSet, PerSet, jittered};
use crate::observability::Metrics;

mod aws_secrets_manager;
mod from_settings;

pub use aws_secrets_manager::{AwsSecretsManagerSource, SecretLayout};
pub use from_settings::source_from_settings;

/// One `client_id` + `client_secret` pair.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl ClientCredentials {
    fn same_as(&self, other: &ClientCredentials) -> bool {
        self.client_id == other.client_id
            && self.client_secret.expose_secret() == other.client_secret.expose_secret()
    }
}

/// Both credential sets as loaded together from one source.
#[derive(Debug, Clone)]
pub struct CredentialBundle {
    pub sets: PerSet<ClientCredentials>,
    /// The source's own version label (e.g. a Secrets Manager `VersionId`), for logs.
    pub version: Option<String>,
}

impl CredentialBundle {
    /// The pair for one set.
    pub fn get(&self, set: CredentialSet) -> &ClientCredentials {
        self.sets.get(set)
    }

    fn same_as(&self, other: &CredentialBundle) -> bool {
        CredentialSet::ALL
            .iter()
            .all(|&set| self.get(set).same_as(other.get(set)))
    }
}

/// Why credentials could not be loaded. Messages name the source and the
/// field, never a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    /// The source could not be reached (network, permissions, missing file).
    #[error("credential source {source_name} is unavailable: {reason}")]
    Unavailable { source_name: String, reason: String },
    /// The source answered, but the named secret does not exist.
    #[error("credential source {source_name}: {secret} was not found")]
    NotFound { source_name: String, secret: String },
    /// The secret exists but does not have an accepted shape.
    #[error("credential source {source_name}: {secret} is malformed: {problem}")]
    Malformed {
        source_name: String,
        secret: String,
        problem: String,
    },
}

impl CredentialError {
    /// Whether an operator has to fix the secret itself (as opposed to an
    /// outage that passes by itself), which decides how loudly it is logged.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            CredentialError::NotFound { .. } | CredentialError::Malformed { .. }
        )
    }
}

/// Anything that can produce both credential sets. Kept to one method so that
/// a new backend (Vault, GCP, …) is a small, isolated addition.
#[async_trait]
pub trait CredentialSource: Send + Sync + 'static {
    /// Reads the current credentials; called at start-up and on every reload.
    async fn load(&self) -> Result<CredentialBundle, CredentialError>;

    /// A short, secret-free description for logs (`file /etc/atv/creds.json`).
    fn describe(&self) -> String;
}

/// Credentials fixed at start-up, from configuration or environment variables.
pub struct InlineSource(CredentialBundle);

impl InlineSource {
    /// Wraps an already-loaded bundle.
    pub fn new(bundle: CredentialBundle) -> Self {
        Self(bundle)
    }
}

#[async_trait]
impl CredentialSource for InlineSource {
    async fn load(&self) -> Result<CredentialBundle, CredentialError> {
        Ok(self.0.clone())
    }

    fn describe(&self) -> String {
        "inline configuration".into()
    }
}

/// A JSON file holding both sets (see [`Origin::parse_bundle`]), re-read on each reload
/// so that whatever writes it (a CSI secrets driver, an agent) can rotate it.
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// Reads from `path` on every load.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[async_trait]
impl CredentialSource for FileSource {
    async fn load(&self) -> Result<CredentialBundle, CredentialError> {
        let name = self.describe();
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => CredentialError::NotFound {
                    source_name: name.clone(),
                    secret: "the file".into(),
                },
                kind => CredentialError::Unavailable {
                    source_name: name.clone(),
                    reason: kind.to_string(),
                },
            })?;
        Origin::new(&name, "the file").parse_bundle(&bytes)
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// Where a JSON credential document came from, named in every error about
/// it: the source, and which secret of the source.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub source_name: &'a str,
    pub secret: &'a str,
}

impl<'a> Origin<'a> {
    pub fn new(source_name: &'a str, secret: &'a str) -> Self {
        Self {
            source_name,
            secret,
        }
    }

    /// Parses `{"api": {"client_id", "client_secret"}, "sdk": {…}}`.
    pub fn parse_bundle(self, bytes: &[u8]) -> Result<CredentialBundle, CredentialError> {
        let value = self.parse_json(bytes)?;
        let pair = |set: CredentialSet| match value.get(set.as_str()) {
            Some(inner) => self.parse_pair_value(inner, &format!("{set}.")),
            None => Err(self.malformed(format!(
                "missing object \"{set}\" (expected {{\"api\": {{…}}, \"sdk\": {{…}}}})"
            ))),
        };
        Ok(CredentialBundle {
            sets: PerSet::try_from_fn(pair)?,
            version: None,
        })
    }

    /// Parses a single `{"client_id": "…", "client_secret": "…"}` pair.
    pub fn parse_pair(self, bytes: &[u8]) -> Result<ClientCredentials, CredentialError> {
        self.parse_pair_value(&self.parse_json(bytes)?, "")
    }

    fn parse_json(self, bytes: &[u8]) -> Result<serde_json::Value, CredentialError> {
        // serde_json's syntax errors carry only a position, never the input.
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| self.malformed(format!("not JSON ({e})")))?;
        if !value.is_object() {
            return Err(self.malformed("not a JSON object".into()));
        }
        Ok(value)
    }

    fn parse_pair_value(
        self,
        value: &serde_json::Value,
        prefix: &str,
    ) -> Result<ClientCredentials, CredentialError> {
        let field = |name: &str| -> Result<String, CredentialError> {
            match value.get(name).and_then(|v| v.as_str()) {
                Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
                Some(_) => Err(self.malformed(format!("field \"{prefix}{name}\" is empty"))),
                None => Err(self.malformed(format!("missing string field \"{prefix}{name}\""))),
            }
        };
        Ok(ClientCredentials {
            client_id: field("client_id")?,
            client_secret: SecretString::from(field("client_secret")?),
        })
    }

    fn malformed(self, problem: String) -> CredentialError {
        CredentialError::Malformed {
            source_name: self.source_name.to_owned(),
            secret: self.secret.to_owned(),
            problem,
        }
    }
}

/// The credentials currently in force, swapped atomically when a reload finds
/// a new version. Token exchanges read it at the moment they start, so a
/// rotation affects the next exchange and leaves cached tokens alone.
pub struct CredentialStore {
    current: ArcSwapOption<CredentialBundle>,
    source: Arc<dyn CredentialSource>,
    reload_requested: Notify,
    last_forced: Mutex<Option<Instant>>,
    min_forced_interval: Duration,
    changed: watch::Sender<u64>,
    metrics: Metrics,
}

impl CredentialStore {
    /// An empty store; nothing is loaded until [`CredentialStore::reload`] runs.
    pub fn new(
        source: Arc<dyn CredentialSource>,
        min_forced_interval: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            source,
            reload_requested: Notify::new(),
            last_forced: Mutex::new(None),
            min_forced_interval,
            changed: watch::channel(0).0,
            metrics,
        }
    }

    /// The pair for `set`, or `None` before the first successful load.
    pub fn get(&self, set: CredentialSet) -> Option<ClientCredentials> {
        self.current.load().as_ref().map(|b| b.get(set).clone())
    }

    /// Whether credentials have been loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Ticks whenever the credentials in force change, so a token cache
    /// stuck in backoff can retry at once with the new ones.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Reads the source once; returns whether the credentials changed.
    pub async fn reload(&self) -> Result<bool, CredentialError> {
        let fresh = match self.source.load().await {
            Ok(fresh) => fresh,
            Err(e) => {
                self.metrics.credential_reload("error");
                return Err(e);
            }
        };
        let changed = match self.current.load().as_ref() {
            Some(old) => !old.same_as(&fresh),
            None => true,
        };
        if changed {
            tracing::info!(
                source = %self.source.describe(),
                version = fresh.version.as_deref().unwrap_or("-"),
                "credentials loaded"
            );
            self.current.store(Some(Arc::new(fresh)));
            self.changed.send_modify(|v| *v += 1);
        }
        self.metrics
            .credential_reload(if changed { "changed" } else { "unchanged" });
        Ok(changed)
    }

    /// Asks the reload loop for an early re-read, e.g. after `invalid_client`.
    /// At most one such request per `min_forced_interval` is honoured, so an
    /// `invalid_client` storm cannot become a secrets-manager storm.
    pub fn request_reload(&self) -> bool {
        let mut last = self.last_forced.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.min_forced_interval) {
            return false;
        }
        *last = Some(now);
        self.reload_requested.notify_one();
        true
    }

    /// Loads at start-up (retrying with backoff until it succeeds), then
    /// re-reads every `interval` or on request. Failures after the first load
    /// keep the previous credentials in force.
    pub async fn run_reload_loop(self: Arc<Self>, interval: Duration) {
        let mut retry = Duration::from_millis(500);
        while !self.is_loaded() {
            match self.reload().await {
                Ok(_) => break,
                Err(e) => {
                    let retry_in_ms = retry.as_millis() as u64;
                    if e.needs_operator() {
                        tracing::error!(error = %e, retry_in_ms, "credentials cannot be loaded; fix the secret, it is re-read without a restart");
                    } else {
                        tracing::warn!(error = %e, retry_in_ms, "credentials not loaded yet");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(jittered(retry)) => {}
                        _ = self.reload_requested.notified() => {}
                    }
                    retry = (retry * 2).min(Duration::from_secs(30));
                }
            }
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.reload_requested.notified() => {}
            }
            match self.reload().await {
                Err(e) if e.needs_operator() => {
                    tracing::error!(error = %e, "credential reload failed; keeping the credentials in force");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "credential reload failed; keeping the credentials in force");
                }
                Ok(_) => {}
            }
        }
    }
}
