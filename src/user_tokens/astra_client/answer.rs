//! What an Astra token answer means: tokens, or an [`AstraError`] decided by
//! the status alone. Nothing that came in a response body, and no token, code
//! or secret, ever reaches an error message or a `Debug` output.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::SecretString;
use serde::Deserialize;

/// The longest `request-id` we keep; real ones are UUID-sized, and anything
/// much longer is more likely to be junk than an identifier.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A lifetime longer than this is clamped: it cannot be meaningful for a
/// token, and it keeps `Duration` arithmetic downstream far from overflow.
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A successful token answer.
pub struct AstraTokens {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// The access token's lifetime as granted (clamped to a year).
    pub expires_in: Duration,
    pub token_type: String,
    /// The sanitized `request-id` of the answer.
    pub request_id: Option<String>,
}

impl std::fmt::Debug for AstraTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AstraTokens")
            .field("access_token", &"[REDACTED]")
            .field("refresh_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .field("request_id", &self.request_id)
            .finish()
    }
}

/// Why a token request produced no tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AstraError {
    /// HTTP 400: the code or refresh token was refused; the user's grant is
    /// unusable (expired, used, revoked or not issued for this redirect URI).
    #[error(
        "Astra refused the authorization grant (HTTP 400{})",
        RequestIdSuffix(request_id)
    )]
    GrantRefused { request_id: Option<String> },
    /// HTTP 401: Astra rejected our client credentials; no user is at fault.
    #[error(
        "Astra rejected the client credentials (HTTP 401{})",
        RequestIdSuffix(request_id)
    )]
    ClientRejected { request_id: Option<String> },
    /// HTTP 429.
    #[error("Astra is rate limiting us (HTTP 429{})", RequestIdSuffix(request_id))]
    RateLimited {
        retry_after: Option<Duration>,
        request_id: Option<String>,
    },
    /// HTTP 5xx.
    #[error("Astra failed with HTTP {status}{}", RequestIdSuffix(request_id))]
    ServerError {
        status: u16,
        request_id: Option<String>,
    },
    /// Any other non-success status (other 4xx; 3xx, as redirects are not followed).
    #[error(
        "Astra refused the request with HTTP {status}{}",
        RequestIdSuffix(request_id)
    )]
    Rejected {
        status: u16,
        request_id: Option<String>,
    },
    /// No complete answer within the configured time.
    #[error("Astra did not answer in time{}", RequestIdSuffix(request_id))]
    Timeout { request_id: Option<String> },
    /// Astra could not be reached, or the connection broke mid-answer.
    #[error("Astra is unreachable{}", RequestIdSuffix(request_id))]
    Unreachable { request_id: Option<String> },
    /// A success status whose body is not a usable token answer.
    #[error(
        "Astra sent a malformed token response: {reason}{}",
        RequestIdSuffix(request_id)
    )]
    Malformed {
        reason: &'static str,
        request_id: Option<String>,
    },
}

/// Formats `, request-id …` only when there is one, so messages stay tidy.
struct RequestIdSuffix<'a>(&'a Option<String>);

impl std::fmt::Display for RequestIdSuffix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, ", request-id {id}"),
            None => Ok(()),
        }
    }
}

impl AstraError {
    /// The sanitized `request-id` of the answer, when there was one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            AstraError::GrantRefused { request_id }
            | AstraError::ClientRejected { request_id }
            | AstraError::RateLimited { request_id, .. }
            | AstraError::ServerError { request_id, .. }
            | AstraError::Rejected { request_id, .. }
            | AstraError::Timeout { request_id }
            | AstraError::Unreachable { request_id }
            | AstraError::Malformed { request_id, .. } => request_id.as_deref(),
        }
    }

    /// Whether trying again later, unchanged, may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AstraError::ServerError { .. }
                | AstraError::RateLimited { .. }
                | AstraError::Timeout { .. }
                | AstraError::Unreachable { .. }
        )
    }

    /// A short stable machine code, fit to store as a user's `last_error`.
    pub fn code(&self) -> &'static str {
        match self {
            AstraError::GrantRefused { .. } => "astra_grant_refused",
            AstraError::ClientRejected { .. } => "astra_client_rejected",
            AstraError::RateLimited { .. } => "astra_rate_limited",
            AstraError::ServerError { .. } => "astra_5xx",
            AstraError::Rejected { .. } => "astra_rejected",
            AstraError::Timeout { .. } => "astra_timeout",
            AstraError::Unreachable { .. } => "astra_unreachable",
            AstraError::Malformed { .. } => "astra_malformed",
        }
    }
}

pub(super) fn transport_error(e: &reqwest::Error, request_id: Option<String>) -> AstraError {
    if e.is_timeout() {
        AstraError::Timeout { request_id }
    } else {
        // Connect failures, resets and broken bodies: the peer is not
        // usefully there. Error text (which names the URL) is deliberately dropped.
        AstraError::Unreachable { request_id }
    }
}

pub(super) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    request_id: Option<String>,
) -> AstraError {
    match status.as_u16() {
        400 => AstraError::GrantRefused { request_id },
        401 => AstraError::ClientRejected { request_id },
        429 => AstraError::RateLimited {
            retry_after: retry_after(headers),
            request_id,
        },
        s @ 500..=599 => AstraError::ServerError {
            status: s,
            request_id,
        },
        s => AstraError::Rejected {
            status: s,
            request_id,
        },
    }
}

/// Only the delta-seconds form: an HTTP-date would need a trusted clock
/// comparison for little gain, so it is treated as absent.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_LIFETIME))
}

/// The `request-id` header in the store's label alphabet and bounded: it
/// ends up in logs and stored rows, so an upstream must not be able to
/// inject control characters or megabytes there, and a request id is
/// metadata that must never stop the tokens it came with from being stored.
/// Blanks are dropped; any other character outside `A-Z a-z 0-9 . _ : -`
/// becomes `_` (`a/b+c` is stored as `a_b_c`).
pub(super) fn request_id(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get("request-id")?.as_bytes();
    let clean: String = raw
        .iter()
        .filter(|b| b.is_ascii_graphic())
        .take(MAX_REQUEST_ID_LEN)
        .map(|&b| match char::from(b) {
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') => c,
            _ => '_',
        })
        .collect();
    (!clean.is_empty()).then_some(clean)
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    token_type: Option<String>,
}

/// Parses a success body; the error is a fixed reason, never body content.
pub(super) fn parse_tokens(body: &[u8]) -> Result<AstraTokens, &'static str> {
    let parsed: TokenBody =
        serde_json::from_slice(body).map_err(|_| "the body is not a JSON object")?;
    let access_token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or("access_token is missing")?;
    let refresh_token = parsed
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or("refresh_token is missing")?;
    let secs = parsed
        .expires_in
        .as_ref()
        .and_then(serde_json::Value::as_f64)
        .ok_or("expires_in is missing or not a number")?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err("expires_in is not positive");
    }
    let expires_in = Duration::from_secs_f64(secs.min(MAX_LIFETIME.as_secs_f64()));
    Ok(AstraTokens {
        access_token: SecretString::from(access_token),
        refresh_token: SecretString::from(refresh_token),
        expires_in,
        // Astra documents `token_type`, but nothing here depends on it, so its
        // absence is not worth failing a user's grant over.
        token_type: parsed.token_type.unwrap_or_else(|| "Bearer".to_owned()),
        request_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn request_ids_are_reduced_to_bounded_label_characters() {
        let mut headers = HeaderMap::new();
        headers.insert("request-id", HeaderValue::from_static("abc 123\tdef"));
        assert_eq!(request_id(&headers).as_deref(), Some("abc123def"));

        let long = "x".repeat(1000);
        headers.insert("request-id", HeaderValue::from_str(&long).expect("valid"));
        assert_eq!(
            request_id(&headers).map(|s| s.len()),
            Some(MAX_REQUEST_ID_LEN)
        );

        headers.insert("request-id", HeaderValue::from_static("   "));
        assert_eq!(request_id(&headers), None);

        headers.insert("request-id", HeaderValue::from_static("a/b+c=\"d\""));
        let id = request_id(&headers).expect("kept");
        assert_eq!(id, "a_b_c__d_");
        assert!(crate::user_tokens::store::is_label(&id));
    }

    #[test]
    fn token_bodies_need_both_tokens_and_a_positive_lifetime() {
        let ok =
            br#"{"access_token":"a","refresh_token":"r","expires_in":7200,"token_type":"Bearer"}"#;
        let tokens = parse_tokens(ok).expect("parses");
        assert_eq!(tokens.expires_in, Duration::from_secs(7200));

        for bad in [
            &br#"{"refresh_token":"r","expires_in":7200}"#[..],
            br#"{"access_token":"a","expires_in":7200}"#,
            br#"{"access_token":"a","refresh_token":"r"}"#,
            br#"{"access_token":"a","refresh_token":"r","expires_in":0}"#,
            br#"{"access_token":"a","refresh_token":"r","expires_in":-5}"#,
            br#"{"access_token":"a","refresh_token":"r","expires_in":"7200"}"#,
            b"<html></html>",
        ] {
            assert!(parse_tokens(bad).is_err());
        }
    }

    #[test]
    fn huge_lifetimes_are_clamped_not_overflowed() {
        let body = br#"{"access_token":"a","refresh_token":"r","expires_in":1e300}"#;
        assert_eq!(parse_tokens(body).expect("parses").expires_in, MAX_LIFETIME);
    }
}
