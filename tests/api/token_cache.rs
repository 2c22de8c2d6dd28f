//! Caching behaviour seen from outside: single-flight, refresh-ahead,
//! true remaining life, serving through outages, no stampede.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use test_support::*;

#[tokio::test]
async fn sdk_token_is_fetched_once_for_1000_concurrent_callers() {
    let upstream = MockServer::start().await;
    // Slow enough that every caller arrives while the one exchange is in flight.
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_partial_json(
            serde_json::json!({"client_id": SDK_CLIENT_ID}),
        ))
        .respond_with(FreshToken {
            lifetime: 300,
            delay: Duration::from_millis(800),
        })
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_partial_json(
            serde_json::json!({"client_id": API_CLIENT_ID}),
        ))
        .respond_with(FreshToken::lasting(300))
        .mount(&upstream)
        .await;
    // The shipped timeouts rather than the tests' short ones: on a busy
    // machine 1000 callers can slow the mock past one second.
    let app = spawn_app_with(&upstream, |s| {
        s.token_endpoint.timeout_ms = 2500;
        s.cache.wait_timeout_ms = 3000;
    })
    .await;

    let responses = join_all((0..1000).map(|_| async {
        let response = app.sdk_token().await;
        assert_eq!(response.status(), 200);
        json(response).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }))
    .await;

    let distinct: HashSet<_> = responses.iter().collect();
    assert_eq!(distinct.len(), 1, "every caller shares the one token");
    upstream.verify().await;
}

#[tokio::test]
async fn refresh_ahead_replaces_the_token_before_expiry_without_callers_waiting() {
    let upstream = MockServer::start().await;
    mount_tokens(&upstream, 4).await;
    let app = spawn_ready(&upstream, refresh_ahead(2)).await;
    let misses_before = app
        .metric(
            "atv_token_cache_lookups_total",
            "set=\"sdk\",result=\"miss\"",
        )
        .await;

    // Ask every 100 ms for 6 s: across at least two refreshes of a 4 s token.
    let mut seen = HashSet::new();
    for _ in 0..60 {
        let response = app.sdk_token().await;
        assert_eq!(response.status(), 200);
        let body = json(response).await;
        assert!(
            body["expires_in"].as_u64().unwrap() >= 1,
            "never a nearly expired token"
        );
        seen.insert(body["access_token"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(
        seen.len() >= 3,
        "the token was replaced before expiry ({} seen)",
        seen.len()
    );
    let misses_after = app
        .metric(
            "atv_token_cache_lookups_total",
            "set=\"sdk\",result=\"miss\"",
        )
        .await;
    assert_eq!(
        misses_after, misses_before,
        "no caller had to wait for an exchange"
    );
    assert!(
        app.metric("atv_token_refresh_ahead_runs_total", "set=\"sdk\"")
            .await
            >= 2.0
    );
}

#[tokio::test]
async fn expires_in_is_the_true_remaining_life() {
    let (app, _upstream) = ready_app().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let body = json(app.sdk_token().await).await;

    let expires_in = body["expires_in"].as_u64().unwrap();
    assert!(
        (290..300).contains(&expires_in),
        "expires_in was {expires_in}"
    );
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test]
async fn an_earlier_jwt_exp_caps_expires_in() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": jwt(100),
            "expires_in": 300,
            "token_type": "Bearer",
        })))
        .mount(&upstream)
        .await;
    let app = spawn_app(&upstream).await;

    let body = json(app.sdk_token().await).await;

    assert!(body["expires_in"].as_u64().unwrap() <= 100);
}

#[tokio::test]
async fn a_valid_cached_token_is_served_through_an_upstream_outage() {
    let upstream = MockServer::start().await;
    mount_first_tokens_then_500(&upstream, 6).await;
    let app = spawn_ready(&upstream, refresh_ahead(3)).await;
    let first = json(app.sdk_token().await).await["access_token"].clone();

    // Wait until refresh-ahead has hit the failing endpoint.
    let mut waited = 0;
    while exchanges(&upstream).await < 3 {
        assert!(waited < 100, "refresh-ahead never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }

    let response = app.sdk_token().await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["access_token"], first);
}

#[tokio::test]
async fn a_failing_upstream_is_not_stampeded_by_concurrent_callers() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(200)))
        .mount(&upstream)
        .await;
    let app = spawn_app_with(&upstream, |s| {
        s.cache.backoff_initial_ms = 2000;
        s.cache.backoff_max_ms = 4000;
    })
    .await;

    let statuses =
        join_all((0..200).map(|_| async { app.sdk_token().await.status().as_u16() })).await;

    assert!(statuses.iter().all(|s| *s == 503));
    // The 200 callers joined the exchange in flight or were told to back off:
    // exchanges are paced by time (at most about one a second per set while
    // callers wait), never one per caller.
    assert!(
        exchanges(&upstream).await <= 8,
        "{} exchanges",
        exchanges(&upstream).await
    );
}
