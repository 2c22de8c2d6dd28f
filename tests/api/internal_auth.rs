//! The full-access API token goes only to workloads granted
//! `astrada:api_token`: Kubernetes service accounts or named static keys.

use astrada_token_vendor::http::API_TOKEN_PATH;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer};

use test_support::*;

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
        .and(path(CLUSTER_JWKS_PATH))
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
    let app = spawn_app_with(&upstream, |s| {
        use_service_accounts(s, &jwks, vec![grant(BILLING, &["astrada:api_token"], &[])]);
        s.internal_auth.kubernetes.jwks_token_file = token_file;
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
        let token = self.key.sign(&service_account_claims(subject, audience));
        self.app.api_token_as(&token).await
    }
}

#[tokio::test]
async fn an_allowed_service_account_gets_the_api_token() {
    let c = cluster().await;

    let response = c.api_token_for(BILLING, SA_AUDIENCE).await;

    assert_eq!(response.status(), 200);
    assert!(json(response).await["access_token"].is_string());
    assert_eq!(jwks_fetches(&c.jwks).await, 1);
}

#[tokio::test]
async fn a_service_account_without_a_grant_gets_403_naming_the_permission() {
    let c = cluster().await;
    let other = "system:serviceaccount:marketing:crawler";

    let response = c.api_token_for(other, SA_AUDIENCE).await;

    assert_eq!(response.status(), 403);
    let body = json(response).await;
    assert!(
        body["type"].as_str().unwrap().ends_with(":forbidden"),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("`astrada:api_token`"), "{detail}");
    assert!(detail.contains(other), "{detail}");
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
    let mut claims = service_account_claims(BILLING, SA_AUDIENCE);
    claims["iss"] = "https://other-cluster.example".into();
    assert_eq!(c.app.api_token_as(&c.key.sign(&claims)).await.status(), 401);

    let forged =
        TestKey::other_rsa("cluster-key-1").sign(&service_account_claims(BILLING, SA_AUDIENCE));
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
    let token = c.key.sign(&service_account_claims(BILLING, SA_AUDIENCE));

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
async fn a_named_static_key_with_a_grant_gets_the_api_token() {
    let key = "billing-service-key-4f9d2c";
    let (app, _upstream) = app_with_tokens(|s| {
        use_static_keys(
            s,
            &[("billing", key), ("reporting", "reporting-key-0a1b2c")],
            vec![
                grant("billing", &["astrada:api_token"], &[]),
                grant("reporting", &["astra:read"], &[]),
            ],
        );
    })
    .await;

    assert_eq!(app.api_token_as(key).await.status(), 200);
    let wrong = app.api_token_as("billing-service-key-4f9d2d").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(problem_type(wrong).await, "invalid-credentials");
    assert_eq!(app.api_token().await.status(), 401);
    let reporting = app.api_token_as("reporting-key-0a1b2c").await;
    assert_eq!(reporting.status(), 403, "a key without the permission");
}
