//! `spawn_app` and friends: every test gets its own service on free loopback
//! ports, its own mock token endpoint, and stops both when it ends.

use std::sync::Arc;
use std::time::Duration;

use astrada_token_vendor::config::Settings;
use astrada_token_vendor::credentials::{
    ClientCredentials, CredentialBundle, CredentialSource, InlineSource,
};
use astrada_token_vendor::startup::Application;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use tokio::sync::oneshot;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const API_CLIENT_ID: &str = "test-api-client";
pub const API_SECRET: &str = "api-s3cret-never-logged";
pub const SDK_CLIENT_ID: &str = "test-sdk-client";
pub const SDK_SECRET: &str = "sdk-s3cret-never-logged";

pub struct TestApp {
    pub public: String,
    pub internal: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Triggers the graceful shutdown path (what SIGTERM does) and waits for it.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.stopped.take() {
            Some(task) => task.await.expect("server task"),
            None => Ok(()),
        }
    }

    pub async fn sdk_token(&self) -> reqwest::Response {
        self.http
            .get(format!("{}/astrada-sdk-token", self.public))
            .send()
            .await
            .expect("public listener answers")
    }

    pub async fn api_token(&self) -> reqwest::Response {
        self.http
            .get(format!("{}/astrada-api-token", self.internal))
            .send()
            .await
            .expect("internal listener answers")
    }

    pub async fn get(&self, url: String) -> reqwest::Response {
        self.http.get(url).send().await.expect("listener answers")
    }

    /// Waits (bounded) until `/readyz` says 200.
    pub async fn wait_ready(&self) {
        for _ in 0..100 {
            if self.get(format!("{}/readyz", self.public)).await.status() == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("service did not become ready within 5 s");
    }

    /// One sample from `/metrics`, e.g. `metric("atv_token_cache_lookups_total", "set=\"sdk\",result=\"miss\"")`.
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self
            .get(format!("{}/metrics", self.internal))
            .await
            .text()
            .await
            .expect("metrics body");
        let prefix = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0.0, |v| v.trim().parse().expect("numeric sample"))
    }
}

/// Settings for tests: loopback, free ports, one worker, short waits.
pub fn test_settings(upstream: &MockServer) -> Settings {
    let mut s = Settings::defaults().expect("embedded defaults parse");
    s.server.public_addr = "127.0.0.1:0".parse().unwrap();
    s.server.internal_addr = "127.0.0.1:0".parse().unwrap();
    s.server.workers = 1;
    s.server.shutdown_timeout_secs = 1;
    s.token_endpoint.url = format!("{}/oauth/token", upstream.uri());
    s.token_endpoint.timeout_ms = 1000;
    s.token_endpoint.connect_timeout_ms = 500;
    s.cache.wait_timeout_ms = 2000;
    s.cache.backoff_initial_ms = 200;
    s.cache.backoff_max_ms = 1000;
    s.credentials.api.client_id = API_CLIENT_ID.into();
    s.credentials.api.client_secret = SecretString::from(API_SECRET);
    s.credentials.sdk.client_id = SDK_CLIENT_ID.into();
    s.credentials.sdk.client_secret = SecretString::from(SDK_SECRET);
    s
}

pub fn test_credentials() -> Arc<dyn CredentialSource> {
    Arc::new(InlineSource::new(CredentialBundle {
        api: ClientCredentials {
            client_id: API_CLIENT_ID.into(),
            client_secret: SecretString::from(API_SECRET),
        },
        sdk: ClientCredentials {
            client_id: SDK_CLIENT_ID.into(),
            client_secret: SecretString::from(SDK_SECRET),
        },
        version: None,
    }))
}

pub async fn spawn_app(upstream: &MockServer) -> TestApp {
    spawn_app_with(upstream, |_| {}).await
}

pub async fn spawn_app_with(upstream: &MockServer, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(upstream);
    tweak(&mut settings);
    spawn_with_settings(settings, test_credentials()).await
}

pub async fn spawn_with_settings(settings: Settings, source: Arc<dyn CredentialSource>) -> TestApp {
    settings.validate().expect("test settings are valid");
    let app = Application::build_with_source(settings, source)
        .await
        .expect("application builds");
    let public = format!("http://127.0.0.1:{}", app.public_port());
    let internal = format!("http://127.0.0.1:{}", app.internal_port());
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        public,
        internal,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        stop: Some(stop),
        stopped: Some(stopped),
    }
}

/// An unsigned-looking but well-formed JWT with a unique `jti`, expiring in `secs`.
pub fn jwt(secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({"exp": now + secs, "iat": now, "jti": fastrand::u64(..)});
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

/// A token endpoint answer like Astrada's, with a fresh JWT each time.
pub struct FreshToken {
    pub lifetime: u64,
    pub delay: Duration,
}

impl wiremock::Respond for FreshToken {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({
                "access_token": jwt(self.lifetime),
                "expires_in": self.lifetime,
                "token_type": "Bearer",
            }))
            .set_delay(self.delay)
    }
}

/// Mounts a token endpoint that always succeeds with `lifetime`-second tokens.
pub async fn mount_tokens(upstream: &MockServer, lifetime: u64) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(FreshToken {
            lifetime,
            delay: Duration::ZERO,
        })
        .mount(upstream)
        .await;
}

pub async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.expect("JSON body")
}

/// Number of token requests the mock has seen.
pub async fn exchanges(upstream: &MockServer) -> usize {
    upstream.received_requests().await.map_or(0, |r| r.len())
}
