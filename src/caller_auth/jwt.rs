//! Verification of JWTs signed by someone else: the app's session tokens
//! (browser callers of the SDK token) and Kubernetes service-account tokens
//! (internal callers of the API token).
//!
//! Keys come from one static PEM or from a JWKS URL. The JWKS is fetched on
//! first use with a timeout, refreshed in the background once stale, refetched
//! (at most once per `min_refetch`) when a token names an unknown `kid`, and
//! kept in use while the JWKS endpoint is down. Only asymmetric algorithms are
//! ever accepted and symmetric JWKs are ignored, so no token can be verified
//! with a public key used as an HMAC secret (the HS/RS confusion).

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::AuthError;
use crate::core::unix_now;

/// Longer tokens are refused before any parsing: session and service-account
/// tokens are a few KiB at most.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// A JWKS larger than this is refused rather than buffered.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Bounds the verified-token cache whatever the traffic.
const MAX_CACHED_TOKENS: u64 = 10_000;

/// The algorithms a verifier may be configured with: asymmetric only.
pub const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Everything a [`JwtVerifier`] checks besides the signature.
pub struct JwtRules {
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    /// How long a verified token is remembered; zero disables the cache.
    pub cache_ttl: Duration,
}

/// Where verification keys come from.
pub enum KeySource {
    /// One key from a PEM file or setting.
    Static(DecodingKey),
    /// A JWKS URL, cached.
    Jwks(Jwks),
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone)]
pub struct VerifiedClaims {
    pub subject: String,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
}

#[derive(Clone)]
struct CachedClaims {
    claims: VerifiedClaims,
    ttl: Duration,
}

struct CacheExpiry;

impl moka::Expiry<[u8; 32], CachedClaims> for CacheExpiry {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        value: &CachedClaims,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

// Defaults let jsonwebtoken's own presence check name a missing claim.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    exp: u64,
}

/// Verifies signature, algorithm, issuer, audience, expiry and not-before of
/// a JWT; successful verifications are cached by the token's SHA-256.
pub struct JwtVerifier {
    keys: KeySource,
    // One per allowed algorithm: jsonwebtoken wants every algorithm of a
    // `Validation` to be of the key's family, and an allowlist may mix families.
    validations: Vec<(Algorithm, Validation)>,
    cache_ttl: Duration,
    verified: Option<moka::sync::Cache<[u8; 32], CachedClaims>>,
}

impl JwtVerifier {
    /// A verifier that accepts only tokens meeting `rules`, signed by `keys`.
    pub fn new(keys: KeySource, rules: JwtRules) -> Self {
        let validations = rules
            .algorithms
            .iter()
            .map(|&alg| {
                let mut validation = Validation::new(alg);
                validation.set_issuer(&[&rules.issuer]);
                validation.set_audience(&[&rules.audience]);
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                validation.validate_nbf = true;
                validation.leeway = rules.leeway.as_secs();
                (alg, validation)
            })
            .collect();
        let verified = (!rules.cache_ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(MAX_CACHED_TOKENS)
                .expire_after(CacheExpiry)
                .build()
        });
        Self {
            keys,
            validations,
            cache_ttl: rules.cache_ttl,
            verified,
        }
    }

    /// Verifies `token` and returns its subject and expiry.
    pub async fn verify(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid("token too large"));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = unix_now().as_secs();
        if let Some(hit) = self.verified.as_ref().and_then(|c| c.get(&digest))
            && hit.claims.expires_at > now
        {
            return Ok(hit.claims);
        }

        let header = jsonwebtoken::decode_header(token).map_err(|_| header_problem(token))?;
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == header.alg) else {
            return Err(AuthError::Invalid("algorithm not allowed"));
        };
        let key = match &self.keys {
            KeySource::Static(key) => key.clone(),
            KeySource::Jwks(jwks) => jwks.key_for(header.kid.as_deref(), header.alg).await?,
        };
        if key.family() != header.alg.family() {
            return Err(AuthError::Invalid("algorithm does not match the key"));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, validation)
            .map_err(|e| AuthError::Invalid(reason(e.kind())))?;
        if data.claims.sub.is_empty() {
            return Err(AuthError::Invalid("missing or malformed claim"));
        }
        let claims = VerifiedClaims {
            subject: data.claims.sub,
            expires_at: data.claims.exp,
        };
        if let Some(cache) = &self.verified {
            let ttl = self
                .cache_ttl
                .min(Duration::from_secs(claims.expires_at.saturating_sub(now)));
            if !ttl.is_zero() {
                cache.insert(
                    digest,
                    CachedClaims {
                        claims: claims.clone(),
                        ttl,
                    },
                );
            }
        }
        Ok(claims)
    }
}

/// A closed set of reasons, safe for logs and answers: never token contents.
fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not yet valid",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
            "algorithm not allowed"
        }
        K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) => "missing or malformed claim",
        K::InvalidKeyFormat | K::InvalidRsaKey(_) | K::InvalidEcdsaKey | K::InvalidEddsaKey => {
            "algorithm does not match the key"
        }
        _ => "malformed token",
    }
}

/// Why a header did not parse: `alg: none` (or any unknown algorithm) is
/// worth naming in the logs, everything else is just malformed.
fn header_problem(token: &str) -> AuthError {
    let alg = token
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')).ok())
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .and_then(|h| h.get("alg").and_then(|a| a.as_str()).map(str::to_owned));
    match alg {
        Some(alg) if Algorithm::from_str(&alg).is_err() => {
            AuthError::Invalid("algorithm not allowed")
        }
        _ => AuthError::Invalid("malformed token"),
    }
}

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
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_merge(config.extra_roots.iter().cloned())
            .user_agent(concat!("astrada-token-vendor/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self(Arc::new(JwksInner {
            config,
            http,
            current: ArcSwap::from_pointee(KeySet::default()),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            background_refresh: AtomicBool::new(false),
        })))
    }

    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
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
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption)
                || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
            {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            if key.family() == AlgorithmFamily::Hmac {
                continue;
            }
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| Algorithm::from_str(&a.to_string()).ok());
            let entry = KeyEntry { key, alg };
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

    #[test]
    fn reasons_never_echo_token_contents() {
        let e = header_problem("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
        assert_eq!(
            e.to_string(),
            AuthError::Invalid("algorithm not allowed").to_string()
        );
        let e = header_problem("not-a-token");
        assert_eq!(
            e.to_string(),
            AuthError::Invalid("malformed token").to_string()
        );
    }

    #[test]
    fn only_asymmetric_algorithms_are_offered() {
        assert!(
            ASYMMETRIC
                .iter()
                .all(|a| a.family() != AlgorithmFamily::Hmac)
        );
    }
}
