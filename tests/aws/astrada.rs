//! A token endpoint that, like Astrada's, accepts only the client
//! credentials it currently knows, so that which credentials the service
//! sends, and when it switches, is observable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Every client secret in these tests starts with this, so a log check can
/// look for any of them at once.
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
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": token_for(id, self.lifetime),
            "expires_in": self.lifetime,
            "token_type": "Bearer",
        }))
    }
}

/// A JWT-shaped token whose `sub` names the client it was issued to.
fn token_for(client_id: &str, lifetime: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "sub": client_id, "exp": now + lifetime, "iat": now, "jti": fastrand::u64(..)
    });
    format!(
        "{header}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The client a token handed out by the service was issued to.
pub fn issued_to(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).unwrap();
    claims["sub"].as_str().expect("a sub claim").to_owned()
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
