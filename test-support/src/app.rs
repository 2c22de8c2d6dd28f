//! `spawn_app` and friends: every test gets its own service on free loopback
//! ports, its own mock token endpoint, and stops both when it ends.

use std::sync::Arc;
use std::time::Duration;

use astrada_token_vendor::app::Application;
use astrada_token_vendor::client_tokens::credentials::{
    ClientCredentials, CredentialBundle, CredentialSource, InlineSource,
};
use astrada_token_vendor::config::{CallerAuthMode, InternalAuthMode, Settings};
use astrada_token_vendor::core::PerSet;
use astrada_token_vendor::http::problem::PROBLEM_BASE;
use astrada_token_vendor::http::{API_TOKEN_PATH, SDK_TOKEN_PATH};
use reqwest::{RequestBuilder, StatusCode};
use secrecy::SecretString;
use tokio::sync::oneshot;
use wiremock::MockServer;

pub const API_CLIENT_ID: &str = "test-api-client";
pub const API_SECRET: &str = "api-s3cret-never-logged";
pub const SDK_CLIENT_ID: &str = "test-sdk-client";
pub const SDK_SECRET: &str = "sdk-s3cret-never-logged";

pub struct TestApp {
    /// `http://127.0.0.1:PORT` of the public listener.
    pub public: String,
    /// `http://127.0.0.1:PORT` of the internal listener.
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

    /// The SDK token's URL on the public listener.
    pub fn sdk_url(&self) -> String {
        format!("{}{SDK_TOKEN_PATH}", self.public)
    }

    /// The API token's URL on the internal listener.
    pub fn api_url(&self) -> String {
        format!("{}{API_TOKEN_PATH}", self.internal)
    }

    /// A `GET` of the SDK token, to add headers or a body to.
    pub fn sdk_request(&self) -> RequestBuilder {
        self.http.get(self.sdk_url())
    }

    /// `GET` the SDK token.
    pub async fn sdk_token(&self) -> reqwest::Response {
        send(self.sdk_request()).await
    }

    /// `GET` the API token.
    pub async fn api_token(&self) -> reqwest::Response {
        send(self.http.get(self.api_url())).await
    }

    /// `GET /astrada-sdk-token` with `Authorization: Bearer session`.
    pub async fn sdk_token_as(&self, session: &str) -> reqwest::Response {
        send(self.sdk_request().bearer_auth(session)).await
    }

    /// `GET /astrada-api-token` with `Authorization: Bearer token`.
    pub async fn api_token_as(&self, token: &str) -> reqwest::Response {
        send(self.http.get(self.api_url()).bearer_auth(token)).await
    }

    /// `GET /astrada-sdk-token` through a gateway that names `user` in
    /// `X-Forwarded-User` (or names nobody).
    pub async fn sdk_token_for(&self, user: Option<&str>) -> reqwest::Response {
        let mut request = self.sdk_request();
        if let Some(user) = user {
            request = request.header("x-forwarded-user", user);
        }
        send(request).await
    }

    pub async fn get(&self, url: String) -> reqwest::Response {
        send(self.http.get(url)).await
    }

    /// The status of `GET path` on the public listener.
    pub async fn public_status(&self, path: &str) -> StatusCode {
        self.get(format!("{}{path}", self.public)).await.status()
    }

    /// The status of `GET path` on the internal listener.
    pub async fn internal_status(&self, path: &str) -> StatusCode {
        self.get(format!("{}{path}", self.internal)).await.status()
    }

    /// Waits (bounded) until `/readyz` says 200.
    pub async fn wait_ready(&self) {
        self.eventually_ready("the service is ready", Duration::from_secs(5))
            .await;
    }

    /// Waits until `/readyz` says 200, failing after `limit`.
    pub async fn eventually_ready(&self, what: &str, limit: Duration) {
        crate::eventually(what, limit, || async {
            self.public_status("/readyz").await == 200
        })
        .await;
    }

    /// One sample from `/metrics`, e.g. `metric("atv_token_cache_lookups_total", "set=\"sdk\",result=\"miss\"")`;
    /// `labels` empty for a metric without labels.
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self
            .get(format!("{}/metrics", self.internal))
            .await
            .text()
            .await
            .expect("metrics body");
        let prefix = if labels.is_empty() {
            format!("{name} ")
        } else {
            format!("{name}{{{labels}}} ")
        };
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0.0, |v| v.trim().parse().expect("numeric sample"))
    }
}

async fn send(request: RequestBuilder) -> reqwest::Response {
    request.send().await.expect("the listener answers")
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
    // Never the real Astrada API: a closed loopback port unless a test mounts one.
    s.proxy.astrada_api_url = "http://127.0.0.1:9".into();
    s.cache.wait_timeout_ms = 2000;
    s.cache.backoff_initial_ms = 200;
    s.cache.backoff_max_ms = 1000;
    s.credentials.api.client_id = API_CLIENT_ID.into();
    s.credentials.api.client_secret = SecretString::from(API_SECRET);
    s.credentials.sdk.client_id = SDK_CLIENT_ID.into();
    s.credentials.sdk.client_secret = SecretString::from(SDK_SECRET);
    // Caller checks are off here; tests/api/caller_auth.rs and friends turn them on.
    s.caller_auth.mode = CallerAuthMode::None;
    s.caller_auth.allow_unauthenticated = true;
    s.internal_auth.mode = InternalAuthMode::None;
    s.internal_auth.allow_unauthenticated = true;
    // Cache tests send thousands of requests from one address.
    s.rate_limit.per_caller_per_minute = 0;
    s
}

/// The credentials [`test_settings`] names, as an inline source.
pub fn test_credentials() -> Arc<dyn CredentialSource> {
    let pair = |id: &str, secret: &str| ClientCredentials {
        client_id: id.into(),
        client_secret: SecretString::from(secret),
    };
    Arc::new(InlineSource::new(CredentialBundle {
        sets: PerSet {
            api: pair(API_CLIENT_ID, API_SECRET),
            sdk: pair(SDK_CLIENT_ID, SDK_SECRET),
        },
        version: None,
    }))
}

/// A token endpoint handing out 300-second tokens, and the service on it
/// with `tweak`ed settings. Keep the endpoint as long as the service.
pub async fn app_with_tokens(tweak: impl FnOnce(&mut Settings)) -> (TestApp, MockServer) {
    let upstream = MockServer::start().await;
    crate::mount_tokens(&upstream, 300).await;
    let app = spawn_app_with(&upstream, tweak).await;
    (app, upstream)
}

/// [`app_with_tokens`], once ready: both sets hold a token.
pub async fn ready_app() -> (TestApp, MockServer) {
    let upstream = MockServer::start().await;
    crate::mount_tokens(&upstream, 300).await;
    (spawn_ready(&upstream, |_| {}).await, upstream)
}

/// Callers identified by a gateway at `proxy` (an address or CIDR range).
pub fn use_trusted_gateway(s: &mut Settings, proxy: &str) {
    s.caller_auth.mode = CallerAuthMode::TrustedHeader;
    s.caller_auth.allow_unauthenticated = false;
    s.caller_auth.trusted_header.trusted_proxies = vec![proxy.into()];
}

/// Tokens refreshed `secs` before they expire and handed out down to 1 s
/// before, for tests with tokens of a few seconds.
pub fn refresh_ahead(secs: u64) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.cache.refresh_ahead_secs = secs;
        s.cache.min_remaining_secs = 1;
    }
}

/// What every answer carries so that no cache keeps a token.
pub const NO_STORE_HEADERS: &[(&str, &str)] = &[
    ("cache-control", "no-store"),
    ("pragma", "no-cache"),
    ("x-content-type-options", "nosniff"),
];

/// Asserts each `(header, value)` of `response`.
pub fn assert_headers(response: &reqwest::Response, expected: &[(&str, &str)]) {
    for (name, value) in expected {
        assert_eq!(response.headers()[*name], *value, "header {name}");
    }
}

pub async fn spawn_app(upstream: &MockServer) -> TestApp {
    spawn_app_with(upstream, |_| {}).await
}

pub async fn spawn_app_with(upstream: &MockServer, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(upstream);
    tweak(&mut settings);
    spawn_with_settings(settings, test_credentials()).await
}

/// [`spawn_app_with`], once ready: both sets hold a token.
pub async fn spawn_ready(upstream: &MockServer, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let app = spawn_app_with(upstream, tweak).await;
    app.wait_ready().await;
    app
}

/// Builds (which validates `settings`) and runs the service on `source`.
pub async fn spawn_with_settings(settings: Settings, source: Arc<dyn CredentialSource>) -> TestApp {
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

pub async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.expect("JSON body")
}

/// The problem `type` suffix of an error response (after [`PROBLEM_BASE`]).
pub async fn problem_type(response: reqwest::Response) -> String {
    let body = json(response).await;
    let full = body["type"].as_str().expect("problem type");
    full.strip_prefix(PROBLEM_BASE)
        .unwrap_or_else(|| panic!("`{full}` does not start with {PROBLEM_BASE}"))
        .to_owned()
}
