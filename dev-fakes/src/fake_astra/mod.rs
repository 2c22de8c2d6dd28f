//! An in-process fake of Astra's OAuth surface, for dev mode and tests.
//!
//! Astra publishes no emulator, so this fake follows the documented behaviour
//! as closely as we know it:
//!
//! - `POST /v1/oauth/token` with HTTP Basic client authentication and a form
//!   body (a JSON body is a 400), for `authorization_code` and
//!   `refresh_token`; errors are bare statuses (401 for our credentials, 400
//!   for a refused grant);
//! - one valid access token per user at a time (2 h), refresh tokens that
//!   rotate on every refresh yet stay valid until their own expiry (10 days),
//!   codes that are single use and short-lived;
//! - `GET /v1/user` with `Authorization: Bearer`;
//! - the OAuth module at `/login/oauth/authorize`: a page with an Authorize
//!   button that redirects to the registered URI with a `code`;
//! - a `request-id` header on every response.
//!
//! Drills that need many users seed them directly ([`FakeAstra::seed`],
//! `POST /_control {"seed": …}`) with tokens derived from a nonce
//! ([`seeded_tokens`]), so a bench tool can compute the same tokens and
//! write the vendor's rows itself instead of authorizing users one by one.
//!
//! Tests steer it through Rust methods ([`FakeAstra::set_fault`],
//! [`FakeAstra::advance_clock`], counters); multi-process drills can use the
//! unauthenticated `/_control` route that only [`FakeAstra::start_with_control`]
//! mounts, and only on a loopback address.

mod http;
mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::serve::Listener;
use store::{Lifetimes, Store};

/// Who the fake accepts and how long what it issues lives.
#[derive(Clone, Debug)]
pub struct FakeAstraConfig {
    pub client_id: String,
    pub client_secret: SecretString,
    /// The one registered redirect URI; compared as an exact string.
    pub redirect_uri: Url,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    pub code_lifetime: Duration,
    /// Added before every API answer, to model a network round trip.
    pub latency: Duration,
    /// Whether the OAuth module passes `state` back on the redirect. Astra
    /// does not document that it does, so callers must cope with `false`.
    pub echo_state: bool,
}

impl FakeAstraConfig {
    /// Astra's documented lifetimes: access 2 h, refresh 10 days, code 5 min.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: Url,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            redirect_uri,
            access_token_lifetime: Duration::from_secs(7200),
            refresh_token_lifetime: Duration::from_secs(864_000),
            code_lifetime: Duration::from_secs(300),
            latency: Duration::ZERO,
            echo_state: true,
        }
    }
}

/// A scripted failure of the API routes (`/v1/...`). The OAuth module page
/// and the control route are never affected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FakeAstraFault {
    /// Behave like the documented endpoint.
    #[default]
    None,
    /// Answer with this status (meant for 5xx).
    ServerError(u16),
    /// `429` with `Retry-After: 1`.
    RateLimited,
    /// Hold the request far longer than any client waits.
    Timeout,
    /// `200` with a body that is not JSON.
    Garbage,
    /// `401` whatever the credentials (a rotated or revoked client secret).
    ClientRejected,
}

/// Counters and settings, as served by `GET /_control`.
#[derive(Clone, Debug, Serialize)]
pub struct FakeAstraStats {
    pub fault: FakeAstraFault,
    pub latency_ms: u64,
    /// Every `POST /v1/oauth/token` received, whatever the answer.
    pub token_requests: u64,
    /// The most token requests that arrived within any one second (a
    /// sliding window, counted on arrival) since start or the last
    /// `{"reset_peak": true}`.
    pub token_requests_peak_1s: u64,
    /// Users created by [`FakeAstra::seed`].
    pub seeded_users: u64,
    /// Successful code exchanges.
    pub code_exchanges: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Empty when asked for with `GET /_control?by_user=false` (a million
    /// users make a large answer).
    pub refreshes_by_user: BTreeMap<String, u64>,
}

/// Users `{prefix}{first}` .. `{prefix}{first + count - 1}` to create with
/// [`seeded_tokens`] from `nonce`, their refresh tokens issued
/// `refresh_issued_ago_secs` ago (access tokens are fresh).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRequest {
    pub prefix: String,
    #[serde(default)]
    pub first: u64,
    pub count: u64,
    pub nonce: String,
    #[serde(default)]
    pub refresh_issued_ago_secs: u64,
}

/// The tokens a seeded user holds.
#[derive(Clone, PartialEq, Eq)]
pub struct SeededTokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// The tokens [`FakeAstra::seed`] gives `user` for `nonce`: deterministic,
/// so that whoever chose the nonce can store the same tokens; distinct per
/// nonce, so reseeding replaces them like a new authorization would.
pub fn seeded_tokens(nonce: &str, user: &str) -> SeededTokens {
    let derive = |kind: &str| {
        let digest = Sha256::digest(format!("fake-astra-seed:v1:{kind}:{nonce}:{user}"));
        format!("{kind}_s{}", hex::encode(&digest[..16]))
    };
    SeededTokens {
        access_token: derive("at"),
        refresh_token: derive("rt"),
    }
}

/// A running fake. Dropping it does not stop the server; call [`FakeAstra::stop`].
pub struct FakeAstra {
    base_url: Url,
    handle: ServerHandle,
    store: Shared,
}

/// The store behind one lock; a panic while holding it cannot leave it in a
/// state worse than a test's own failure, so poisoning is ignored.
#[derive(Clone)]
struct Shared(Arc<Mutex<Store>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FakeAstra {
    /// Binds `addr` (port 0 picks a free one) and serves on the current
    /// Tokio runtime until [`FakeAstra::stop`].
    pub fn start(addr: SocketAddr, config: FakeAstraConfig) -> std::io::Result<Self> {
        Self::serve(Listener::plain(addr)?, config)
    }

    /// Like [`FakeAstra::start`], plus `GET /_control` (a [`FakeAstraStats`])
    /// and `POST /_control` (`{"fault": …, "latency_ms": …, "reset_peak":
    /// true, "seed": {…}}`, each optional; `seed` is a [`SeedRequest`]).
    /// The route has no authentication, so a non-loopback `addr` is refused.
    pub fn start_with_control(addr: SocketAddr, config: FakeAstraConfig) -> std::io::Result<Self> {
        Self::serve(Listener::with_control(addr, "the fake Astra")?, config)
    }

    fn serve(listener: Listener, config: FakeAstraConfig) -> std::io::Result<Self> {
        let bound = listener.addr;
        let base_url = Url::parse(&format!("http://{bound}/"))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let store = Shared(Arc::new(Mutex::new(Store::new(
            Lifetimes {
                access: config.access_token_lifetime,
                refresh: config.refresh_token_lifetime,
                code: config.code_lifetime,
            },
            config.latency,
        ))));
        let handle = http::serve(listener, config, store.clone())?;
        Ok(Self {
            base_url,
            handle,
            store,
        })
    }

    /// E.g. `http://127.0.0.1:41234/`; serves as both the API base and the
    /// OAuth module base.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    /// Stops the server without waiting for in-flight requests (a request
    /// held by [`FakeAstraFault::Timeout`] would otherwise hold the stop).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// Mints a code for `user` as if they had clicked Authorize.
    pub fn issue_code(&self, user: &str) -> String {
        self.store.lock().mint_code(user)
    }

    /// The fake user id a user intent maps to (bound on first use), as the
    /// OAuth module would pick it for `user_intent_id`.
    pub fn user_for_intent(&self, user_intent_id: &str) -> String {
        self.store.lock().user_for_intent(user_intent_id)
    }

    pub fn set_fault(&self, fault: FakeAstraFault) {
        self.store.lock().fault = fault;
    }

    pub fn set_latency(&self, latency: Duration) {
        self.store.lock().latency = latency;
    }

    /// Moves the fake's clock forward, so tokens and codes issued before can
    /// be made to look expired.
    pub fn advance_clock(&self, by: Duration) {
        self.store.lock().advance_clock(by);
    }

    /// Successful refreshes, all users.
    pub fn refreshes(&self) -> u64 {
        self.store.lock().refreshes
    }

    pub fn refreshes_for(&self, user: &str) -> u64 {
        self.store
            .lock()
            .refreshes_by_user
            .get(user)
            .copied()
            .unwrap_or(0)
    }

    /// Successful code exchanges.
    pub fn code_exchanges(&self) -> u64 {
        self.store.lock().code_exchanges
    }

    /// Token requests received, whatever the answer.
    pub fn token_requests(&self) -> u64 {
        self.store.lock().token_requests
    }

    /// Whether `GET /v1/user` would accept this token now: it is its user's
    /// current access token and has not expired.
    pub fn is_current_access_token(&self, token: &str) -> bool {
        self.store.lock().user_for_access_token(token).is_some()
    }

    /// The latest access token issued to `user` (even if it has expired).
    pub fn current_access_token(&self, user: &str) -> Option<String> {
        self.store.lock().current_access_token(user)
    }

    /// Creates (or re-authorizes) the users of `request`; returns how many.
    pub fn seed(&self, request: &SeedRequest) -> u64 {
        let ago = Duration::from_secs(request.refresh_issued_ago_secs);
        let mut store = self.store.lock();
        seed(&mut store, request, ago)
    }

    /// Makes every refresh token of `user` refused from now on, as after the
    /// user revoked our access.
    pub fn revoke_refresh_tokens(&self, user: &str) {
        self.store.lock().revoke_refresh_tokens(user);
    }

    pub fn stats(&self) -> FakeAstraStats {
        stats(&self.store.lock(), true)
    }
}

fn seed(store: &mut Store, request: &SeedRequest, ago: Duration) -> u64 {
    let end = request.first.saturating_add(request.count);
    for i in request.first..end {
        let user = format!("{}{i}", request.prefix);
        let tokens = seeded_tokens(&request.nonce, &user);
        store.seed_user(&user, tokens, ago);
    }
    end - request.first
}

fn stats(store: &Store, by_user: bool) -> FakeAstraStats {
    FakeAstraStats {
        fault: store.fault,
        latency_ms: u64::try_from(store.latency.as_millis()).unwrap_or(u64::MAX),
        token_requests: store.token_requests,
        token_requests_peak_1s: store.token_requests_peak_1s,
        seeded_users: store.seeded_users,
        code_exchanges: store.code_exchanges,
        refreshes: store.refreshes,
        refreshes_by_user: if by_user {
            store.refreshes_by_user.clone()
        } else {
            BTreeMap::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;

    #[test]
    fn seeded_tokens_depend_on_nonce_and_user_only() {
        let a = seeded_tokens("n1", "u1");
        assert!(a == seeded_tokens("n1", "u1"));
        assert!(a != seeded_tokens("n2", "u1"));
        assert!(a != seeded_tokens("n1", "u2"));
        assert!(a.access_token.starts_with("at_s") && a.refresh_token.starts_with("rt_s"));
    }

    #[tokio::test]
    async fn control_seeds_users_whose_tokens_work_at_the_token_endpoint() {
        let redirect = Url::parse("http://127.0.0.1:1/cb").expect("url");
        let config = FakeAstraConfig::new("id", "secret", redirect.clone());
        let fake =
            FakeAstra::start_with_control(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
                .expect("starts");
        let http = reqwest::Client::new();
        let control = fake.base_url().join("_control").expect("url");
        let seed = serde_json::json!({"seed": {"prefix": "u", "first": 5, "count": 3,
            "nonce": "n", "refresh_issued_ago_secs": 691_200}});
        let answer = http
            .post(control.clone())
            .json(&seed)
            .send()
            .await
            .expect("control");
        assert_eq!(answer.status(), 200);

        let tokens = seeded_tokens("n", "u7");
        assert!(fake.is_current_access_token(&tokens.access_token));
        assert!(!fake.is_current_access_token(&seeded_tokens("n", "u8").access_token));
        let refreshed = http
            .post(fake.base_url().join("v1/oauth/token").expect("url"))
            .basic_auth("id", Some("secret"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens.refresh_token.as_str()),
                ("redirect_uri", redirect.as_str()),
            ])
            .send()
            .await
            .expect("token endpoint");
        assert_eq!(refreshed.status(), 200);

        let stats: serde_json::Value = http
            .get(control)
            .send()
            .await
            .expect("control")
            .json()
            .await
            .expect("json");
        assert_eq!(stats["seeded_users"], 3);
        assert_eq!(stats["token_requests_peak_1s"], 1);
        assert_eq!(stats["refreshes_by_user"]["u7"], 1);
        fake.stop().await;
    }
}
