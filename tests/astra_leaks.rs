//! No Astra token, code, state or secret reaches a log line, even at `trace`
//! level with every dependency's logging on, on the success paths and the
//! failure paths alike. Its own binary, because it installs the one global
//! subscriber.

use std::time::Duration;

use astrada_token_vendor::app::dev::fake_astra::FakeAstraFault;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde_json::json;
use test_support::astra::{CLIENT_SECRET, KEY_1, Store, World, postgres_behind_a_proxy};

/// The fake's tokens and codes carry these prefixes followed by hex.
const MARKS: &[&str] = &["at_", "rt_", "code_"];

fn leaked_marks(text: &str) -> Vec<String> {
    MARKS
        .iter()
        .flat_map(|mark| {
            text.match_indices(mark).filter_map(move |(i, _)| {
                let rest = &text[i + mark.len()..];
                let hex = rest.chars().take_while(char::is_ascii_hexdigit).count();
                (hex >= 8).then(|| text[i..i + mark.len() + hex].to_owned())
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_astra_token_code_state_or_secret_appears_in_trace_level_logs() {
    let captured = test_support::logs::capture();

    let webhook_secret = "leak-test-webhook-secret-0123456789";
    let world = World::new(Store::sqlite().await).await;
    let app = world
        .app(|s| {
            s.webhook_url = "http://127.0.0.1:9/hook".into();
            s.webhook_secret = SecretString::from(webhook_secret);
        })
        .await;

    // Authorize through the callback, then use every route.
    let (_, started) = app
        .post("/astra/users/alice/authorization", json!({}))
        .await;
    let state = started["state"].as_str().unwrap().to_owned();
    let code = world.astra.issue_code("astra-alice");
    let callback = format!("{}/astra/callback?code={code}&state={state}", app.public);
    let r = app.http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let awaiting: serde_json::Value = r.json().await.unwrap();
    let handle = awaiting["handle"].as_str().unwrap().to_owned();
    // A handle confirmed for the wrong user first, then for the right one.
    app.post(
        "/astra/users/mallory/authorization/confirm",
        json!({"handle": handle}),
    )
    .await;
    let callback = {
        let (_, started) = app
            .post("/astra/users/alice/authorization", json!({}))
            .await;
        let state = started["state"].as_str().unwrap().to_owned();
        let code = world.astra.issue_code("astra-alice");
        format!("{}/astra/callback?code={code}&state={state}", app.public)
    };
    let r = app.http.get(&callback).send().await.unwrap();
    let awaiting: serde_json::Value = r.json().await.unwrap();
    let second_handle = awaiting["handle"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            "/astra/users/alice/authorization/confirm",
            json!({"handle": second_handle}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, token) = app.get("/astra/users/alice/token").await;
    let (status, _) = app.refresh_stale("alice", &token["generation"]).await;
    assert_eq!(status, 200);
    app.get("/astra/users/alice").await;
    app.get("/astra/users").await;
    // A reused state and code, a refused code, a failing Astra, a refused user.
    app.http.get(&callback).send().await.unwrap();
    app.post("/astra/users/bob/authorization-code", json!({"code": code}))
        .await;
    app.post(
        "/astra/users/bob/refresh-token",
        json!({"refresh_token": "rt_0123456789abcdef"}),
    )
    .await;
    world.store.expire_access_token("alice").await;
    world.astra.set_fault(FakeAstraFault::ServerError(503));
    app.get("/astra/users/alice/token").await;
    world.astra.set_fault(FakeAstraFault::None);
    world.astra.revoke_refresh_tokens("astra-alice");
    app.get("/astra/users/alice/token").await;

    // PostgreSQL, with a password in the store URL: the token cache, the
    // change feed and the heartbeat, through a database outage and back.
    let store_password = "leak-test-store-password-0123456789";
    let (pg_world, proxy, via_proxy) = postgres_behind_a_proxy(Some(store_password)).await;
    pg_world.authorized("carol").await;
    let pg_app = pg_world
        .app(|s| s.store_url = SecretString::from(via_proxy))
        .await;
    for _ in 0..3 {
        pg_app.get("/astra/users/carol/token").await;
    }
    proxy.cut();
    pg_app.get("/astra/users/carol/token").await;
    pg_app.get("/astra/users/nobody-cached/token").await;
    pg_app.send(reqwest::Method::GET, "/metrics").await;
    captured.logged("change feed was lost").await;
    captured.logged("astra replica heartbeat failed").await;
    proxy.restore();
    test_support::eventually("the store is back", Duration::from_secs(10), || async {
        pg_app.get("/astra/users/nobody-cached/token").await.0 == 404
    })
    .await;
    pg_app.get("/astra/users/carol/token").await;

    let logs = captured.text();
    assert!(
        logs.contains("astra user authorized"),
        "the flow was logged"
    );
    assert!(
        logs.contains("astra refresh failed"),
        "the failures were logged"
    );
    let leaks = leaked_marks(&logs);
    assert!(leaks.is_empty(), "tokens or codes in the logs: {leaks:?}");
    for secret in [
        state.as_str(),
        handle.as_str(),
        second_handle.as_str(),
        CLIENT_SECRET,
        webhook_secret,
        store_password,
        &STANDARD.encode(KEY_1.1),
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs");
    }
}
