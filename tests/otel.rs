//! Spans really leave the process over OTLP/HTTP when the standard variables
//! say so, join the caller's W3C trace, and carry no secret or token. Its own
//! test binary, because it installs the global subscriber and tracer.

use std::time::Duration;

use astrada_token_vendor::config::{LogFormat, LogSettings};
use astrada_token_vendor::observability::telemetry;
use test_support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn span_names_in_trace(bodies: &[serde_json::Value], trace_id: &str) -> Vec<String> {
    let mut names = Vec::new();
    for body in bodies {
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    if span["traceId"]
                        .as_str()
                        .is_some_and(|t| t.eq_ignore_ascii_case(trace_id))
                    {
                        names.push(span["name"].as_str().unwrap_or_default().to_owned());
                    }
                }
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_over_otlp_in_the_callers_trace() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    // SAFETY: set before any other thread of this test binary reads the environment.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.uri());
        std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
        std::env::set_var("OTEL_SERVICE_NAME", "atv-under-test");
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    }
    let guard = telemetry::init(&LogSettings {
        format: LogFormat::Json,
        filter: "info".into(),
    })
    .expect("telemetry starts");

    let upstream = MockServer::start().await;
    // The upstream sees a cold cache: the request's span is the exchange's parent.
    mount_answers(
        &upstream,
        FreshToken::lasting(300).after(Duration::from_millis(300)),
    )
    .await;
    // The caller's trace and request id count only from a trusted proxy (a
    // gateway); here that is the test itself, on loopback.
    let app = spawn_app_with(&upstream, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let response = app
        .sdk_request()
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .header("x-request-id", "caller-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "caller-chosen-id");
    let token = json(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();

    let requests = receiver.received_requests().await.unwrap();
    assert!(!requests.is_empty(), "no OTLP export arrived");
    let raw: String = requests
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(raw.contains("atv-under-test"), "service name is exported");
    for forbidden in [SDK_SECRET, API_SECRET, token.as_str()] {
        assert!(
            !raw.contains(forbidden),
            "a secret or token was exported as a span attribute"
        );
    }
    let bodies: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let names = span_names_in_trace(&bodies, TRACE_ID);
    for expected in ["GET /astrada-sdk-token", "token_cache.get"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        raw.contains("token.exchange") && raw.contains("oauth.exchange"),
        "exchange spans are exported: {raw}"
    );
}
