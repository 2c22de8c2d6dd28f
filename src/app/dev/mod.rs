//! `dev` mode: the real service plus the in-process fake Astrada and fake
//! Astra (from the `atv-dev-fakes` crate, `dev-fakes/`) and throw-away
//! credentials, so a new user gets a token with no cloud account.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use atv_dev_fakes::fake_astra::{FakeAstra, FakeAstraConfig};
use atv_dev_fakes::fake_astrada::{FakeAstrada, FakeAstradaConfig};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

use super::{Application, StartupError, shutdown_signal};
use crate::config::{ConfigError, CredentialSourceKind, Settings};
use crate::http::ASTRA_CALLBACK_PATH;
use crate::user_tokens::crypto::fill_random;

/// Dev mode's layer above the defaults: loopback only, readable logs.
pub const DEV_OVERRIDES: &str = r#"
[server]
public_addr = "127.0.0.1:8080"
internal_addr = "127.0.0.1:9090"
workers = 2

[log]
format = "pretty"

# Dev mode only: no caller checks (a warning says so at start-up), and the
# example page (examples/browser, served on port 8000) may fetch tokens.
[caller_auth]
mode = "none"
allow_unauthenticated = true

[internal_auth]
mode = "none"
allow_unauthenticated = true

[cors]
allowed_origins = ["http://127.0.0.1:8000", "http://localhost:8000"]
"#;

/// Settings for dev mode: defaults, dev overrides, then `file` and `ATV_*`.
/// Credentials and the token URL are filled in by [`run`].
pub fn settings(file: Option<&Path>) -> Result<Settings, ConfigError> {
    Settings::load_with(Some(DEV_OVERRIDES), file)
}

/// Starts the fake token endpoint and the service, prints what runs where,
/// and serves until SIGTERM/SIGINT.
pub async fn run(mut settings: Settings) -> Result<(), StartupError> {
    let api = ("dev-api-client".to_owned(), random_secret());
    let sdk = ("dev-sdk-client".to_owned(), random_secret());
    let fake = FakeAstrada::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        FakeAstradaConfig {
            clients: vec![api.clone(), sdk.clone()],
            lifetime: Duration::from_secs(300),
            latency: Duration::ZERO,
        },
    )?;
    settings.token_endpoint.url = fake.token_url.clone();
    // The proxy's Astrada calls go to the fake too, never to the real API.
    if let Ok(mut base) = url::Url::parse(&fake.token_url) {
        base.set_path("/");
        settings.proxy.astrada_api_url = base.to_string();
    }
    // Dev mode's throw-away credentials replace whatever source is configured.
    settings.credentials.source = CredentialSourceKind::Inline;
    settings.credentials.secret_id.clear();
    settings.credentials.aws_region.clear();
    settings.credentials.api.secret_id.clear();
    settings.credentials.sdk.secret_id.clear();
    settings.credentials.api.client_id = api.0;
    settings.credentials.api.client_secret = api.1;
    settings.credentials.sdk.client_id = sdk.0;
    settings.credentials.sdk.client_secret = sdk.1;
    let astra = start_fake_astra(&mut settings)?;
    let app = Application::build(settings).await?;
    let public = app.public_port();
    let internal = app.internal_port();
    println!(
        "\nastrada-token-vendor DEV MODE — NOT FOR PRODUCTION\n\
         \x20 fake Astrada token endpoint  {}\n\
         \x20 SDK token (public)           http://127.0.0.1:{public}/astrada-sdk-token\n\
         \x20 API token (internal)         http://127.0.0.1:{internal}/astrada-api-token\n\
         \x20 metrics (internal)           http://127.0.0.1:{internal}/metrics\n\
         \x20 fake Astra (OAuth module)    {astra_url}\n\
         \x20 Astra users (internal)       http://127.0.0.1:{internal}/astra/users\n\
         \x20 caller authentication is OFF and credentials are throw-away.\n\
         \x20 Try: curl -s http://127.0.0.1:{public}/astrada-sdk-token\n\
         \x20 Walkthrough: docs/getting-started.md.\n",
        fake.token_url,
        astra_url = astra.base_url(),
    );
    app.run_until(shutdown_signal()).await?;
    fake.stop().await;
    astra.stop().await;
    Ok(())
}

/// Starts the fake Astra and points `[astra]` at it: throw-away client
/// credentials and encryption key, and a SQLite file in a fresh temp dir.
fn start_fake_astra(settings: &mut Settings) -> Result<FakeAstra, StartupError> {
    let public = settings.server.public_addr;
    let redirect_uri = format!("http://{public}{ASTRA_CALLBACK_PATH}");
    let redirect = url::Url::parse(&redirect_uri).map_err(|_| ConfigError::Invalid {
        key: "server.public_addr",
        problem: "cannot form the Astra callback URL from it".into(),
        fix: "use an address such as 127.0.0.1:8080".into(),
    })?;
    let secret = random_secret();
    let fake = FakeAstra::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        FakeAstraConfig::new("dev-astra-client", secret.expose_secret(), redirect),
    )?;
    let dir = private_temp_dir()?;
    let mut key = [0u8; 32];
    fill_random(&mut key).map_err(|_| {
        std::io::Error::other("the operating system's random number generator failed")
    })?;
    let a = &mut settings.astra;
    a.enabled = true;
    a.api_url = fake.base_url().to_string();
    a.authorize_url = fake.base_url().to_string();
    a.client_id = "dev-astra-client".into();
    a.client_secret = secret;
    a.redirect_uri = redirect_uri;
    a.store_url = SecretString::from(format!("sqlite:{}", dir.join("astra.db").display()));
    a.encryption_keys = SecretString::from(format!("dev:{}", STANDARD.encode(key)));
    a.active_key_id = "dev".into();
    Ok(fake)
}

/// A new directory only this user can enter, with a name nobody can guess
/// ahead (a predictable one could be created first, or linked elsewhere, by
/// another user of the machine). Never an existing directory.
fn private_temp_dir() -> std::io::Result<std::path::PathBuf> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    let mut name = [0u8; 12];
    fill_random(&mut name).map_err(|_| {
        std::io::Error::other("the operating system's random number generator failed")
    })?;
    let dir = std::env::temp_dir().join(format!("atv-dev-{}", hex::encode(name)));
    builder.create(&dir)?;
    Ok(dir)
}

fn random_secret() -> SecretString {
    let secret: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(40)
        .collect();
    SecretString::from(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mode_stores_astra_users_in_a_private_directory_with_an_unguessable_name() {
        let (a, b) = (private_temp_dir().unwrap(), private_temp_dir().unwrap());
        assert_ne!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&a).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        for dir in [a, b] {
            std::fs::remove_dir(dir).unwrap();
        }
    }
}
