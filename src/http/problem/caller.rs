//! Problems with the caller's own request: the HTTP layer's checks, caller
//! authentication and grants.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};

use super::{Problem, retry_after_secs, sentence};
use crate::caller_auth::AuthError;
use crate::caller_auth::grants::Denied;

/// The realm of every `WWW-Authenticate` challenge.
const REALM: &str = "astrada-token-vendor";

/// How long to wait before retrying when verification keys could not be fetched.
const KEYS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Errors the HTTP layer raises itself, before or around any feature.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No route at this path.
    #[error("no such route")]
    NotFound,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// The service is starting up or shutting down.
    #[error("not ready")]
    NotReady { reason: &'static str },
    /// The request's `Origin` is not in `cors.allowed_origins`.
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The caller used up its share of `rate_limit`.
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// The declared body is larger than `server.max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge { limit: u64 },
    /// The body could not be read to its end (the client broke off).
    #[error("request body unreadable")]
    BodyUnreadable,
    /// A body on the internal listener that is not `application/json`.
    #[error("request body is not JSON")]
    NotJson,
    /// While internal authentication is off, a request that may come from a
    /// browser page rather than a local program.
    #[error("not a local request")]
    NotLocal { reason: &'static str },
    /// Request line and headers are larger than `server.max_header_bytes`.
    #[error("request headers too large")]
    HeadersTooLarge { limit: usize },
    /// A handler that needs the internal gate's verdict ran without the gate:
    /// a wiring mistake, answered closed.
    #[error("route served without its access check")]
    Unguarded,
}

impl From<HttpError> for Problem {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::NotFound => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "There is no resource at this path on this listener.".into(),
            ),
            HttpError::MethodNotAllowed { allow } => Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                format!("Use one of: {allow}."),
            )
            .header(header::ALLOW, HeaderValue::from_static(allow)),
            HttpError::NotReady { reason } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready",
                reason.into(),
            )
            .retry_after(Duration::from_secs(1)),
            HttpError::OriginNotAllowed => Problem::new(
                StatusCode::FORBIDDEN,
                "origin-not-allowed",
                "Origin is not allowed",
                "Pages from this origin may not fetch tokens (cors.allowed_origins).".into(),
            ),
            HttpError::RateLimited { retry_after } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!(
                    "This caller asked for tokens too often. Retry after {} s.",
                    retry_after_secs(retry_after)
                ),
            )
            .retry_after(retry_after),
            HttpError::PayloadTooLarge { limit } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
                format!("Request bodies may be at most {limit} bytes."),
            ),
            HttpError::BodyUnreadable => Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Bad request",
                "The request body could not be read to its end.".into(),
            ),
            HttpError::NotJson => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Request body is not JSON",
                "Send the body as Content-Type: application/json.".into(),
            ),
            HttpError::NotLocal { reason } => Problem::new(
                StatusCode::FORBIDDEN,
                "local-only",
                "Only local programs may call while internal authentication is off",
                format!(
                    "{reason}. With internal_auth.mode = \"none\" the internal listener answers \
                     only programs on this machine, never web pages."
                ),
            ),
            HttpError::Unguarded => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal error",
                "This route is not wired to its access check; nothing was done.".into(),
            ),
            HttpError::HeadersTooLarge { limit } => Problem::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request headers too large",
                format!("Request line and headers may be at most {limit} bytes."),
            ),
        }
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        match e {
            // RFC 6750 §3: a bare challenge when nothing was presented, the
            // error code (and a reason from a closed set) when it was refused.
            AuthError::Missing => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
                "No credentials were presented; sign in to the app first.".into(),
            )
            .challenge(format!("Bearer realm=\"{REALM}\"")),
            AuthError::Invalid(reason) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid-credentials",
                "Credentials were refused",
                sentence(&e),
            )
            .challenge(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{reason}\""
            )),
            AuthError::KeysUnavailable => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "auth-keys-unavailable",
                "Keys to verify credentials are unavailable",
                format!(
                    "The keys to verify credentials could not be fetched. Retry after {} s.",
                    KEYS_RETRY_AFTER.as_secs()
                ),
            )
            .retry_after(KEYS_RETRY_AFTER),
        }
    }
}

impl From<Denied> for Problem {
    fn from(e: Denied) -> Self {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Caller is not allowed",
            sentence(&e),
        )
    }
}
