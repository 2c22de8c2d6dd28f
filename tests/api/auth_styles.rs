//! The three ways of presenting client credentials reach the wire as specified.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use wiremock::matchers::{body_json, body_string_contains, header, method};
use wiremock::{Mock, MockServer};

use astrada_token_vendor::config::AuthStyle;

use test_support::*;

#[tokio::test]
async fn json_style_sends_astradas_documented_body() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("content-type", "application/json"))
        .and(body_json(serde_json::json!({
            "client_id": SDK_CLIENT_ID,
            "client_secret": SDK_SECRET,
            "grant_type": "client_credentials",
        })))
        .respond_with(FreshToken::lasting(300))
        .expect(1)
        .mount(&upstream)
        .await;
    let app = spawn_app(&upstream).await;

    assert_eq!(app.sdk_token().await.status(), 200);
}

#[tokio::test]
async fn client_secret_post_sends_a_form_body() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains(format!("client_id={SDK_CLIENT_ID}")))
        .and(body_string_contains(format!("client_secret={SDK_SECRET}")))
        .and(body_string_contains("scope=enroll"))
        .respond_with(FreshToken::lasting(300))
        .expect(1)
        .mount(&upstream)
        .await;
    let app = spawn_app_with(&upstream, |s| {
        s.credentials.sdk.auth_style = AuthStyle::ClientSecretPost;
        s.credentials.sdk.scope = "enroll".into();
    })
    .await;

    assert_eq!(app.sdk_token().await.status(), 200);
}

#[tokio::test]
async fn client_secret_basic_sends_an_authorization_header() {
    let upstream = MockServer::start().await;
    let basic = STANDARD.encode(format!("{SDK_CLIENT_ID}:{SDK_SECRET}"));
    Mock::given(method("POST"))
        .and(header("authorization", format!("Basic {basic}")))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(FreshToken::lasting(300))
        .expect(1)
        .mount(&upstream)
        .await;
    let app = spawn_app_with(&upstream, |s| {
        s.credentials.sdk.auth_style = AuthStyle::ClientSecretBasic;
    })
    .await;

    assert_eq!(app.sdk_token().await.status(), 200);
}
