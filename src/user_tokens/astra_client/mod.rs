//! Client for Astra's per-user OAuth: the authorize URL the end user visits,
//! and `POST /v1/oauth/token` for the `authorization_code` and
//! `refresh_token` grants.
//!
//! Astra authenticates the client with HTTP Basic and takes a form body; it
//! answers errors with plain HTTP statuses, so the status alone decides the
//! [`AstraError`] variant. Whose fault a failure is matters to callers: a 400
//! means the user's grant (code or refresh token) was refused and the user may
//! have to authorize again, while a 401 means *our* client credentials are
//! wrong and no user action can fix it.
//!
//! Every response carries a `request-id` header, which Astra support asks for;
//! it is kept (sanitized) on tokens and on errors. Nothing that came in a
//! response body, and no token, code or secret, ever reaches an error message
//! or a `Debug` output.

mod answer;

pub use answer::{AstraError, AstraTokens};

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use self::answer::{parse_tokens, request_id, status_error, transport_error};
use crate::core::{USER_AGENT, outbound_client};

/// Where Astra is and who we are to it.
#[derive(Clone, Debug)]
pub struct AstraClientConfig {
    /// API root, e.g. `https://api.astra.finance` (sandbox:
    /// `https://api-sandbox.astra.finance`). A path prefix is kept.
    pub api_base: Url,
    /// Root of the OAuth module the end user visits, e.g. `https://app.astra.finance`.
    pub authorize_base: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Must equal the URI registered in the Astra dashboard, byte for byte.
    pub redirect_uri: Url,
    pub connect_timeout: Duration,
    /// Whole request, including reading the body.
    pub timeout: Duration,
    /// Larger token responses are refused as [`AstraError::Malformed`].
    pub max_response_bytes: usize,
}

/// Why an [`AstraClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AstraClientBuildError {
    /// `api_base` or `authorize_base` cannot take a path (e.g. `mailto:`).
    #[error("{0} is not a URL that can carry a path")]
    NotABaseUrl(&'static str),
    #[error("the HTTP client could not be built")]
    Http(#[source] reqwest::Error),
}

/// Client for one Astra environment and one client registration.
#[derive(Clone)]
pub struct AstraClient {
    http: reqwest::Client,
    token_url: Url,
    authorize_url: Url,
    client_id: String,
    client_secret: SecretString,
    redirect_uri: Url,
    max_response_bytes: usize,
}

impl std::fmt::Debug for AstraClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AstraClient")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl AstraClient {
    /// Builds the HTTP client; does not contact Astra.
    pub fn new(config: AstraClientConfig) -> Result<Self, AstraClientBuildError> {
        let token_url = with_path(&config.api_base, &["v1", "oauth", "token"])
            .ok_or(AstraClientBuildError::NotABaseUrl("api_base"))?;
        let authorize_url = with_path(&config.authorize_base, &["login", "oauth", "authorize"])
            .ok_or(AstraClientBuildError::NotABaseUrl("authorize_base"))?;
        // A redirect from a token endpoint is never legitimate, and following
        // one would resend our Basic credentials elsewhere.
        let http = outbound_client(config.connect_timeout, config.timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(AstraClientBuildError::Http)?;
        Ok(Self {
            http,
            token_url,
            authorize_url,
            client_id: config.client_id,
            client_secret: config.client_secret,
            redirect_uri: config.redirect_uri,
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// The OAuth module URL to send the end user to. `state` is sent even
    /// though Astra does not document echoing it back, so callers must not
    /// depend on getting it back.
    /// With `code_challenge`, the request asks for PKCE (S256).
    pub fn authorize_url(
        &self,
        state: &str,
        user_intent_id: Option<&str>,
        code_challenge: Option<&str>,
    ) -> Url {
        let mut url = self.authorize_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", self.redirect_uri.as_str())
                .append_pair("response_type", "code");
            if let Some(intent) = user_intent_id {
                query.append_pair("user_intent_id", intent);
            }
            query.append_pair("state", state);
            if let Some(challenge) = code_challenge {
                query
                    .append_pair("code_challenge", challenge)
                    .append_pair("code_challenge_method", "S256");
            }
        }
        url
    }

    /// Exchanges an authorization code (single use, valid minutes) for
    /// tokens, with the PKCE `code_verifier` if the authorization sent a challenge.
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        code_verifier: Option<&SecretString>,
    ) -> Result<AstraTokens, AstraError> {
        let verifier = code_verifier.map(|v| ("code_verifier", v));
        self.token_request("authorization_code", ("code", code), verifier)
            .await
    }

    /// Trades a refresh token for a new access token and a new refresh token.
    /// The previous access token stops working; the refresh token passed in
    /// stays usable until its own expiry.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<AstraTokens, AstraError> {
        self.token_request("refresh_token", ("refresh_token", refresh_token), None)
            .await
    }

    /// `POST`s the token endpoint a `grant_type` with the secret it takes
    /// (`(field, value)`), an optional second one, and the redirect URI.
    async fn token_request(
        &self,
        grant_type: &str,
        (field, value): (&str, &SecretString),
        extra: Option<(&str, &SecretString)>,
    ) -> Result<AstraTokens, AstraError> {
        let mut form = vec![
            ("grant_type", grant_type),
            (field, value.expose_secret()),
            ("redirect_uri", self.redirect_uri.as_str()),
        ];
        form.extend(extra.map(|(field, value)| (field, value.expose_secret())));
        let mut response = self
            .http
            .post(self.token_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            // reqwest marks this header sensitive, keeping it out of its own Debug output.
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(&e, None))?;
        let request_id = request_id(response.headers());
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(status, response.headers(), request_id));
        }

        let limit = self.max_response_bytes;
        let oversized = || AstraError::Malformed {
            reason: "the body exceeds max_response_bytes",
            request_id: request_id.clone(),
        };
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(oversized());
        }
        // Read chunk by chunk so a hostile or broken peer cannot make us
        // buffer more than the limit, whatever Content-Length claimed.
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(&e, request_id.clone()))?
        {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(oversized());
            }
            body.extend_from_slice(&chunk);
        }
        parse_tokens(&body)
            .map_err(|reason| AstraError::Malformed {
                reason,
                request_id: request_id.clone(),
            })
            .map(|tokens| AstraTokens {
                request_id,
                ..tokens
            })
    }
}

/// `base` with `segments` appended to its path, keeping any prefix.
fn with_path(base: &Url, segments: &[&str]) -> Option<Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(segments);
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_url_keeps_a_path_prefix() {
        let base = Url::parse("https://example.test/astra/").expect("url");
        let url = with_path(&base, &["v1", "oauth", "token"]).expect("base url");
        assert_eq!(url.as_str(), "https://example.test/astra/v1/oauth/token");
    }
}
