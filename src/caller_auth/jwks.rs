//! A JWKS, cached: fetched on first use with a timeout, refreshed in the
//! background once stale, refetched (at most once per `min_refetch`) when a
//! token names an unknown `kid`, and kept in use while the endpoint is down.
//! Symmetric and encryption JWKs are ignored, so no token can be verified
//! with a public key used as an HMAC secret.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use tokio::time::Instant;

use super::AuthError;
use crate::core::{USER_AGENT, outbound_client};

/// A JWKS larger than this is refused rather than buffered.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// How to fetch a JWKS.
pub struct JwksConfig {
    pub url: reqwest::Url,
    /// Total time for one fetch.
    pub timeout: Duration,
    /// Age after which a key set is refreshed in the background.
    pub cache_for: Duration,
    /// Shortest gap between refetches for unknown `kid`s, and after a failure.
    pub min_refetch: Duration,
    /// Extra CA certificates (a cluster's own CA).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// A bearer token file sent with each fetch (re-read every time, as
    /// Kubernetes rotates projected tokens).
    pub token_file: Option<PathBuf>,
}

#[derive(Clone)]
struct KeyEntry {
    key: DecodingKey,
    /// The JWK's own `alg`, when it names one: then only that algorithm may use it.
    alg: Option<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, KeyEntry>,
    all: Vec<KeyEntry>,
    fetched_at: Option<Instant>,
    generation: u64,
}

impl KeySet {
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Result<DecodingKey, AuthError>> {
        let entry = match kid {
            Some(kid) => self.by_kid.get(kid)?,
            // Without a `kid` only an unambiguous set can say which key is meant.
            None if self.all.len() == 1 => &self.all[0],
            None => return Some(Err(AuthError::Invalid("token names no key (kid)"))),
        };
        Some(match entry.alg {
            Some(expected) if expected != alg => {
                Err(AuthError::Invalid("algorithm does not match the key"))
            }
            _ => Ok(entry.key.clone()),
        })
    }
}

#[derive(Default)]
struct FetchState {
    last_failure: Option<Instant>,
    last_kid_refetch: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reason {
    Empty,
    Stale,
    UnknownKid,
}

enum Outcome {
    Refreshed,
    Skipped,
    Failed,
}

/// Why a JWKS fetch failed; logged, never shown to callers.
#[derive(Debug, thiserror::Error)]
enum JwksError {
    #[error("HTTP {0}")]
    Status(u16),
    #[error("no answer within the timeout")]
    Timeout,
    #[error("unreachable")]
    Unreachable,
    #[error("larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("not a JWKS document")]
    Malformed,
    #[error("no usable signing key in the set")]
    NoUsableKeys,
    #[error("cannot read the token file: {0}")]
    TokenFile(std::io::Error),
}

struct JwksInner {
    config: JwksConfig,
    http: reqwest::Client,
    current: ArcSwap<KeySet>,
    // Held across a fetch: concurrent callers share one fetch.
    fetch: tokio::sync::Mutex<FetchState>,
    background_refresh: AtomicBool,
}

/// A cached JWKS (cheap to clone).
#[derive(Clone)]
pub struct Jwks(Arc<JwksInner>);

impl Jwks {
    /// Builds the HTTP client; nothing is fetched until the first token arrives.
    pub fn new(config: JwksConfig) -> Result<Self, reqwest::Error> {
        let http = outbound_client(config.timeout, config.timeout)
            .tls_certs_merge(config.extra_roots.iter().cloned())
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Self(Arc::new(JwksInner {
            config,
            http,
            current: ArcSwap::from_pointee(KeySet::default()),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            background_refresh: AtomicBool::new(false),
        })))
    }

    /// The key for a token's `kid` and `alg`, fetching the set when needed.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        let mut set = self.0.current.load_full();
        match set.fetched_at {
            None => {
                self.refresh(Reason::Empty, set.generation).await;
                set = self.0.current.load_full();
                if set.fetched_at.is_none() {
                    return Err(AuthError::KeysUnavailable);
                }
            }
            Some(at) if at.elapsed() >= self.0.config.cache_for => self.refresh_in_background(),
            Some(_) => {}
        }
        if let Some(found) = set.find(kid, alg) {
            return found;
        }
        // An unknown `kid` is how key rotation looks from here.
        match self.refresh(Reason::UnknownKid, set.generation).await {
            Outcome::Refreshed => self
                .0
                .current
                .load()
                .find(kid, alg)
                .unwrap_or(Err(AuthError::Invalid("unknown signing key"))),
            Outcome::Skipped => Err(AuthError::Invalid("unknown signing key")),
            Outcome::Failed => Err(AuthError::KeysUnavailable),
        }
    }

    fn refresh_in_background(&self) {
        if self.0.background_refresh.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let generation = self.0.current.load().generation;
        tokio::spawn(async move {
            this.refresh(Reason::Stale, generation).await;
            this.0.background_refresh.store(false, Ordering::Release);
        });
    }

    /// Fetches a new key set unless one arrived since `seen` or the limits
    /// on refetching say no.
    async fn refresh(&self, reason: Reason, seen: u64) -> Outcome {
        let mut state = self.0.fetch.lock().await;
        if self.0.current.load().generation != seen {
            return Outcome::Refreshed;
        }
        let min = self.0.config.min_refetch;
        if state.last_failure.is_some_and(|at| at.elapsed() < min) {
            return Outcome::Failed;
        }
        if reason == Reason::UnknownKid {
            if state.last_kid_refetch.is_some_and(|at| at.elapsed() < min) {
                return Outcome::Skipped;
            }
            state.last_kid_refetch = Some(Instant::now());
        }
        match self.fetch_once().await {
            Ok((by_kid, all)) => {
                tracing::info!(url = %self.0.config.url, keys = all.len(), "JWKS fetched");
                self.0.current.store(Arc::new(KeySet {
                    by_kid,
                    all,
                    fetched_at: Some(Instant::now()),
                    generation: seen + 1,
                }));
                state.last_failure = None;
                Outcome::Refreshed
            }
            Err(e) => {
                let keeping = self.0.current.load().all.len();
                tracing::warn!(
                    url = %self.0.config.url,
                    error = %e,
                    keeping_keys = keeping,
                    "JWKS fetch failed; keeping the keys fetched before"
                );
                state.last_failure = Some(Instant::now());
                Outcome::Failed
            }
        }
    }

    async fn fetch_once(&self) -> Result<(HashMap<String, KeyEntry>, Vec<KeyEntry>), JwksError> {
        let mut request = self
            .0
            .http
            .get(self.0.config.url.clone())
            .header("accept", "application/json");
        if let Some(file) = &self.0.config.token_file {
            let token = tokio::fs::read_to_string(file)
                .await
                .map_err(JwksError::TokenFile)?;
            request = request.bearer_auth(token.trim());
        }
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                JwksError::Timeout
            } else {
                JwksError::Unreachable
            }
        };
        let mut response = request.send().await.map_err(classify)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let document: JwksDocument =
            serde_json::from_slice(&body).map_err(|_| JwksError::Malformed)?;
        let mut by_kid = HashMap::new();
        let mut all = Vec::new();
        // Keys of unknown types are skipped one by one, not the whole set.
        for jwk in document
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        {
            let Some(entry) = signing_key(&jwk) else {
                continue;
            };
            if let Some(kid) = jwk.common.key_id {
                by_kid.insert(kid, entry.clone());
            }
            all.push(entry);
        }
        if all.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok((by_kid, all))
    }
}

/// The JWK as a signature-verification key, or `None` when it is not one:
/// marked for encryption, symmetric, or declaring an `alg` that is not a
/// signature algorithm (RSA-OAEP and friends, even without `use`).
fn signing_key(jwk: &Jwk) -> Option<KeyEntry> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption)
        || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
    {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        Some(declared) => Some(Algorithm::from_str(&declared.to_string()).ok()?),
        None => None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    if key.family() == AlgorithmFamily::Hmac {
        return None;
    }
    Some(KeyEntry { key, alg })
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// Parses a PEM public key of any supported type (RSA, EC, Ed25519).
pub fn decoding_key_from_pem(pem: &[u8]) -> Option<DecodingKey> {
    DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn a_jwk_declaring_an_encryption_algorithm_is_no_signing_key() {
        let n = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
        let jwk = |alg: &str| -> Jwk {
            serde_json::from_value(serde_json::json!({
                "kty": "RSA", "kid": "k", "alg": alg, "n": n, "e": "AQAB"
            }))
            .expect("jwk")
        };
        assert!(signing_key(&jwk("RSA-OAEP")).is_none());
        assert!(signing_key(&jwk("RSA-OAEP-256")).is_none());
        assert!(signing_key(&jwk("RSA1_5")).is_none());
        assert!(signing_key(&jwk("RS256")).is_some());
    }
}
