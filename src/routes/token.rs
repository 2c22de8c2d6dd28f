//! The two token routes: same shape, different credential sets and listeners.

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::time::Instant;

use crate::credentials::CredentialSet;
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
            let peer = address_key(&req);
            rate_limit(&state, &peer)?;
            state.audit.refused(&req, "sdk", &peer, &refused);
            return Err(refused.into());
        }
    };
    let holder = if caller.is_anonymous() {
        address_key(&req)
    } else {
        format!("caller:{}", caller.subject)
    };
    rate_limit(&state, &holder)?;
    let token = state.sdk.get().await?;
    state.metrics.token_issued(CredentialSet::Sdk);
    state.audit.issued(&req, "sdk", &caller, &holder, &token);
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
        .inspect_err(|refused| {
            state
                .audit
                .refused(&req, "api", &address_key(&req), refused)
        })?;
    let token = state.api.get().await?;
    state.metrics.token_issued(CredentialSet::Api);
    let holder = format!("caller:{}", caller.subject);
    state.audit.issued(&req, "api", &caller, &holder, &token);
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
