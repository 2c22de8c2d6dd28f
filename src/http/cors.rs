//! CORS for the SDK token: an exact-origin allowlist. An allowed origin gets
//! its own origin echoed with credentials allowed (never `*`, which browsers
//! refuse with credentials anyway); any other origin gets no CORS header at
//! all and a 403, so the browser blocks the page and no token is minted.

use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use super::problem::{HttpError, Problem};
use crate::config::{ConfigError, CorsSettings, invalid};
use crate::core::escape_controls;

/// The allowlist and preflight cache time.
pub struct Cors {
    /// Ready to be echoed. A list, not a set: allowlists are a few entries,
    /// and comparing bytes costs less than hashing them.
    origins: Vec<HeaderValue>,
    max_age: HeaderValue,
}

impl Cors {
    /// Checks `[cors]` and normalises the allowlist.
    pub fn from_settings(settings: &CorsSettings) -> Result<Self, ConfigError> {
        Ok(Self {
            origins: allowed_origins(settings)?,
            max_age: HeaderValue::from(settings.max_age_secs),
        })
    }

    /// The allowlist's own copy of `origin`, if it is on the list.
    fn allowed(&self, origin: &HeaderValue) -> Option<&HeaderValue> {
        self.origins.iter().find(|allowed| *allowed == origin)
    }
}

/// The configured origins in the form browsers send them
/// (`scheme://host[:port]`, lower case, default port omitted).
fn allowed_origins(settings: &CorsSettings) -> Result<Vec<HeaderValue>, ConfigError> {
    const KEY: &str = "cors.allowed_origins";
    settings
        .allowed_origins
        .iter()
        .map(|configured| {
            let refuse = |problem: String| {
                invalid::<HeaderValue>(
                    KEY,
                    problem,
                    "list exact origins such as \"https://app.example.com\" (scheme, host and \
                     port only; no wildcard)",
                )
            };
            if configured.contains('*') {
                return refuse(format!(
                    "`{configured}` is a wildcard; tokens are only for origins you name"
                ));
            }
            let Ok(url) = url::Url::parse(configured) else {
                return refuse(format!("`{configured}` is not an origin"));
            };
            let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
            let has_user = !url.username().is_empty() || url.password().is_some();
            if !matches!(url.scheme(), "https" | "http") || !bare || has_user {
                return refuse(format!(
                    "`{configured}` is not an http(s) origin without path, query or user"
                ));
            }
            let origin = url.origin().ascii_serialization();
            HeaderValue::try_from(origin)
                .or_else(|_| refuse(format!("`{configured}` is not an origin")))
        })
        .collect()
}

/// How a request to the SDK token stands with CORS.
pub enum CorsCheck {
    /// Answered without handling it: a preflight, or a refused origin.
    Answer(HttpResponse),
    /// Handled, and then [`add_headers`] added to its answer:
    /// the allowed origin's, or only `Vary` when no `Origin` was sent.
    Handle(Option<HeaderValue>),
}

impl Cors {
    /// Answers preflights, lets allowed origins (and requests without one)
    /// through, refuses other origins before any token is fetched.
    pub fn check(&self, req: &ServiceRequest) -> CorsCheck {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            // Same-origin pages and non-browser clients send no Origin.
            return CorsCheck::Handle(None);
        };
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let Some(allowed) = self.allowed(origin) else {
            tracing::info!(
                origin = %escape_controls(&String::from_utf8_lossy(origin.as_bytes())),
                preflight,
                "request from an origin outside cors.allowed_origins: refused"
            );
            let mut response = Problem::from(HttpError::OriginNotAllowed).error_response();
            vary_origin(response.headers_mut());
            return CorsCheck::Answer(response);
        };
        if !preflight {
            return CorsCheck::Handle(Some(allowed.clone()));
        }
        let mut response = HttpResponse::NoContent().finish();
        let h = response.headers_mut();
        allow_origin(h, allowed.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        CorsCheck::Answer(response)
    }
}

/// The CORS headers of a handled request's answer ([`CorsCheck::Handle`]).
pub fn add_headers(allowed: Option<HeaderValue>, h: &mut HeaderMap) {
    match allowed {
        Some(origin) => allow_origin(h, origin),
        None => vary_origin(h),
    }
}

fn allow_origin(h: &mut HeaderMap, origin: HeaderValue) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    vary_origin(h);
}

// Answers differ by Origin, so no shared cache may reuse one for another.
fn vary_origin(h: &mut HeaderMap) {
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
}
