//! What each listener exposes, and how unknown paths and methods are answered.

use std::time::Duration;

use astrada_token_vendor::http::{API_TOKEN_PATH, SDK_TOKEN_PATH};
use wiremock::MockServer;

use test_support::*;

#[tokio::test]
async fn api_token_is_served_only_on_the_internal_listener() {
    let (app, _upstream) = app_with_tokens(|_| {}).await;

    let internal = app.api_token().await;
    assert_eq!(internal.status(), 200);
    assert_eq!(internal.headers()["cache-control"], "no-store");

    for path in [
        API_TOKEN_PATH.to_owned(),
        "/metrics".to_owned(),
        format!("{API_TOKEN_PATH}/"),
        API_TOKEN_PATH.to_uppercase(),
    ] {
        let public = app.get(format!("{}{path}", app.public)).await;
        assert_eq!(
            public.status(),
            404,
            "{path} must not exist on the public listener"
        );
        assert_eq!(public.headers()["content-type"], "application/problem+json");
    }
    let sdk_on_internal = app.get(format!("{}{SDK_TOKEN_PATH}", app.internal)).await;
    assert_eq!(sdk_on_internal.status(), 404);
}

#[tokio::test]
async fn sdk_token_response_is_never_cacheable() {
    let (app, _upstream) = app_with_tokens(|_| {}).await;

    let response = app.sdk_token().await;

    assert_eq!(response.status(), 200);
    assert_headers(&response, NO_STORE_HEADERS);
    assert_headers(&response, &[("content-type", "application/json")]);
    let body = json(response).await;
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "only access_token, expires_in, token_type"
    );
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let (app, _upstream) = app_with_tokens(|_| {}).await;

    let response = app.http.post(app.sdk_url()).send().await.unwrap();

    assert_eq!(response.status(), 405);
    // OPTIONS is there for CORS preflights (tests/api/cors.rs).
    assert_eq!(response.headers()["allow"], "GET, OPTIONS");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn readiness_waits_for_tokens_and_liveness_does_not() {
    let upstream = MockServer::start().await; // no mock yet: every exchange gets 404
    let app = spawn_app(&upstream).await;

    assert_eq!(app.public_status("/healthz").await, 200);
    let not_ready = app.get(format!("{}/readyz", app.public)).await;
    assert_eq!(not_ready.status(), 503);
    assert!(not_ready.headers().contains_key("retry-after"));

    mount_tokens(&upstream, 300).await;
    app.wait_ready().await;
    assert_eq!(app.internal_status("/readyz").await, 200);
}

#[tokio::test]
async fn metrics_count_exchanges_by_set_and_outcome() {
    let (app, _upstream) = ready_app().await;
    app.sdk_token().await;

    assert_eq!(
        app.metric("atv_token_exchanges_total", "set=\"sdk\",outcome=\"ok\"")
            .await,
        1.0
    );
    assert_eq!(
        app.metric("atv_token_exchanges_total", "set=\"api\",outcome=\"ok\"")
            .await,
        1.0
    );
    assert!(app.metric("atv_token_expiry_seconds", "set=\"sdk\"").await > 290.0);
}

#[tokio::test]
async fn readiness_survives_an_upstream_outage_once_tokens_were_obtained() {
    let upstream = MockServer::start().await;
    mount_first_tokens_then_500(&upstream, 4).await;
    let app = spawn_ready(&upstream, refresh_ahead(2)).await;

    // Once the token is too old to hand out, callers get fast 503s ...
    let mut status = 200;
    for _ in 0..100 {
        status = app.sdk_token().await.status().as_u16();
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 503);
    // ... but the replica stays in the Service, so they get that answer at all.
    assert_eq!(app.public_status("/readyz").await, 200);
}
