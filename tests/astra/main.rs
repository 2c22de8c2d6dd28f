//! Per-user Astra tokens, specified by behaviour: the service and whole apps
//! against the fake Astra, on SQLite and on a real PostgreSQL. Every test
//! runs on both stores. `client` and `store` specify the two layers under the
//! service apart from it: the Astra client against the fake Astra, and the
//! store's own contract.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use astrada_token_vendor::http::problem::PROBLEM_BASE;
use astrada_token_vendor::user_tokens::{FaultPoint, Field, UserTokenError};
use atv_dev_fakes::fake_astra::FakeAstraFault;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use astrada_token_vendor::observability::Metrics;
use astrada_token_vendor::user_tokens::UserTokens;
use test_support::astra::{
    KEY_1, KEY_2, Store, World, cipher, keys, postgres_behind_a_proxy, user_ref,
};

mod binding;
mod bodies;
mod callback_errors;
mod client;
mod landing;
mod pkce;
mod request_ids;
mod store;
use binding::*;
use bodies::*;
use callback_errors::*;
use landing::*;
use pkce::*;
use request_ids::*;

test_support::on_sqlite_and_postgres!(
    Store:
    a_victim_who_follows_an_attackers_authorize_link_never_authorizes_the_attackers_user_ref,
    an_astra_error_redirect_is_a_denied_authorization_not_an_invalid_state,
    a_failed_code_exchange_sends_the_person_back_with_a_way_to_retry,
    json_bodies_must_be_objects,
    dot_segments_are_not_user_refs,
    a_request_id_with_slashes_and_pluses_never_blocks_a_code_exchange_or_a_refresh,
    a_caller_who_hangs_up_during_the_code_exchange_still_gets_the_tokens_stored,
    a_chunked_body_over_the_limit_is_refused_as_problem_json,
    a_form_post_to_the_internal_listener_is_refused_as_not_json,
    with_internal_auth_off_a_web_page_cannot_drive_the_internal_listener,
    with_pkce_an_authorization_started_here_completes_with_its_verifier,
    with_pkce_a_leaked_code_cannot_be_redeemed_without_its_verifier,
    a_callback_exchanges_the_code_and_each_state_works_once,
    an_unknown_or_expired_state_is_refused,
    two_hundred_concurrent_requests_for_an_expired_token_refresh_once,
    two_replicas_refresh_an_expired_user_once,
    after_one_replica_refreshes_the_other_hands_out_the_new_token,
    a_stale_generation_refresh_happens_only_once_per_generation,
    a_refresh_interrupted_after_astra_answered_loses_nothing,
    a_refused_refresh_token_falls_back_to_the_previous_one,
    a_user_whose_refresh_tokens_are_refused_must_reauthorize_and_the_webhook_hears,
    a_401_from_astra_does_not_mark_the_user,
    a_transient_astra_failure_leaves_the_status_alone,
    key_rotation_rewrites_rows_on_refresh,
    the_scheduler_refreshes_due_users_and_no_others,
    the_raw_database_holds_no_token_plaintext,
    expires_in_never_outlives_the_next_planned_refresh,
    the_api_never_returns_a_refresh_token_and_deletes_users,
    a_store_file_used_from_another_host_is_refused_on_sqlite_only,
    each_replica_counts_the_live_replicas_sharing_the_astra_cap,
);

fn problem(slug: &str) -> String {
    format!("{PROBLEM_BASE}{slug}")
}

async fn a_callback_exchanges_the_code_and_each_state_works_once(store: Store) {
    let (world, app) = World::with_app(store).await;
    let (status, started) = app
        .post(
            "/astra/users/alice/authorization",
            json!({"user_intent_id": "intent-1"}),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let state = started["state"].as_str().unwrap();
    let authorize_url = started["authorize_url"].as_str().unwrap();
    assert!(
        authorize_url.contains("response_type=code"),
        "{authorize_url}"
    );
    assert!(
        authorize_url.contains("user_intent_id=intent-1"),
        "{authorize_url}"
    );
    assert_eq!(started["expires_in"], 600);

    let code = world.astra.issue_code("astra-alice");
    let callback = format!("{}/astra/callback?code={code}&state={state}", app.public);
    let r = app.http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["outcome"], "confirm", "{body}");
    assert_eq!(body["expires_in"], 600);
    let (status, _) = app.get("/astra/users/alice").await;
    assert_eq!(status, 404, "nothing is active before the backend confirms");

    let (status, summary) = app
        .post(
            "/astra/users/alice/authorization/confirm",
            json!({"handle": body["handle"]}),
        )
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["generation"], 1);
    let (status, again) = app
        .post(
            "/astra/users/alice/authorization/confirm",
            json!({"handle": body["handle"]}),
        )
        .await;
    assert_eq!(status, 400, "a handle confirms once");
    assert_eq!(again["type"], problem("astra-confirmation-invalid"));

    let (status, token) = app.get("/astra/users/alice/token").await;
    assert_eq!(status, 200);
    assert!(
        world
            .astra
            .is_current_access_token(token["access_token"].as_str().unwrap())
    );

    // The same state again, even with a fresh code: refused.
    let code = world.astra.issue_code("astra-alice");
    let again = format!("{}/astra/callback?code={code}&state={state}", app.public);
    let r = app.http.get(&again).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["type"], problem("astra-state-invalid"));
    assert_eq!(world.astra.code_exchanges(), 1);
}

async fn an_unknown_or_expired_state_is_refused(store: Store) {
    let world = World::new(store).await;
    let app = world
        .app(|s| s.completion_url = "http://127.0.0.1:9/done".into())
        .await;
    let code = world.astra.issue_code("astra-bob");
    let unknown = format!("{}/astra/callback?code={code}&state=made-up", app.public);
    let r = app.http.get(&unknown).send().await.unwrap();
    assert_eq!(r.status(), 303, "a browser is sent to the completion page");
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:9/done?"),
        "{location}"
    );
    assert!(location.contains("outcome=failed"), "{location}");
    assert!(location.contains("astra-state-invalid"), "{location}");

    let (_, started) = app.post("/astra/users/bob/authorization", json!({})).await;
    let state = started["state"].as_str().unwrap();
    world
        .store
        .execute(
            "UPDATE astra_authorization_states SET expires_at = 0 WHERE user_ref = $1",
            "bob",
        )
        .await;
    let expired = format!("{}/astra/callback?code={code}&state={state}", app.public);
    let r = app.http.get(&expired).send().await.unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("astra-state-invalid"), "{location}");
    assert_eq!(world.astra.code_exchanges(), 0, "no code reached Astra");
    let (status, _) = app.get("/astra/users/bob").await;
    assert_eq!(status, 404);
}

async fn two_hundred_concurrent_requests_for_an_expired_token_refresh_once(store: Store) {
    let (world, app) = World::with_app(store).await;
    world.expired("carol").await;

    let app = Arc::new(app);
    let requests = (0..200).map(|_| {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.get("/astra/users/carol/token").await })
    });
    let answers = futures::future::join_all(requests).await;
    let tokens: HashSet<String> = answers
        .into_iter()
        .map(|a| {
            let (status, body) = a.unwrap();
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(world.astra.refreshes_for("astra-carol"), 1);
    assert_eq!(tokens.len(), 1, "everyone got the one new token");
    assert!(
        world
            .astra
            .is_current_access_token(tokens.iter().next().unwrap())
    );
}

async fn two_replicas_refresh_an_expired_user_once(store: Store) {
    let world = World::new(store).await;
    let (a, b) = (world.app(|_| {}).await, world.app(|_| {}).await);
    world.expired("dave").await;

    let (a, b) = (Arc::new(a), Arc::new(b));
    let requests = (0..100).map(|i| {
        let app = Arc::clone(if i % 2 == 0 { &a } else { &b });
        tokio::spawn(async move { app.get("/astra/users/dave/token").await })
    });
    for answer in futures::future::join_all(requests).await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(
            world
                .astra
                .is_current_access_token(body["access_token"].as_str().unwrap())
        );
    }
    assert_eq!(world.astra.refreshes_for("astra-dave"), 1);
}

async fn after_one_replica_refreshes_the_other_hands_out_the_new_token(store: Store) {
    let world = World::new(store).await;
    let (a, b) = (world.app(|_| {}).await, world.app(|_| {}).await);
    world.authorized("erin").await;
    let (_, before) = b.get("/astra/users/erin/token").await;
    // Again, so that on PostgreSQL b answers from its cache.
    let (_, again) = b.get("/astra/users/erin/token").await;
    assert_eq!(again["access_token"], before["access_token"]);

    let (status, refreshed) = a.refresh_stale("erin", &before["generation"]).await;
    assert_eq!(status, 200);
    // b drops the replaced token once the change reaches it: at once on
    // SQLite (no cache), within the change feed's delay on PostgreSQL.
    let after = test_support::eventually_some(
        "b hands out the new token",
        Duration::from_secs(2),
        || async {
            let (_, after) = b.get("/astra/users/erin/token").await;
            let token = &after["access_token"];
            assert!(
                *token == before["access_token"] || *token == refreshed["access_token"],
                "only the old token or the new one"
            );
            (*token == refreshed["access_token"]).then_some(after)
        },
    )
    .await;
    assert!(
        world
            .astra
            .is_current_access_token(after["access_token"].as_str().unwrap())
    );
    assert!(
        !world
            .astra
            .is_current_access_token(before["access_token"].as_str().unwrap())
    );
}

async fn a_stale_generation_refresh_happens_only_once_per_generation(store: Store) {
    let world = World::new(store).await;
    let app = Arc::new(world.app(|_| {}).await);
    world.authorized("fay").await;
    let (_, first) = app.get("/astra/users/fay/token").await;
    let generation = first["generation"].as_i64().unwrap();

    let burst = (0..50).map(|_| {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.refresh_stale("fay", &generation.into()).await })
    });
    for answer in futures::future::join_all(burst).await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["generation"].as_i64().unwrap(), generation + 1);
    }
    assert_eq!(world.astra.refreshes_for("astra-fay"), 1);
}

async fn a_refresh_interrupted_after_astra_answered_loses_nothing(store: Store) {
    let world = World::new(store).await;
    let service = world.expired("gus").await;

    let crashing = world.service(|_| {}).await;
    let crashed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&crashed);
    let installed = crashing.refresher().set_fault_hook(Arc::new(move |point| {
        point == FaultPoint::AfterAstraBeforeCommit && !flag.swap(true, Ordering::SeqCst)
    }));
    assert!(
        installed.is_ok(),
        "the fault hook is installed on a shared service"
    );
    let result = crashing.token(&user_ref("gus")).await;
    assert!(matches!(result, Err(UserTokenError::Crashed)), "{result:?}");
    assert!(crashed.load(Ordering::SeqCst));
    assert_eq!(
        world.astra.refreshes_for("astra-gus"),
        1,
        "Astra did answer"
    );

    // The dead holder's lease runs out; another replica refreshes with the
    // refresh token that is still stored, which Astra still honours.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let token = service
        .token(&user_ref("gus"))
        .await
        .expect("refresh after takeover");
    assert!(
        world
            .astra
            .is_current_access_token(token.access_token.expose_secret())
    );
    assert_eq!(world.astra.refreshes_for("astra-gus"), 2);
    let summary = service.summary(&user_ref("gus")).await.unwrap();
    assert_eq!(summary.status, "active");
}

async fn a_refused_refresh_token_falls_back_to_the_previous_one(store: Store) {
    let world = World::new(store).await;
    let service = world.authorized("hal").await;
    // One refresh, so the first refresh token becomes the previous one.
    let first = service.token(&user_ref("hal")).await.unwrap();
    let second = service
        .refresh_stale(&user_ref("hal"), first.generation)
        .await
        .unwrap();
    // The current refresh token is lost (a token Astra never issued).
    let bogus = cipher(KEY_1)
        .seal(
            &user_ref("hal"),
            Field::RefreshToken,
            &SecretString::from("rt_unknown"),
        )
        .unwrap();
    world.store.set_refresh_token("hal", bogus.blob).await;

    let third = service
        .refresh_stale(&user_ref("hal"), second.generation)
        .await
        .unwrap();
    assert!(
        world
            .astra
            .is_current_access_token(third.access_token.expose_secret())
    );
    assert_eq!(
        service.summary(&user_ref("hal")).await.unwrap().status,
        "active"
    );
}

async fn a_user_whose_refresh_tokens_are_refused_must_reauthorize_and_the_webhook_hears(
    store: Store,
) {
    let world = World::new(store).await;
    let hook = MockServer::start().await;
    // The first delivery fails, so the event is sent again.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&hook)
        .await;
    let secret = "webhook-secret-0123456789abcdef";
    let app = world
        .app(|s| {
            s.webhook_url = format!("{}/hook", hook.uri());
            s.webhook_secret = SecretString::from(secret);
        })
        .await;
    world.authorized("ivy").await;
    world.astra.revoke_refresh_tokens("astra-ivy");
    world.store.expire_access_token("ivy").await;

    let (status, body) = app.get("/astra/users/ivy/token").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], problem("astra-reauthorization-required"));
    let (_, summary) = app.get("/astra/users/ivy").await;
    assert_eq!(summary["status"], "reauthorization_required");
    assert_eq!(summary["last_error"], "astra_grant_refused");
    let (_, listed) = app
        .get("/astra/users?status=reauthorization_required")
        .await;
    assert_eq!(listed["users"][0]["user_ref"], "ivy");

    // The event arrives twice (the first delivery failed), signed over
    // "TIMESTAMP.BODY", with one event id to de-duplicate on.
    let mut received = Vec::new();
    for _ in 0..100 {
        received = hook.received_requests().await.unwrap_or_default();
        if received.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(received.len(), 2, "the failed delivery was retried");
    let event = &received[1];
    let body = String::from_utf8(event.body.clone()).unwrap();
    assert_eq!(received[0].body, event.body, "a retry sends the same event");
    let payload: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["type"], "astra.user.reauthorization_required");
    assert_eq!(payload["user_ref"], "ivy");
    let id = payload["id"].as_str().expect("an event id");
    assert!(id.starts_with("evt_") && id.len() == 36, "{id}");
    assert_eq!(event.headers["x-atv-event-id"].to_str().unwrap(), id);
    let signature = event.headers["x-atv-signature"].to_str().unwrap();
    let (t, v1) = signature.split_once(",v1=").unwrap();
    let timestamp = t.strip_prefix("t=").unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let expected = aws_lc_rs::hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    assert_eq!(v1, hex::encode(expected.as_ref()));
}

async fn a_401_from_astra_does_not_mark_the_user(store: Store) {
    let (world, app) = World::with_app(store).await;
    world.expired("jon").await;
    world.astra.set_fault(FakeAstraFault::ClientRejected);

    let (status, body) = app.get("/astra/users/jon/token").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["type"], problem("astra-client-rejected"));
    let (_, summary) = app.get("/astra/users/jon").await;
    assert_eq!(summary["status"], "active");

    world.astra.set_fault(FakeAstraFault::None);
    let (status, _) = app.get("/astra/users/jon/token").await;
    assert_eq!(status, 200);
}

async fn a_transient_astra_failure_leaves_the_status_alone(store: Store) {
    let (world, app) = World::with_app(store).await;
    world.expired("kim").await;
    world.astra.set_fault(FakeAstraFault::ServerError(503));

    let r = app.send(Method::GET, "/astra/users/kim/token").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let (_, summary) = app.get("/astra/users/kim").await;
    assert_eq!(summary["status"], "active");
    assert_eq!(summary["last_error"], "astra_5xx");
}

async fn key_rotation_rewrites_rows_on_refresh(store: Store) {
    let world = World::new(store).await;
    let old = world.service(|_| {}).await;
    world.authorize(&old, "lea", "astra-lea").await;
    assert_eq!(old.store().count_rows_using_key(KEY_1.0).await.unwrap(), 1);

    let rotated = world
        .service(|s| {
            s.encryption_keys = keys(&[KEY_1, KEY_2]);
            s.active_key_id = KEY_2.0.into();
        })
        .await;
    let before = rotated
        .token(&user_ref("lea"))
        .await
        .expect("old rows stay readable");
    rotated
        .refresh_stale(&user_ref("lea"), before.generation)
        .await
        .unwrap();
    assert_eq!(
        rotated.store().count_rows_using_key(KEY_2.0).await.unwrap(),
        1
    );
    // The previous refresh token was sealed with the old key, and stays so
    // until it is replaced by the next refresh.
    rotated
        .refresh_stale(&user_ref("lea"), before.generation + 1)
        .await
        .unwrap();
    assert_eq!(
        rotated.store().count_rows_using_key(KEY_1.0).await.unwrap(),
        0
    );
}

async fn the_scheduler_refreshes_due_users_and_no_others(store: Store) {
    let world = World::new(store).await;
    let service = world.service(|_| {}).await;
    for user in ["mia", "ned", "ola"] {
        world
            .authorize(&service, user, &format!("astra-{user}"))
            .await;
    }
    world.store.make_due("mia").await;
    world.store.make_due("ned").await;

    let attempted = service.scheduler().pass().await.unwrap();
    assert_eq!(attempted, 2);
    assert_eq!(world.astra.refreshes_for("astra-mia"), 1);
    assert_eq!(world.astra.refreshes_for("astra-ned"), 1);
    assert_eq!(world.astra.refreshes_for("astra-ola"), 0);
    let mia = service.summary(&user_ref("mia")).await.unwrap();
    assert!(mia.next_refresh_at > mia.last_refresh_at.unwrap() + 6 * 86_400);
    assert_eq!(
        service.scheduler().pass().await.unwrap(),
        0,
        "nobody is due twice"
    );
}

async fn the_raw_database_holds_no_token_plaintext(store: Store) {
    let world = World::new(store).await;
    let service = world.authorized("pia").await;
    let token = service.token(&user_ref("pia")).await.unwrap();
    let raw = world.store.raw_token_bytes().await;
    let plaintext = token.access_token.expose_secret().as_bytes();
    assert!(!raw.is_empty());
    assert!(!raw.windows(plaintext.len()).any(|w| w == plaintext));
}

async fn expires_in_never_outlives_the_next_planned_refresh(store: Store) {
    let world = World::new(store).await;
    let service = world.service(|s| s.access_refresh_margin_secs = 300).await;
    world.authorize(&service, "quinn", "astra-quinn").await;
    let token = service.token(&user_ref("quinn")).await.unwrap();
    // Astra's 2-hour token, minus the on-demand refresh margin.
    assert!(
        (6890..=6900).contains(&token.expires_in),
        "{}",
        token.expires_in
    );
    world
        .store
        .execute(
            "UPDATE astra_users SET next_refresh_at = next_refresh_at - 604800 + 60 WHERE user_ref = $1",
            "quinn",
        )
        .await;
    let soon = service.token(&user_ref("quinn")).await.unwrap();
    assert!(soon.expires_in <= 60, "{}", soon.expires_in);
}

async fn the_api_never_returns_a_refresh_token_and_deletes_users(store: Store) {
    let (world, app) = World::with_app(store).await;
    let code = world.astra.issue_code("astra-rae");
    let (status, summary) = app
        .post("/astra/users/rae/authorization-code", json!({"code": code}))
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["status"], "active");
    assert_eq!(summary["generation"], 1);
    for (_, body) in [
        app.get("/astra/users/rae").await,
        app.get("/astra/users/rae/token").await,
        app.get("/astra/users").await,
    ] {
        let text = body.to_string();
        assert!(
            !text.contains("refresh_token") && !text.contains("rt_"),
            "{text}"
        );
    }
    let (status, body) = app
        .post(
            "/astra/users/rae/authorization",
            json!({"user_intent_id": "C>I_"}),
        )
        .await;
    assert_eq!(
        status, 400,
        "an intent id the store cannot keep is the caller's error"
    );
    assert_eq!(body["type"], problem("bad-request"));
    let (status, body) = app.get("/astra/users/not%20valid/token").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], problem("invalid-user-ref"));

    let r = app.send(Method::DELETE, "/astra/users/rae").await;
    assert_eq!(r.status(), 204);
    let (status, _) = app.get("/astra/users/rae/token").await;
    assert_eq!(status, 404);
}

async fn a_store_file_used_from_another_host_is_refused_on_sqlite_only(store: Store) {
    let world = World::new(store).await;
    let _first = world.service(|_| {}).await;
    world
        .store
        .execute(
            // Seen "now" by the database clock of the first heartbeat (a few
            // seconds ahead, so a slow machine still counts it as live).
            "INSERT INTO astra_replicas (holder, host, started_at, seen_at) \
             SELECT $1, 'another-host', seen_at, seen_at + 5 FROM astra_replicas",
            "another-host-0001",
        )
        .await;
    let second = UserTokens::from_settings(&world.settings(), &Metrics::new()).await;
    match (&world.store, second) {
        (Store::Sqlite { .. }, Err(e)) => {
            let message = e.to_string();
            assert!(message.contains("astra.store_url"), "{message}");
            assert!(message.contains("another-host"), "{message}");
            assert!(message.contains("postgres://"), "names the fix: {message}");
        }
        (Store::Sqlite { .. }, Ok(_)) => panic!("SQLite shared across hosts was accepted"),
        (Store::Postgres { .. }, result) => {
            assert!(result.is_ok(), "PostgreSQL serves replicas on many hosts");
        }
    }
}

async fn each_replica_counts_the_live_replicas_sharing_the_astra_cap(store: Store) {
    let world = World::new(store).await;
    let _a = world.app(|_| {}).await;
    let b = world.app(|_| {}).await;
    assert_eq!(b.metric("atv_astra_replicas_live", "").await, 2.0);
}

// ---- PostgreSQL only: the token cache ----

#[tokio::test]
async fn while_the_database_is_down_cached_tokens_are_served_and_others_get_a_quick_503() {
    let (world, proxy, via_proxy) = postgres_behind_a_proxy(None).await;
    world.authorized("ann").await;
    world.authorized("ben").await;
    let app = world
        .app(|s| s.store_url = SecretString::from(via_proxy))
        .await;
    let hit = r#"outcome="hit""#;
    let (_, cached) =
        test_support::eventually_some("a cache hit", Duration::from_secs(5), || async {
            let answer = app.get("/astra/users/ann/token").await;
            (app.metric("atv_astra_token_cache_total", hit).await >= 1.0).then_some(answer)
        })
        .await;

    proxy.cut();
    // Until the replica notices its change feed is gone, the cached token is
    // still a hit; from then on it is served as the outage fallback.
    let fallback = r#"outcome="fallback""#;
    test_support::eventually_some(
        "the cached token served as a fallback",
        Duration::from_secs(5),
        || async {
            let (status, during) = app.get("/astra/users/ann/token").await;
            assert_eq!(status, 200, "{during}");
            assert_eq!(during["access_token"], cached["access_token"]);
            (app.metric("atv_astra_token_cache_total", fallback).await >= 1.0).then_some(())
        },
    )
    .await;

    let started = std::time::Instant::now();
    let r = app.send(Method::GET, "/astra/users/ben/token").await;
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hang: {:?}",
        started.elapsed()
    );
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["type"], problem("store-unavailable"));
    let ready = app.send(Method::GET, "/readyz").await;
    assert_eq!(ready.status(), 200, "readiness does not follow the store");

    proxy.restore();
    let back =
        test_support::eventually_some("the store is back", Duration::from_secs(5), || async {
            let (status, body) = app.get("/astra/users/ben/token").await;
            (status == 200).then_some(body)
        })
        .await;
    assert!(
        world
            .astra
            .is_current_access_token(back["access_token"].as_str().unwrap())
    );
    let (_, summary) = app.get("/astra/users/ann").await;
    assert_eq!(summary["status"], "active");
}

#[tokio::test]
async fn a_refresh_whose_write_meets_a_store_outage_lands_when_the_store_is_back() {
    let (world, proxy, via_proxy) = postgres_behind_a_proxy(None).await;
    let direct = world.expired("cal").await;
    let replica = world
        .service(|s| s.store_url = SecretString::from(via_proxy))
        .await;
    // The database goes away just after Astra answered, for 1.5 s.
    let proxy = Arc::new(proxy);
    let outage = Arc::clone(&proxy);
    let once = AtomicBool::new(false);
    let installed = replica.refresher().set_fault_hook(Arc::new(move |point| {
        if point == FaultPoint::AfterAstraBeforeCommit && !once.swap(true, Ordering::SeqCst) {
            outage.cut();
            let back = Arc::clone(&outage);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                back.restore();
            });
        }
        false
    }));
    assert!(installed.is_ok());

    let token = replica
        .token(&user_ref("cal"))
        .await
        .expect("the refresh lands once the store is back");
    let token = token.access_token.expose_secret();
    assert!(world.astra.is_current_access_token(token));
    assert_eq!(
        world.astra.refreshes_for("astra-cal"),
        1,
        "Astra's answer was kept, not asked for again"
    );
    let stored = direct.token(&user_ref("cal")).await.expect("stored");
    assert_eq!(stored.access_token.expose_secret(), token);
}

#[tokio::test]
async fn the_store_gauges_are_read_at_most_every_30_s_whatever_the_scrape_rate() {
    let (world, app) = World::with_app(Store::sqlite().await).await;
    world.authorized("gia").await;
    let active = r#"status="active""#;
    assert_eq!(app.metric("atv_astra_users", active).await, 1.0);
    world.authorized("hank").await;
    assert_eq!(
        app.metric("atv_astra_users", active).await,
        1.0,
        "a scrape right after another keeps the counted values"
    );
}
