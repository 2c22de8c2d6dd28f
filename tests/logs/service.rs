//! The Astrada side and Secrets Manager: no credential, token or secret
//! value reaches a log line.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use test_support::logs::capture;
use test_support::moto::OnMoto;
use test_support::*;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn no_secret_or_token_appears_in_trace_level_logs() {
    let captured = capture();

    let token = jwt(300);
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(
            serde_json::json!({"client_id": SDK_CLIENT_ID}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": token, "expires_in": 300, "token_type": "Bearer"
        })))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("secret {API_SECRET} does not match"),
        })))
        .mount(&upstream)
        .await;
    let app = spawn_app(&upstream).await;

    let sdk = app.sdk_token().await;
    assert_eq!(sdk.status(), 200);
    assert_eq!(json(sdk).await["access_token"], token.as_str());
    assert_eq!(app.api_token().await.status(), 503);

    // Session tokens, accepted or refused, stay out of the logs too.
    let key = TestKey::app_rsa("k1");
    let jwks = jwks_server(&[&key]).await;
    let guarded = spawn_app_with(&upstream, |s| use_jwt_callers(s, &jwks)).await;
    let session = key.session("user-7", 600);
    let forged = TestKey::other_rsa("k1").session("user-8", 600);
    assert_eq!(guarded.sdk_token_as(&session).await.status(), 200);
    assert_eq!(guarded.sdk_token_as(&session).await.status(), 200);
    assert_eq!(guarded.sdk_token_as(&forged).await.status(), 401);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let logs = captured.text();
    let events = captured.audit_events();
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    let issued = events
        .iter()
        .find(|e| e["fields"]["token_sha256_prefix"] == digest[..12])
        .unwrap_or_else(|| panic!("an audit event names the issued token by hash: {events:?}"));
    assert_eq!(issued["fields"]["event"], "token_issued");
    assert_eq!(issued["fields"]["subject"], "anonymous");
    assert_eq!(issued["fields"]["set"], "sdk");
    assert!(issued["fields"]["expires_in"].as_u64().unwrap() > 200);
    let to_user_7: Vec<_> = events
        .iter()
        .filter(|e| e["fields"]["event"] == "token_issued" && e["fields"]["subject"] == "user-7")
        .collect();
    assert_eq!(
        to_user_7.len(),
        1,
        "one line per token per holder, however often it asks"
    );
    assert_eq!(to_user_7[0]["fields"]["auth"], "jwt");
    assert!(events.iter().any(|e| {
        e["fields"]["event"] == "token_refused"
            && e["fields"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("bad signature"))
    }));
    assert!(logs.contains("token refreshed"), "logs were captured");
    assert!(
        logs.contains("token exchange failed"),
        "the failure was logged"
    );
    let basic = STANDARD.encode(format!("{API_CLIENT_ID}:{API_SECRET}"));
    let signature = token.rsplit('.').next().unwrap();
    let session_signature = session.rsplit('.').next().unwrap();
    let forged_signature = forged.rsplit('.').next().unwrap();
    for forbidden in [
        API_SECRET,
        SDK_SECRET,
        basic.as_str(),
        token.as_str(),
        signature,
        session_signature,
        forged_signature,
    ] {
        assert!(
            !logs.contains(forbidden),
            "`{forbidden}` leaked into the logs"
        );
    }
}

/// Waits (bounded) until `what` has been logged.
#[tokio::test]
async fn no_secrets_manager_value_appears_in_trace_level_logs() {
    let captured = capture();
    // First a malformed value that still carries secrets, then a good one,
    // then an outage: every path that logs about the secret.
    let malformed = serde_json::json!({
        "api": {"client_id": "log-api", "client_secret": secret_of("log-api")},
        "sdk": {"client_id": "log-sdk", "clientSecret": secret_of("log-sdk")},
    });
    let mut app = OnMoto::scene()
        .accepting(&["log-api", "log-sdk"])
        .secret("atv/logged", malformed.to_string())
        .settings(|s| s.credentials.reload_interval_secs = 1)
        .start()
        .await;

    captured.logged("credentials cannot be loaded").await;
    app.moto
        .put_secret_value("atv/logged", &bundle("log-api", "log-sdk"))
        .await;
    captured.logged("credentials loaded").await;
    app.eventually_ready("ready", Duration::from_secs(30)).await;
    assert_eq!(app.sdk_token().await.status(), 200);
    app.moto.stop().await;
    captured.logged("credential reload failed").await;

    let logs = captured.text();
    assert!(
        logs.contains("missing string field \\\"sdk.client_secret\\\""),
        "the load error names the field"
    );
    assert!(
        !logs.contains(SECRET_MARK),
        "a Secrets Manager value leaked into the logs"
    );
}
