//! The real binary, `serve`, configured only through the environment the way
//! a Kubernetes manifest does it: `ATV_*` keys plus the standard AWS
//! variables (endpoint override, region, keys).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use astrada_token_vendor::http::{API_TOKEN_PATH, SDK_TOKEN_PATH};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use test_support::astra;
use test_support::moto::{OnMoto, SECRET_ID};
use test_support::{SECRET_MARK, bundle, eventually, issued_to_of};

struct Served {
    _child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    public: String,
    internal: String,
}

/// A clean environment (nothing inherited: no ambient AWS profile, keys or
/// ATV_* settings), the fake AWS keys, and no instance-metadata lookups.
fn serve_command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_astrada-token-vendor"));
    command
        .arg("serve")
        .env_clear()
        .envs([
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("ATV_SERVER__PUBLIC_ADDR", "127.0.0.1:0"),
            ("ATV_SERVER__INTERNAL_ADDR", "127.0.0.1:0"),
            ("ATV_SERVER__WORKERS", "1"),
            ("ATV_LOG__FORMAT", "json"),
            // Caller checks are secure by default and not what these tests
            // are about (tests/api/caller_auth.rs is): opened explicitly.
            ("ATV_CALLER_AUTH__MODE", "none"),
            ("ATV_CALLER_AUTH__ALLOW_UNAUTHENTICATED", "true"),
            ("ATV_INTERNAL_AUTH__MODE", "none"),
            ("ATV_INTERNAL_AUTH__ALLOW_UNAUTHENTICATED", "true"),
        ])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `serve` and reads its ports from the `listening` log line.
async fn serve(env: &[(&str, &str)]) -> Served {
    let mut child = serve_command(env).spawn().expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            logs.lock().unwrap().push(line.clone());
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["message"] == "listening" {
                return event;
            }
        }
        panic!("serve exited: {:?}", logs.lock().unwrap());
    })
    .await
    .expect("serve logs `listening`");
    let collected = Arc::clone(&logs);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            collected.lock().unwrap().push(line);
        }
    });
    Served {
        _child: child,
        logs,
        public: format!("http://127.0.0.1:{}", listening["public_port"]),
        internal: format!("http://127.0.0.1:{}", listening["internal_port"]),
    }
}

/// `serve` on one Secrets Manager secret holding both sets, on moto at
/// `endpoint`, exchanging at `token_url`.
fn one_secret_on_moto<'a>(token_url: &'a str, endpoint: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ATV_CREDENTIALS__SOURCE", "aws_secrets_manager"),
        ("ATV_CREDENTIALS__SECRET_ID", SECRET_ID),
        ("ATV_TOKEN_ENDPOINT__URL", token_url),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
}

impl Served {
    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        eventually("serve is ready", Duration::from_secs(30), || async {
            let ready = http.get(format!("{}/readyz", self.public)).send().await;
            ready.is_ok_and(|r| r.status() == 200)
        })
        .await;
    }

    /// The client the token at `base` + `path` was issued to.
    async fn token(&self, base: &str, path: &str) -> String {
        let response = reqwest::get(format!("{base}{path}"))
            .await
            .expect("serve answers");
        assert_eq!(response.status(), 200);
        issued_to_of(response).await
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

#[tokio::test]
async fn serve_reads_one_secret_through_aws_endpoint_url_secrets_manager() {
    let (moto, astrada) = OnMoto::scene().prepare().await;
    let version = moto
        .put_secret_value(SECRET_ID, &bundle("api-v1", "sdk-v1"))
        .await;
    let token_url = astrada.token_url();
    let endpoint = moto.endpoint();

    let served = serve(&one_secret_on_moto(&token_url, &endpoint)).await;
    served.wait_ready().await;

    let sdk = served.token(&served.public, SDK_TOKEN_PATH).await;
    assert_eq!(sdk, "sdk-v1");
    let logs = served.logs();
    assert!(
        logs.lines().any(|l| l.contains("credentials loaded")
            && l.contains(SECRET_ID)
            && l.contains(&version)),
        "the load is logged with the secret's VersionId: {logs}"
    );
    assert!(!logs.contains(SECRET_MARK), "{logs}");
}

#[tokio::test]
async fn serve_reads_one_secret_per_set_through_aws_endpoint_url_and_aws_region_from_config() {
    let (moto, astrada) = OnMoto::scene().no_secret().prepare().await;
    let (api, sdk) = moto.create_secret_per_set("api-v1", "sdk-v1").await;
    let token_url = astrada.token_url();
    let endpoint = moto.endpoint();

    let served = serve(&[
        ("ATV_CREDENTIALS__SOURCE", "aws_secrets_manager"),
        ("ATV_CREDENTIALS__API__SECRET_ID", &api),
        ("ATV_CREDENTIALS__SDK__SECRET_ID", &sdk),
        ("ATV_CREDENTIALS__AWS_REGION", "us-east-1"),
        ("ATV_TOKEN_ENDPOINT__URL", &token_url),
        ("AWS_ENDPOINT_URL", &endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ])
    .await;
    served.wait_ready().await;

    assert_eq!(
        served.token(&served.internal, API_TOKEN_PATH).await,
        "api-v1"
    );
    assert_eq!(served.token(&served.public, SDK_TOKEN_PATH).await, "sdk-v1");
}

#[tokio::test]
async fn serve_refuses_to_start_without_an_aws_region() {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        serve_command(&[
            ("ATV_CREDENTIALS__SOURCE", "aws_secrets_manager"),
            ("ATV_CREDENTIALS__SECRET_ID", SECRET_ID),
        ])
        .output(),
    )
    .await
    .expect("serve exits")
    .expect("the binary runs");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("credentials.aws_region") && stderr.contains("AWS_REGION"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_reads_the_astra_client_credentials_and_keys_from_their_secret() {
    let (moto, astrada) = OnMoto::scene().prepare().await;
    moto.put_secret_value(SECRET_ID, &bundle("api-v1", "sdk-v1"))
        .await;
    let astra_secret = serde_json::json!({
        "client_id": astra::CLIENT_ID,
        "client_secret": astra::CLIENT_SECRET,
        "encryption_keys": {"k1": STANDARD.encode(astra::KEY_1.1)},
        "active_key_id": "k1",
    });
    let astra_secret_id = moto
        .create_secret("astrada-token-vendor/astra", &astra_secret.to_string())
        .await;
    let world = astra::World::new(astra::Store::sqlite().await).await;
    let (token_url, endpoint) = (astrada.token_url(), moto.endpoint());
    let fake = world.astra.base_url().to_string();

    let mut env = one_secret_on_moto(&token_url, &endpoint);
    env.extend([
        ("ATV_ASTRA__ENABLED", "true"),
        ("ATV_ASTRA__SECRET_ID", &astra_secret_id),
        ("ATV_ASTRA__API_URL", &fake),
        ("ATV_ASTRA__AUTHORIZE_URL", &fake),
        ("ATV_ASTRA__REDIRECT_URI", astra::REDIRECT_URI),
        ("ATV_ASTRA__STORE_URL", world.store.url()),
    ]);
    let served = serve(&env).await;
    served.wait_ready().await;

    // The client credentials from the secret are the ones Astra accepts.
    let code = world.astra.issue_code("astra-alice");
    let http = reqwest::Client::new();
    let authorized = http
        .post(format!(
            "{}/astra/users/alice/authorization-code",
            served.internal
        ))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(authorized.status(), 200);
    let token: serde_json::Value = http
        .get(format!("{}/astra/users/alice/token", served.internal))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        world
            .astra
            .is_current_access_token(token["access_token"].as_str().unwrap())
    );
    // …and the row is sealed under the secret's key.
    let service = world.service(|_| {}).await;
    assert_eq!(service.store().count_rows_using_key("k1").await.unwrap(), 1);
    let logs = served.logs();
    assert!(!logs.contains(astra::CLIENT_SECRET), "{logs}");
}
