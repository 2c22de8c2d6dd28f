//! The full-access API token goes only to allowed workloads: Kubernetes
//! service accounts on the allowlist, or holders of a configured static key.

use astrada_token_vendor::config::{InternalAuthMode, Settings};
use astrada_token_vendor::http::API_TOKEN_PATH;
use sha2::{Digest, Sha256};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer};

use test_support::*;

const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const AUDIENCE: &str = "astrada-token-vendor";
const BILLING: &str = "system:serviceaccount:payments:billing";
/// The vendor's own service-account token, which the API server wants before
/// it serves its JWKS.
const OWN_TOKEN: &str = "vendor-own-sa-token";

struct Cluster {
    app: TestApp,
    key: TestKey,
    jwks: MockServer,
    _upstream: MockServer,
    _token_dir: TempDir,
}

/// A directory removed when the test ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn cluster() -> Cluster {
    let key = TestKey::cluster_rsa("cluster-key-1");
    let jwks = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/openid/v1/jwks"))
        .and(header("authorization", format!("Bearer {OWN_TOKEN}")))
        .respond_with(jwks_answer(&[&key]))
        .mount(&jwks)
        .await;
    let dir = std::env::temp_dir().join(format!("atv-sa-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), format!("{OWN_TOKEN}\n")).unwrap();
    let upstream = MockServer::start().await;
    mount_tokens(&upstream, 300).await;
    let token_file = dir.join("token");
    let jwks_url = format!("{}/openid/v1/jwks", jwks.uri());
    let app = spawn_app_with(&upstream, |s: &mut Settings| {
        s.internal_auth.mode = InternalAuthMode::Kubernetes;
        s.internal_auth.allow_unauthenticated = false;
        let k = &mut s.internal_auth.kubernetes;
        k.issuer = CLUSTER_ISSUER.into();
        k.jwks_url = jwks_url;
        k.jwks_ca_file = "".into();
        k.jwks_token_file = token_file;
        k.audience = AUDIENCE.into();
        k.allowed_subjects = vec![BILLING.into()];
    })
    .await;
    Cluster {
        app,
        key,
        jwks,
        _upstream: upstream,
        _token_dir: TempDir(dir),
    }
}

impl Cluster {
    /// Asks for the API token with a service-account token for `subject`
    /// and `audience`, signed by the cluster.
    async fn api_token_for(&self, subject: &str, audience: &str) -> reqwest::Response {
        let token = self.key.sign(&sa_claims(subject, audience));
        self.app.api_token_as(&token).await
    }
}

/// A projected service-account token as the kubelet writes it.
fn sa_claims(subject: &str, audience: &str) -> serde_json::Value {
    let (ns, name) = subject
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .unwrap();
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

#[tokio::test]
async fn an_allowed_service_account_gets_the_api_token() {
    let c = cluster().await;

    let response = c.api_token_for(BILLING, AUDIENCE).await;

    assert_eq!(response.status(), 200);
    assert!(json(response).await["access_token"].is_string());
    assert_eq!(jwks_fetches(&c.jwks).await, 1);
}

#[tokio::test]
async fn a_service_account_not_in_the_allowlist_gets_403() {
    let c = cluster().await;
    let other = "system:serviceaccount:marketing:crawler";

    let response = c.api_token_for(other, AUDIENCE).await;

    assert_eq!(response.status(), 403);
    assert_eq!(problem_type(response).await, "forbidden");
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let c = cluster().await;

    // A token meant for the API server must not be replayable here.
    let response = c
        .api_token_for(BILLING, "https://kubernetes.default.svc")
        .await;

    assert_eq!(response.status(), 401);
    assert_eq!(problem_type(response).await, "invalid-credentials");
}

#[tokio::test]
async fn a_token_from_another_issuer_or_key_is_refused() {
    let c = cluster().await;
    let mut claims = sa_claims(BILLING, AUDIENCE);
    claims["iss"] = "https://other-cluster.example".into();
    assert_eq!(c.app.api_token_as(&c.key.sign(&claims)).await.status(), 401);

    let forged = TestKey::other_rsa("cluster-key-1").sign(&sa_claims(BILLING, AUDIENCE));
    assert_eq!(c.app.api_token_as(&forged).await.status(), 401);
}

#[tokio::test]
async fn no_token_gets_401_on_the_internal_listener() {
    let c = cluster().await;

    let response = c.app.api_token().await;

    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"astrada-token-vendor\""
    );
}

#[tokio::test]
async fn the_api_token_is_not_reachable_from_the_public_listener() {
    let c = cluster().await;
    let token = c.key.sign(&sa_claims(BILLING, AUDIENCE));

    let response = c
        .app
        .http
        .get(format!("{}{API_TOKEN_PATH}", c.app.public))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 404, "valid credentials do not help");
    assert_eq!(c.app.api_token_as(&token).await.status(), 200);
}

#[tokio::test]
async fn a_static_key_whose_hash_is_configured_gets_the_api_token() {
    let key = "billing-service-key-4f9d2c";
    let (app, _upstream) = app_with_tokens(|s| {
        s.internal_auth.mode = InternalAuthMode::StaticKeys;
        s.internal_auth.allow_unauthenticated = false;
        s.internal_auth.static_keys.key_hashes =
            vec!["00".repeat(32), hex::encode(Sha256::digest(key.as_bytes()))];
    })
    .await;

    assert_eq!(app.api_token_as(key).await.status(), 200);
    let wrong = app.api_token_as("billing-service-key-4f9d2d").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(problem_type(wrong).await, "invalid-credentials");
    assert_eq!(app.api_token().await.status(), 401);
}
