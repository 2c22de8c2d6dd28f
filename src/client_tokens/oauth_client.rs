//! The OAuth 2.0 `client_credentials` exchange, in Astrada's JSON style or the
//! standard RFC 6749 form styles, with hard time and size limits.
//!
//! Every failure is a typed [`ExchangeError`] whose text never contains the
//! client secret, the access token or the upstream's free-form error text.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::credentials::ClientCredentials;
use crate::config::{
    AuthStyle, CALLER_BUDGET, ConfigError, TokenEndpointSettings, https_url, invalid,
};
use crate::core::{AccessToken, USER_AGENT, outbound_client, unix_now};

/// Why an exchange produced no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The token endpoint rejected the client credentials (`invalid_client` or 401).
    #[error("the token endpoint rejected the client credentials (invalid_client)")]
    InvalidClient,
    /// Any other 4xx; `error` is the OAuth error code when it is a plain code.
    #[error("the token endpoint refused the request with HTTP {status} ({})", error.as_deref().unwrap_or("no error code"))]
    Rejected { status: u16, error: Option<String> },
    /// A 5xx from the token endpoint.
    #[error("the token endpoint failed with HTTP {status}")]
    ServerError { status: u16 },
    /// No complete answer within the configured time.
    #[error("the token endpoint did not answer in time")]
    Timeout,
    /// The token endpoint could not be reached at all.
    #[error("the token endpoint is unreachable")]
    Unreachable,
    /// A 2xx whose body is not a usable token response.
    #[error("the token endpoint sent a malformed response: {0}")]
    Malformed(&'static str),
    /// A response larger than `token_endpoint.max_response_bytes`.
    #[error("the token endpoint sent more than {limit} bytes")]
    TooLarge { limit: usize },
    /// No credentials are loaded yet for this set.
    #[error("client credentials are not loaded yet")]
    CredentialsUnavailable,
}

impl ExchangeError {
    /// A stable, low-cardinality name for metrics and problem types.
    pub fn kind(&self) -> &'static str {
        match self {
            ExchangeError::InvalidClient => "invalid_client",
            ExchangeError::Rejected { .. } => "rejected",
            ExchangeError::ServerError { .. } => "server_error",
            ExchangeError::Timeout => "timeout",
            ExchangeError::Unreachable => "unreachable",
            ExchangeError::Malformed(_) => "malformed",
            ExchangeError::TooLarge { .. } => "too_large",
            ExchangeError::CredentialsUnavailable => "credentials_unavailable",
        }
    }
}

/// Client for one token endpoint, shared by both credential sets.
#[derive(Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    url: reqwest::Url,
    max_response_bytes: usize,
}

/// Per-set request shape.
#[derive(Debug, Clone)]
pub struct ExchangeRequest {
    pub auth_style: AuthStyle,
    pub scope: Option<String>,
}

impl OAuthClient {
    /// Checks `[token_endpoint]` and builds the HTTP client with its connect
    /// and total timeouts.
    pub fn from_settings(te: &TokenEndpointSettings) -> Result<Self, ConfigError> {
        let url = https_url(
            "token_endpoint.url",
            &te.url,
            "would send client secrets in clear text",
            "use e.g. https://api.astrada.co/oauth/token",
        )?;
        super::check_ms_within(
            "token_endpoint.connect_timeout_ms",
            te.connect_timeout_ms,
            ("timeout_ms", te.timeout_ms),
            "use a value such as 1000",
        )?;
        let timeout = Duration::from_millis(te.timeout_ms);
        if timeout > CALLER_BUDGET {
            return invalid(
                "token_endpoint.timeout_ms",
                format!(
                    "{} ms leaves the browser SDK no answer inside its 5 s limit",
                    te.timeout_ms
                ),
                &format!("use at most {} (default 2500)", CALLER_BUDGET.as_millis()),
            );
        }
        if te.max_response_bytes < 1024 {
            return invalid(
                "token_endpoint.max_response_bytes",
                format!(
                    "{} bytes is too small for a JWT response",
                    te.max_response_bytes
                ),
                "use at least 1024 (default 65536)",
            );
        }
        let connect_timeout = Duration::from_millis(te.connect_timeout_ms);
        let http = outbound_client(connect_timeout, timeout).user_agent(USER_AGENT);
        let Ok(http) = http.build() else {
            return invalid(
                "token_endpoint.url",
                "no HTTP client can be built for it on this machine (TLS set-up failed)".into(),
                "check the system's TLS configuration",
            );
        };
        Ok(Self {
            http,
            url,
            max_response_bytes: te.max_response_bytes,
        })
    }

    /// Exchanges `credentials` for an access token.
    #[tracing::instrument(name = "oauth.exchange", skip_all, fields(auth_style = ?request.auth_style))]
    pub async fn exchange(
        &self,
        credentials: &ClientCredentials,
        request: &ExchangeRequest,
    ) -> Result<AccessToken, ExchangeError> {
        let builder = self.request(credentials, request);
        let sent_at = Instant::now();
        let response = builder.send().await.map_err(classify)?;
        let status = response.status();
        let body = self.read_body(response).await?;
        if status.is_success() {
            parse_token(&body, sent_at, unix_now().as_secs_f64())
        } else {
            Err(classify_status(status.as_u16(), &body))
        }
    }

    /// The token request in `request`'s style; the secret goes only into
    /// the body or the `Authorization` header, never into the URL.
    fn request(
        &self,
        credentials: &ClientCredentials,
        request: &ExchangeRequest,
    ) -> reqwest::RequestBuilder {
        let secret = credentials.client_secret.expose_secret();
        let scope = request.scope.as_deref().filter(|s| !s.is_empty());
        let builder = self
            .http
            .post(self.url.clone())
            .header("accept", "application/json");
        match request.auth_style {
            AuthStyle::Json => {
                let mut body = serde_json::json!({
                    "client_id": credentials.client_id,
                    "client_secret": secret,
                    "grant_type": "client_credentials",
                });
                if let Some(scope) = scope {
                    body["scope"] = scope.into();
                }
                builder.json(&body)
            }
            AuthStyle::ClientSecretPost => {
                let mut form = vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", credentials.client_id.as_str()),
                    ("client_secret", secret),
                ];
                form.extend(scope.map(|s| ("scope", s)));
                builder.form(&form)
            }
            AuthStyle::ClientSecretBasic => {
                // RFC 6749 §2.3.1: id and secret are form-encoded before Base64.
                let pair = format!(
                    "{}:{}",
                    form_encode(&credentials.client_id),
                    form_encode(secret)
                );
                let mut form = vec![("grant_type", "client_credentials")];
                form.extend(scope.map(|s| ("scope", s)));
                builder
                    .header("authorization", format!("Basic {}", STANDARD.encode(pair)))
                    .form(&form)
            }
        }
    }

    /// The whole body, refused once it passes `max_response_bytes`.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ExchangeError> {
        let too_large = ExchangeError::TooLarge {
            limit: self.max_response_bytes,
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes as u64)
        {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn classify(e: reqwest::Error) -> ExchangeError {
    if e.is_timeout() {
        ExchangeError::Timeout
    } else if e.is_connect() {
        ExchangeError::Unreachable
    } else if e.is_body() || e.is_decode() {
        ExchangeError::Malformed("the body could not be read")
    } else {
        ExchangeError::Unreachable
    }
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: Option<String>,
}

fn classify_status(status: u16, body: &[u8]) -> ExchangeError {
    let code = serde_json::from_slice::<OAuthErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        // Echo only a plain OAuth error code, never free-form upstream text.
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    match (status, code.as_deref()) {
        (_, Some("invalid_client")) | (401, _) => ExchangeError::InvalidClient,
        (400..=499, _) => ExchangeError::Rejected {
            status,
            error: code,
        },
        _ => ExchangeError::ServerError { status },
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    token_type: Option<String>,
}

/// Turns a 2xx body into a token, taking the earlier of `expires_in` and the
/// JWT's `exp` so that a clock or config mismatch upstream never makes us
/// serve a token the resource server already rejects.
pub fn parse_token(
    body: &[u8],
    sent_at: Instant,
    now_unix: f64,
) -> Result<AccessToken, ExchangeError> {
    let parsed: TokenResponse = serde_json::from_slice(body)
        .map_err(|_| ExchangeError::Malformed("the body is not a JSON token response"))?;
    if parsed.access_token.is_empty() {
        return Err(ExchangeError::Malformed("access_token is empty"));
    }
    if let Some(token_type) = &parsed.token_type
        && !token_type.eq_ignore_ascii_case("bearer")
    {
        return Err(ExchangeError::Malformed("token_type is not Bearer"));
    }
    let from_expires_in = match &parsed.expires_in {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(seconds(v).ok_or(ExchangeError::Malformed(
            "expires_in is not a positive number",
        ))?),
    };
    let from_jwt = jwt_exp(&parsed.access_token).map(|exp| exp - now_unix);
    let secs = match (from_expires_in, from_jwt) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => {
            return Err(ExchangeError::Malformed(
                "neither expires_in nor a JWT exp is present",
            ));
        }
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(ExchangeError::Malformed("the token is already expired"));
    }
    let lifetime = Duration::from_secs_f64(secs.min(86_400.0));
    let digest = Sha256::digest(parsed.access_token.as_bytes());
    Ok(AccessToken {
        fingerprint: hex::encode(&digest[..6]),
        value: SecretString::from(parsed.access_token),
        token_type: "Bearer",
        // Count from when we sent the request: the upstream started the clock no later.
        expires_at: sent_at + lifetime,
        lifetime,
    })
}

fn seconds(v: &serde_json::Value) -> Option<f64> {
    let n = match v {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (n > 0.0 && n.is_finite()).then_some(n)
}

/// Reads `exp` from a JWT's payload without verifying it: we only need to know
/// when the resource server will stop accepting it. Opaque tokens give `None`.
fn jwt_exp(token: &str) -> Option<f64> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(exp: f64) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::json!({ "exp": exp }).to_string());
        format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln")
    }

    #[test]
    fn expires_in_alone_sets_the_lifetime() {
        let now = Instant::now();
        let t = parse_token(
            br#"{"access_token":"opaque","expires_in":300,"token_type":"Bearer"}"#,
            now,
            0.0,
        )
        .unwrap();
        assert_eq!(t.lifetime, Duration::from_secs(300));
    }

    #[test]
    fn an_earlier_jwt_exp_wins_over_expires_in() {
        let body =
            serde_json::json!({"access_token": jwt(1_000_100.0), "expires_in": 300}).to_string();
        let t = parse_token(body.as_bytes(), Instant::now(), 1_000_000.0).unwrap();
        assert_eq!(t.lifetime, Duration::from_secs(100));
    }

    #[test]
    fn an_earlier_expires_in_wins_over_jwt_exp() {
        let body =
            serde_json::json!({"access_token": jwt(1_000_900.0), "expires_in": "60"}).to_string();
        let t = parse_token(body.as_bytes(), Instant::now(), 1_000_000.0).unwrap();
        assert_eq!(t.lifetime, Duration::from_secs(60));
    }

    #[test]
    fn a_jwt_without_expires_in_uses_exp() {
        let body = serde_json::json!({"access_token": jwt(1_000_042.0)}).to_string();
        let t = parse_token(body.as_bytes(), Instant::now(), 1_000_000.0).unwrap();
        assert_eq!(t.lifetime, Duration::from_secs(42));
    }

    #[test]
    fn malformed_bodies_are_rejected_with_a_reason() {
        let cases: &[&[u8]] = &[
            b"<html>",
            br#"{"expires_in":300}"#,
            br#"{"access_token":"","expires_in":300}"#,
            br#"{"access_token":"x","expires_in":-5}"#,
            br#"{"access_token":"x","expires_in":300,"token_type":"mac"}"#,
            br#"{"access_token":"opaque"}"#,
        ];
        for body in cases {
            assert!(matches!(
                parse_token(body, Instant::now(), 0.0),
                Err(ExchangeError::Malformed(_))
            ));
        }
        let expired = serde_json::json!({"access_token": jwt(10.0), "expires_in": 300}).to_string();
        assert_eq!(
            parse_token(expired.as_bytes(), Instant::now(), 100.0).unwrap_err(),
            ExchangeError::Malformed("the token is already expired")
        );
    }

    #[test]
    fn error_statuses_are_classified() {
        assert_eq!(
            classify_status(400, br#"{"error":"invalid_client"}"#),
            ExchangeError::InvalidClient
        );
        assert_eq!(classify_status(401, b"nope"), ExchangeError::InvalidClient);
        assert_eq!(
            classify_status(400, br#"{"error":"invalid_scope"}"#),
            ExchangeError::Rejected {
                status: 400,
                error: Some("invalid_scope".into())
            }
        );
        assert_eq!(
            classify_status(403, br#"{"error":"Secret s3cr3t is wrong"}"#),
            ExchangeError::Rejected {
                status: 403,
                error: None
            }
        );
        assert_eq!(
            classify_status(502, b""),
            ExchangeError::ServerError { status: 502 }
        );
    }
}
