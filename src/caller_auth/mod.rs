//! Who may get a token: browser callers of the SDK token on the public
//! listener ([`CallerAuth`]) and internal callers ([`InternalAuth`]): who
//! they are, and what their [`grants`] allow them. Without these checks
//! anyone who can reach a listener could mint tokens from the customer's
//! Astrada account, or read any user's Astra token.

mod bearer;
pub mod grants;
pub mod jwks;
pub mod jwt;
pub mod service_account;
pub mod static_keys;
pub mod trusted_header;
mod verified;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use jsonwebtoken::Algorithm;

use crate::config::{
    CALLER_BUDGET, CallerAuthMode, CallerAuthSettings, ConfigError, InternalAuthMode,
    InternalAuthSettings, JwtSettings, https_url, invalid, required,
};
pub use bearer::bearer;
use grants::{Denied, Grant, Grants, Identities, Permission, refuse_retired};
use jwt::{JwtRules, JwtVerifier, KeySource};
use service_account::ServiceAccountAuth;
use static_keys::StaticKeys;
use trusted_header::TrustedHeader;

/// Who made a request, as far as this service could establish it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// A session token's `sub`, a gateway-asserted user, a service account,
    /// a static key's name, or `anonymous`. Shared, not copied, per request.
    pub subject: Arc<str>,
    /// How the subject was established, for the audit log.
    pub method: &'static str,
}

impl Caller {
    /// True when no identity was checked, so limits must fall back to the address.
    pub fn is_anonymous(&self) -> bool {
        self.method == "none"
    }
}

/// Why a caller was refused. The text is safe for logs and answers: it never
/// contains the presented credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all: 401 with a bare `WWW-Authenticate: Bearer` challenge.
    #[error("no credentials were presented")]
    Missing,
    /// Credentials were presented and refused: 401 `invalid_token`.
    #[error("the credentials were refused ({0})")]
    Invalid(&'static str),
    /// The keys to check credentials could not be fetched: 503, try again.
    #[error("the keys to verify credentials are unavailable")]
    KeysUnavailable,
}

/// Authentication of browser callers of `/astrada-sdk-token`.
pub enum CallerAuth {
    /// The app's own session JWT, from `Authorization: Bearer` or a cookie.
    Jwt {
        verifier: Box<JwtVerifier>,
        cookie: Option<String>,
    },
    /// An identity header from a trusted gateway.
    TrustedHeader(TrustedHeader),
    /// No check (explicitly allowed, dev mode).
    None,
}

impl CallerAuth {
    /// Checks `[caller_auth]` and builds the configured authenticator.
    pub fn from_settings(settings: &CallerAuthSettings) -> Result<Self, ConfigError> {
        Ok(match settings.mode {
            CallerAuthMode::None if !settings.allow_unauthenticated => invalid(
                "caller_auth.allow_unauthenticated",
                "caller_auth.mode is \"none\": anyone who can reach the public listener would get \
                 card-enrollment tokens"
                    .into(),
                "use caller_auth.mode = \"jwt\" or \"trusted_header\" (docs/security/caller-auth.md), \
                 or set allow_unauthenticated = true if an open endpoint is really meant",
            )?,
            CallerAuthMode::None => CallerAuth::None,
            CallerAuthMode::Jwt => CallerAuth::Jwt {
                verifier: Box::new(session_verifier(&settings.jwt)?),
                cookie: Some(settings.jwt.cookie_name.clone()).filter(|c| !c.is_empty()),
            },
            CallerAuthMode::TrustedHeader => {
                CallerAuth::TrustedHeader(TrustedHeader::from_settings(&settings.trusted_header)?)
            }
        })
    }

    /// Establishes who sent `req`.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Caller, AuthError> {
        match self {
            CallerAuth::Jwt { verifier, cookie } => {
                // The header first: cookies are parsed only when it is absent,
                // and neither token is copied.
                let claims = match bearer(req)? {
                    Some(credential) => verifier.verify_bearer(credential).await?,
                    None => {
                        let from_cookie = cookie.as_deref().and_then(|name| req.cookie(name));
                        match from_cookie {
                            Some(c) if !c.value().is_empty() => verifier.verify(c.value()).await?,
                            _ => return Err(AuthError::Missing),
                        }
                    }
                };
                Ok(Caller {
                    subject: claims.subject,
                    method: "jwt",
                })
            }
            CallerAuth::TrustedHeader(trusted) => trusted.authenticate(req),
            CallerAuth::None => Ok(anonymous()),
        }
    }

    /// Says loudly at start-up that the SDK token is open to anyone.
    pub fn warn_if_open(&self) {
        if matches!(self, CallerAuth::None) {
            tracing::warn!(
                "caller authentication is OFF (caller_auth.mode = \"none\"): anyone who can reach \
                 the public listener gets card-enrollment tokens; never run like this in production"
            );
        }
    }
}

/// Who internal callers are, and what each may do.
pub struct InternalAuth {
    authenticator: InternalAuthenticator,
    grants: Grants,
}

enum InternalAuthenticator {
    /// Projected Kubernetes service-account tokens.
    Kubernetes(Box<ServiceAccountAuth>),
    /// Named pre-shared keys, stored hashed.
    StaticKeys(StaticKeys),
    /// No check (explicitly allowed, dev mode): everyone may do everything.
    None,
}

impl InternalAuth {
    /// Checks `[internal_auth]` and builds the configured authenticator
    /// and the grants.
    pub fn from_settings(settings: &InternalAuthSettings) -> Result<Self, ConfigError> {
        refuse_retired(settings)?;
        let (authenticator, grants) = match settings.mode {
            InternalAuthMode::None if !settings.allow_unauthenticated => invalid(
                "internal_auth.allow_unauthenticated",
                "internal_auth.mode is \"none\": anyone who can reach the internal listener would \
                 get full-access API tokens and every Astra user's token"
                    .into(),
                "use internal_auth.mode = \"kubernetes\" or \"static_keys\" with grants \
                 (docs/security/grants.md), or set allow_unauthenticated = true if that is \
                 really meant",
            )?,
            InternalAuthMode::None => {
                if !settings.grants.is_empty() {
                    tracing::warn!(
                        "internal_auth.grants are not enforced while internal_auth.mode is \"none\""
                    );
                }
                (InternalAuthenticator::None, Grants::open())
            }
            InternalAuthMode::Kubernetes => {
                let accounts = ServiceAccountAuth::from_settings(&settings.kubernetes)?;
                let grants = Grants::from_settings(&settings.grants, Identities::ServiceAccounts)?;
                (
                    InternalAuthenticator::Kubernetes(Box::new(accounts)),
                    grants,
                )
            }
            InternalAuthMode::StaticKeys => {
                let keys = StaticKeys::from_settings(&settings.static_keys)?;
                let grants =
                    Grants::from_settings(&settings.grants, Identities::StaticKeys(keys.names()))?;
                (InternalAuthenticator::StaticKeys(keys), grants)
            }
        };
        Ok(Self {
            authenticator,
            grants,
        })
    }

    /// Establishes which workload sent `req`.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Caller, AuthError> {
        match &self.authenticator {
            InternalAuthenticator::Kubernetes(sa) => sa.authenticate(req).await,
            InternalAuthenticator::StaticKeys(keys) => keys.authenticate(req),
            InternalAuthenticator::None => Ok(anonymous()),
        }
    }

    /// `caller`'s grant, if it holds `permission`; the grant then says
    /// which `user_ref`s it covers ([`Grant::check_user`]).
    pub fn authorize(&self, caller: &Caller, permission: Permission) -> Result<Arc<Grant>, Denied> {
        self.grants
            .check(&caller.subject, permission)
            .map(Arc::clone)
    }

    /// Whether every caller is let in unchecked (`mode = "none"`).
    pub fn is_open(&self) -> bool {
        matches!(self.authenticator, InternalAuthenticator::None)
    }

    /// `caller`'s grant, whatever it holds (the proxy's rules are checked
    /// against the call itself, [`Grant::permits_proxy`]).
    pub fn grant_of(&self, caller: &Caller) -> Option<Arc<Grant>> {
        self.grants.of(&caller.subject).map(Arc::clone)
    }

    /// Says loudly at start-up that the internal listener is open to anyone.
    pub fn warn_if_open(&self) {
        if self.is_open() {
            tracing::warn!(
                "internal authentication is OFF (internal_auth.mode = \"none\"): anyone who can \
                 reach the internal listener gets full-access API tokens and every Astra user's \
                 token"
            );
        }
    }
}

fn anonymous() -> Caller {
    Caller {
        subject: "anonymous".into(),
        method: "none",
    }
}

/// The one configured source of the session tokens' verification keys.
fn session_keys(jwt: &JwtSettings) -> Result<KeySource, ConfigError> {
    let sources = [
        !jwt.jwks_url.is_empty(),
        !jwt.public_key_pem.is_empty(),
        !jwt.public_key_path.as_os_str().is_empty(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if sources != 1 {
        return invalid(
            "caller_auth.jwt.jwks_url",
            format!(
                "{sources} key sources are set; session tokens need exactly one of jwks_url, \
                 public_key_pem, public_key_path"
            ),
            "set ATV_CALLER_AUTH__JWT__JWKS_URL to your app's JWKS URL (or one public key), \
             or choose another caller_auth.mode",
        );
    }
    Ok(if jwt.jwks_url.is_empty() {
        KeySource::Static(static_key(jwt)?)
    } else {
        jwks_source(JwksKeys {
            url_key: "caller_auth.jwt.jwks_url",
            timing_keys: (
                "caller_auth.jwt.jwks_timeout_ms",
                "caller_auth.jwt.jwks_min_refetch_secs",
            ),
            url: &jwt.jwks_url,
            timeout_ms: jwt.jwks_timeout_ms,
            cache_secs: jwt.jwks_cache_secs,
            min_refetch_secs: jwt.jwks_min_refetch_secs,
            ca_file: None,
            token_file: None,
        })?
    })
}

/// Checks `[caller_auth.jwt]` and builds the session-token verifier, reading
/// a configured key file once.
fn session_verifier(jwt: &JwtSettings) -> Result<JwtVerifier, ConfigError> {
    let keys = session_keys(jwt)?;
    required(
        "caller_auth.jwt.issuer",
        &jwt.issuer,
        "the `iss` of your app's session tokens",
    )?;
    required(
        "caller_auth.jwt.audience",
        &jwt.audience,
        "an `aud` value your app's session tokens carry",
    )?;
    let algorithms = algorithms("caller_auth.jwt.algorithms", &jwt.algorithms)?;
    if !jwt
        .cookie_name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return invalid(
            "caller_auth.jwt.cookie_name",
            "is not a valid cookie name".into(),
            "use letters, digits, `-` or `_`, e.g. app_session",
        );
    }
    Ok(JwtVerifier::new(
        keys,
        JwtRules {
            issuer: jwt.issuer.clone(),
            audience: jwt.audience.clone(),
            algorithms,
            leeway: Duration::from_secs(jwt.leeway_secs),
            cache_ttl: Duration::from_secs(jwt.cache_ttl_secs),
            max_age: Some(Duration::from_secs(jwt.max_token_age_secs)),
        },
    ))
}

/// Checks a JWKS fetch timeout and refetch gap, each given with its key.
fn jwks_timing(
    (timeout_key, timeout_ms): (&'static str, u64),
    (refetch_key, min_refetch_secs): (&'static str, u64),
) -> Result<(), ConfigError> {
    let budget = CALLER_BUDGET.as_millis();
    if timeout_ms == 0 || u128::from(timeout_ms) > budget {
        return invalid(
            timeout_key,
            format!("{timeout_ms} ms is outside 1..={budget} (the SDK waits 5 s in all)"),
            "use e.g. 2000",
        );
    }
    if min_refetch_secs == 0 {
        return invalid(
            refetch_key,
            "jwks_min_refetch_secs = 0 would let every forged `kid` trigger a JWKS fetch".into(),
            "use e.g. 10",
        );
    }
    Ok(())
}

/// Parses an algorithm allowlist: asymmetric algorithms only.
pub(crate) fn algorithms(
    key: &'static str,
    names: &[String],
) -> Result<Vec<Algorithm>, ConfigError> {
    if names.is_empty() {
        return invalid(key, "is empty".into(), "use e.g. [\"RS256\", \"ES256\"]");
    }
    names
        .iter()
        .map(|name| match Algorithm::from_str(name) {
            Ok(alg) if jwt::ASYMMETRIC.contains(&alg) => Ok(alg),
            _ => invalid(
                key,
                format!(
                    "`{name}` is not allowed: only asymmetric algorithms (RS*, PS*, ES256, \
                     ES384, EdDSA) can verify tokens without sharing a secret, and `none` or HS* \
                     would let anyone forge them"
                ),
                "use e.g. [\"RS256\", \"ES256\"]",
            ),
        })
        .collect()
}

fn static_key(jwt: &JwtSettings) -> Result<jsonwebtoken::DecodingKey, ConfigError> {
    let (key, pem) = if jwt.public_key_pem.is_empty() {
        let path = &jwt.public_key_path;
        match std::fs::read(path) {
            Ok(pem) => ("caller_auth.jwt.public_key_path", pem),
            Err(e) => {
                return invalid(
                    "caller_auth.jwt.public_key_path",
                    format!("cannot read {}: {e}", path.display()),
                    "point it at a PEM public key file",
                );
            }
        }
    } else {
        (
            "caller_auth.jwt.public_key_pem",
            jwt.public_key_pem.clone().into_bytes(),
        )
    };
    match jwks::decoding_key_from_pem(&pem) {
        Some(k) => Ok(k),
        None => invalid(
            key,
            "is not a PEM public key (RSA, EC or Ed25519)".into(),
            "use the `-----BEGIN PUBLIC KEY-----` block your identity provider publishes",
        ),
    }
}

/// The JWKS-related settings of one verifier, with the key that names its URL.
pub(crate) struct JwksKeys<'a> {
    url_key: &'static str,
    /// The keys of `jwks_timeout_ms` and `jwks_min_refetch_secs`.
    timing_keys: (&'static str, &'static str),
    url: &'a str,
    timeout_ms: u64,
    cache_secs: u64,
    min_refetch_secs: u64,
    ca_file: Option<(&'static str, &'a Path)>,
    token_file: Option<&'a Path>,
}

/// Checks the JWKS URL and timing and builds the key source that fetches it.
pub(crate) fn jwks_source(keys: JwksKeys<'_>) -> Result<KeySource, ConfigError> {
    jwks_timing(
        (keys.timing_keys.0, keys.timeout_ms),
        (keys.timing_keys.1, keys.min_refetch_secs),
    )?;
    let url = https_url(
        keys.url_key,
        keys.url,
        "would let anyone on the path forge tokens",
        "use an https:// JWKS URL",
    )?;
    let extra_roots = match keys.ca_file {
        Some((key, path)) => {
            let pem = std::fs::read(path).or_else(|e| {
                invalid(
                    key,
                    format!("cannot read {}: {e}", path.display()),
                    "point it at the CA bundle that signed the JWKS endpoint, or set it to \"\"",
                )
            })?;
            reqwest::Certificate::from_pem_bundle(&pem).or_else(|_| {
                invalid(
                    key,
                    format!("{} holds no PEM certificate", path.display()),
                    "point it at a PEM CA bundle",
                )
            })?
        }
        None => Vec::new(),
    };
    let jwks = jwks::Jwks::new(jwks::JwksConfig {
        url,
        timeout: Duration::from_millis(keys.timeout_ms),
        cache_for: Duration::from_secs(keys.cache_secs),
        min_refetch: Duration::from_secs(keys.min_refetch_secs),
        extra_roots,
        token_file: keys.token_file.map(Path::to_path_buf),
    });
    match jwks {
        Ok(jwks) => Ok(KeySource::Jwks(jwks)),
        Err(e) => invalid(
            keys.url_key,
            format!("the HTTP client for it cannot be built ({e})"),
            "check the CA bundle",
        ),
    }
}
