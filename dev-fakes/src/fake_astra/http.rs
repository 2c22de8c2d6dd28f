//! The fake's HTTP surface: the token endpoint, `GET /v1/user`, the OAuth
//! module page, and the optional control route. The rules about codes and
//! tokens live in the store; this file only speaks HTTP the way Astra does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::{ServerHandle, Service, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::{FakeAstraConfig, FakeAstraFault, SeedRequest, Shared, seed, stats};
use crate::serve::{Listener, control_routes};

/// Longer than any client timeout we configure, so a `Timeout` fault is
/// always seen as one; the server is stopped without waiting for it.
const TIMEOUT_FAULT_HOLD: Duration = Duration::from_secs(600);

struct State {
    config: FakeAstraConfig,
    store: Shared,
}

/// Unique per response: a random per-start prefix plus a counter.
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("fake-{:08x}-{n:012x}", self.prefix)
    }
}

pub(super) fn serve(
    listener: Listener,
    config: FakeAstraConfig,
    store: Shared,
) -> std::io::Result<ServerHandle> {
    let state = web::Data::new(State { config, store });
    let ids = Arc::new(RequestIds {
        prefix: fastrand::u32(..),
        next: AtomicU64::new(1),
    });
    let handle = spawn_server!(listener.tcp, move || {
        let ids = Arc::clone(&ids);
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(64 * 1024))
            .wrap_fn(move |req, srv| with_request_id(ids.next(), req, srv))
            .route("/v1/oauth/token", web::post().to(token))
            .route("/v1/user", web::get().to(user))
            .route("/login/oauth/authorize", web::get().to(authorize_page))
            .route("/login/oauth/authorize", web::post().to(authorize_submit))
            .configure(control_routes(listener.control, get_control, set_control))
    });
    Ok(handle)
}

/// Adds `request-id` to every response, 404s and 405s included. Extractor
/// failures reach this point as responses (actix converts them per handler),
/// so only a failure inside actix itself could slip past it.
fn with_request_id<S>(
    id: String,
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse, actix_web::Error>> + use<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
{
    let call = srv.call(req);
    async move {
        let mut response = call.await?;
        if let Ok(value) = HeaderValue::from_str(&id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("request-id"), value);
        }
        Ok(response)
    }
}

/// Astra's errors are plain statuses; the tiny body only helps humans.
fn status(code: u16, message: &'static str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "message": message }))
}

/// Waits the configured latency, then answers for the fault, if any.
async fn latency_and_fault(state: &State) -> Option<HttpResponse> {
    let (fault, latency) = {
        let store = state.store.lock();
        (store.fault, store.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        FakeAstraFault::None => None,
        FakeAstraFault::ServerError(code) => Some(status(code, "server error")),
        FakeAstraFault::RateLimited => Some(
            HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, "1"))
                .json(serde_json::json!({ "message": "too many requests" })),
        ),
        FakeAstraFault::Timeout => {
            tokio::time::sleep(TIMEOUT_FAULT_HOLD).await;
            Some(status(504, "gateway timeout"))
        }
        FakeAstraFault::Garbage => Some(
            HttpResponse::Ok()
                .content_type("application/json")
                .body("<html><body>upstream hiccup</body></html>"),
        ),
        FakeAstraFault::ClientRejected => Some(status(401, "unauthorized")),
    }
}

/// Compares the Basic pair as sent, without form-decoding, matching how the
/// client encodes it (Astra documents plain `client_id:client_secret`).
fn client_authenticated(req: &HttpRequest, config: &FakeAstraConfig) -> bool {
    let Some(encoded) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Some(decoded) = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
    else {
        return false;
    };
    decoded.split_once(':').is_some_and(|(id, secret)| {
        id == config.client_id && secret == config.client_secret.expose_secret()
    })
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Form or query parameters; a repeated name makes the request invalid, as
/// OAuth servers refuse ambiguous parameters.
fn params(raw: &[u8]) -> Option<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw) {
        if map.insert(k.into_owned(), v.into_owned()).is_some() {
            return None;
        }
    }
    Some(map)
}

async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    state.store.lock().record_token_request(Instant::now());
    if let Some(response) = latency_and_fault(&state).await {
        return response;
    }
    if !client_authenticated(&req, &state.config) {
        return status(401, "unauthorized");
    }
    if !is_form(&req) {
        return status(400, "bad request");
    }
    let Some(form) = params(&body) else {
        return status(400, "bad request");
    };
    let get = |name: &str| form.get(name).map(String::as_str);
    if get("redirect_uri") != Some(state.config.redirect_uri.as_str()) {
        return status(400, "bad request");
    }
    let minted = {
        let mut store = state.store.lock();
        match (get("grant_type"), get("code"), get("refresh_token")) {
            (Some("authorization_code"), Some(code), _) => {
                store.exchange_code(code, get("code_verifier"))
            }
            (Some("refresh_token"), _, Some(refresh_token)) => store.refresh(refresh_token),
            _ => return status(400, "bad request"),
        }
    };
    match minted {
        Ok(minted) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({
                "access_token": minted.access_token,
                "refresh_token": minted.refresh_token,
                "expires_in": minted.expires_in.as_secs(),
                "token_type": "Bearer",
            })),
        Err(_) => status(400, "bad request"),
    }
}

async fn user(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(response) = latency_and_fault(&state).await {
        return response;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let store = state.store.lock();
    match token.and_then(|t| store.user_for_access_token(t.trim())) {
        Some(user) => HttpResponse::Ok().json(serde_json::json!({
            "id": user,
            "first_name": "Fake",
            "last_name": "User",
            "email": format!("{user}@example.test"),
        })),
        None => status(401, "unauthorized"),
    }
}

/// The parameters the OAuth module needs, checked like Astra would: an
/// unknown client or unregistered redirect URI gets an error page, never a
/// redirect (redirecting there would hand codes to a stranger).
struct AuthorizeRequest {
    user_intent_id: Option<String>,
    state: Option<String>,
    /// A PKCE S256 challenge; only S256 is accepted, as RFC 9700 asks.
    code_challenge: Option<String>,
}

fn authorize_request(raw: &[u8], config: &FakeAstraConfig) -> Option<AuthorizeRequest> {
    let mut p = params(raw)?;
    let code_challenge = p.remove("code_challenge");
    let valid = p.get("client_id") == Some(&config.client_id)
        && p.get("redirect_uri").map(String::as_str) == Some(config.redirect_uri.as_str())
        && p.get("response_type").map(String::as_str) == Some("code")
        && (code_challenge.is_none()
            || p.get("code_challenge_method").map(String::as_str) == Some("S256"));
    valid.then(|| AuthorizeRequest {
        user_intent_id: p.remove("user_intent_id").filter(|s| !s.is_empty()),
        state: p.remove("state"),
        code_challenge,
    })
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn bad_authorize_request() -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>Astra (fake)</title><p>Invalid authorization request.</p>")
}

async fn authorize_page(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let config = &state.config;
    let Some(request) = authorize_request(req.query_string().as_bytes(), config) else {
        return bad_authorize_request();
    };
    let hidden = |name: &str, value: &str| {
        format!(
            r#"<input type="hidden" name="{name}" value="{}">"#,
            html_escape(value)
        )
    };
    let mut fields = vec![
        hidden("client_id", &config.client_id),
        hidden("redirect_uri", config.redirect_uri.as_str()),
        hidden("response_type", "code"),
    ];
    fields.extend(
        request
            .user_intent_id
            .as_deref()
            .map(|v| hidden("user_intent_id", v)),
    );
    fields.extend(request.state.as_deref().map(|v| hidden("state", v)));
    if let Some(challenge) = request.code_challenge.as_deref() {
        fields.push(hidden("code_challenge", challenge));
        fields.push(hidden("code_challenge_method", "S256"));
    }
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Astra (fake)</title></head>\
         <body><h1>Authorize access</h1>\
         <form method=\"post\" action=\"/login/oauth/authorize\">{}\
         <button type=\"submit\">Authorize</button></form></body></html>",
        fields.concat()
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(page)
}

async fn authorize_submit(body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let config = &state.config;
    let Some(request) = authorize_request(&body, config) else {
        return bad_authorize_request();
    };
    let code = {
        let mut store = state.store.lock();
        let user = match request.user_intent_id.as_deref() {
            Some(intent) => store.user_for_intent(intent),
            None => store.new_user(),
        };
        store.mint_code_for(&user, request.code_challenge.as_deref())
    };
    let mut location = config.redirect_uri.clone();
    {
        let mut query = location.query_pairs_mut();
        query.append_pair("code", &code);
        if let (true, Some(value)) = (config.echo_state, request.state.as_deref()) {
            query.append_pair("state", value);
        }
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, location.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[derive(Deserialize)]
struct ControlQuery {
    by_user: Option<bool>,
}

async fn get_control(query: web::Query<ControlQuery>, state: web::Data<State>) -> HttpResponse {
    let by_user = query.by_user.unwrap_or(true);
    HttpResponse::Ok().json(stats(&state.store.lock(), by_user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlUpdate {
    fault: Option<FakeAstraFault>,
    latency_ms: Option<u64>,
    #[serde(default)]
    reset_peak: bool,
    seed: Option<SeedRequest>,
    /// Replace every user's access token, as another client of the same
    /// Astra app refreshing behind the service's back would.
    #[serde(default)]
    replace_access_tokens: bool,
}

async fn set_control(body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let Ok(update) = serde_json::from_slice::<ControlUpdate>(&body) else {
        return status(
            400,
            "expected {\"fault\": …, \"latency_ms\": …, \"reset_peak\": true, \"seed\": {…}}",
        );
    };
    let mut store = state.store.lock();
    if let Some(fault) = update.fault {
        store.fault = fault;
    }
    if let Some(ms) = update.latency_ms {
        store.latency = Duration::from_millis(ms);
    }
    if update.reset_peak {
        store.reset_peak();
    }
    if update.replace_access_tokens {
        store.replace_access_tokens();
    }
    if let Some(request) = &update.seed {
        let ago = Duration::from_secs(request.refresh_issued_ago_secs);
        seed(&mut store, request, ago);
    }
    // The per-user map can be large after seeding; the counters say enough.
    HttpResponse::Ok().json(stats(&store, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(params(b"a=1&b=2").is_some());
        assert!(params(b"a=1&a=2").is_none());
    }

    #[test]
    fn page_values_are_escaped() {
        assert_eq!(
            html_escape(r#""><script>&'"#),
            "&quot;&gt;&lt;script&gt;&amp;&#39;"
        );
    }
}
