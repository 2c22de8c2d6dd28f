//! Secrets Manager going away, or not being there yet: serving goes on, the
//! process stays alive, and readiness follows the credentials.

use std::time::Duration;

use astrada_token_vendor::credentials::SecretLayout;

use crate::astrada::{Astrada, bundle, issued_to};
use crate::helpers::json;
use crate::moto::Moto;
use crate::{eventually, reloads, spawn_on_moto};

#[tokio::test]
async fn serving_continues_while_secrets_manager_is_down_and_a_rotation_is_picked_up_after() {
    let mut moto = Moto::start().await;
    let astrada = Astrada::start(4).await;
    astrada.accept("api-v1");
    astrada.accept("sdk-v1");
    moto.create_secret("atv/credentials", &bundle("api-v1", "sdk-v1"))
        .await;
    let app = spawn_on_moto(
        &moto,
        &astrada,
        SecretLayout::Bundle("atv/credentials".into()),
        |s| {
            s.credentials.reload_interval_secs = 1;
            s.cache.refresh_ahead_secs = 2;
            s.cache.min_remaining_secs = 1;
        },
    )
    .await;
    app.wait_ready().await;

    moto.stop().await;
    let exchanges_before = astrada.client_ids().await.len();
    // Until reloads have failed and both sets have exchanged again with the
    // credentials in force, every request is answered.
    let mut rounds = 0;
    while reloads(&app, "error").await < 2.0
        || astrada.client_ids().await.len() < exchanges_before + 2
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
    assert_eq!(
        app.get(format!("{}/readyz", app.public)).await.status(),
        200
    );
    assert_eq!(reloads(&app, "changed").await, 1.0);

    // Back, restored with a newer version: the service picks it up.
    moto.start_again().await;
    astrada.accept("sdk-v2");
    moto.create_secret("atv/credentials", &bundle("api-v1", "sdk-v2"))
        .await;
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
            issued_to(json(response).await["access_token"].as_str().unwrap()) == "sdk-v2"
        },
    )
    .await;
}

#[tokio::test]
async fn a_service_started_before_secrets_manager_becomes_ready_once_it_is_up() {
    let mut moto = Moto::not_started();
    let astrada = Astrada::start(300).await;
    astrada.accept("api-v1");
    astrada.accept("sdk-v1");
    let app = spawn_on_moto(
        &moto,
        &astrada,
        SecretLayout::Bundle("atv/credentials".into()),
        |_| {},
    )
    .await;

    eventually(
        "a load attempt has failed",
        Duration::from_secs(20),
        || async { reloads(&app, "error").await >= 1.0 },
    )
    .await;
    assert_eq!(
        app.get(format!("{}/healthz", app.public)).await.status(),
        200
    );
    assert_eq!(
        app.get(format!("{}/healthz", app.internal)).await.status(),
        200
    );
    assert_eq!(
        app.get(format!("{}/readyz", app.public)).await.status(),
        503
    );
    assert_eq!(app.sdk_token().await.status(), 503);

    moto.start_again().await;
    moto.create_secret("atv/credentials", &bundle("api-v1", "sdk-v1"))
        .await;

    eventually("ready", Duration::from_secs(60), || async {
        app.get(format!("{}/readyz", app.public)).await.status() == 200
    })
    .await;
    let sdk = json(app.sdk_token().await).await;
    assert_eq!(issued_to(sdk["access_token"].as_str().unwrap()), "sdk-v1");
    assert_eq!(
        app.get(format!("{}/healthz", app.public)).await.status(),
        200
    );
}
