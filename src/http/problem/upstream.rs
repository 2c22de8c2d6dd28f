//! Problems on the far side of the request: the Astrada token endpoint,
//! Astra and the token store, and the API proxy's upstreams.

use std::time::Duration;

use actix_web::http::StatusCode;

use super::{Problem, retry_after_secs, sentence};
use crate::client_tokens::oauth_client::ExchangeError;
use crate::client_tokens::token_cache::TokenUnavailable;
use crate::http::proxy::error::ProxyError;
use crate::user_tokens::{StoreError, UserTokenError};

impl From<TokenUnavailable> for Problem {
    fn from(e: TokenUnavailable) -> Self {
        let (slug, title) = match e.cause {
            ExchangeError::InvalidClient => (
                "upstream-invalid-client",
                "Token endpoint rejected the client credentials",
            ),
            ExchangeError::Timeout => ("upstream-timeout", "Token endpoint did not answer in time"),
            ExchangeError::Unreachable => ("upstream-unreachable", "Token endpoint is unreachable"),
            ExchangeError::Malformed(_) | ExchangeError::TooLarge { .. } => (
                "upstream-malformed-response",
                "Token endpoint sent an unusable response",
            ),
            ExchangeError::Rejected { .. } => {
                ("upstream-rejected", "Token endpoint refused the request")
            }
            ExchangeError::CredentialsUnavailable => (
                "credentials-unavailable",
                "Client credentials are not loaded",
            ),
            ExchangeError::ServerError { .. } => ("upstream-error", "Token endpoint failed"),
        };
        let detail = format!(
            "No valid {} token is cached and none could be obtained: {}. Retry after {} s.",
            e.set,
            e.cause,
            retry_after_secs(e.retry_after)
        );
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, slug, title, detail)
            .retry_after(e.retry_after)
    }
}

impl From<UserTokenError> for Problem {
    fn from(e: UserTokenError) -> Self {
        use UserTokenError as E;
        let detail = sentence(&e);
        match e {
            E::InvalidUserRef => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-user-ref",
                "Invalid user reference",
                detail,
            ),
            E::BadRequest(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Bad request",
                detail,
            ),
            E::UnknownUser => Problem::new(
                StatusCode::NOT_FOUND,
                "astra-user-not-found",
                "No such Astra user",
                detail,
            ),
            E::ReauthorizationRequired => Problem::new(
                StatusCode::CONFLICT,
                "astra-reauthorization-required",
                "The user must authorize again",
                "Astra refused the stored refresh tokens; send the user through \
                 POST /astra/users/{user_ref}/authorization again."
                    .into(),
            ),
            E::StateInvalid => Problem::new(
                StatusCode::BAD_REQUEST,
                "astra-state-invalid",
                "Unknown, used or expired authorization state",
                detail,
            ),
            E::AuthorizationDenied(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                "astra-authorization-denied",
                "Astra did not authorize",
                detail,
            ),
            E::ConfirmationInvalid => Problem::new(
                StatusCode::BAD_REQUEST,
                "astra-confirmation-invalid",
                "Unknown, used or expired confirmation handle",
                detail,
            ),
            E::AuthorizationMismatch => Problem::new(
                StatusCode::FORBIDDEN,
                "astra-authorization-mismatch",
                "The authorization belongs to another user",
                detail,
            ),
            E::GrantRefused => Problem::new(
                StatusCode::BAD_REQUEST,
                "astra-grant-refused",
                "Astra refused the grant",
                detail,
            ),
            E::AstraClientRejected => Problem::new(
                StatusCode::BAD_GATEWAY,
                "astra-client-rejected",
                "Astra rejected the client credentials",
                detail,
            ),
            E::AstraUnavailable { retry_after, .. } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "astra-unavailable",
                "Astra is unavailable",
                detail,
            )
            .retry_after(retry_after),
            E::RefreshBusy { retry_after } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "astra-refresh-busy",
                "A refresh of this user is still running",
                detail,
            )
            .retry_after(retry_after),
            E::Store(StoreError::Unavailable { .. }) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "The token store is unavailable",
                detail,
            )
            .retry_after(Duration::from_secs(1)),
            E::Store(_) => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store-error",
                "The token store failed",
                detail,
            ),
            E::Unreadable(_) => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "stored-token-unreadable",
                "A stored token could not be decrypted",
                detail,
            ),
            E::Crashed => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "astra-refresh-interrupted",
                "The refresh was interrupted",
                detail,
            )
            .retry_after(Duration::from_secs(1)),
        }
    }
}

impl From<ProxyError> for Problem {
    fn from(e: ProxyError) -> Self {
        let detail = sentence(&e);
        let (status, slug, title) = match e {
            ProxyError::UnsafePath(_) => (
                StatusCode::BAD_REQUEST,
                "proxy-path-refused",
                "The path could leave the upstream's API",
            ),
            ProxyError::BodyTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            ProxyError::BodyUnreadable => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ProxyError::Busy { .. } => {
                let busy = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "proxy-busy",
                    "Too many proxied calls in flight",
                    detail,
                );
                return busy.retry_after(Duration::from_secs(1));
            }
            ProxyError::Timeout { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "proxy-upstream-timeout",
                "The upstream did not answer in time",
            ),
            ProxyError::Unreachable { .. } => (
                StatusCode::BAD_GATEWAY,
                "proxy-upstream-unreachable",
                "The upstream could not be reached",
            ),
        };
        Problem::new(status, slug, title, detail)
    }
}
