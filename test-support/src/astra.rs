//! Per-user Astra tests: one world per test, a fake Astra, a store (SQLite file or a fresh
//! PostgreSQL database), and services or whole apps built on them.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use astrada_token_vendor::config::{AstraSettings, Settings};
use astrada_token_vendor::observability::Metrics;
use astrada_token_vendor::user_tokens::{Grant, TokenCipher, UserRef, UserTokens};
use atv_dev_fakes::fake_astra::{FakeAstra, FakeAstraConfig};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use wiremock::MockServer;

use crate::cut_proxy::CutProxy;
use crate::postgres;

pub const CLIENT_ID: &str = "test-astra-client";
pub const CLIENT_SECRET: &str = "test-astra-secret-0123456789";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/astra/callback";
/// Two fixed test keys (32 zero bytes and 32 0x01 bytes): never production keys.
pub const KEY_1: (&str, [u8; 32]) = ("k1", [0; 32]);
pub const KEY_2: (&str, [u8; 32]) = ("k2", [1; 32]);

/// Evaluates `$body` with `$pool` a fresh pool on `$store`'s database (of
/// either type: the body is compiled once for each), then closes the pool.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite { url, .. } => with_pool!(@on sqlx::SqlitePool, url, |$pool| $body),
            Store::Postgres { url } => with_pool!(@on sqlx::PgPool, url, |$pool| $body),
        }
    };
    (@on $pool_type:ty, $url:expr, |$pool:ident| $body:expr) => {{
        let $pool = <$pool_type>::connect($url).await.unwrap();
        let out = $body;
        $pool.close().await;
        out
    }};
}

/// The store behind the service, and raw SQL access to look at it.
pub enum Store {
    Sqlite { url: String, _dir: TempDir },
    Postgres { url: String },
}

pub struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Store {
    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("atv-astra-{:016x}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("astra.db").display());
        Store::Sqlite {
            url,
            _dir: TempDir(dir),
        }
    }

    pub async fn postgres() -> Self {
        Store::Postgres {
            url: postgres::fresh_database().await,
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Store::Sqlite { url, .. } | Store::Postgres { url } => url,
        }
    }

    /// Runs one statement with `user` bound as its only parameter (`$1`).
    pub async fn execute(&self, sql: &'static str, user: &str) {
        with_pool!(self, |pool| {
            sqlx::query(sql).bind(user).execute(&pool).await.unwrap();
        });
    }

    /// Overwrites `user`'s stored refresh token ciphertext with `blob`.
    pub async fn set_refresh_token(&self, user: &str, blob: Vec<u8>) {
        const SQL: &str = "UPDATE astra_users SET refresh_token = $1 WHERE user_ref = $2";
        with_pool!(self, |pool| {
            let query = sqlx::query(SQL).bind(blob).bind(user);
            query.execute(&pool).await.unwrap();
        });
    }

    /// Every byte of every stored token column, concatenated.
    pub async fn raw_token_bytes(&self) -> Vec<u8> {
        const SQL: &str = "SELECT access_token, refresh_token FROM astra_users";
        let rows: Vec<(Vec<u8>, Vec<u8>)> = with_pool!(self, |pool| {
            sqlx::query_as(SQL).fetch_all(&pool).await.unwrap()
        });
        rows.into_iter()
            .flat_map(|(a, r)| [a, r].concat())
            .collect()
    }

    /// Makes `user`'s access token look expired to the service.
    pub async fn expire_access_token(&self, user: &str) {
        self.execute(
            "UPDATE astra_users SET access_expires_at = 0 WHERE user_ref = $1",
            user,
        )
        .await;
    }

    /// Makes `user` due for the scheduler.
    pub async fn make_due(&self, user: &str) {
        self.execute(
            "UPDATE astra_users SET next_refresh_at = 0 WHERE user_ref = $1",
            user,
        )
        .await;
    }
}

/// A fake Astra and a store, shared by the services and apps of one test.
pub struct World {
    pub astra: FakeAstra,
    pub store: Store,
}

impl World {
    pub async fn new(store: Store) -> Self {
        let astra = FakeAstra::start(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            FakeAstraConfig::new(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI.parse().unwrap()),
        )
        .unwrap();
        Self { astra, store }
    }

    /// A world on `store` and one app on it with the default settings.
    pub async fn with_app(store: Store) -> (Self, TestApp) {
        let world = Self::new(store).await;
        let app = world.app(|_| {}).await;
        (world, app)
    }

    /// `[astra]` pointing at this world, sealing with `KEY_1`.
    pub fn settings(&self) -> AstraSettings {
        let mut s = Settings::defaults().unwrap().astra;
        s.enabled = true;
        s.api_url = self.astra.base_url().to_string();
        s.authorize_url = self.astra.base_url().to_string();
        s.client_id = CLIENT_ID.into();
        s.client_secret = SecretString::from(CLIENT_SECRET);
        s.redirect_uri = REDIRECT_URI.into();
        s.store_url = SecretString::from(self.store.url());
        s.encryption_keys = keys(&[KEY_1]);
        s.active_key_id = KEY_1.0.into();
        s.timeout_ms = 1000;
        s.connect_timeout_ms = 500;
        s.lease_secs = 2;
        s.wait_timeout_ms = 4000;
        s.max_calls_per_sec = 1000;
        s
    }

    /// A service of its own (one replica's worth), with `tweak` applied.
    pub async fn service(&self, tweak: impl FnOnce(&mut AstraSettings)) -> Arc<UserTokens> {
        let mut s = self.settings();
        tweak(&mut s);
        UserTokens::from_settings(&s, &Metrics::new())
            .await
            .expect("astra settings are valid")
            .expect("astra is enabled")
    }

    /// A whole app (one replica) on this world.
    pub async fn app(&self, tweak: impl FnOnce(&mut AstraSettings)) -> TestApp {
        let mut s = self.settings();
        tweak(&mut s);
        TestApp::spawn(s, |_| {}).await
    }

    /// A whole app on this world with `tweak`ed service settings (e.g.
    /// internal callers and their grants).
    pub async fn app_with(&self, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        TestApp::spawn(self.settings(), tweak).await
    }

    /// [`World::app_with`], with a client that sends `Authorization: Bearer
    /// credential` on every request.
    pub async fn app_as(&self, credential: &str, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let mut app = self.app_with(tweak).await;
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {credential}")
            .parse()
            .expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
        app.http = client().default_headers(headers).build().unwrap();
        app
    }

    /// Authorizes `user` through the service as Astra user `astra_user`.
    pub async fn authorize(&self, service: &UserTokens, user: &str, astra_user: &str) {
        let code = Grant::Code(SecretString::from(self.astra.issue_code(astra_user)));
        service
            .authorizations()
            .authorize(&user_ref(user), code)
            .await
            .expect("code exchange");
    }

    /// A service of its own through which `user` is authorized as Astra
    /// user `astra-{user}`.
    pub async fn authorized(&self, user: &str) -> Arc<UserTokens> {
        let service = self.service(|_| {}).await;
        self.authorize(&service, user, &format!("astra-{user}"))
            .await;
        service
    }

    /// [`World::authorized`], then `user`'s access token looks expired.
    pub async fn expired(&self, user: &str) -> Arc<UserTokens> {
        let service = self.authorized(user).await;
        self.store.expire_access_token(user).await;
        service
    }
}

/// A world on a fresh PostgreSQL database reached through a proxy the test
/// can cut (a database outage for the services built on the returned URL),
/// with `password` in that URL if given (the throw-away cluster trusts
/// loopback, so any password is accepted).
pub async fn postgres_behind_a_proxy(password: Option<&str>) -> (World, CutProxy, String) {
    let world = World::new(Store::postgres().await).await;
    let mut url = url::Url::parse(world.store.url()).unwrap();
    let target = format!("127.0.0.1:{}", url.port().unwrap())
        .parse()
        .unwrap();
    let proxy = CutProxy::start(target).await;
    url.set_port(Some(proxy.port())).unwrap();
    url.set_password(password).unwrap();
    (world, proxy, url.to_string())
}

pub fn user_ref(user: &str) -> UserRef {
    UserRef::parse(user).unwrap()
}

/// `ID:BASE64` pairs for `astra.encryption_keys`.
pub fn keys(keys: &[(&str, [u8; 32])]) -> SecretString {
    let listed: Vec<String> = keys
        .iter()
        .map(|(id, key)| format!("{id}:{}", STANDARD.encode(key)))
        .collect();
    SecretString::from(listed.join(","))
}

/// The same keyring the service uses, for tests that tamper with rows.
pub fn cipher(active: (&str, [u8; 32])) -> TokenCipher {
    TokenCipher::new(
        vec![(
            active.0.to_owned(),
            SecretString::from(STANDARD.encode(active.1)),
        )],
        active.0,
    )
    .unwrap()
}

/// A running app with Astra on, a client that does not follow redirects,
/// and the mock Astrada endpoint it also needs.
pub struct TestApp {
    app: crate::TestApp,
    _astrada: MockServer,
    pub http: reqwest::Client,
}

impl std::ops::Deref for TestApp {
    type Target = crate::TestApp;

    fn deref(&self) -> &crate::TestApp {
        &self.app
    }
}

impl TestApp {
    async fn spawn(astra: AstraSettings, tweak: impl FnOnce(&mut Settings)) -> Self {
        let (app, astrada) = crate::app_with_tokens(|s| {
            s.server.workers = 2;
            s.astra = astra;
            tweak(s);
        })
        .await;
        Self {
            app,
            _astrada: astrada,
            http: client().build().unwrap(),
        }
    }

    /// `method` on `path` of the internal listener, as it answers.
    pub async fn send(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.internal);
        self.http.request(method, url).send().await.unwrap()
    }

    /// `GET` on the internal listener: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        json_answer(self.send(reqwest::Method::GET, path).await).await
    }

    /// `GET` on the public listener: status and JSON body.
    pub async fn get_public(&self, path: &str) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.public);
        json_answer(self.http.get(url).send().await.unwrap()).await
    }

    /// `POST` JSON on the internal listener: status and JSON body.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    /// `PUT` JSON on the internal listener: status and JSON body.
    pub async fn put(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.send_json(reqwest::Method::PUT, path, body).await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.internal);
        let r = self.http.request(method, url).json(&body).send().await;
        json_answer(r.unwrap()).await
    }

    /// Asks for `user`'s token to be refreshed by a caller that found the
    /// one of `generation` stale: status and JSON body.
    pub async fn refresh_stale(
        &self,
        user: &str,
        generation: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let path = format!("/astra/users/{user}/token/refresh");
        self.post(&path, serde_json::json!({ "stale_generation": generation }))
            .await
    }
}

/// A client that does not follow redirects (the callback's `303`).
fn client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
}

async fn json_answer(r: reqwest::Response) -> (u16, serde_json::Value) {
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}
