//! Internal callers: Kubernetes service accounts with projected tokens
//! signed by the test cluster's key, or named static keys, and the grants
//! that say what each may do.

use astrada_token_vendor::config::{GrantSettings, InternalAuthMode, Settings, StaticKeySettings};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::{TestKey, jwks_answer, unix_now};

/// `iss` of the test cluster's service-account tokens.
pub const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The audience callers' projected tokens carry for this service.
pub const SA_AUDIENCE: &str = "astrada-token-vendor";
/// Where [`cluster_jwks`] serves the cluster's keys.
pub const CLUSTER_JWKS_PATH: &str = "/openid/v1/jwks";

/// A grant of `permissions` to `identity`, limited to `prefixes` if any.
pub fn grant(identity: &str, permissions: &[&str], prefixes: &[&str]) -> GrantSettings {
    GrantSettings {
        identity: identity.into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        user_ref_prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        proxy: Vec::new(),
    }
}

/// A projected service-account token's claims, as the kubelet writes them.
pub fn service_account_claims(subject: &str, audience: &str) -> serde_json::Value {
    let (ns, name) = subject
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .expect("a service-account subject");
    serde_json::json!({
        "iss": CLUSTER_ISSUER,
        "aud": [audience],
        "sub": subject,
        "iat": unix_now(),
        "nbf": unix_now(),
        "exp": unix_now() + 3600,
        "kubernetes.io": {
            "namespace": ns,
            "serviceaccount": {"name": name, "uid": "0d6a1b5e-0000-4000-8000-000000000000"},
        },
    })
}

/// A projected token for `subject` with this service's audience, signed by `key`.
pub fn service_account_token(key: &TestKey, subject: &str) -> String {
    key.sign(&service_account_claims(subject, SA_AUDIENCE))
}

/// Serves `key` as the cluster's JWKS at [`CLUSTER_JWKS_PATH`].
pub async fn cluster_jwks(key: &TestKey) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(CLUSTER_JWKS_PATH))
        .respond_with(jwks_answer(&[key]))
        .mount(&server)
        .await;
    server
}

/// Internal callers are service accounts verified against `jwks`'s
/// cluster keys (no CA file, no token for the fetch), with `grants`.
pub fn use_service_accounts(s: &mut Settings, jwks: &MockServer, grants: Vec<GrantSettings>) {
    s.internal_auth.mode = InternalAuthMode::Kubernetes;
    s.internal_auth.allow_unauthenticated = false;
    let k = &mut s.internal_auth.kubernetes;
    k.issuer = CLUSTER_ISSUER.into();
    k.jwks_url = format!("{}{CLUSTER_JWKS_PATH}", jwks.uri());
    k.jwks_ca_file = "".into();
    k.jwks_token_file = "".into();
    k.audience = SA_AUDIENCE.into();
    s.internal_auth.grants = grants;
}

/// A named static key holding `key`, stored as its SHA-256.
pub fn static_key(name: &str, key: &str) -> StaticKeySettings {
    StaticKeySettings {
        name: name.into(),
        sha256: hex::encode(Sha256::digest(key.as_bytes())),
    }
}

/// Internal callers present one of `keys` (`(name, key)`), with `grants`.
pub fn use_static_keys(s: &mut Settings, keys: &[(&str, &str)], grants: Vec<GrantSettings>) {
    s.internal_auth.mode = InternalAuthMode::StaticKeys;
    s.internal_auth.allow_unauthenticated = false;
    s.internal_auth.static_keys.keys = keys
        .iter()
        .map(|(name, key)| static_key(name, key))
        .collect();
    s.internal_auth.grants = grants;
}
