//! The two token routes: same shape, different credential sets and listeners.

use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::time::Instant;

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

/// `GET /astrada-sdk-token` (public listener): the card-enrollment token.
pub async fn sdk_token(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let token = state.sdk.get().await?;
    Ok(token_response(&token))
}

/// `GET /astrada-api-token` (internal listener): the full-access API token.
pub async fn api_token(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let token = state.api.get().await?;
    Ok(token_response(&token))
}
