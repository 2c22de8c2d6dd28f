//! The one place where errors become HTTP answers: RFC 9457
//! `application/problem+json` bodies with a stable `type` per cause.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::caller_auth::AuthError;
use crate::token_cache::TokenUnavailable;

/// Prefix of every problem `type`; each one is listed in the README.
pub const PROBLEM_BASE: &str = "urn:astrada-token-vendor:problem:";

/// The realm of every `WWW-Authenticate` challenge.
const REALM: &str = "astrada-token-vendor";

/// How long to wait before retrying when verification keys could not be fetched.
const KEYS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Every error a route can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No usable token and none could be fetched in time.
    #[error(transparent)]
    TokenUnavailable(#[from] TokenUnavailable),
    /// No route at this path.
    #[error("no such route")]
    NotFound,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// The service is starting up or shutting down.
    #[error("not ready")]
    NotReady { reason: &'static str },
    /// The caller could not be authenticated, or is not allowed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The request's `Origin` is not in `cors.allowed_origins`.
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The caller used up its share of `rate_limit`.
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// The declared body is larger than `server.max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge { limit: u64 },
    /// Request line and headers are larger than `server.max_header_bytes`.
    #[error("request headers too large")]
    HeadersTooLarge { limit: usize },
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
}

impl ApiError {
    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::TokenUnavailable(e) => match e.cause.kind() {
                "invalid_client" => (
                    "upstream-invalid-client",
                    "Token endpoint rejected the client credentials",
                ),
                "timeout" => ("upstream-timeout", "Token endpoint did not answer in time"),
                "unreachable" => ("upstream-unreachable", "Token endpoint is unreachable"),
                "malformed" | "too_large" => (
                    "upstream-malformed-response",
                    "Token endpoint sent an unusable response",
                ),
                "rejected" => ("upstream-rejected", "Token endpoint refused the request"),
                "credentials_unavailable" => (
                    "credentials-unavailable",
                    "Client credentials are not loaded",
                ),
                _ => ("upstream-error", "Token endpoint failed"),
            },
            ApiError::NotFound => ("not-found", "Not found"),
            ApiError::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            ApiError::NotReady { .. } => ("not-ready", "Not ready"),
            ApiError::Auth(AuthError::Missing) => ("unauthenticated", "Authentication required"),
            ApiError::Auth(AuthError::Invalid(_)) => {
                ("invalid-credentials", "Credentials were refused")
            }
            ApiError::Auth(AuthError::Forbidden(_)) => ("forbidden", "Caller is not allowed"),
            ApiError::Auth(AuthError::KeysUnavailable) => (
                "auth-keys-unavailable",
                "Keys to verify credentials are unavailable",
            ),
            ApiError::OriginNotAllowed => ("origin-not-allowed", "Origin is not allowed"),
            ApiError::RateLimited { .. } => ("rate-limited", "Too many requests"),
            ApiError::PayloadTooLarge { .. } => ("payload-too-large", "Request body too large"),
            ApiError::HeadersTooLarge { .. } => ("headers-too-large", "Request headers too large"),
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::TokenUnavailable(e) => format!(
                "No valid {} token is cached and none could be obtained: {}. Retry after {} s.",
                e.set,
                e.cause,
                retry_after_secs(e.retry_after)
            ),
            ApiError::NotFound => "There is no resource at this path on this listener.".into(),
            ApiError::MethodNotAllowed { allow } => format!("Use one of: {allow}."),
            ApiError::NotReady { reason } => (*reason).into(),
            ApiError::Auth(AuthError::Missing) => {
                "No credentials were presented; sign in to the app first.".into()
            }
            ApiError::Auth(AuthError::KeysUnavailable) => format!(
                "The keys to verify credentials could not be fetched. Retry after {} s.",
                KEYS_RETRY_AFTER.as_secs()
            ),
            ApiError::Auth(e) => {
                let mut detail = e.to_string();
                detail[..1].make_ascii_uppercase();
                detail + "."
            }
            ApiError::OriginNotAllowed => {
                "Pages from this origin may not fetch tokens (cors.allowed_origins).".into()
            }
            ApiError::RateLimited { retry_after } => format!(
                "This caller asked for tokens too often. Retry after {} s.",
                retry_after_secs(*retry_after)
            ),
            ApiError::PayloadTooLarge { limit } => {
                format!("Requests here carry no body; at most {limit} bytes are accepted.")
            }
            ApiError::HeadersTooLarge { limit } => {
                format!("Request line and headers may be at most {limit} bytes.")
            }
        }
    }
}

/// `Retry-After` is whole seconds; round up and never say 0.
fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.is_zero()))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::TokenUnavailable(_) | ApiError::NotReady { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Auth(AuthError::Missing | AuthError::Invalid(_)) => StatusCode::UNAUTHORIZED,
            ApiError::Auth(AuthError::Forbidden(_)) | ApiError::OriginNotAllowed => {
                StatusCode::FORBIDDEN
            }
            ApiError::Auth(AuthError::KeysUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = self.slug_and_title();
        let body = Problem {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail: self.detail(),
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        match self {
            ApiError::TokenUnavailable(e) => {
                response.insert_header((
                    header::RETRY_AFTER,
                    retry_after_secs(e.retry_after).to_string(),
                ));
            }
            ApiError::NotReady { .. } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            ApiError::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            ApiError::RateLimited { retry_after } => {
                response.insert_header((
                    header::RETRY_AFTER,
                    retry_after_secs(*retry_after).to_string(),
                ));
            }
            ApiError::Auth(AuthError::KeysUnavailable) => {
                response
                    .insert_header((header::RETRY_AFTER, KEYS_RETRY_AFTER.as_secs().to_string()));
            }
            // RFC 6750 §3: a bare challenge when nothing was presented, the
            // error code (and a reason from a closed set) when it was refused.
            ApiError::Auth(AuthError::Missing) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!("Bearer realm=\"{REALM}\""),
                ));
            }
            ApiError::Auth(AuthError::Invalid(reason)) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!(
                        "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{reason}\""
                    ),
                ));
            }
            ApiError::NotFound
            | ApiError::Auth(AuthError::Forbidden(_))
            | ApiError::OriginNotAllowed
            | ApiError::PayloadTooLarge { .. }
            | ApiError::HeadersTooLarge { .. } => {}
        }
        // Serializing a struct of strings and integers cannot fail.
        response.body(serde_json::to_string(&body).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }
}
