//! No Astra token, code, state or secret reaches a log line, even at `trace`
//! level with every dependency's logging on, on the success paths and the
//! failure paths alike; and every hand-out, authorization event and refusal
//! on the internal listener has its audit line, naming the caller.

use std::time::Duration;

use astrada_token_vendor::config::{GrantSettings, ProxyGrantSettings};
use atv_dev_fakes::fake_astra::FakeAstraFault;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde_json::json;
use test_support::astra::{CLIENT_SECRET, KEY_1, Store, World, postgres_behind_a_proxy};
use test_support::{app_with_tokens, grant, use_static_keys};

/// The operator's static key: a credential, so it must not be logged either.
const OPERATOR_KEY: &str = "leak-test-operator-key-0123456789abcdef";
/// A key granted tokens of `tenant-x:` users only.
const TENANT_KEY: &str = "leak-test-tenant-key-0123456789abcdef";

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
        .app_as(OPERATOR_KEY, |s| {
            s.astra.webhook_url = "http://127.0.0.1:9/hook".into();
            s.astra.webhook_secret = SecretString::from(webhook_secret);
            use_static_keys(
                s,
                &[("leak-operator", OPERATOR_KEY), ("tenant-x", TENANT_KEY)],
                vec![
                    GrantSettings {
                        proxy: vec![ProxyGrantSettings {
                            upstream: "astra".into(),
                            methods: vec!["GET".into()],
                            paths: vec!["/v1/**".into()],
                        }],
                        ..grant(
                            "leak-operator",
                            &[
                                "astrada:api_token",
                                "astra:token",
                                "astra:manage",
                                "astra:read",
                            ],
                            &[],
                        )
                    },
                    grant("tenant-x", &["astra:token"], &["tenant-x:"]),
                ],
            );
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
    // Proxied calls as alice (the fake Astra is the API too): one with the
    // current token, one refused by Astra's clock, refreshed and replayed.
    assert_eq!(app.get("/astra/users/alice/api/v1/user").await.0, 200);
    world.astra.advance_clock(Duration::from_secs(7201));
    assert_eq!(app.get("/astra/users/alice/api/v1/user").await.0, 200);
    // A reused state and code, a refused code, a failing Astra, a refused user.
    app.http.get(&callback).send().await.unwrap();
    app.post("/astra/users/bob/authorization-code", json!({"code": code}))
        .await;
    let (status, _) = app
        .put(
            "/astra/users/bob/refresh-token",
            json!({"refresh_token": "rt_0123456789abcdef"}),
        )
        .await;
    assert_eq!(status, 400, "Astra refuses the unknown refresh token");
    world.store.expire_access_token("alice").await;
    world.astra.set_fault(FakeAstraFault::ServerError(503));
    app.get("/astra/users/alice/token").await;
    world.astra.set_fault(FakeAstraFault::None);
    world.astra.revoke_refresh_tokens("astra-alice");
    app.get("/astra/users/alice/token").await;
    // The API token, a deletion, and refusals: no key, a wrong key, a caller
    // without the permission, a user outside the caller's prefixes.
    assert_eq!(app.get("/astrada-api-token").await.0, 200);
    world.authorized("carla").await;
    let deleted = app
        .send(reqwest::Method::DELETE, "/astra/users/carla")
        .await;
    assert_eq!(deleted.status(), 204);
    let internal = |path: &str| format!("{}{path}", app.internal);
    let plain = reqwest::Client::new();
    let refusals = [
        plain.get(internal("/astra/users/alice/token")),
        plain
            .get(internal("/astra/users/alice/token"))
            .bearer_auth("wrong-key-0123456789"),
        plain
            .get(internal("/astrada-api-token"))
            .bearer_auth(TENANT_KEY),
        plain
            .get(internal("/astra/users/alice/token"))
            .bearer_auth(TENANT_KEY),
    ];
    for (request, status) in refusals.into_iter().zip([401, 401, 403, 403]) {
        assert_eq!(request.send().await.unwrap().status(), status);
    }

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
        OPERATOR_KEY,
        TENANT_KEY,
        "wrong-key-0123456789",
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs");
    }
    every_event_has_its_audit_line(&captured.audit_events());
}

/// The audit line of each event, with the caller's identity, the user and
/// the outcome; none carries a token (`leaked_marks` checked every line).
fn every_event_has_its_audit_line(events: &[serde_json::Value]) {
    let find = |wanted: &[(&str, serde_json::Value)]| {
        events
            .iter()
            .find(|e| wanted.iter().all(|(k, v)| e["fields"][*k] == *v))
            .unwrap_or_else(|| panic!("no audit line with {wanted:?} in {events:#?}"))
    };
    let operator = || ("subject", json!("leak-operator"));
    let alice = || ("user_ref", json!("alice"));
    let authorization = |action: &str, outcome: &str| {
        vec![
            ("event", json!("astra_authorization")),
            ("action", json!(action)),
            ("outcome", json!(outcome)),
        ]
    };
    let started = [authorization("started", "ok"), vec![operator(), alice()]].concat();
    assert_eq!(find(&started)["fields"]["auth"], "static_key");
    // Exchanged by the browser's callback: no internal caller at all.
    let callback = [
        authorization("exchanged", "ok"),
        vec![
            ("subject", json!("-")),
            ("auth", json!("astra_callback")),
            alice(),
        ],
    ];
    find(&callback.concat());
    // Confirmed by the backend, first for the wrong user.
    let mismatch = [
        authorization("completed", "astra-authorization-mismatch"),
        vec![operator(), ("user_ref", json!("mallory"))],
    ];
    find(&mismatch.concat());
    find(&[authorization("completed", "ok"), vec![operator(), alice()]].concat());
    let refused_code = [
        authorization("completed", "astra-grant-refused"),
        vec![operator()],
    ];
    assert_eq!(find(&refused_code.concat())["fields"]["user_ref"], "bob");
    let refused_import = [
        authorization("imported", "astra-grant-refused"),
        vec![operator()],
    ];
    find(&refused_import.concat());
    let deleted = [authorization("deleted", "ok"), vec![operator()]];
    assert_eq!(find(&deleted.concat())["fields"]["user_ref"], "carla");
    for via in ["token", "stale_generation"] {
        let issued = find(&[
            ("event", json!("astra_token_issued")),
            ("via", json!(via)),
            operator(),
            alice(),
        ]);
        assert!(issued["fields"]["token_sha256_prefix"].is_string());
    }
    for _ in 0..2 {
        find(&[
            ("event", json!("proxied")),
            ("upstream", json!("astra")),
            ("path", json!("/v1/user")),
            ("status", json!(200)),
            operator(),
            alice(),
        ]);
    }
    find(&[
        ("event", json!("token_issued")),
        ("set", json!("api")),
        operator(),
    ]);
    for (status, subject, permission) in [
        (401, "-", "astra:token"),
        (403, "tenant-x", "astrada:api_token"),
        (403, "tenant-x", "astra:token"),
    ] {
        find(&[
            ("event", json!("internal_refused")),
            ("status", json!(status)),
            ("subject", json!(subject)),
            ("permission", json!(permission)),
        ]);
    }
    let out_of_scope = find(&[
        ("event", json!("internal_refused")),
        ("subject", json!("tenant-x")),
        alice(),
    ]);
    assert!(
        out_of_scope["fields"]["reason"]
            .as_str()
            .unwrap()
            .contains("outside the user_ref_prefixes"),
        "{out_of_scope}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_refusals_is_summarised_with_a_count() {
    let captured = test_support::logs::capture();
    let (app, _astrada) = app_with_tokens(|s| {
        use_static_keys(
            s,
            &[("flood-test", "flood-test-key-0123456789")],
            vec![grant("flood-test", &["astrada:api_token"], &[])],
        );
    })
    .await;
    let refuse = |id: String| {
        let request = app
            .http
            .get(app.api_url())
            .bearer_auth("not-a-key-0123456789");
        async move {
            let r = request.header("x-request-id", id).send().await.unwrap();
            assert_eq!(r.status(), 401);
        }
    };
    futures::future::join_all((0..100).map(|i| refuse(format!("flood-{i}")))).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    refuse("flood-last".into()).await;

    let ours: Vec<serde_json::Value> = captured
        .audit_events()
        .into_iter()
        .filter(|e| {
            e["span"]["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("flood-"))
        })
        .collect();
    let lines = ours
        .iter()
        .filter(|e| e["fields"]["event"] == "internal_refused")
        .count();
    let summarised: u64 = ours
        .iter()
        .filter(|e| e["fields"]["event"] == "internal_refused_summary")
        .map(|e| e["fields"]["suppressed"].as_u64().unwrap())
        .sum();
    assert!(summarised > 0, "{lines} lines, none summarised");
    assert_eq!(
        lines as u64 + summarised,
        101,
        "every refusal is accounted for"
    );
    assert_eq!(
        app.metric(
            "atv_internal_auth_refusals_total",
            "permission=\"astrada:api_token\",reason=\"unauthenticated\""
        )
        .await,
        101.0,
        "and counted"
    );
}
