//! moto's server, the AWS emulator, as a real Secrets Manager on a free
//! loopback port: one per test, killed when the test ends, and stoppable and
//! restartable on the same port to play outages.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider,
};
use aws_sdk_secretsmanager::primitives::Blob;
use tokio::process::{Child, Command};

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
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        Self { port, child: None }
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

    fn client(&self) -> Client {
        Client::new(&self.sdk_config())
    }

    /// Creates a secret holding `value` as text; returns its ARN.
    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        let out = self
            .client()
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("CreateSecret");
        out.arn().expect("an ARN").to_owned()
    }

    /// Creates a secret holding `value` as binary (SecretBinary).
    pub async fn create_binary_secret(&self, name: &str, value: &[u8]) {
        self.client()
            .create_secret()
            .name(name)
            .secret_binary(Blob::new(value))
            .send()
            .await
            .expect("CreateSecret");
    }

    /// Stores a new current version, as a rotation does; returns its VersionId.
    pub async fn put_secret_value(&self, name: &str, value: &str) -> String {
        let out = self
            .client()
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .expect("PutSecretValue");
        out.version_id().expect("a VersionId").to_owned()
    }
}

/// `$ATV_MOTO_SERVER` (set by scripts/test-deps/moto.sh), else the virtualenv
/// that script makes, else `moto_server` on PATH. Missing moto fails the
/// test: a skipped Secrets Manager test would pass CI while testing nothing.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("ATV_MOTO_SERVER") {
        return path.into();
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let caches = std::env::var_os("ATV_CI_CACHE")
        .map(PathBuf::from)
        .into_iter()
        .chain([manifest.join(".ci-cache")]);
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
