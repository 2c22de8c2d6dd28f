//! Limits and headers that apply to every request on both listeners.

use actix_web::ResponseError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, Next};

use super::problem::{HttpError, Problem};
use crate::config::{ConfigError, ProxySettings, ServerSettings, invalid};

/// Size limits applied to every request on both listeners.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_body_bytes: u64,
    pub max_header_bytes: usize,
    /// The proxy routes' bound (`proxy.max_body_bytes`): they carry API
    /// bodies, not the small JSON objects of the service's own routes.
    pub proxy_body_bytes: u64,
}

impl RequestLimits {
    /// Checks the size keys of `[server]`.
    pub fn from_settings(
        server: &ServerSettings,
        proxy: &ProxySettings,
    ) -> Result<Self, ConfigError> {
        if server.max_header_bytes < 1024 {
            return invalid(
                "server.max_header_bytes",
                format!(
                    "{} bytes cannot hold a session token",
                    server.max_header_bytes
                ),
                "use at least 1024 (default 16384)",
            );
        }
        Ok(Self {
            max_body_bytes: server.max_body_bytes,
            max_header_bytes: server.max_header_bytes,
            proxy_body_bytes: proxy.max_body_bytes,
        })
    }
}

/// Headers on every response: tokens must never be stored by a browser or
/// proxy, and nothing here is meant to be sniffed, framed or referred.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::PRAGMA, "no-cache"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
}

/// Refuses oversized requests before any handler runs: every route is a GET,
/// so a body is never needed, and headers only need to carry one session token.
pub async fn check(
    limits: RequestLimits,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let declared_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body_limit = if super::proxy::path::is_proxy_path(req.path()) {
        limits.proxy_body_bytes
    } else {
        limits.max_body_bytes
    };
    let error = if declared_body.is_some_and(|len| len > body_limit) {
        Some(HttpError::PayloadTooLarge { limit: body_limit })
    } else if head_size(&req) > limits.max_header_bytes {
        Some(HttpError::HeadersTooLarge {
            limit: limits.max_header_bytes,
        })
    } else {
        None
    };
    if let Some(error) = error {
        let response = Problem::from(error).error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Bytes of the request line and headers as they arrived (near enough).
fn head_size(req: &ServiceRequest) -> usize {
    let line = req.method().as_str().len() + uri_len(req.uri()) + 12;
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

/// The length of `uri` as displayed (`scheme://authority/path?query`),
/// without formatting it.
fn uri_len(uri: &actix_web::http::Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_len_is_the_displayed_length() {
        for uri in [
            "/",
            "/astrada-sdk-token",
            "/astrada-sdk-token?x=1&y=%20",
            "http://example.com:8080/a?b",
            "https://example.com",
            "*",
        ] {
            let parsed: actix_web::http::Uri = uri.parse().expect("uri");
            assert_eq!(uri_len(&parsed), parsed.to_string().len(), "{uri}");
        }
    }
}
