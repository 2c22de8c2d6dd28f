//! Credentials from AWS Secrets Manager, against moto's server (a real AWS
//! emulator, one per test) and a token endpoint that checks which client
//! credentials it receives.

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod astrada;
mod loading;
mod moto;
mod outages;
mod rotation;
mod serve;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use astrada_token_vendor::config::{CredentialSourceKind, Settings};
use astrada_token_vendor::credentials::{AwsSecretsManagerSource, SecretLayout};

use crate::astrada::Astrada;
use crate::helpers::{TestApp, spawn_with_settings, test_settings};
use crate::moto::Moto;

/// The service with its credentials in Secrets Manager (`layout`) on `moto`.
pub async fn spawn_on_moto(
    moto: &Moto,
    astrada: &Astrada,
    layout: SecretLayout,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(&astrada.server);
    settings.credentials.source = CredentialSourceKind::AwsSecretsManager;
    match &layout {
        SecretLayout::Bundle(id) => settings.credentials.secret_id = id.clone(),
        SecretLayout::PerSet { api, sdk } => {
            settings.credentials.api.secret_id = api.clone();
            settings.credentials.sdk.secret_id = sdk.clone();
        }
    }
    tweak(&mut settings);
    let source = AwsSecretsManagerSource::new(&moto.sdk_config(), layout);
    spawn_with_settings(settings, Arc::new(source)).await
}

/// Polls `condition` every 100 ms until it holds; fails after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `atv_credential_reloads_total` for one outcome (changed, unchanged, error).
pub async fn reloads(app: &TestApp, outcome: &str) -> f64 {
    app.metric(
        "atv_credential_reloads_total",
        &format!("outcome=\"{outcome}\""),
    )
    .await
}
