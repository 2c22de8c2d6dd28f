//! The two token routes: same shape, different credential sets and listeners.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::caller_auth::{AuthError, Caller};
use crate::oauth_client::AccessToken;
use crate::problem::ApiError;
use crate::startup::AppState;

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    /// The true remaining life, so the SDK knows when to ask again.
    expires_in: u64,
    token_type: &'a str,
}

fn token_response(token: &AccessToken) -> HttpResponse {
    HttpResponse::Ok().json(TokenBody {
        access_token: token.value.expose_secret(),
        expires_in: token.remaining(Instant::now()).as_secs(),
        token_type: token.token_type,
    })
}

/// `GET /astrada-sdk-token` (public listener): the card-enrollment token,
/// for authenticated callers within their rate limit.
pub async fn sdk_token(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = match state.caller_auth.authenticate(&req).await {
        Ok(caller) => caller,
        Err(refused) => {
            // Failed attempts spend the address's budget, so guessing is throttled too.
            rate_limit(&state, &address_key(&req))?;
            refused_event(&req, "sdk", &refused);
            return Err(refused.into());
        }
    };
    let key = if caller.is_anonymous() {
        address_key(&req)
    } else {
        format!("caller:{}", caller.subject)
    };
    rate_limit(&state, &key)?;
    let token = state.sdk.get().await?;
    issued_event(&req, "sdk", &caller, &token);
    Ok(token_response(&token))
}

/// `GET /astrada-api-token` (internal listener): the full-access API token,
/// for authenticated workloads only.
pub async fn api_token(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = state
        .internal_auth
        .authenticate(&req)
        .await
        .inspect_err(|refused| refused_event(&req, "api", refused))?;
    let token = state.api.get().await?;
    issued_event(&req, "api", &caller, &token);
    Ok(token_response(&token))
}

fn rate_limit(state: &AppState, key: &str) -> Result<(), ApiError> {
    state
        .rate_limit
        .check(key)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })
}

fn address_key(req: &HttpRequest) -> String {
    match req.peer_addr() {
        Some(addr) => format!("ip:{}", addr.ip().to_canonical()),
        None => "ip:unknown".into(),
    }
}

fn origin(req: &HttpRequest) -> &str {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("-")
}

/// The audit trail: who got which token (by hash, never the token), from where.
fn issued_event(req: &HttpRequest, set: &'static str, caller: &Caller, token: &AccessToken) {
    let digest = Sha256::digest(token.value.expose_secret().as_bytes());
    tracing::info!(
        target: "audit",
        event = "token_issued",
        set,
        subject = %caller.subject,
        auth = caller.method,
        origin = origin(req),
        expires_in = token.remaining(Instant::now()).as_secs(),
        token_sha256_prefix = %&hex::encode(digest)[..12],
        "token issued"
    );
}

fn refused_event(req: &HttpRequest, set: &'static str, refused: &AuthError) {
    tracing::info!(
        target: "audit",
        event = "token_refused",
        set,
        reason = %refused,
        origin = origin(req),
        peer = %address_key(req),
        "token refused"
    );
}
