//! Rotation without a restart: a new secret version reaches the next token
//! exchange, cached tokens keep being served, and `invalid_client` makes the
//! service look for a rotation at once (but not more than once per window).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use test_support::moto::{OnMoto, SECRET_ID, reloads};
use test_support::{eventually, issued_to_of, refresh_ahead};

use crate::outages::reload_every_second;
use crate::rotated_bundle;

/// `ids` switches from `old` to `new` once and never goes back.
fn assert_switched_once(ids: &[String], old: &str, new: &str) {
    let first_new = ids
        .iter()
        .position(|id| id == new)
        .unwrap_or_else(|| panic!("no exchange used {new}: {ids:?}"));
    assert!(first_new > 0, "no exchange used {old} first: {ids:?}");
    assert!(
        ids[..first_new].iter().all(|id| id == old),
        "unexpected client before the switch: {ids:?}"
    );
    assert!(
        ids[first_new..].iter().all(|id| id == new),
        "{old} was used again after {new}: {ids:?}"
    );
}

#[tokio::test]
async fn rotation_under_200_concurrent_callers_fails_no_request_and_the_next_exchange_uses_the_new_client_id()
 {
    // Short-lived tokens, so that exchanges keep happening during the test.
    let app = OnMoto::scene()
        .token_lifetime(4)
        .settings(reload_every_second)
        .start()
        .await;
    app.wait_ready().await;
    // Keep-alive connections: 200 callers, not 200 new connections a round.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let done = AtomicBool::new(false);
    let answered = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let callers = join_all((0..200).map(|caller| {
        let (http, app, done, answered, failures) = (&http, &app, &done, &answered, &failures);
        async move {
            let url = if caller % 2 == 0 {
                app.sdk_url()
            } else {
                app.api_url()
            };
            while !done.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        if issued_to_of(r).await == "sdk-v2" {
                            done.store(true, Ordering::Relaxed);
                        }
                    }
                    Ok(r) => failures.lock().unwrap().push(r.status().to_string()),
                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                }
                answered.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }));
    let rotate = async {
        eventually(
            "every caller is running",
            Duration::from_secs(10),
            || async { answered.load(Ordering::Relaxed) >= 400 },
        )
        .await;
        // Astrada issues the new credentials first; the old ones stay valid
        // for a while, as in a real rotation.
        app.astrada.accept("sdk-v2");
        app.moto
            .put_secret_value(SECRET_ID, &rotated_bundle())
            .await;
        eventually(
            "a caller receives a token issued to sdk-v2",
            Duration::from_secs(30),
            || async { done.load(Ordering::Relaxed) },
        )
        .await;
    };
    futures::join!(callers, rotate);

    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        answered.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)]
    );
    assert_switched_once(&app.astrada.client_ids_of("sdk-").await, "sdk-v1", "sdk-v2");
    assert!(
        app.astrada
            .client_ids_of("api-")
            .await
            .iter()
            .all(|id| id == "api-v1")
    );
    assert_eq!(reloads(&app, "changed").await, 2.0);
}

#[tokio::test]
async fn invalid_client_from_the_token_endpoint_re_reads_the_secret_at_once() {
    let app = OnMoto::scene()
        .token_lifetime(4)
        .settings(|s| {
            // Only invalid_client can cause a re-read within this test.
            s.credentials.reload_interval_secs = 3600;
            refresh_ahead(2)(s);
        })
        .start()
        .await;
    app.wait_ready().await;

    // Rotated in Secrets Manager and at Astrada, which revoked the old secret
    // at once; the service has not seen the new version yet.
    app.moto
        .put_secret_value(SECRET_ID, &rotated_bundle())
        .await;
    app.astrada.accept("sdk-v2");
    app.astrada.revoke("sdk-v1");

    // Ask every 100 ms until the new credentials' token arrives: every
    // answer meanwhile is the still-valid cached token.
    let mut served = Vec::new();
    while served.last().is_none_or(|sub| sub != "sdk-v2") {
        assert!(served.len() < 200, "sdk-v2 was never used: {served:?}");
        let response = app.sdk_token().await;
        assert_eq!(response.status(), 200, "after {served:?}");
        served.push(issued_to_of(response).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let sdk = app.astrada.client_ids_of("sdk-").await;
    assert_switched_once(&sdk, "sdk-v1", "sdk-v2");
    assert!(
        app.metric(
            "atv_token_exchanges_total",
            "set=\"sdk\",outcome=\"invalid_client\""
        )
        .await
            >= 1.0
    );
    assert_eq!(reloads(&app, "changed").await, 2.0);
}

#[tokio::test]
async fn an_invalid_client_storm_re_reads_the_secret_at_most_once_per_backoff_window() {
    let app = OnMoto::scene()
        .accepting(&["api-v1"]) // sdk-v1 is never accepted
        .settings(|s| {
            s.credentials.reload_interval_secs = 3600;
            s.cache.backoff_initial_ms = 100;
            // The forced re-read window; far longer than this test.
            s.cache.backoff_max_ms = 600_000;
        })
        .start()
        .await;

    let invalid_client = || async {
        app.metric(
            "atv_token_exchanges_total",
            "set=\"sdk\",outcome=\"invalid_client\"",
        )
        .await
    };
    let mut rounds = 0;
    while invalid_client().await < 4.0 {
        assert!(rounds < 100, "the token endpoint was not asked four times");
        rounds += 1;
        let answers = join_all((0..200).map(|_| app.sdk_token())).await;
        assert!(answers.iter().all(|r| r.status() == 503));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(reloads(&app, "changed").await, 1.0, "the start-up load");
    assert_eq!(
        reloads(&app, "unchanged").await,
        1.0,
        "one forced re-read for {} invalid_client answers to {} callers",
        invalid_client().await,
        rounds * 200
    );
    assert_eq!(reloads(&app, "error").await, 0.0);
}
