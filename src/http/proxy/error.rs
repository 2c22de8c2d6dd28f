//! Why a proxied call got no upstream answer. Each text names the upstream
//! and the cause, never a URL, header or token (the query string and the
//! injected `Authorization` are the caller's and the service's secrets).

use crate::caller_auth::grants::proxy::Upstream;

/// A proxied call that failed before or instead of an upstream answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `{path}` could leave the upstream's base (see `path`).
    #[error("the proxied path {0}")]
    UnsafePath(&'static str),
    /// The body is larger than `proxy.max_body_bytes`.
    #[error("proxied request bodies may be at most {limit} bytes (proxy.max_body_bytes)")]
    BodyTooLarge { limit: u64 },
    /// The caller's body could not be read to its end.
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// Every slot of `proxy.max_concurrent` stayed taken for `proxy.timeout_ms`.
    #[error("too many calls to {upstream} are in flight (proxy.max_concurrent)")]
    Busy { upstream: Upstream },
    /// No answer within `proxy.timeout_ms`.
    #[error("{upstream} did not answer within proxy.timeout_ms")]
    Timeout { upstream: Upstream },
    /// The connection failed, or the answer broke off.
    #[error("{upstream} could not be reached: {cause}")]
    Unreachable {
        upstream: Upstream,
        cause: &'static str,
    },
}

impl ProxyError {
    /// `e`, from calling `upstream`, described by a closed set of causes.
    pub fn from_reqwest(upstream: Upstream, e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            return ProxyError::Timeout { upstream };
        }
        let cause = if e.is_connect() {
            "the connection was refused or failed"
        } else if e.is_body() || e.is_decode() {
            "its answer broke off"
        } else if e.is_request() {
            "the request could not be sent"
        } else {
            "the exchange failed"
        };
        ProxyError::Unreachable { upstream, cause }
    }
}
