//! Each upstream failure has a defined answer: 503, `Retry-After`, and a
//! problem+json body whose `type` names the cause — and no secret in it.

use std::time::Duration;

use astrada_token_vendor::http::problem::PROBLEM_BASE;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use test_support::*;

async fn answer_for(
    upstream_answer: ResponseTemplate,
) -> (u16, Option<String>, String, serde_json::Value) {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(upstream_answer)
        .mount(&upstream)
        .await;
    let app = spawn_app(&upstream).await;
    let response = app.sdk_token().await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(SDK_SECRET) && !text.contains(API_SECRET),
        "secret in body: {text}"
    );
    (
        status,
        retry_after,
        content_type,
        serde_json::from_str(&text).unwrap(),
    )
}

fn assert_problem(answer: (u16, Option<String>, String, serde_json::Value), slug: &str) {
    let (status, retry_after, content_type, body) = answer;
    assert_eq!(status, 503);
    assert_eq!(content_type, "application/problem+json");
    let secs: u64 = retry_after.expect("Retry-After is set").parse().unwrap();
    assert!(secs >= 1);
    assert_eq!(body["type"], format!("{PROBLEM_BASE}{slug}"));
    assert_eq!(body["status"], 503);
    assert!(body["title"].is_string() && body["detail"].is_string());
}

#[tokio::test]
async fn upstream_500_gives_503_upstream_error() {
    assert_problem(
        answer_for(ResponseTemplate::new(500)).await,
        "upstream-error",
    );
}

#[tokio::test]
async fn upstream_timeout_gives_503_upstream_timeout() {
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(3));
    assert_problem(answer_for(slow).await, "upstream-timeout");
}

#[tokio::test]
async fn upstream_garbage_gives_503_malformed_response() {
    let garbage = ResponseTemplate::new(200).set_body_string("<html>oops</html>");
    assert_problem(answer_for(garbage).await, "upstream-malformed-response");
}

#[tokio::test]
async fn upstream_oversized_body_gives_503_malformed_response() {
    let huge = ResponseTemplate::new(200).set_body_string("x".repeat(200_000));
    assert_problem(answer_for(huge).await, "upstream-malformed-response");
}

#[tokio::test]
async fn invalid_client_gives_503_invalid_client() {
    let rejected = ResponseTemplate::new(401).set_body_json(serde_json::json!({
        "error": "invalid_client",
        "error_description": format!("client secret {SDK_SECRET} is wrong"),
    }));
    let answer = answer_for(rejected).await;
    assert_problem(answer, "upstream-invalid-client");
}

#[tokio::test]
async fn other_4xx_gives_503_rejected_with_the_oauth_code() {
    let rejected =
        ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "invalid_scope"}));
    let answer = answer_for(rejected).await;
    assert!(
        answer.3["detail"]
            .as_str()
            .unwrap()
            .contains("invalid_scope")
    );
    assert_problem(answer, "upstream-rejected");
}

#[tokio::test]
async fn unreachable_upstream_gives_503_unreachable() {
    let upstream = MockServer::start().await;
    let mut settings = test_settings(&upstream);
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    settings.token_endpoint.url = format!("http://127.0.0.1:{closed_port}/oauth/token");
    let app = spawn_with_settings(settings, test_credentials()).await;
    let response = app.sdk_token().await;
    assert_eq!(response.status(), 503);
    let body = json(response).await;
    assert_eq!(body["type"], format!("{PROBLEM_BASE}upstream-unreachable"));
}
