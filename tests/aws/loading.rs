//! Loading credentials from real secrets, and what a wrong or missing secret
//! looks like to the operator.

use std::time::Duration;

use astrada_token_vendor::client_tokens::credentials::{
    CredentialError, CredentialSource, SecretLayout,
};
use secrecy::ExposeSecret;
use serde_json::json;

use test_support::moto::{Moto, OnMoto, SECRET_ID, failed_load, reloads, spawn_on_moto};
use test_support::{SECRET_MARK, bundle, issued_to_of, json, pair, secret_of};

use crate::rotated_bundle;

#[tokio::test]
async fn credentials_load_from_one_secret_holding_both_sets() {
    let app = OnMoto::scene().start().await;

    app.wait_ready().await;
    assert_eq!(issued_to_of(app.sdk_token().await).await, "sdk-v1");
    assert_eq!(issued_to_of(app.api_token().await).await, "api-v1");
    assert_eq!(reloads(&app, "changed").await, 1.0);
}

#[tokio::test]
async fn credentials_load_from_one_secret_per_set_named_by_arn() {
    let (moto, astrada) = OnMoto::scene().no_secret().prepare().await;
    let (api, sdk) = moto.create_secret_per_set("api-v1", "sdk-v1").await;
    assert!(api.starts_with("arn:aws:secretsmanager:"), "{api}");

    let app = spawn_on_moto(&moto, &astrada, SecretLayout::PerSet { api, sdk }, |_| {}).await;

    app.wait_ready().await;
    assert_eq!(issued_to_of(app.sdk_token().await).await, "sdk-v1");
    assert_eq!(issued_to_of(app.api_token().await).await, "api-v1");
}

#[tokio::test]
async fn the_loaded_bundle_carries_the_current_version_id_and_no_secret_in_debug_output() {
    let (moto, _astrada) = OnMoto::scene().prepare().await;
    let source = moto.source(SecretLayout::Bundle(SECRET_ID.into()));
    let current = moto.put_secret_value(SECRET_ID, &rotated_bundle()).await;

    let loaded = source.load().await.expect("the secret loads");

    assert_eq!(loaded.version.as_deref(), Some(current.as_str()));
    assert_eq!(loaded.sets.sdk.client_id, "sdk-v2");
    assert_eq!(
        loaded.sets.sdk.client_secret.expose_secret(),
        secret_of("sdk-v2")
    );
    let debug = format!("{loaded:?}");
    assert!(debug.contains("sdk-v2"), "{debug}");
    assert!(!debug.contains(SECRET_MARK), "{debug}");
}

/// Loads `layout` from `moto` and returns the error, checking on the way
/// that its text never carries a secret value.
async fn load_error(moto: &Moto, layout: SecretLayout) -> CredentialError {
    let error = moto
        .source(layout)
        .load()
        .await
        .expect_err("the secret must be refused");
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(SECRET_MARK), "a secret value leaked: {text}");
    }
    error
}

#[tokio::test]
async fn secrets_of_the_wrong_shape_are_refused_naming_the_secret_and_the_problem() {
    let moto = Moto::start().await;
    let camel_case = json!({
        "api": {"client_id": "api-v1", "client_secret": secret_of("api-v1")},
        "sdk": {"clientId": "sdk-v1", "clientSecret": secret_of("sdk-v1")},
    });
    moto.create_secret("atv/camel-case", &camel_case.to_string())
        .await;
    moto.create_secret("atv/plain-text", &secret_of("plain"))
        .await;
    moto.create_secret("atv/bundle-for-a-set", &bundle("api-v1", "sdk-v1"))
        .await;
    moto.create_binary_secret("atv/binary", bundle("api-v1", "sdk-v1").as_bytes())
        .await;

    let cases = [
        (
            SecretLayout::Bundle("atv/camel-case".into()),
            ["atv/camel-case", "missing string field \"sdk.client_id\""],
        ),
        (
            SecretLayout::Bundle("atv/plain-text".into()),
            ["atv/plain-text", "not JSON"],
        ),
        (
            SecretLayout::PerSet {
                api: "atv/bundle-for-a-set".into(),
                sdk: "atv/camel-case".into(),
            },
            [
                "api secret atv/bundle-for-a-set",
                "missing string field \"client_id\"",
            ],
        ),
        (
            SecretLayout::Bundle("atv/binary".into()),
            ["atv/binary", "SecretBinary"],
        ),
    ];
    for (layout, expected) in cases {
        let error = load_error(&moto, layout).await;
        assert!(
            matches!(error, CredentialError::Malformed { .. }),
            "{error:?}"
        );
        let text = error.to_string();
        for part in expected {
            assert!(text.contains(part), "`{part}` missing from: {text}");
        }
    }
}

#[tokio::test]
async fn a_missing_secret_is_reported_as_not_found_by_name() {
    let moto = Moto::start().await;
    moto.create_secret("atv/api", &pair("api-v1")).await;

    let bundle_error = load_error(&moto, SecretLayout::Bundle("atv/missing".into())).await;
    let per_set_error = load_error(
        &moto,
        SecretLayout::PerSet {
            api: "atv/api".into(),
            sdk: "atv/sdk-missing".into(),
        },
    )
    .await;

    assert!(
        matches!(bundle_error, CredentialError::NotFound { .. }),
        "{bundle_error:?}"
    );
    let text = bundle_error.to_string();
    assert!(
        text.contains("atv/missing") && text.contains("not found"),
        "{text}"
    );
    let text = per_set_error.to_string();
    assert!(
        text.contains("sdk secret atv/sdk-missing was not found"),
        "{text}"
    );
}

#[tokio::test]
async fn a_malformed_secret_keeps_the_service_alive_and_unready_until_it_is_fixed_in_place() {
    let incomplete = json!({"api": {"client_id": "api-v1", "client_secret": secret_of("api-v1")}});
    let app = OnMoto::scene()
        .secret(SECRET_ID, incomplete.to_string())
        .start()
        .await;

    failed_load(&app, "the first load has failed", Duration::from_secs(10)).await;
    assert_eq!(app.public_status("/healthz").await, 200);
    assert_eq!(app.public_status("/readyz").await, 503);
    let refused = app.sdk_token().await;
    assert_eq!(refused.status(), 503);
    assert!(
        json(refused).await["type"]
            .as_str()
            .unwrap()
            .ends_with("credentials-unavailable")
    );

    app.moto
        .put_secret_value(SECRET_ID, &bundle("api-v1", "sdk-v1"))
        .await;

    app.eventually_ready("ready without a restart", Duration::from_secs(30))
        .await;
    assert_eq!(issued_to_of(app.sdk_token().await).await, "sdk-v1");
}

#[tokio::test]
async fn a_missing_secret_keeps_the_service_unready_until_it_is_created() {
    let app = OnMoto::scene().no_secret().start().await;

    failed_load(&app, "the first load has failed", Duration::from_secs(10)).await;
    assert_eq!(app.public_status("/healthz").await, 200);
    assert_eq!(app.public_status("/readyz").await, 503);

    app.moto
        .create_secret(SECRET_ID, &bundle("api-v1", "sdk-v1"))
        .await;

    app.eventually_ready("ready without a restart", Duration::from_secs(30))
        .await;
    assert_eq!(app.api_token().await.status(), 200);
}
