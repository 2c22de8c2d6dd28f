//! Secrets Manager going away, or not being there yet: serving goes on, the
//! process stays alive, and readiness follows the credentials.

use std::time::Duration;

use astrada_token_vendor::config::Settings;
use test_support::moto::{OnMoto, SECRET_ID, failed_load, reloads};
use test_support::{bundle, eventually, issued_to_of};

use crate::rotated_bundle;

/// Credentials re-read every second; tokens refreshed 2 s before they expire.
pub fn reload_every_second(s: &mut Settings) {
    s.credentials.reload_interval_secs = 1;
    s.cache.refresh_ahead_secs = 2;
    s.cache.min_remaining_secs = 1;
}

#[tokio::test]
async fn serving_continues_while_secrets_manager_is_down_and_a_rotation_is_picked_up_after() {
    let mut app = OnMoto::scene()
        .token_lifetime(4)
        .settings(reload_every_second)
        .start()
        .await;
    app.wait_ready().await;

    app.moto.stop().await;
    let exchanges_before = app.astrada.client_ids().await.len();
    // Until reloads have failed and both sets have exchanged again with the
    // credentials in force, every request is answered.
    let mut rounds = 0;
    while reloads(&app, "error").await < 2.0
        || app.astrada.client_ids().await.len() < exchanges_before + 2
    {
        assert!(
            rounds < 300,
            "no failed reload or no exchange during the outage"
        );
        rounds += 1;
        assert_eq!(app.sdk_token().await.status(), 200);
        assert_eq!(app.api_token().await.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.public_status("/readyz").await, 200);
    assert_eq!(reloads(&app, "changed").await, 1.0);

    // Back, restored with a newer version: the service picks it up.
    app.moto.start_again().await;
    app.astrada.accept("sdk-v2");
    app.moto.create_secret(SECRET_ID, &rotated_bundle()).await;
    eventually(
        "the restored secret is loaded",
        Duration::from_secs(30),
        || async { reloads(&app, "changed").await >= 2.0 },
    )
    .await;
    eventually(
        "a token issued to sdk-v2 is served",
        Duration::from_secs(10),
        || async {
            let response = app.sdk_token().await;
            assert_eq!(response.status(), 200);
            issued_to_of(response).await == "sdk-v2"
        },
    )
    .await;
}

#[tokio::test]
async fn a_service_started_before_secrets_manager_becomes_ready_once_it_is_up() {
    let mut app = OnMoto::scene().moto_down().start().await;

    failed_load(&app, "a load attempt has failed", Duration::from_secs(20)).await;
    assert_eq!(app.public_status("/healthz").await, 200);
    assert_eq!(app.internal_status("/healthz").await, 200);
    assert_eq!(app.public_status("/readyz").await, 503);
    assert_eq!(app.sdk_token().await.status(), 503);

    app.moto.start_again().await;
    app.moto
        .create_secret(SECRET_ID, &bundle("api-v1", "sdk-v1"))
        .await;

    app.eventually_ready("ready", Duration::from_secs(60)).await;
    assert_eq!(issued_to_of(app.sdk_token().await).await, "sdk-v1");
    assert_eq!(app.public_status("/healthz").await, 200);
}
