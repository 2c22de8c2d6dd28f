//! The two upstreams as the proxy calls them: a fixed base URL each, one
//! shared outbound client (bounded in time, never following a redirect,
//! which would carry the injected token elsewhere), and a bound on the calls
//! in flight per upstream.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use super::error::ProxyError;
use crate::caller_auth::grants::proxy::Upstream;
use crate::config::{AstraSettings, ConfigError, ProxySettings, https_url, invalid};
use crate::core::{USER_AGENT, outbound_client};

/// One upstream: where its API is and how many calls may be in flight.
pub struct Target {
    pub upstream: Upstream,
    base: Url,
    slots: Arc<Semaphore>,
}

/// Both upstreams and the client that calls them.
pub struct Upstreams {
    pub client: reqwest::Client,
    pub astrada: Target,
    /// `None` when `astra.enabled` is false (the route is not served).
    pub astra: Option<Target>,
    pub timeout: Duration,
    pub max_body_bytes: u64,
}

impl Upstreams {
    /// Checks `[proxy]` (and the Astra API URL it falls back to).
    pub fn from_settings(p: &ProxySettings, astra: &AstraSettings) -> Result<Self, ConfigError> {
        if p.max_concurrent == 0 || p.timeout_ms == 0 || p.connect_timeout_ms == 0 {
            return invalid(
                "proxy.max_concurrent",
                "proxy.max_concurrent, timeout_ms and connect_timeout_ms must be above 0".into(),
                "use e.g. max_concurrent = 64, timeout_ms = 10000, connect_timeout_ms = 1000",
            );
        }
        let why = "would send the injected tokens in clear text";
        let example = "use e.g. https://api.astrada.co";
        let slots = || Arc::new(Semaphore::new(p.max_concurrent as usize));
        let astrada = Target {
            upstream: Upstream::Astrada,
            base: https_url("proxy.astrada_api_url", &p.astrada_api_url, why, example)?,
            slots: slots(),
        };
        let astra = if astra.enabled {
            let (key, url) = if p.astra_api_url.trim().is_empty() {
                ("astra.api_url", astra.api_url.as_str())
            } else {
                ("proxy.astra_api_url", p.astra_api_url.as_str())
            };
            let example = "use e.g. https://api.astra.finance";
            Some(Target {
                upstream: Upstream::Astra,
                base: https_url(key, url, why, example)?,
                slots: slots(),
            })
        } else {
            None
        };
        let timeout = Duration::from_millis(p.timeout_ms);
        let client = outbound_client(Duration::from_millis(p.connect_timeout_ms), timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ConfigError::Invalid {
                key: "proxy",
                problem: format!("the HTTP client cannot be built: {e}"),
                fix: "check the TLS setup of the host".into(),
            })?;
        Ok(Self {
            client,
            astrada,
            astra,
            timeout,
            max_body_bytes: p.max_body_bytes,
        })
    }
}

impl Target {
    /// The upstream URL of the normalised `path` (see `path::normalize`)
    /// and the caller's raw `query`; checked to stay on the base's origin
    /// and below its path, whatever `path` holds.
    pub fn url(&self, path: &str, query: Option<&str>) -> Result<Url, ProxyError> {
        let base = self.base.as_str().trim_end_matches('/');
        let mut text = format!("{base}{path}");
        if let Some(query) = query {
            text.push('?');
            text.push_str(query);
        }
        let url = Url::parse(&text).map_err(|_| ProxyError::UnsafePath("is not a valid URL"))?;
        let base_path = self.base.path().trim_end_matches('/');
        let same_origin = url.origin() == self.base.origin()
            && url.username().is_empty()
            && url.password().is_none();
        let below =
            url.path().starts_with(base_path) && url.path()[base_path.len()..].starts_with('/');
        if !same_origin || !below {
            return Err(ProxyError::UnsafePath("leaves the upstream's API"));
        }
        Ok(url)
    }

    /// A slot for one call, waiting at most `wait` for one to free up.
    pub async fn slot(&self, wait: Duration) -> Result<OwnedSemaphorePermit, ProxyError> {
        let busy = ProxyError::Busy {
            upstream: self.upstream,
        };
        match tokio::time::timeout(wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(base: &str) -> Target {
        Target {
            upstream: Upstream::Astrada,
            base: Url::parse(base).unwrap(),
            slots: Arc::new(Semaphore::new(1)),
        }
    }

    #[test]
    fn the_url_is_the_base_plus_the_path_and_query() {
        let t = target("https://api.astrada.co");
        let url = t.url("/v1/cards/c-1", Some("limit=5&x=%20")).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.astrada.co/v1/cards/c-1?limit=5&x=%20"
        );
        let t = target("https://gw.example/astra/");
        let url = t.url("/v1/user", None).unwrap();
        assert_eq!(url.as_str(), "https://gw.example/astra/v1/user");
    }
}
