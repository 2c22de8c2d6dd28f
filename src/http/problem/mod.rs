//! The one place where errors become HTTP answers: RFC 9457
//! `application/problem+json` bodies with a stable `type` per cause.
//!
//! Each feature keeps its own error type; one `From` per type turns it into a
//! [`Problem`], and each cause's status, `type` slug, title and headers are
//! written down once, in that conversion: the caller's own request's
//! problems in `caller`, the upstreams' and the store's in `upstream`.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub use caller::HttpError;

mod caller;
mod upstream;

/// Prefix of every problem `type`; each one is listed in docs/api.md.
pub const PROBLEM_BASE: &str = "urn:astrada-token-vendor:problem:";

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
