//! Proxy mode on the internal listener: `ANY /astrada/api/{path}` to
//! Astrada's API with the cached API token, and `ANY
//! /astra/users/{user_ref}/api/{path}` to Astra's API with that user's
//! token. The caller never holds either token. The gate (`http::access`)
//! has admitted the call against the caller's proxy rules, on the path the
//! upstream will see ([`path`]); here the body is buffered (so the call can
//! be replayed after a 401, [`replay`]), headers are cleaned ([`headers`]),
//! and the upstream's answer is streamed back as it arrives.

pub mod error;
pub mod headers;
pub mod path;
pub mod replay;
pub mod upstream;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures::StreamExt;

use super::access::Admitted;
use super::audit::{AuditTrail, ProxiedCall};
use super::problem::Problem;
use crate::client_tokens::token_cache::TokenCache;
use crate::observability::metrics::status_class;
use crate::observability::{Metrics, request_scope};
use crate::user_tokens::UserTokens;
pub use error::ProxyError;
use replay::{Call, Outgoing, TokenSource};
use upstream::{Target, Upstreams};

/// What the proxy routes need.
pub struct ProxyRoutes {
    pub upstreams: Upstreams,
    pub api_tokens: Arc<TokenCache>,
    pub users: Option<Arc<UserTokens>>,
    pub audit: Arc<AuditTrail>,
    pub metrics: Metrics,
}

/// `ANY /astrada/api/{path}`.
pub async fn astrada(
    req: HttpRequest,
    body: web::Payload,
    route: web::Data<ProxyRoutes>,
    admitted: Admitted,
) -> Result<HttpResponse, Problem> {
    let tokens = TokenSource::Astrada {
        cache: &route.api_tokens,
    };
    proxy(
        &req,
        body,
        &route,
        &admitted,
        &route.upstreams.astrada,
        &tokens,
    )
    .await
}

/// `ANY /astra/users/{user_ref}/api/{path}`.
pub async fn astra(
    req: HttpRequest,
    body: web::Payload,
    route: web::Data<ProxyRoutes>,
    admitted: Admitted,
) -> Result<HttpResponse, Problem> {
    let user = admitted.user()?;
    let (Some(users), Some(target)) = (&route.users, &route.upstreams.astra) else {
        return Err(super::problem::HttpError::NotFound.into());
    };
    let tokens = TokenSource::Astra { users, user };
    proxy(&req, body, &route, &admitted, target, &tokens).await
}

/// Sends the admitted call to `target` and streams the answer back, with
/// one audit line and one metric sample whatever the outcome.
async fn proxy(
    req: &HttpRequest,
    body: web::Payload,
    route: &ProxyRoutes,
    admitted: &Admitted,
    target: &Target,
    tokens: &TokenSource<'_>,
) -> Result<HttpResponse, Problem> {
    let path = admitted.proxy_path.as_deref().unwrap_or("/");
    let method = req.method().as_str();
    let call = ProxiedCall {
        upstream: target.upstream.as_str(),
        caller: &admitted.caller,
        user: admitted.user.as_ref(),
        method,
        path,
    };
    let result = forward(req, body, route, path, target, tokens).await;
    let (status, label) = match &result {
        Ok(response) => (
            response.status().as_u16(),
            status_class(response.status().as_u16()),
        ),
        Err(problem) => {
            use actix_web::ResponseError;
            (problem.status_code().as_u16(), problem.slug())
        }
    };
    route.audit.proxied(&call, status);
    route
        .metrics
        .proxy()
        .call(call.upstream, known_method(method), label);
    result
}

/// `method` from the closed set of the grants' methods, for metric labels.
fn known_method(method: &str) -> &'static str {
    crate::caller_auth::grants::proxy::METHODS
        .iter()
        .copied()
        .find(|m| *m == method)
        .unwrap_or("other")
}

async fn forward(
    req: &HttpRequest,
    body: web::Payload,
    route: &ProxyRoutes,
    path: &str,
    target: &Target,
    tokens: &TokenSource<'_>,
) -> Result<HttpResponse, Problem> {
    let upstreams = &route.upstreams;
    let body = buffered(body, upstreams.max_body_bytes).await?;
    let request_id = request_scope::current_id();
    let outgoing = Outgoing {
        method: reqwest::Method::from_bytes(req.method().as_str().as_bytes())
            .map_err(|_| ProxyError::UnsafePath("has an unknown method"))?,
        url: target.url(path, req.uri().query())?,
        headers: headers::outbound(req.headers(), request_id.as_deref()),
        body,
    };
    let slot = target.slot(upstreams.timeout).await?;
    let call = Call {
        client: &upstreams.client,
        target,
        timeout: upstreams.timeout,
        metrics: route.metrics.proxy(),
    };
    let response = call.send(&outgoing, tokens).await?;
    let status =
        StatusCode::from_u16(response.status().as_u16()).map_err(|_| ProxyError::Unreachable {
            upstream: target.upstream,
            cause: "it answered an invalid status",
        })?;
    let mut answer = HttpResponse::build(status);
    for (name, value) in headers::inbound(response.headers()) {
        answer.append_header((name, value));
    }
    Ok(answer.streaming(streamed(response, slot, target)))
}

/// The caller's body, up to `limit` bytes: held whole so that it can be
/// sent twice.
async fn buffered(mut body: web::Payload, limit: u64) -> Result<Bytes, ProxyError> {
    let limit_bytes = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut held = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| ProxyError::BodyUnreadable)?;
        if held.len() + chunk.len() > limit_bytes {
            return Err(ProxyError::BodyTooLarge { limit });
        }
        held.extend_from_slice(&chunk);
    }
    Ok(held.freeze())
}

/// The upstream's body as it arrives. The call's slot is held until the
/// body ends, so `proxy.max_concurrent` bounds whole calls, not just their
/// first halves.
fn streamed(
    response: reqwest::Response,
    slot: tokio::sync::OwnedSemaphorePermit,
    target: &Target,
) -> impl futures::Stream<Item = Result<Bytes, ProxyError>> + 'static {
    let upstream = target.upstream;
    futures::stream::unfold(Some((response, slot)), move |state| async move {
        let (mut response, slot) = state?;
        match response.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some((response, slot)))),
            Ok(None) => None,
            Err(e) => {
                let error = ProxyError::from_reqwest(upstream, &e);
                tracing::warn!(%upstream, error = %e.without_url(), "the upstream's answer broke off");
                Some((Err(error), None))
            }
        }
    })
}
