//! The settings types, one per section of `config/default.toml`. Serde checks
//! names and types; values are checked by the part each section configures.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// Keys (in config-file form) whose values are secrets: taken as text
/// whatever they look like, read raw from the environment, and never shown
/// in an error message.
pub const SECRET_KEYS: &[&str] = &[
    "credentials.api.client_secret",
    "credentials.sdk.client_secret",
    "astra.client_secret",
    "astra.store_url",
    "astra.encryption_keys",
    "astra.webhook_secret",
];

/// Whether `key` (config-file form, any case) holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// `Visitor` methods that take a scalar as its text.
macro_rules! scalars_as_text {
    ($($visit:ident: $ty:ty),* $(,)?) => {
        $(
            fn $visit<E: serde::de::Error>(self, v: $ty) -> Result<String, E> {
                Ok(v.to_string())
            }
        )*
    };
}

/// A secret given as any scalar is taken as its text: an all-digit secret
/// in a TOML file or environment variable is a secret, not a type error
/// that would print it. The error for a non-scalar never contains the value.
fn secret_from_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    struct Scalar;
    impl serde::de::Visitor<'_> for Scalar {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a secret as text")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        scalars_as_text!(
            visit_bool: bool,
            visit_i64: i64,
            visit_u64: u64,
            visit_i128: i128,
            visit_u128: u128,
            visit_f64: f64,
            visit_char: char,
        );
    }
    d.deserialize_any(Scalar).map(SecretString::from)
}

/// Everything the service needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub token_endpoint: TokenEndpointSettings,
    pub cache: CacheSettings,
    pub credentials: CredentialSettings,
    pub caller_auth: CallerAuthSettings,
    pub cors: CorsSettings,
    pub rate_limit: RateLimitSettings,
    pub internal_auth: InternalAuthSettings,
    pub astra: AstraSettings,
    pub proxy: ProxySettings,
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
    pub max_body_bytes: u64,
    pub max_header_bytes: usize,
    /// Proxies (addresses or CIDR ranges) whose forwarding headers and
    /// request ids are believed on the public listener.
    pub trusted_proxies: Vec<String>,
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
    #[serde(deserialize_with = "secret_from_scalar")]
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

/// How browser callers of the SDK token prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerAuthMode {
    /// The caller's own app session token, a JWT verified with the app's keys.
    Jwt,
    /// An identity header set by a gateway at a trusted address.
    TrustedHeader,
    /// No check; refused unless `allow_unauthenticated` says it is meant.
    None,
}

/// Authentication of the public SDK-token endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerAuthSettings {
    pub mode: CallerAuthMode,
    pub allow_unauthenticated: bool,
    pub jwt: JwtSettings,
    pub trusted_header: TrustedHeaderSettings,
}

/// Verification of the app's session JWTs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    pub jwks_url: String,
    pub public_key_pem: String,
    pub public_key_path: PathBuf,
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<String>,
    pub leeway_secs: u64,
    /// Largest `iat` age and `exp - iat` lifetime accepted; 0 = no bound.
    pub max_token_age_secs: u64,
    pub cookie_name: String,
    pub cache_ttl_secs: u64,
    pub jwks_timeout_ms: u64,
    pub jwks_cache_secs: u64,
    pub jwks_min_refetch_secs: u64,
}

/// Identity taken from a header that only a trusted gateway may set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedHeaderSettings {
    pub header: String,
    pub trusted_proxies: Vec<String>,
}

/// Which web origins may read the SDK token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    pub allowed_origins: Vec<String>,
    pub max_age_secs: u64,
}

/// Per-caller token bucket on the SDK-token endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub per_caller_per_minute: u32,
    pub burst: u32,
    /// Refused requests (no or bad credentials) per client address and minute.
    pub pre_auth_per_minute: u32,
    pub pre_auth_burst: u32,
    pub max_tracked_callers: u64,
}

/// How internal callers of the API token prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InternalAuthMode {
    /// Projected Kubernetes service-account tokens from allowed accounts.
    Kubernetes,
    /// Pre-shared keys, stored only as SHA-256 hashes.
    StaticKeys,
    /// No check; refused unless `allow_unauthenticated` says it is meant.
    None,
}

/// Authentication and authorization of the internal listener's callers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalAuthSettings {
    pub mode: InternalAuthMode,
    pub allow_unauthenticated: bool,
    pub kubernetes: KubernetesAuthSettings,
    pub static_keys: StaticKeysSettings,
    /// What each internal caller may do; nothing is allowed without a grant.
    pub grants: Vec<GrantSettings>,
}

/// One internal caller's permissions: `[[internal_auth.grants]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSettings {
    /// A service account (`system:serviceaccount:NS:NAME`) or a static key's name.
    pub identity: String,
    /// Permission names, e.g. `astrada:api_token`, `astra:token`.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// When not empty, the Astra permissions cover only `user_ref`s starting
    /// with one of these.
    #[serde(default)]
    pub user_ref_prefixes: Vec<String>,
    /// Calls through the API proxy (`[proxy]`), per upstream.
    #[serde(default)]
    pub proxy: Vec<ProxyGrantSettings>,
}

/// Methods and path patterns one caller may send to one upstream through
/// the API proxy: `[[internal_auth.grants.proxy]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyGrantSettings {
    pub upstream: String,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
}

/// Verification of projected service-account tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAuthSettings {
    pub issuer: String,
    pub jwks_url: String,
    pub jwks_ca_file: PathBuf,
    pub jwks_token_file: PathBuf,
    pub audience: String,
    /// Retired: refused with a hint to write grants instead (see `caller_auth::grants`).
    #[serde(default)]
    pub allowed_subjects: Vec<String>,
    pub algorithms: Vec<String>,
    pub leeway_secs: u64,
    /// Largest `iat` age and `exp - iat` lifetime accepted; 0 = no bound.
    pub max_token_age_secs: u64,
    pub cache_ttl_secs: u64,
    pub jwks_timeout_ms: u64,
    pub jwks_cache_secs: u64,
    pub jwks_min_refetch_secs: u64,
}

/// Pre-shared keys for callers outside Kubernetes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKeysSettings {
    pub keys: Vec<StaticKeySettings>,
    /// Retired: anonymous keys; refused with a hint to name them.
    #[serde(default)]
    pub key_hashes: Vec<String>,
}

/// One named key: `[[internal_auth.static_keys.keys]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKeySettings {
    /// Names the caller in grants and audit lines.
    pub name: String,
    /// Hex SHA-256 of the key; the key itself is never configured.
    pub sha256: String,
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

/// The API proxy of the internal listener (`/astrada/api/…`,
/// `/astra/users/{user_ref}/api/…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySettings {
    /// Astrada's API base, where `/astrada/api/{path}` goes.
    pub astrada_api_url: String,
    /// Astra's API base for proxied calls; empty: `astra.api_url`.
    pub astra_api_url: String,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    /// Request bodies are buffered up to this, so a call can be replayed.
    pub max_body_bytes: u64,
    /// Upstream calls in flight at once, per upstream and replica.
    pub max_concurrent: u32,
}

/// Per-user Astra authorizations (off unless `enabled`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AstraSettings {
    pub enabled: bool,
    /// A Secrets Manager secret (name or ARN) holding the client credentials
    /// and encryption keys; when set, it replaces those keys' values here.
    pub secret_id: String,
    pub api_url: String,
    pub authorize_url: String,
    pub client_id: String,
    #[serde(deserialize_with = "secret_from_scalar")]
    pub client_secret: SecretString,
    pub redirect_uri: String,
    pub completion_url: String,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub max_response_bytes: usize,
    /// May carry the database password, so it is held as a secret.
    #[serde(deserialize_with = "secret_from_scalar")]
    pub store_url: SecretString,
    /// A file holding the store URL (a mounted Kubernetes Secret); wins over `store_url`.
    pub store_url_file: PathBuf,
    pub store_max_connections: u32,
    pub store_timeout_ms: u64,
    pub cache_capacity: usize,
    /// `ID:BASE64[,ID:BASE64…]`, each a 32-byte AES-256-GCM key.
    #[serde(deserialize_with = "secret_from_scalar")]
    pub encryption_keys: SecretString,
    pub active_key_id: String,
    pub refresh_token_max_age_secs: u64,
    pub access_refresh_margin_secs: u64,
    pub lease_secs: u64,
    pub wait_timeout_ms: u64,
    pub state_ttl_secs: u64,
    pub pkce: bool,
    pub max_calls_per_sec: u32,
    pub scheduler_interval_secs: u64,
    pub scheduler_batch: u32,
    pub webhook_url: String,
    #[serde(deserialize_with = "secret_from_scalar")]
    pub webhook_secret: SecretString,
}
