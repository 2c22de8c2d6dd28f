//! Size limits that apply to every request on both listeners.

use actix_web::dev::ServiceRequest;
use actix_web::http::header;

use super::problem::HttpError;
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

impl RequestLimits {
    /// Why `req` is refused before any handler runs, if it is: every route
    /// but the proxy's takes small bodies at most, and headers only need to
    /// carry one session token.
    pub fn refusal(&self, req: &ServiceRequest) -> Option<HttpError> {
        let declared_body = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body_limit = if super::proxy::path::is_proxy_path(req.path()) {
            self.proxy_body_bytes
        } else {
            self.max_body_bytes
        };
        if declared_body.is_some_and(|len| len > body_limit) {
            Some(HttpError::PayloadTooLarge { limit: body_limit })
        } else if head_size(req) > self.max_header_bytes {
            Some(HttpError::HeadersTooLarge {
                limit: self.max_header_bytes,
            })
        } else {
            None
        }
    }
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
