//! The two token routes: same shape, different credential sets, callers and
//! listeners.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use arc_swap::ArcSwapOption;
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::time::Instant;

use crate::caller_auth::{AuthError, Caller, CallerAuth, InternalAuth};
use crate::client_tokens::token_cache::TokenCache;
use crate::core::{AccessToken, CredentialSet};
use crate::http::audit::AuditTrail;
use crate::http::client_addr::ClientAddr;
use crate::http::problem::{HttpError, Problem};
use crate::http::rate_limit::RateLimiter;
use crate::observability::Metrics;

/// Who may call a token route, and how callers are limited.
enum Gate {
    /// Browsers on the public listener, limited per caller.
    Browser {
        auth: CallerAuth,
        rate_limit: RateLimiter,
    },
    /// Workloads on the internal listener.
    Workload(Arc<InternalAuth>),
}

/// One token route with everything it needs.
pub struct TokenRoute {
    cache: Arc<TokenCache>,
    gate: Gate,
    audit: Arc<AuditTrail>,
    metrics: Metrics,
    /// The last body handed out: rendered again only when the token or the
    /// whole second of `expires_in` changes, not on every request.
    body: ArcSwapOption<RenderedBody>,
}

/// The JSON body for one token at one whole second of `expires_in`.
struct RenderedBody {
    token: Arc<AccessToken>,
    expires_in: u64,
    bytes: Bytes,
}

impl TokenRoute {
    /// `GET /astrada-sdk-token`.
    pub fn sdk(
        cache: Arc<TokenCache>,
        auth: CallerAuth,
        rate_limit: RateLimiter,
        audit: Arc<AuditTrail>,
        metrics: Metrics,
    ) -> Self {
        Self {
            cache,
            gate: Gate::Browser { auth, rate_limit },
            audit,
            metrics,
            body: ArcSwapOption::empty(),
        }
    }

    /// `GET /astrada-api-token`.
    pub fn api(
        cache: Arc<TokenCache>,
        auth: Arc<InternalAuth>,
        audit: Arc<AuditTrail>,
        metrics: Metrics,
    ) -> Self {
        Self {
            cache,
            gate: Gate::Workload(auth),
            audit,
            metrics,
            body: ArcSwapOption::empty(),
        }
    }

    fn set(&self) -> CredentialSet {
        self.cache.set()
    }

    fn refused(&self, req: &HttpRequest, refused: &AuthError) {
        self.audit
            .refused(req, self.set(), &address_key(req), refused);
    }

    /// The caller and the key its hand-outs are counted and audited under.
    async fn admit(&self, req: &HttpRequest) -> Result<(Caller, String), Problem> {
        match &self.gate {
            Gate::Browser { auth, rate_limit } => {
                let caller = match auth.authenticate(req).await {
                    Ok(caller) => caller,
                    Err(refused) => {
                        // Refusals spend the client address's pre-authentication
                        // budget (throttling guessing), never a caller's: an honest
                        // caller gets its 401 unless its own address is flooding.
                        rate_limit
                            .check_pre_auth(&address_key(req))
                            .map_err(|retry_after| HttpError::RateLimited { retry_after })?;
                        self.refused(req, &refused);
                        return Err(refused.into());
                    }
                };
                let holder = if caller.is_anonymous() {
                    address_key(req)
                } else {
                    format!("caller:{}", caller.subject)
                };
                limit(rate_limit, &holder)?;
                Ok((caller, holder))
            }
            Gate::Workload(auth) => {
                let caller = auth
                    .authenticate(req)
                    .await
                    .inspect_err(|refused| self.refused(req, refused))?;
                let holder = format!("caller:{}", caller.subject);
                Ok((caller, holder))
            }
        }
    }
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    /// The true remaining life, so the SDK knows when to ask again.
    expires_in: u64,
    token_type: &'a str,
}

impl TokenRoute {
    /// The token's JSON answer, from the body rendered for this token and
    /// second when there is one.
    fn token_response(&self, token: &Arc<AccessToken>) -> HttpResponse {
        let expires_in = token.remaining(Instant::now()).as_secs();
        let rendered = self.body.load();
        let bytes = match rendered.as_deref() {
            Some(r) if r.expires_in == expires_in && Arc::ptr_eq(&r.token, token) => {
                r.bytes.clone()
            }
            _ => {
                let body = TokenBody {
                    access_token: token.value.expose_secret(),
                    expires_in,
                    token_type: token.token_type,
                };
                let bytes = match serde_json::to_vec(&body) {
                    Ok(json) => Bytes::from(json),
                    Err(e) => {
                        return HttpResponse::from_error(
                            actix_web::error::JsonPayloadError::Serialize(e),
                        );
                    }
                };
                self.body.store(Some(Arc::new(RenderedBody {
                    token: Arc::clone(token),
                    expires_in,
                    bytes: bytes.clone(),
                })));
                bytes
            }
        };
        HttpResponse::Ok()
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ))
            .body(bytes)
    }
}

async fn hand_out(req: HttpRequest, route: &TokenRoute) -> Result<HttpResponse, Problem> {
    let (caller, holder) = route.admit(&req).await?;
    let token = route.cache.get().await?;
    route.metrics.token_issued(route.set());
    route
        .audit
        .issued(&req, route.set(), &caller, &holder, &token);
    Ok(route.token_response(&token))
}

/// `GET /astrada-sdk-token` (public listener): the card-enrollment token,
/// for authenticated callers within their rate limit.
pub async fn sdk_token(
    req: HttpRequest,
    route: web::Data<TokenRoute>,
) -> Result<HttpResponse, Problem> {
    hand_out(req, &route).await
}

/// `GET /astrada-api-token` (internal listener): the full-access API token,
/// for authenticated workloads only.
pub async fn api_token(
    req: HttpRequest,
    route: web::Data<TokenRoute>,
) -> Result<HttpResponse, Problem> {
    hand_out(req, &route).await
}

fn limit(rate_limit: &RateLimiter, key: &str) -> Result<(), Problem> {
    rate_limit
        .check(key)
        .map_err(|retry_after| HttpError::RateLimited { retry_after }.into())
}

/// The client address resolved through `server.trusted_proxies` (by the
/// request-span layer); the socket peer if that layer did not run.
fn address_key(req: &HttpRequest) -> String {
    let resolved = req.extensions().get::<ClientAddr>().copied();
    resolved
        .unwrap_or_else(|| ClientAddr(req.peer_addr().map(|a| a.ip().to_canonical())))
        .key()
}
