//! One proxied call: the token injected, the request sent, and on a 401 to
//! the token we injected, one new token and one replay of the same buffered
//! request. A 401 means the upstream refused the credential before acting
//! on the request, so replaying even a `POST` cannot do it twice; a second
//! 401 is the upstream's answer and goes back to the caller.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;

use super::error::ProxyError;
use super::upstream::Target;
use crate::caller_auth::grants::proxy::Upstream;
use crate::client_tokens::token_cache::TokenCache;
use crate::core::AccessToken;
use crate::http::problem::Problem;
use crate::observability::ProxyMetrics;
use crate::user_tokens::{UserRef, UserTokens};

/// Where the injected token comes from, and how a refused one is replaced.
pub enum TokenSource<'a> {
    /// The user's current Astra access token; a refusal reports its
    /// generation stale (one refresh per user, however many calls fail).
    Astra {
        users: &'a Arc<UserTokens>,
        user: &'a UserRef,
    },
    /// The cached Astrada API token; a refusal drops it from the cache (one
    /// exchange, however many calls fail).
    Astrada { cache: &'a Arc<TokenCache> },
}

/// The token one attempt used, and what names it when refused.
enum Used {
    Astra {
        value: SecretString,
        generation: i64,
    },
    Astrada(Arc<AccessToken>),
}

impl Used {
    fn value(&self) -> &SecretString {
        match self {
            Used::Astra { value, .. } => value,
            Used::Astrada(token) => &token.value,
        }
    }
}

impl TokenSource<'_> {
    async fn current(&self) -> Result<Used, Problem> {
        Ok(match self {
            TokenSource::Astra { users, user } => {
                let token = users.token(user).await?;
                Used::Astra {
                    value: token.access_token,
                    generation: token.generation,
                }
            }
            TokenSource::Astrada { cache } => Used::Astrada(cache.get().await?),
        })
    }

    async fn replace(&self, refused: Used) -> Result<Used, Problem> {
        match (self, refused) {
            (TokenSource::Astra { users, user }, Used::Astra { generation, .. }) => {
                let token = users.refresh_stale(user, generation).await?;
                Ok(Used::Astra {
                    value: token.access_token,
                    generation: token.generation,
                })
            }
            (TokenSource::Astrada { cache }, Used::Astrada(token)) => {
                cache.reject(&token);
                Ok(Used::Astrada(cache.get().await?))
            }
            // A source only ever sees its own tokens.
            (_, _) => self.current().await,
        }
    }
}

/// One request as it goes upstream, ready to be sent twice.
pub struct Outgoing {
    pub method: reqwest::Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What a proxied call needs besides the request.
pub struct Call<'a> {
    pub client: &'a reqwest::Client,
    pub target: &'a Target,
    pub timeout: Duration,
    pub metrics: &'a ProxyMetrics,
}

impl Call<'_> {
    /// Sends `outgoing` with a token from `tokens`, replaying it once with a
    /// new token if the upstream answers 401.
    pub async fn send(
        &self,
        outgoing: &Outgoing,
        tokens: &TokenSource<'_>,
    ) -> Result<reqwest::Response, Problem> {
        let upstream = self.target.upstream;
        let used = tokens.current().await?;
        let response = self.attempt(outgoing, used.value()).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        // The first answer is dropped: its body is the upstream's complaint
        // about a token the caller never saw.
        drop(response);
        self.metrics.replay(upstream.as_str());
        tracing::info!(%upstream, "upstream refused the injected token; replaying once with a new one");
        let fresh = tokens.replace(used).await?;
        Ok(self.attempt(outgoing, fresh.value()).await?)
    }

    async fn attempt(
        &self,
        outgoing: &Outgoing,
        token: &SecretString,
    ) -> Result<reqwest::Response, ProxyError> {
        let upstream: Upstream = self.target.upstream;
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| ProxyError::Unreachable {
                upstream,
                cause: "the token is not a valid header value",
            })?;
        bearer.set_sensitive(true);
        let mut headers = outgoing.headers.clone();
        headers.insert(AUTHORIZATION, bearer);
        let started = Instant::now();
        let result = self
            .client
            .request(outgoing.method.clone(), outgoing.url.clone())
            .headers(headers)
            .body(outgoing.body.clone())
            .timeout(self.timeout)
            .send()
            .await;
        self.metrics
            .upstream_latency(upstream.as_str(), started.elapsed());
        result.map_err(|e| ProxyError::from_reqwest(upstream, &e))
    }
}
