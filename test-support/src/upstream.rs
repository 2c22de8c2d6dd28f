//! The token endpoint the service exchanges credentials at: wiremock
//! answers like Astrada's, either to anyone ([`FreshToken`]) or only to the
//! client credentials it currently accepts ([`Astrada`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::unix_now;

/// An unsigned-looking but well-formed JWT with a unique `jti`, expiring in
/// `secs`, plus `claims`.
fn jwt_with(secs: u64, claims: serde_json::Value) -> String {
    let now = unix_now() as u64;
    let mut all = serde_json::json!({"exp": now + secs, "iat": now, "jti": fastrand::u64(..)});
    if let (Some(all), Some(extra)) = (all.as_object_mut(), claims.as_object()) {
        all.extend(extra.clone());
    }
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(all.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

/// An unsigned-looking but well-formed JWT with a unique `jti`, expiring in `secs`.
pub fn jwt(secs: u64) -> String {
    jwt_with(secs, serde_json::json!({}))
}

/// A token endpoint's success answer with a fresh JWT of `lifetime` seconds.
fn token_answer(access_token: String, lifetime: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "access_token": access_token,
        "expires_in": lifetime,
        "token_type": "Bearer",
    }))
}

/// A token endpoint answer like Astrada's, with a fresh JWT each time.
pub struct FreshToken {
    pub lifetime: u64,
    pub delay: Duration,
}

impl FreshToken {
    /// `lifetime`-second tokens, answered at once.
    pub fn lasting(lifetime: u64) -> Self {
        Self {
            lifetime,
            delay: Duration::ZERO,
        }
    }

    /// The same tokens, each answered after `delay`.
    pub fn after(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }
}

impl Respond for FreshToken {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        token_answer(jwt(self.lifetime), self.lifetime).set_delay(self.delay)
    }
}

/// Mounts a token endpoint that always succeeds with `lifetime`-second tokens.
pub async fn mount_tokens(upstream: &MockServer, lifetime: u64) {
    mount_answers(upstream, FreshToken::lasting(lifetime)).await;
}

/// Mounts a token endpoint that always answers with `answer`.
pub async fn mount_answers(upstream: &MockServer, answer: impl Respond + 'static) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(answer)
        .mount(upstream)
        .await;
}

/// Mounts a token endpoint whose first two answers (the first token of each
/// set) are `lifetime`-second tokens and every later one is a 500.
pub async fn mount_first_tokens_then_500(upstream: &MockServer, lifetime: u64) {
    Mock::given(method("POST"))
        .respond_with(FreshToken::lasting(lifetime))
        .up_to_n_times(2)
        .mount(upstream)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(upstream)
        .await;
}

/// Number of requests `server` has seen (token exchanges, JWKS fetches).
pub async fn exchanges(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

/// Every client secret [`Astrada`] knows starts with this, so a log check
/// can look for any of them at once.
pub const SECRET_MARK: &str = "sm-s3cret-";

/// The secret that goes with `client_id` in every secret and check.
pub fn secret_of(client_id: &str) -> String {
    format!("{SECRET_MARK}{client_id}")
}

/// One set's secret value: `{"client_id", "client_secret"}`.
pub fn pair(client_id: &str) -> String {
    pair_value(client_id).to_string()
}

/// A secret holding both sets: `{"api": {…}, "sdk": {…}}`.
pub fn bundle(api_client_id: &str, sdk_client_id: &str) -> String {
    serde_json::json!({"api": pair_value(api_client_id), "sdk": pair_value(sdk_client_id)})
        .to_string()
}

fn pair_value(client_id: &str) -> serde_json::Value {
    serde_json::json!({"client_id": client_id, "client_secret": secret_of(client_id)})
}

/// A token endpoint that, like Astrada's, accepts only the client
/// credentials it currently knows, so that which credentials the service
/// sends, and when it switches, is observable.
pub struct Astrada {
    pub server: MockServer,
    accepted: Arc<Mutex<HashMap<String, String>>>,
}

struct CheckCredentials {
    accepted: Arc<Mutex<HashMap<String, String>>>,
    lifetime: u64,
}

impl Respond for CheckCredentials {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let id = body["client_id"].as_str().unwrap_or_default();
        let secret = body["client_secret"].as_str().unwrap_or_default();
        let known = self.accepted.lock().unwrap().get(id).cloned();
        if known.as_deref() != Some(secret) {
            return ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "error": "invalid_client", "error_description": "Client authentication failed"
            }));
        }
        // The token's `sub` names the client it was issued to.
        let token = jwt_with(self.lifetime, serde_json::json!({"sub": id}));
        token_answer(token, self.lifetime)
    }
}

/// The client a token handed out by the service was issued to.
pub fn issued_to(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).unwrap();
    claims["sub"].as_str().expect("a sub claim").to_owned()
}

/// The client the token in `response` (a token route's answer) was issued to.
pub async fn issued_to_of(response: reqwest::Response) -> String {
    let body = crate::json(response).await;
    issued_to(body["access_token"].as_str().expect("an access token"))
}

impl Astrada {
    /// Issues `lifetime`-second tokens to the clients it accepts.
    pub async fn start(lifetime: u64) -> Self {
        let server = MockServer::start().await;
        let accepted = Arc::new(Mutex::new(HashMap::new()));
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(CheckCredentials {
                accepted: Arc::clone(&accepted),
                lifetime,
            })
            .mount(&server)
            .await;
        Self { server, accepted }
    }

    /// From now on `client_id` with [`secret_of`] gets tokens.
    pub fn accept(&self, client_id: &str) {
        self.accepted
            .lock()
            .unwrap()
            .insert(client_id.to_owned(), secret_of(client_id));
    }

    /// From now on `client_id` gets `invalid_client`.
    pub fn revoke(&self, client_id: &str) {
        self.accepted.lock().unwrap().remove(client_id);
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.server.uri())
    }

    /// The `client_id` of every exchange so far, in order.
    pub async fn client_ids(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                body["client_id"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }

    /// The exchanges so far whose `client_id` starts with `prefix` (`"sdk-"`).
    pub async fn client_ids_of(&self, prefix: &str) -> Vec<String> {
        let mut ids = self.client_ids().await;
        ids.retain(|id| id.starts_with(prefix));
        ids
    }
}
