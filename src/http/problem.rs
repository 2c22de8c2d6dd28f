//! The one place where errors become HTTP answers: RFC 9457
//! `application/problem+json` bodies with a stable `type` per cause.
//!
//! Each feature keeps its own error type; one `From` per type turns it into a
//! [`Problem`], and each cause's status, `type` slug, title and headers are
//! written down once, in that conversion.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::proxy::error::ProxyError;
use crate::caller_auth::AuthError;
use crate::caller_auth::grants::Denied;
use crate::client_tokens::oauth_client::ExchangeError;
use crate::client_tokens::token_cache::TokenUnavailable;
use crate::user_tokens::{StoreError, UserTokenError};

/// Prefix of every problem `type`; each one is listed in docs/api.md.
pub const PROBLEM_BASE: &str = "urn:astrada-token-vendor:problem:";

/// The realm of every `WWW-Authenticate` challenge.
const REALM: &str = "astrada-token-vendor";

/// How long to wait before retrying when verification keys could not be fetched.
const KEYS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// An error as the answer it becomes. Boxed: it travels in every route's
/// `Result`, and the success path should not pay for its size.
#[derive(Debug)]
pub struct Problem(Box<Parts>);

/// The `type` slug of a problem answer, for the request's log line: an
/// operator reading "request failed" should see which problem without the body.
#[derive(Clone, Copy)]
pub struct ProblemSlug(pub &'static str);

#[derive(Debug)]
struct Parts {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<Duration>,
    header: Option<(HeaderName, HeaderValue)>,
}

impl Problem {
    fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: String) -> Self {
        Self(Box::new(Parts {
            status,
            slug,
            title,
            detail,
            retry_after: None,
            header: None,
        }))
    }

    fn retry_after(mut self, after: Duration) -> Self {
        self.0.retry_after = Some(after);
        self
    }

    fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.header = Some((name, value));
        self
    }

    /// A `WWW-Authenticate` challenge; reasons come from a closed set of
    /// ASCII strings, so the value is always a valid header.
    fn challenge(self, value: String) -> Self {
        match HeaderValue::try_from(value) {
            Ok(value) => self.header(header::WWW_AUTHENTICATE, value),
            Err(_) => self,
        }
    }

    /// The `type` without its prefix, e.g. `not-found` (audit outcomes).
    pub fn slug(&self) -> &'static str {
        self.0.slug
    }

    /// The full `type` URI, e.g. `urn:astrada-token-vendor:problem:not-found`.
    pub fn type_uri(&self) -> String {
        format!("{PROBLEM_BASE}{}", self.0.slug)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.title, self.0.detail)
    }
}

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

/// An error's text as a sentence for `detail`.
fn sentence(e: &impl fmt::Display) -> String {
    let mut detail = e.to_string();
    if let Some(first) = detail.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    detail + "."
}

/// `Retry-After` is whole seconds; round up and never say 0.
fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.is_zero()))
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let p = &self.0;
        let body = Body {
            kind: self.type_uri(),
            title: p.title,
            status: p.status.as_u16(),
            detail: &p.detail,
        };
        let mut response = HttpResponse::build(p.status);
        response.content_type("application/problem+json");
        if let Some(after) = p.retry_after {
            response.insert_header((header::RETRY_AFTER, retry_after_secs(after)));
        }
        if let Some(header) = &p.header {
            response.insert_header(header.clone());
        }
        // Serializing a struct of strings and integers cannot fail.
        let mut response = response.body(serde_json::to_string(&body).unwrap_or_default());
        response.extensions_mut().insert(ProblemSlug(p.slug));
        response
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
