//! An in-process stand-in for Astrada's `POST /oauth/token`, for dev mode and
//! benchmarks. It behaves like the documented endpoint: JSON (or form) body
//! with `client_id`, `client_secret`, `grant_type=client_credentials`; a signed
//! JWT with `expires_in`; `401 {"error":"invalid_client"}` for wrong
//! credentials. Not for production: the signing key is random per start.
//!
//! Benchmarks and fault drills (`bench/`) also need to script outages: the
//! fake's [`FakeMode`] can be switched at run time, and
//! [`FakeAstrada::start_with_control`] adds an unauthenticated `/_control`
//! route for that (loopback test rigs only; dev mode never mounts it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::serve::{Listener, control_routes};

/// What the fake accepts and how it answers.
#[derive(Clone)]
pub struct FakeAstradaConfig {
    /// Accepted `(client_id, client_secret)` pairs.
    pub clients: Vec<(String, SecretString)>,
    /// `expires_in` and JWT lifetime.
    pub lifetime: Duration,
    /// Added before every answer, to model a real network round trip.
    pub latency: Duration,
}

/// How the fake answers token requests. Switchable while it runs, so a
/// fault drill can take the "upstream" through an outage and back without
/// losing its counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum FakeMode {
    /// Like the real endpoint.
    #[default]
    Ok,
    /// `503` with an OAuth `temporarily_unavailable` body (an upstream outage
    /// behind a load balancer that still answers).
    Unavailable,
    /// Answers normally, but only after `ms` more milliseconds.
    Slow { ms: u64 },
    /// `200` with a body that is not a token response.
    Garbage,
    /// `401 invalid_client` whatever the credentials (revoked or rotated secret).
    InvalidClient,
}

/// What the fake has seen, for benchmarks that must count upstream exchanges.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FakeStats {
    /// The current mode.
    pub mode: FakeMode,
    /// Token requests received, whatever the answer.
    pub requests: u64,
    /// Tokens issued.
    pub issued: u64,
    /// Tokens issued per `client_id`, to check "one exchange per credential set".
    pub issued_by_client: BTreeMap<String, u64>,
}

/// A running fake token endpoint.
pub struct FakeAstrada {
    /// Full token URL, e.g. `http://127.0.0.1:41234/oauth/token`.
    pub token_url: String,
    handle: ServerHandle,
    shared: Arc<Shared>,
}

impl FakeAstrada {
    /// Starts on `addr` (port 0 picks a free one).
    pub fn start(addr: SocketAddr, config: FakeAstradaConfig) -> std::io::Result<Self> {
        Self::serve(Listener::plain(addr)?, config)
    }

    /// Like [`FakeAstrada::start`], plus `GET /_control` (the [`FakeStats`]
    /// as JSON) and `POST /_control` (a [`FakeMode`] as JSON, e.g.
    /// `{"mode":"slow","ms":4000}`). The control route has no authentication,
    /// so a non-loopback `addr` is refused.
    pub fn start_with_control(
        addr: SocketAddr,
        config: FakeAstradaConfig,
    ) -> std::io::Result<Self> {
        Self::serve(Listener::with_control(addr, "the fake Astrada")?, config)
    }

    fn serve(listener: Listener, config: FakeAstradaConfig) -> std::io::Result<Self> {
        let bound = listener.addr;
        let token_url = format!("http://{bound}/oauth/token");
        let mut key = [0u8; 32];
        key.iter_mut().for_each(|b| *b = fastrand::u8(..));
        let shared = Arc::new(Shared::default());
        let state = web::Data::new(State {
            config,
            issuer: format!("http://{bound}"),
            key: EncodingKey::from_secret(&key),
            shared: Arc::clone(&shared),
        });
        let handle = spawn_server!(listener.tcp, move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(16 * 1024))
                .route("/oauth/token", web::post().to(token))
                .configure(control_routes(listener.control, get_control, set_control))
        });
        Ok(Self {
            token_url,
            handle,
            shared,
        })
    }

    /// How many tokens this fake has issued.
    pub fn issued(&self) -> u64 {
        self.shared.issued.load(Ordering::Relaxed)
    }

    /// Switches how the next token requests are answered.
    pub fn set_mode(&self, mode: FakeMode) {
        *self.shared.lock_mode() = mode;
    }

    /// Counters and current mode.
    pub fn stats(&self) -> FakeStats {
        self.shared.stats()
    }

    /// Stops the server.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

struct State {
    config: FakeAstradaConfig,
    issuer: String,
    key: EncodingKey,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    mode: Mutex<FakeMode>,
    requests: AtomicU64,
    issued: AtomicU64,
    issued_by_client: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn lock_mode(&self) -> std::sync::MutexGuard<'_, FakeMode> {
        self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> FakeStats {
        FakeStats {
            mode: *self.lock_mode(),
            requests: self.requests.load(Ordering::Relaxed),
            issued: self.issued.load(Ordering::Relaxed),
            issued_by_client: self
                .issued_by_client
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

async fn get_control(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(state.shared.stats())
}

async fn set_control(mode: web::Json<FakeMode>, state: web::Data<State>) -> HttpResponse {
    *state.shared.lock_mode() = mode.into_inner();
    HttpResponse::Ok().json(state.shared.stats())
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

fn oauth_error(status: u16, error: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "error": error }))
}

async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    state.shared.requests.fetch_add(1, Ordering::Relaxed);
    let mode = *state.shared.lock_mode();
    let delay = match mode {
        FakeMode::Slow { ms } => state.config.latency + Duration::from_millis(ms),
        _ => state.config.latency,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match mode {
        FakeMode::Unavailable => return oauth_error(503, "temporarily_unavailable"),
        FakeMode::Garbage => {
            return HttpResponse::Ok()
                .content_type("application/json")
                .body("<html><body>502 Bad Gateway</body></html>");
        }
        FakeMode::InvalidClient => return oauth_error(401, "invalid_client"),
        FakeMode::Ok | FakeMode::Slow { .. } => {}
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Option<TokenRequest> = if is_json {
        serde_json::from_slice(&body).ok()
    } else {
        parse_form(&body)
    };
    let Some(mut request) = parsed else {
        return oauth_error(400, "invalid_request");
    };
    if let Some((id, secret)) = basic_credentials(&req) {
        request.client_id = Some(id);
        request.client_secret = Some(secret);
    }
    if request.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(400, "unsupported_grant_type");
    }
    let (Some(client_id), Some(client_secret)) = (request.client_id, request.client_secret) else {
        return oauth_error(401, "invalid_client");
    };
    let known = state
        .config
        .clients
        .iter()
        .any(|(id, secret)| *id == client_id && secret.expose_secret() == client_secret);
    if !known {
        return oauth_error(401, "invalid_client");
    }
    let now = unix_secs();
    let lifetime = state.config.lifetime.as_secs().max(1);
    let claims = serde_json::json!({
        "iss": state.issuer,
        "sub": client_id,
        "aud": "https://api.astrada.co",
        "iat": now,
        "exp": now + lifetime,
        "jti": format!("{:016x}", fastrand::u64(..)),
        "scope": request.scope.unwrap_or_default(),
    });
    let Ok(jwt) = jsonwebtoken::encode(&Header::default(), &claims, &state.key) else {
        return oauth_error(500, "server_error");
    };
    state.shared.issued.fetch_add(1, Ordering::Relaxed);
    *state
        .shared
        .issued_by_client
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(client_id.clone())
        .or_default() += 1;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "access_token": jwt,
            "expires_in": lifetime,
            "token_type": "Bearer",
        }))
}

/// Seconds since the Unix epoch, for `iat` and `exp`; a clock before 1970
/// gives 0 (tokens that look long expired) rather than a panic.
fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn parse_form(body: &[u8]) -> Option<TokenRequest> {
    let mut request = TokenRequest {
        grant_type: None,
        client_id: None,
        client_secret: None,
        scope: None,
    };
    for (k, v) in form_urlencoded::parse(body) {
        let slot = match k.as_ref() {
            "grant_type" => &mut request.grant_type,
            "client_id" => &mut request.client_id,
            "client_secret" => &mut request.client_secret,
            "scope" => &mut request.scope,
            _ => continue,
        };
        *slot = Some(v.into_owned());
    }
    Some(request)
}

fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    async fn post_token(http: &reqwest::Client, url: &str) -> (u16, String) {
        let answer = http
            .post(url)
            .json(&serde_json::json!({
                "grant_type": "client_credentials",
                "client_id": "bench",
                "client_secret": "s3cret",
            }))
            .send()
            .await
            .expect("fake answers");
        let status = answer.status().as_u16();
        (status, answer.text().await.expect("body"))
    }

    #[tokio::test]
    async fn control_route_switches_modes_and_counts_tokens_per_client() {
        let fake = FakeAstrada::start_with_control(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            FakeAstradaConfig {
                clients: vec![("bench".into(), SecretString::from("s3cret"))],
                lifetime: Duration::from_secs(20),
                latency: Duration::ZERO,
            },
        )
        .expect("fake starts");
        let control = fake.token_url.replace("/oauth/token", "/_control");
        let http = reqwest::Client::new();

        let (status, body) = post_token(&http, &fake.token_url).await;
        assert_eq!(status, 200);
        assert!(body.contains("\"expires_in\":20"));

        for (mode, expected) in [
            (r#"{"mode":"unavailable"}"#, 503),
            (r#"{"mode":"invalid_client"}"#, 401),
            (r#"{"mode":"garbage"}"#, 200),
            (r#"{"mode":"slow","ms":1}"#, 200),
        ] {
            let set = http
                .post(&control)
                .header("content-type", "application/json")
                .body(mode)
                .send()
                .await
                .expect("control answers");
            assert_eq!(set.status(), 200, "{mode}");
            let (status, body) = post_token(&http, &fake.token_url).await;
            assert_eq!(status, expected, "{mode}");
            if mode.contains("garbage") {
                assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
            }
        }

        let stats: serde_json::Value = http
            .get(&control)
            .send()
            .await
            .expect("control answers")
            .json()
            .await
            .expect("stats are JSON");
        assert_eq!(stats["requests"], 5);
        assert_eq!(stats["issued"], 2);
        assert_eq!(stats["issued_by_client"]["bench"], 2);
        assert_eq!(stats["mode"]["mode"], "slow");
        fake.stop().await;
    }

    #[tokio::test]
    async fn plain_start_has_no_control_route() {
        let fake = FakeAstrada::start(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            FakeAstradaConfig {
                clients: vec![],
                lifetime: Duration::from_secs(20),
                latency: Duration::ZERO,
            },
        )
        .expect("fake starts");
        let control = fake.token_url.replace("/oauth/token", "/_control");
        let answer = reqwest::get(&control).await.expect("fake answers");
        assert_eq!(answer.status(), 404);
        fake.stop().await;
    }
}
