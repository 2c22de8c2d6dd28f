//! Verification of JWTs signed by someone else: the app's session tokens
//! (browser callers of the SDK token) and Kubernetes service-account tokens
//! (internal callers of the API token).
//!
//! Keys come from one static PEM or from a JWKS URL ([`super::jwks`]). Only
//! asymmetric algorithms are ever accepted and symmetric JWKs are ignored, so
//! no token can be verified with a public key used as an HMAC secret (the
//! HS/RS confusion).

use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::AuthError;
use super::bearer::Bearer;
use super::jwks::Jwks;
use super::verified::VerifiedCache;
pub use super::verified::VerifiedClaims;
use crate::core::{has_controls, unix_now};

/// Longer tokens are refused before any parsing: session and service-account
/// tokens are a few KiB at most.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
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
    /// When set: `iat` is required, may be at most this old, and the
    /// token's whole lifetime (`exp - iat`) may be at most this long.
    pub max_age: Option<Duration>,
}

/// Where verification keys come from.
pub enum KeySource {
    /// One key from a PEM file or setting.
    Static(DecodingKey),
    /// A JWKS URL, cached.
    Jwks(Jwks),
}

// Defaults let jsonwebtoken's own presence check name a missing claim.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    exp: u64,
    /// Checked here as well: jsonwebtoken accepts an array of issuers.
    #[serde(default)]
    iss: serde_json::Value,
    #[serde(default)]
    iat: Option<serde_json::Value>,
}

/// Verifies signature, algorithm, issuer, audience, expiry and not-before of
/// a JWT; successful verifications are remembered ([`VerifiedCache`]).
pub struct JwtVerifier {
    keys: KeySource,
    // One per allowed algorithm: jsonwebtoken wants every algorithm of a
    // `Validation` to be of the key's family, and an allowlist may mix families.
    validations: Vec<(Algorithm, Validation)>,
    cache_ttl: Duration,
    verified: Option<VerifiedCache>,
    max_age: Option<Duration>,
    leeway: u64,
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
                if rules.max_age.is_some_and(|d| !d.is_zero()) {
                    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
                } else {
                    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                }
                validation.validate_nbf = true;
                validation.leeway = rules.leeway.as_secs();
                (alg, validation)
            })
            .collect();
        let verified = if rules.cache_ttl.is_zero() {
            None
        } else {
            VerifiedCache::new(MAX_CACHED_TOKENS)
        };
        Self {
            keys,
            validations,
            cache_ttl: rules.cache_ttl,
            verified,
            max_age: rules.max_age.filter(|d| !d.is_zero()),
            leeway: rules.leeway.as_secs(),
        }
    }

    /// Verifies a bearer credential. A token verified lately is recognised
    /// before its bytes are checked (alphabet, UTF-8): the cache holds it
    /// only if it passed every check, so a hit proves them sound.
    pub async fn verify_bearer(&self, credential: Bearer<'_>) -> Result<VerifiedClaims, AuthError> {
        match self.recall(credential.unchecked()) {
            Some(claims) => Ok(claims),
            None => self.verify_unrecognised(credential.token()?).await,
        }
    }

    /// Verifies `token` and returns its subject and expiry.
    pub async fn verify(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        match self.recall(token.as_bytes()) {
            Some(claims) => Ok(claims),
            None => self.verify_unrecognised(token).await,
        }
    }

    /// The claims of `token` if it was verified lately and has not expired
    /// since: a lookup, no parsing.
    fn recall(&self, token: &[u8]) -> Option<VerifiedClaims> {
        self.verified.as_ref()?.get(token, unix_now().as_secs())
    }

    /// Verifies a token the cache did not recognise.
    async fn verify_unrecognised(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid("token too large"));
        }
        // Boxed: fetching keys makes this part's future large, and every
        // request, cached or not, would carry it (and copy it) otherwise.
        Box::pin(self.verify_uncached(token)).await
    }

    /// Verifies `token` in full and remembers the result.
    async fn verify_uncached(&self, token: &str) -> Result<VerifiedClaims, AuthError> {
        let now = unix_now().as_secs();
        refuse_critical_extensions(token)?;
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
        if has_controls(&data.claims.sub) {
            return Err(AuthError::Invalid("subject contains control characters"));
        }
        if !data.claims.iss.is_string() {
            return Err(AuthError::Invalid("issuer must be a single string"));
        }
        // How long the token stays young enough, for the cache below.
        let mut cacheable_for = data.claims.exp.saturating_sub(now);
        if let Some(max_age) = self.max_age {
            let iat = check_age(
                data.claims.iat.as_ref(),
                data.claims.exp,
                now,
                max_age.as_secs(),
                self.leeway,
            )?;
            let too_old_at = iat
                .saturating_add(max_age.as_secs())
                .saturating_add(self.leeway);
            cacheable_for = cacheable_for.min(too_old_at.saturating_sub(now));
        }
        let claims = VerifiedClaims {
            subject: data.claims.sub.into(),
            expires_at: data.claims.exp,
        };
        let ttl = self.cache_ttl.min(Duration::from_secs(cacheable_for));
        if let Some(verified) = &self.verified
            && !ttl.is_zero()
        {
            verified.insert(token.as_bytes(), &claims, ttl);
        }
        Ok(claims)
    }
}

/// RFC 7515 §4.1.11: a `crit` header names extensions the recipient must
/// understand; this verifier understands none, so such tokens are refused.
fn refuse_critical_extensions(token: &str) -> Result<(), AuthError> {
    let header = token
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')).ok())
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok());
    match header {
        Some(h) if h.get("crit").is_some() => Err(AuthError::Invalid(
            "critical header extensions are not supported",
        )),
        _ => Ok(()),
    }
}

/// With a maximum age: `iat` must be a number, not in the future, at most
/// `max_age` old, and `exp - iat` at most `max_age`.
fn check_age(
    iat: Option<&serde_json::Value>,
    exp: u64,
    now: u64,
    max_age: u64,
    leeway: u64,
) -> Result<u64, AuthError> {
    let Some(iat) = iat.and_then(serde_json::Value::as_u64) else {
        return Err(AuthError::Invalid("missing or malformed claim"));
    };
    if iat > now.saturating_add(leeway) {
        return Err(AuthError::Invalid("issued in the future"));
    }
    if now.saturating_sub(iat) > max_age.saturating_add(leeway) {
        return Err(AuthError::Invalid("token too old"));
    }
    if exp.saturating_sub(iat) > max_age {
        return Err(AuthError::Invalid("token lifetime too long"));
    }
    Ok(iat)
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

    const PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/keys/app-rsa.pem");
    const PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/keys/app-rsa.pub.pem");

    fn verifier(max_age: u64) -> JwtVerifier {
        JwtVerifier::new(
            KeySource::Static(DecodingKey::from_rsa_pem(PUBLIC).expect("public key")),
            JwtRules {
                issuer: "https://login.example".into(),
                audience: "shop".into(),
                algorithms: vec![Algorithm::RS256],
                leeway: Duration::from_secs(30),
                cache_ttl: Duration::ZERO,
                max_age: Some(Duration::from_secs(max_age)),
            },
        )
    }

    /// A correctly signed RS256 token with exactly this header and these claims.
    fn signed(header: serde_json::Value, claims: serde_json::Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE).expect("private key");
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).expect("sign");
        format!("{message}.{signature}")
    }

    fn claims(iss: serde_json::Value, iat: Option<u64>, exp: u64) -> serde_json::Value {
        let mut c = serde_json::json!({"sub": "user-1", "aud": "shop", "iss": iss, "exp": exp});
        if let Some(iat) = iat {
            c["iat"] = iat.into();
        }
        c
    }

    fn refusal(result: Result<VerifiedClaims, AuthError>) -> &'static str {
        match result {
            Err(AuthError::Invalid(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_well_formed_token_is_accepted() {
        let now = unix_now().as_secs();
        let iss = serde_json::json!("https://login.example");
        let token = signed(
            serde_json::json!({"alg": "RS256", "typ": "JWT"}),
            claims(iss, Some(now), now + 300),
        );
        assert_eq!(
            &*verifier(0).verify(&token).await.expect("valid").subject,
            "user-1"
        );
        assert!(verifier(600).verify(&token).await.is_ok());
    }

    /// Why a token with this header and issuer, issued now for 5 minutes, is
    /// refused (no age limit).
    async fn refusal_of(header: serde_json::Value, iss: serde_json::Value) -> &'static str {
        let now = unix_now().as_secs();
        let token = signed(header, claims(iss, Some(now), now + 300));
        refusal(verifier(0).verify(&token).await)
    }

    #[tokio::test]
    async fn a_crit_header_is_refused() {
        let header = serde_json::json!({"alg": "RS256", "crit": ["b64"], "b64": false});
        assert_eq!(
            refusal_of(header, "https://login.example".into()).await,
            "critical header extensions are not supported"
        );
    }

    #[tokio::test]
    async fn an_issuer_array_is_refused() {
        let iss = serde_json::json!(["https://login.example", "https://evil.example"]);
        assert_eq!(
            refusal_of(serde_json::json!({"alg": "RS256"}), iss).await,
            "issuer must be a single string"
        );
    }

    #[tokio::test]
    async fn max_token_age_bounds_iat_and_lifetime() {
        let now = unix_now().as_secs();
        let iss = || serde_json::Value::from("https://login.example");
        let header = || serde_json::json!({"alg": "RS256"});
        let v = verifier(600);
        let old = signed(header(), claims(iss(), Some(now - 3600), now + 300));
        assert_eq!(refusal(v.verify(&old).await), "token too old");
        let long = signed(header(), claims(iss(), Some(now), now + 86_400));
        assert_eq!(refusal(v.verify(&long).await), "token lifetime too long");
        let future = signed(header(), claims(iss(), Some(now + 3600), now + 3700));
        assert_eq!(refusal(v.verify(&future).await), "issued in the future");
        let no_iat = signed(header(), claims(iss(), None, now + 300));
        assert_eq!(
            refusal(v.verify(&no_iat).await),
            "missing or malformed claim"
        );
        // Off (0): the same long-lived token without iat is fine.
        assert!(verifier(0).verify(&no_iat).await.is_ok());
    }

    #[tokio::test]
    async fn a_subject_with_control_characters_is_refused() {
        let now = unix_now().as_secs();
        let mut c = claims("https://login.example".into(), Some(now), now + 300);
        c["sub"] = "alice\n2026-01-01 INFO audit: token issued subject=admin\u{1b}[2K".into();
        let token = signed(serde_json::json!({"alg": "RS256"}), c);
        assert_eq!(
            refusal(verifier(0).verify(&token).await),
            "subject contains control characters"
        );
    }

    #[test]
    fn only_asymmetric_algorithms_are_offered() {
        assert!(
            ASYMMETRIC
                .iter()
                .all(|a| a.family() != jsonwebtoken::AlgorithmFamily::Hmac)
        );
    }
}
