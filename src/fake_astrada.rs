//! An in-process stand-in for Astrada's `POST /oauth/token`, for dev mode and
//! benchmarks. It behaves like the documented endpoint: JSON (or form) body
//! with `client_id`, `client_secret`, `grant_type=client_credentials`; a signed
//! JWT with `expires_in`; `401 {"error":"invalid_client"}` for wrong
//! credentials. Not for production: the signing key is random per start.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::oauth_client::unix_now;

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

/// A running fake token endpoint.
pub struct FakeAstrada {
    /// Full token URL, e.g. `http://127.0.0.1:41234/oauth/token`.
    pub token_url: String,
    handle: ServerHandle,
    issued: Arc<AtomicU64>,
}

impl FakeAstrada {
    /// Starts on `addr` (port 0 picks a free one).
    pub fn start(addr: SocketAddr, config: FakeAstradaConfig) -> std::io::Result<Self> {
        let tcp = TcpListener::bind(addr)?;
        let bound = tcp.local_addr()?;
        let token_url = format!("http://{bound}/oauth/token");
        let mut key = [0u8; 32];
        key.iter_mut().for_each(|b| *b = fastrand::u8(..));
        let issued = Arc::new(AtomicU64::new(0));
        let state = web::Data::new(State {
            config,
            issuer: format!("http://{bound}"),
            key: EncodingKey::from_secret(&key),
            issued: Arc::clone(&issued),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(16 * 1024))
                .route("/oauth/token", web::post().to(token))
        })
        .workers(1)
        .disable_signals()
        .listen(tcp)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            token_url,
            handle,
            issued,
        })
    }

    /// How many tokens this fake has issued.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
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
    issued: Arc<AtomicU64>,
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
    if !state.config.latency.is_zero() {
        tokio::time::sleep(state.config.latency).await;
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
    let now = unix_now() as u64;
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
    state.issued.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "access_token": jwt,
            "expires_in": lifetime,
            "token_type": "Bearer",
        }))
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
