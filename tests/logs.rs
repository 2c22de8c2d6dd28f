//! Secrets and tokens never reach a log line, even at `trace` level with every
//! dependency's logging on. Its own test binary, because it installs the one
//! global subscriber.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use helpers::*;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_or_token_appears_in_trace_level_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .init();

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
    tokio::time::sleep(Duration::from_millis(200)).await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("token refreshed"), "logs were captured");
    assert!(
        logs.contains("token exchange failed"),
        "the failure was logged"
    );
    let basic = STANDARD.encode(format!("{API_CLIENT_ID}:{API_SECRET}"));
    let signature = token.rsplit('.').next().unwrap();
    for forbidden in [
        API_SECRET,
        SDK_SECRET,
        basic.as_str(),
        token.as_str(),
        signature,
    ] {
        assert!(
            !logs.contains(forbidden),
            "`{forbidden}` leaked into the logs"
        );
    }
}
