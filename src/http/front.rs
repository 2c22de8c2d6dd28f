//! The one layer around the router of both listeners. Every request gets its
//! id and client address (the [`RequestScope`] its log lines and handlers
//! read), the size limits, CORS on the SDK token, the security headers, its
//! metrics, and a log line when it is refused or fails. One service with its
//! own future rather than a middleware per concern: each of those boxed a
//! future and dispatched every request once more, and together they cost
//! more than the work they did.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{Error, HttpResponse, ResponseError};

use super::client_addr::TrustedProxies;
use super::cors::{self, Cors, CorsCheck};
use super::limits::RequestLimits;
use super::problem::{Problem, ProblemSlug};
use super::request_id::{REQUEST_ID, ids_trusted, request_id, request_span, route_of};
use super::{Listener, RouteLabel, SDK_TOKEN_PATH};
use crate::observability::{RequestMetrics, RequestScope};

/// On every response: tokens must never be stored by a browser or proxy,
/// and nothing here is meant to be sniffed, framed or referred.
static SECURITY_HEADERS: [(HeaderName, HeaderValue); 4] = [
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    (header::PRAGMA, HeaderValue::from_static("no-cache")),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
];

/// What the layer applies on one listener.
#[derive(Clone)]
pub struct Policy {
    pub listener: Listener,
    pub limits: RequestLimits,
    /// The SDK token's allowed origins, on the listener that serves it.
    pub cors: Option<Arc<Cors>>,
    /// Whose forwarding headers and request ids are believed.
    pub trusted_proxies: Arc<TrustedProxies>,
    pub metrics: Arc<RequestMetrics>,
}

/// The layer, as `App::wrap` takes it (one per worker).
pub struct Front(Rc<Policy>);

impl Front {
    pub fn new(policy: Policy) -> Self {
        Self(Rc::new(policy))
    }
}

impl<S, B> Transform<S, ServiceRequest> for Front
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: Unpin,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = FrontService<S>;
    type InitError = ();
    type Future = Ready<Result<FrontService<S>, ()>>;

    fn new_transform(&self, inner: S) -> Self::Future {
        ready(Ok(FrontService {
            inner,
            policy: Rc::clone(&self.0),
        }))
    }
}

/// The layer around one worker's router.
pub struct FrontService<S> {
    inner: S,
    policy: Rc<Policy>,
}

impl<S, B> Service<ServiceRequest> for FrontService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: Unpin,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Handling<S::Future>;

    forward_ready!(inner);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let policy = &self.policy;
        let peer = req.peer_addr().map(|a| a.ip());
        let trusted = ids_trusted(&policy.trusted_proxies, policy.listener, peer);
        let id = request_id(req.headers(), trusted);
        let span = request_span(&req, &id, trusted);
        let client = policy.trusted_proxies.client_addr(peer, req.headers()).0;
        let mut scope = Some(RequestScope { id, client });
        let (answer, cors) = {
            let _scope = RequestScope::enter(&mut scope);
            let _span = span.as_ref().map(tracing::Span::enter);
            policy.start(&self.inner, req)
        };
        Handling {
            policy: Rc::clone(policy),
            scope,
            span,
            started,
            cors,
            answer,
        }
    }
}

impl Policy {
    /// Hands `req` to the router, or answers it here (too large, a CORS
    /// preflight or a refused origin); the CORS headers its answer needs.
    fn start<S: Service<ServiceRequest>>(
        &self,
        inner: &S,
        req: ServiceRequest,
    ) -> (Answer<S::Future>, Option<CorsCheck>) {
        if let Some(refusal) = self.limits.refusal(&req) {
            let response = Problem::from(refusal).error_response();
            return (Answer::here(req, response), None);
        }
        // The path the router matches (percent-decoded), so that no
        // spelling of the SDK token's path escapes its CORS check.
        let cors = match &self.cors {
            Some(cors) if req.match_info().as_str() == SDK_TOKEN_PATH => match cors.check(&req) {
                CorsCheck::Answer(response) => return (Answer::here(req, response), None),
                handle => Some(handle),
            },
            _ => None,
        };
        (Answer::Routed(inner.call(req)), cors)
    }
}

/// Who answers a request: the router, or this layer.
enum Answer<F> {
    Routed(F),
    Here(ServiceResponse<BoxBody>),
    /// Handed on.
    Done,
}

impl<F> Answer<F> {
    fn here(req: ServiceRequest, response: HttpResponse) -> Self {
        Answer::Here(req.into_response(response))
    }
}

/// One request in the layer: its scope is current (and its span entered,
/// if it has one) while the router's future is polled.
pub struct Handling<F> {
    policy: Rc<Policy>,
    scope: Option<RequestScope>,
    span: Option<tracing::Span>,
    started: Instant,
    cors: Option<CorsCheck>,
    answer: Answer<F>,
}

impl<F, B> Future for Handling<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>> + Unpin,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut response = {
            let _scope = RequestScope::enter(&mut this.scope);
            let _span = this.span.as_ref().map(tracing::Span::enter);
            let response = match std::mem::replace(&mut this.answer, Answer::Done) {
                Answer::Routed(mut future) => match Pin::new(&mut future).poll(cx) {
                    Poll::Pending => {
                        this.answer = Answer::Routed(future);
                        return Poll::Pending;
                    }
                    Poll::Ready(result) => result?.map_into_left_body(),
                },
                Answer::Here(response) => response.map_into_right_body(),
                Answer::Done => {
                    unreachable!("a request's answer was polled after it was handed on")
                }
            };
            log_outcome(&response);
            response
        };
        this.finish(&mut response);
        Poll::Ready(Ok(response))
    }
}

impl<F> Handling<F> {
    /// Adds the headers every answer carries and records the request.
    fn finish<B>(&mut self, response: &mut ServiceResponse<B>) {
        let status = response.status();
        if let Some(span) = &self.span {
            span.record("http.response.status_code", status.as_u16());
        }
        let route = RouteLabel::of(response.request());
        self.policy
            .metrics
            .record(route, status.as_u16(), self.started.elapsed());
        let h = response.headers_mut();
        if let Some(CorsCheck::Handle(allowed)) = self.cors.take() {
            cors::add_headers(allowed, h);
        }
        for (name, value) in &SECURITY_HEADERS {
            if !h.contains_key(name) {
                h.insert(name.clone(), value.clone());
            }
        }
        if let Some(scope) = self.scope.take() {
            h.insert(REQUEST_ID, scope.id);
        }
    }
}

/// The log line of a refused or failed request (the problem's slug names
/// what went wrong without its body).
fn log_outcome<B>(response: &ServiceResponse<B>) {
    let status = response.status();
    if status.is_server_error() {
        let route = route_of(response.request());
        let problem = response
            .response()
            .extensions()
            .get::<ProblemSlug>()
            .map_or("-", |p| p.0);
        tracing::warn!(status = status.as_u16(), %route, problem, "request failed");
    } else if status.is_client_error() {
        let route = route_of(response.request());
        tracing::info!(status = status.as_u16(), %route, "request refused");
    }
}
