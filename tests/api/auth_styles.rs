//! The three ways of presenting client credentials reach the wire as specified.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use wiremock::matchers::{body_json, body_string_contains, header, method};
use wiremock::{Mock, MockServer};

use astrada_token_vendor::config::{AuthStyle, Settings};
use reqwest::StatusCode;

use test_support::*;

/// The SDK token's status from the service with `tweak`ed settings, against
/// a token endpoint that answers only what `upstream` matches, and once.
async fn sdk_token_status(upstream: Mock, tweak: impl FnOnce(&mut Settings)) -> StatusCode {
    let server = MockServer::start().await;
    upstream.mount(&server).await;
    let app = spawn_app_with(&server, tweak).await;
    app.sdk_token().await.status()
}

#[tokio::test]
async fn json_style_sends_astradas_documented_body() {
    let upstream = Mock::given(method("POST"))
        .and(header("content-type", "application/json"))
        .and(body_json(serde_json::json!({
            "client_id": SDK_CLIENT_ID,
            "client_secret": SDK_SECRET,
            "grant_type": "client_credentials",
        })))
        .respond_with(FreshToken::lasting(300))
        .expect(1);

    assert_eq!(sdk_token_status(upstream, |_| {}).await, 200);
}

#[tokio::test]
async fn client_secret_post_sends_a_form_body() {
    let upstream = Mock::given(method("POST"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(format!("client_id={SDK_CLIENT_ID}")))
        .and(body_string_contains(format!("client_secret={SDK_SECRET}")))
        .and(body_string_contains("scope=enroll"))
        .respond_with(FreshToken::lasting(300))
        .expect(1);
    let status = sdk_token_status(upstream, |s| {
        s.credentials.sdk.auth_style = AuthStyle::ClientSecretPost;
        s.credentials.sdk.scope = "enroll".into();
    })
    .await;

    assert_eq!(status, 200);
}

#[tokio::test]
async fn client_secret_basic_sends_an_authorization_header() {
    let basic = STANDARD.encode(format!("{SDK_CLIENT_ID}:{SDK_SECRET}"));
    let upstream = Mock::given(method("POST"))
        .and(header("authorization", format!("Basic {basic}")))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(FreshToken::lasting(300))
        .expect(1);
    let status = sdk_token_status(upstream, |s| {
        s.credentials.sdk.auth_style = AuthStyle::ClientSecretBasic;
    })
    .await;

    assert_eq!(status, 200);
}
