//! Secrets Manager for real: moto's server, the AWS emulator, on a free
//! loopback port, one per test, killed when the test ends, and stoppable and
//! restartable on the same port to play outages. [`OnMoto`] sets up the
//! usual scene in one call: moto holding a credential secret, an [`Astrada`]
//! accepting those credentials, and the service reading them.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use astrada_token_vendor::client_tokens::credentials::{AwsSecretsManagerSource, SecretLayout};
use astrada_token_vendor::config::{CredentialSourceKind, Settings};
use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider,
};
use aws_sdk_secretsmanager::primitives::Blob;
use tokio::process::{Child, Command};

use crate::{Astrada, TestApp, bundle, spawn_with_settings, test_settings};

/// The secret [`OnMoto`] stores both credential sets in, unless told otherwise.
pub const SECRET_ID: &str = "atv/credentials";

pub struct Moto {
    port: u16,
    child: Option<Child>,
}

impl Moto {
    /// A moto that is up and answering.
    pub async fn start() -> Self {
        let mut moto = Self::not_started();
        moto.start_again().await;
        moto
    }

    /// A port for a moto that is not running yet, so that a service can be
    /// pointed at a Secrets Manager that is down.
    pub fn not_started() -> Self {
        Self {
            port: crate::free_port(),
            child: None,
        }
    }

    /// Starts moto (again) on this instance's port; its state starts empty.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "moto is already running");
        let binary = moto_server();
        let mut child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Some(status) = child.try_wait().expect("moto_server status") {
                panic!(
                    "{} exited with {status} before answering on port {}",
                    binary.display(),
                    self.port
                );
            }
            let probe = http
                .get(format!("{}/moto-api/", self.endpoint()))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                self.child = Some(child);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not answer within 30 s");
    }

    /// Kills moto: from now on the port refuses connections.
    pub async fn stop(&mut self) {
        let mut child = self.child.take().expect("moto is running");
        child.kill().await.expect("moto_server stops");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// AWS configuration for this emulator: fake keys, fixed region, explicit
    /// endpoint, nothing read from the environment (tests run in parallel,
    /// each with its own moto) and never an instance-metadata lookup.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "test", "test", None, None, "moto",
            )))
            .endpoint_url(self.endpoint())
            .build()
    }

    /// The service's Secrets Manager source for `layout` on this emulator.
    pub fn source(&self, layout: SecretLayout) -> AwsSecretsManagerSource {
        AwsSecretsManagerSource::new(&self.sdk_config(), layout)
    }

    fn client(&self) -> Client {
        Client::new(&self.sdk_config())
    }

    /// Creates a secret holding `value` as text; returns its ARN.
    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        let request = self.client().create_secret().name(name);
        let out = sent("CreateSecret", request.secret_string(value).send()).await;
        out.arn().expect("an ARN").to_owned()
    }

    /// Creates `atv/api` and `atv/sdk`, one set each (see [`crate::pair`]);
    /// returns their ARNs.
    pub async fn create_secret_per_set(&self, api: &str, sdk: &str) -> (String, String) {
        let api = self.create_secret("atv/api", &crate::pair(api)).await;
        (api, self.create_secret("atv/sdk", &crate::pair(sdk)).await)
    }

    /// Creates a secret holding `value` as binary (SecretBinary).
    pub async fn create_binary_secret(&self, name: &str, value: &[u8]) {
        let request = self.client().create_secret().name(name);
        let request = request.secret_binary(Blob::new(value));
        sent("CreateSecret", request.send()).await;
    }

    /// Stores a new current version, as a rotation does; returns its VersionId.
    pub async fn put_secret_value(&self, name: &str, value: &str) -> String {
        let request = self.client().put_secret_value().secret_id(name);
        let out = sent("PutSecretValue", request.secret_string(value).send()).await;
        out.version_id().expect("a VersionId").to_owned()
    }
}

/// Awaits one request to moto; a failure fails the test, naming `operation`.
async fn sent<T, E: std::fmt::Debug>(
    operation: &str,
    request: impl Future<Output = Result<T, E>>,
) -> T {
    request.await.expect(operation)
}

/// `$ATV_MOTO_SERVER` (set by scripts/test-deps/moto.sh), else the virtualenv
/// that script makes, else `moto_server` on PATH. Missing moto fails the
/// test: a skipped Secrets Manager test would pass CI while testing nothing.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("ATV_MOTO_SERVER") {
        return path.into();
    }
    let project = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the project");
    let caches = std::env::var_os("ATV_CI_CACHE")
        .map(PathBuf::from)
        .into_iter()
        .chain([project.join(".ci-cache")]);
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    caches
        .map(|cache| cache.join("venv-moto/bin/moto_server"))
        .chain(on_path.into_iter().map(|dir| dir.join("moto_server")))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "moto_server (the AWS emulator these tests run against) was not found. \
                 Run ./scripts/test.sh, which installs it into .ci-cache/venv-moto, \
                 or set ATV_MOTO_SERVER to a moto_server executable."
            )
        })
}

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
    spawn_with_settings(settings, Arc::new(moto.source(layout))).await
}

/// `atv_credential_reloads_total` for one outcome (changed, unchanged, error).
pub async fn reloads(app: &TestApp, outcome: &str) -> f64 {
    app.metric(
        "atv_credential_reloads_total",
        &format!("outcome=\"{outcome}\""),
    )
    .await
}

/// Waits until a credential load has failed, failing after `limit`.
pub async fn failed_load(app: &TestApp, what: &str, limit: Duration) {
    crate::eventually(what, limit, || async { reloads(app, "error").await >= 1.0 }).await;
}

/// The usual scene of a Secrets Manager test, all running: moto, an
/// [`Astrada`] and the service reading its credentials from one secret. It
/// is the service ([`TestApp`]) to call; moto and Astrada live as long as it.
pub struct OnMoto {
    pub moto: Moto,
    pub astrada: Astrada,
    pub app: TestApp,
}

impl Deref for OnMoto {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// How to set up an [`OnMoto`]. By default: 300-second tokens, Astrada
/// accepts `api-v1` and `sdk-v1`, and [`SECRET_ID`] holds exactly those.
pub struct Scene {
    lifetime: u64,
    accepted: Vec<String>,
    secret_id: String,
    secret: Option<String>,
    moto_up: bool,
    tweak: Box<dyn FnOnce(&mut Settings)>,
}

impl OnMoto {
    /// The default scene, to adjust before [`Scene::start`].
    pub fn scene() -> Scene {
        Scene {
            lifetime: 300,
            accepted: vec!["api-v1".into(), "sdk-v1".into()],
            secret_id: SECRET_ID.into(),
            secret: Some(bundle("api-v1", "sdk-v1")),
            moto_up: true,
            tweak: Box::new(|_| {}),
        }
    }
}

impl Scene {
    /// Astrada issues `secs`-second tokens.
    pub fn token_lifetime(mut self, secs: u64) -> Self {
        self.lifetime = secs;
        self
    }

    /// Astrada accepts exactly `client_ids` (each with its `secret_of`).
    pub fn accepting(mut self, client_ids: &[&str]) -> Self {
        self.accepted = client_ids.iter().map(|id| (*id).to_owned()).collect();
        self
    }

    /// The secret is named `id` and holds `value`.
    pub fn secret(mut self, id: &str, value: String) -> Self {
        self.secret_id = id.into();
        self.secret = Some(value);
        self
    }

    /// The secret does not exist (yet).
    pub fn no_secret(mut self) -> Self {
        self.secret = None;
        self
    }

    /// moto is not running (yet), and so holds no secret.
    pub fn moto_down(mut self) -> Self {
        self.moto_up = false;
        self.secret = None;
        self
    }

    /// Adjusts the service's settings.
    pub fn settings(mut self, tweak: impl FnOnce(&mut Settings) + 'static) -> Self {
        self.tweak = Box::new(tweak);
        self
    }

    /// moto (holding the secret) and Astrada, without the service.
    pub async fn prepare(&self) -> (Moto, Astrada) {
        let moto = if self.moto_up {
            Moto::start().await
        } else {
            Moto::not_started()
        };
        let astrada = Astrada::start(self.lifetime).await;
        for id in &self.accepted {
            astrada.accept(id);
        }
        if let Some(value) = &self.secret {
            moto.create_secret(&self.secret_id, value).await;
        }
        (moto, astrada)
    }

    /// Everything, the service reading the secret as one bundle.
    pub async fn start(self) -> OnMoto {
        let (moto, astrada) = self.prepare().await;
        let layout = SecretLayout::Bundle(self.secret_id);
        let app = spawn_on_moto(&moto, &astrada, layout, self.tweak).await;
        OnMoto { moto, astrada, app }
    }
}
