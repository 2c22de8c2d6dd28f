//! The two token routes: same shape, different credential sets, callers and
//! listeners. The SDK token checks its browser callers itself; the API
//! token's workloads are checked by the internal listener's gate.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use arc_swap::ArcSwapOption;
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::time::Instant;

use crate::caller_auth::{Caller, CallerAuth};
use crate::client_tokens::token_cache::TokenCache;
use crate::core::{AccessToken, CredentialSet};
use crate::http::access::Admitted;
use crate::http::audit::AuditTrail;
use crate::http::client_addr::ClientAddr;
use crate::http::problem::{HttpError, Problem};
use crate::http::rate_limit::{Holder, RateLimiter};
use crate::observability::Metrics;

/// One token route's hand-out: the cache, the audit trail and the body.
pub struct TokenRoute {
    cache: Arc<TokenCache>,
    audit: Arc<AuditTrail>,
    metrics: Metrics,
    /// The last body handed out: rendered again only when the token or the
    /// whole second of `expires_in` changes, not on every request.
    body: ArcSwapOption<RenderedBody>,
}

/// `GET /astrada-sdk-token`: the hand-out behind browser authentication and
/// a per-caller rate limit.
pub struct SdkTokenRoute {
    tokens: TokenRoute,
    auth: CallerAuth,
    rate_limit: RateLimiter,
}

/// The JSON body for one token at one whole second of `expires_in`.
struct RenderedBody {
    token: Arc<AccessToken>,
    expires_in: u64,
    bytes: Bytes,
}

impl TokenRoute {
    /// `GET /astrada-api-token` (the gate admits its callers), or the
    /// hand-out of [`SdkTokenRoute`].
    pub fn new(cache: Arc<TokenCache>, audit: Arc<AuditTrail>, metrics: Metrics) -> Self {
        Self {
            cache,
            audit,
            metrics,
            body: ArcSwapOption::empty(),
        }
    }

    fn set(&self) -> CredentialSet {
        self.cache.set()
    }
}

impl SdkTokenRoute {
    pub fn new(tokens: TokenRoute, auth: CallerAuth, rate_limit: RateLimiter) -> Self {
        Self {
            tokens,
            auth,
            rate_limit,
        }
    }

    /// The caller, once authenticated.
    async fn authenticate(&self, req: &HttpRequest) -> Result<Caller, Problem> {
        match self.auth.authenticate(req).await {
            Ok(caller) => Ok(caller),
            Err(refused) => {
                // Refusals spend the client address's pre-authentication
                // budget (throttling guessing), never a caller's: an honest
                // caller gets its 401 unless its own address is flooding.
                let address = ClientAddr::of(req);
                self.rate_limit
                    .check_pre_auth(address)
                    .map_err(|retry_after| HttpError::RateLimited { retry_after })?;
                self.tokens
                    .audit
                    .refused(req, self.tokens.set(), address, &refused);
                Err(refused.into())
            }
        }
    }
}

/// Whom `caller`'s hand-outs are counted and audited under: its address
/// when it is anonymous.
fn holder<'a>(req: &HttpRequest, caller: &'a Caller) -> Holder<'a> {
    if caller.is_anonymous() {
        Holder::Address(ClientAddr::of(req))
    } else {
        Holder::Caller(&caller.subject)
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

async fn hand_out(
    req: &HttpRequest,
    route: &TokenRoute,
    caller: &Caller,
    holder: Holder<'_>,
) -> Result<HttpResponse, Problem> {
    let token = route.cache.get().await?;
    route.metrics.tokens().issued(route.set());
    route.audit.issued(req, route.set(), caller, holder, &token);
    Ok(route.token_response(&token))
}

/// `GET /astrada-sdk-token` (public listener): the card-enrollment token,
/// for authenticated callers within their rate limit.
pub async fn sdk_token(
    req: HttpRequest,
    route: web::Data<SdkTokenRoute>,
) -> Result<HttpResponse, Problem> {
    let caller = route.authenticate(&req).await?;
    let holder = holder(&req, &caller);
    limit(&route.rate_limit, holder)?;
    hand_out(&req, &route.tokens, &caller, holder).await
}

/// `GET /astrada-api-token` (internal listener): the full-access API token,
/// for workloads granted `astrada:api_token`. A workload's hand-outs are
/// audited under its identity as it is (no per-request key to build).
pub async fn api_token(
    req: HttpRequest,
    route: web::Data<TokenRoute>,
    admitted: Admitted,
) -> Result<HttpResponse, Problem> {
    let caller = &admitted.caller;
    hand_out(&req, &route, caller, Holder::Caller(&caller.subject)).await
}

fn limit(rate_limit: &RateLimiter, holder: Holder<'_>) -> Result<(), Problem> {
    rate_limit
        .check(holder)
        .map_err(|retry_after| HttpError::RateLimited { retry_after }.into())
}
