//! Everything actix-web: both listeners, their routes, and the per-request
//! layers. The public listener carries only the SDK token and health probes;
//! the API token and metrics exist only on the internal listener, so no proxy
//! misconfiguration can expose them.
//!
//! Every layer is built with what it needs ([`Services`]), so a missing
//! dependency is a compile error, never a check skipped at request time.

pub mod access;
pub mod audit;
pub mod body;
pub mod client_addr;
pub mod cors;
pub mod front;
pub mod limits;
pub mod problem;
pub mod proxy;
pub mod rate_limit;
pub mod request_id;
mod routes;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_web::dev::Server;
use actix_web::http::{Method, header};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::caller_auth::grants::proxy::Upstream;
use crate::caller_auth::{CallerAuth, InternalAuth};
use crate::client_tokens::ClientTokens;
use crate::config::ServerSettings;
use crate::observability::Metrics;
use crate::user_tokens::UserTokens;
use access::InternalGate;
use audit::AuditTrail;
use client_addr::TrustedProxies;
use cors::Cors;
use front::{Front, Policy};
use limits::RequestLimits;
use problem::{HttpError, Problem};
use proxy::ProxyRoutes;
use rate_limit::RateLimiter;
use routes::astra::{self, AstraRoutes};
use routes::health::Readiness;
use routes::metrics::MetricsRoute;
use routes::token::{SdkTokenRoute, TokenRoute};

/// Path of the browser-facing SDK token route.
pub const SDK_TOKEN_PATH: &str = "/astrada-sdk-token";
/// Path of the internal API token route.
pub const API_TOKEN_PATH: &str = "/astrada-api-token";

/// Where Astra sends the user's browser after authorizing (public listener).
pub const ASTRA_CALLBACK_PATH: &str = "/astra/callback";
/// The per-user Astra routes (internal listener), as actix patterns.
pub const ASTRA_USERS_PATH: &str = "/astra/users";
pub const ASTRA_USER_PATH: &str = "/astra/users/{user_ref}";
pub const ASTRA_AUTHORIZATION_PATH: &str = "/astra/users/{user_ref}/authorization";
pub const ASTRA_AUTHORIZATION_CONFIRM_PATH: &str = "/astra/users/{user_ref}/authorization/confirm";
pub const ASTRA_AUTHORIZATION_CODE_PATH: &str = "/astra/users/{user_ref}/authorization-code";
pub const ASTRA_REFRESH_TOKEN_PATH: &str = "/astra/users/{user_ref}/refresh-token";
pub const ASTRA_TOKEN_PATH: &str = "/astra/users/{user_ref}/token";
pub const ASTRA_TOKEN_REFRESH_PATH: &str = "/astra/users/{user_ref}/token/refresh";

/// The proxy routes (internal listener): `{path}` (any number of segments)
/// goes to the upstream's API. As documented; routed as [`proxy_pattern`].
pub const ASTRADA_PROXY_PATH: &str = "/astrada/api/{path}";
pub const ASTRA_PROXY_PATH: &str = "/astra/users/{user_ref}/api/{path}";
/// The methods the proxy routes take: those a proxy rule may name.
const PROXY_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";

/// Every path the public listener serves (checked against `openapi.yaml` by the tests).
pub const PUBLIC_PATHS: &[&str] = &[SDK_TOKEN_PATH, ASTRA_CALLBACK_PATH, "/healthz", "/readyz"];
/// Every path the internal listener serves (checked against `openapi.yaml` by the tests).
pub const INTERNAL_PATHS: &[&str] = &[
    API_TOKEN_PATH,
    ASTRA_USERS_PATH,
    ASTRA_USER_PATH,
    ASTRA_AUTHORIZATION_PATH,
    ASTRA_AUTHORIZATION_CONFIRM_PATH,
    ASTRA_AUTHORIZATION_CODE_PATH,
    ASTRA_REFRESH_TOKEN_PATH,
    ASTRA_TOKEN_PATH,
    ASTRA_TOKEN_REFRESH_PATH,
    ASTRADA_PROXY_PATH,
    ASTRA_PROXY_PATH,
    "/metrics",
    "/healthz",
    "/readyz",
];

crate::core::named_enum! {
    /// Which listener a request arrived on, for metrics and logs.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Listener {
        Public = "public",
        Internal = "internal",
    }
}

/// What the listeners serve, each part built once from its own settings.
pub struct Services {
    pub client_tokens: Arc<ClientTokens>,
    /// Per-user Astra tokens, when `astra.enabled`.
    pub user_tokens: Option<Arc<UserTokens>>,
    /// Who may get the SDK token.
    pub caller_auth: CallerAuth,
    /// Who internal callers are and what each may do.
    pub internal_auth: InternalAuth,
    /// Which origins' pages may read the SDK token.
    pub cors: Cors,
    pub rate_limit: RateLimiter,
    pub audit: AuditTrail,
    /// The upstreams of the proxy routes.
    pub proxy: proxy::upstream::Upstreams,
    pub limits: RequestLimits,
    pub metrics: Metrics,
    /// Whose forwarding headers and request ids the public listener believes.
    pub trusted_proxies: TrustedProxies,
    /// Set on SIGTERM so `/readyz` turns 503 while in-flight requests drain.
    pub shutting_down: Arc<AtomicBool>,
}

/// Both servers, bound and not yet running.
pub struct Listeners {
    pub public: Server,
    pub public_port: u16,
    pub internal: Server,
    pub internal_port: u16,
}

/// Binds both listeners of `settings` and builds their apps.
pub fn bind(services: Services, settings: &ServerSettings) -> std::io::Result<Listeners> {
    let (data, layers) = RouteData::build(services);
    let (public, public_port) = serve(
        settings,
        settings.public_addr,
        Listener::Public,
        layers.clone(),
        public_routes(data.clone()),
    )?;
    let (internal, internal_port) = serve(
        settings,
        settings.internal_addr,
        Listener::Internal,
        layers,
        internal_routes(data),
    )?;
    Ok(Listeners {
        public,
        public_port,
        internal,
        internal_port,
    })
}

/// Each route's state, built once and shared by every worker's app.
#[derive(Clone)]
struct RouteData {
    sdk: web::Data<SdkTokenRoute>,
    api: web::Data<TokenRoute>,
    gate: Arc<InternalGate>,
    proxy: web::Data<ProxyRoutes>,
    /// When `astra.enabled`.
    astra: Option<web::Data<AstraRoutes>>,
    readiness: web::Data<Readiness>,
    metrics: web::Data<MetricsRoute>,
}

impl RouteData {
    fn build(services: Services) -> (Self, Layers) {
        let audit = Arc::new(services.audit);
        let caches = &services.client_tokens.caches;
        let token_route =
            |cache| TokenRoute::new(cache, Arc::clone(&audit), services.metrics.clone());
        let data = Self {
            sdk: web::Data::new(SdkTokenRoute::new(
                token_route(Arc::clone(&caches.sdk)),
                services.caller_auth,
                services.rate_limit,
            )),
            api: web::Data::new(token_route(Arc::clone(&caches.api))),
            gate: Arc::new(InternalGate::new(
                services.internal_auth,
                Arc::clone(&audit),
                services.metrics.clone(),
            )),
            proxy: web::Data::new(ProxyRoutes {
                upstreams: services.proxy,
                api_tokens: Arc::clone(&caches.api),
                users: services.user_tokens.clone(),
                audit: Arc::clone(&audit),
                metrics: services.metrics.clone(),
            }),
            astra: services.user_tokens.as_ref().map(|users| {
                web::Data::new(AstraRoutes {
                    users: Arc::clone(users),
                    audit: Arc::clone(&audit),
                })
            }),
            readiness: web::Data::new(Readiness {
                shutting_down: services.shutting_down,
                client_tokens: Arc::clone(&services.client_tokens),
            }),
            metrics: web::Data::new(MetricsRoute {
                metrics: services.metrics.clone(),
                client_tokens: services.client_tokens,
                user_tokens: services.user_tokens,
            }),
        };
        let layers = Layers {
            limits: services.limits,
            metrics: services.metrics,
            trusted_proxies: Arc::new(services.trusted_proxies),
            cors: Arc::new(services.cors),
        };
        (data, layers)
    }
}

/// The public listener: the SDK token (CORS is the front layer's), the
/// Astra callback, health.
fn public_routes(data: RouteData) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            only(SDK_TOKEN_PATH, "GET, OPTIONS")
                .app_data(data.sdk.clone())
                .route(web::get().to(routes::token::sdk_token))
                .route(web::method(Method::OPTIONS).to(options)),
        );
        if let Some(astra) = &data.astra {
            cfg.service(
                get_only(ASTRA_CALLBACK_PATH)
                    .app_data(astra.clone())
                    .route(web::get().to(astra::callback)),
            );
        }
        health(cfg, &data.readiness);
    }
}

/// The internal listener: the API token, metrics, the Astra routes, the
/// proxies, health; all but health and metrics behind the internal gate.
fn internal_routes(data: RouteData) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            guarded(Arc::clone(&data.gate), API_TOKEN_PATH, "GET")
                .app_data(data.api.clone())
                .route(web::get().to(routes::token::api_token)),
        )
        .service(
            get_only("/metrics")
                .app_data(data.metrics.clone())
                .route(web::get().to(routes::metrics::metrics)),
        );
        let (gate, proxy) = (&data.gate, &data.proxy);
        if let Some(astra) = &data.astra {
            astra_routes(cfg, gate, astra);
        }
        proxy_route(cfg, gate, proxy, ASTRADA_PROXY_PATH, Upstream::Astrada);
        if data.astra.is_some() {
            proxy_route(cfg, gate, proxy, ASTRA_PROXY_PATH, Upstream::Astra);
        }
        health(cfg, &data.readiness);
    }
}

/// What the front layer of both listeners is built from.
#[derive(Clone)]
struct Layers {
    limits: RequestLimits,
    metrics: Metrics,
    trusted_proxies: Arc<TrustedProxies>,
    /// The SDK token's, on the public listener.
    cors: Arc<Cors>,
}

fn serve(
    settings: &ServerSettings,
    addr: SocketAddr,
    listener: Listener,
    layers: Layers,
    routes: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
) -> std::io::Result<(Server, u16)> {
    let tcp = TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let port = tcp.local_addr()?.port();
    let metrics = layers.metrics.request_metrics(
        listener.as_str(),
        PUBLIC_PATHS
            .iter()
            .chain(INTERNAL_PATHS)
            .copied()
            .chain([UNMATCHED]),
    );
    let policy = Policy {
        listener,
        limits: layers.limits,
        cors: (listener == Listener::Public).then_some(layers.cors),
        trusted_proxies: layers.trusted_proxies,
        metrics: Arc::new(metrics),
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(policy.limits)
            .configure(routes.clone())
            .default_service(web::to(not_found))
            .wrap(Front::new(policy.clone()))
    })
    .workers(worker_count(settings.workers))
    .shutdown_timeout(settings.shutdown_timeout_secs)
    .disable_signals()
    .listen(tcp)?
    .run();
    Ok((server, port))
}

fn worker_count(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

fn astra_routes(
    cfg: &mut web::ServiceConfig,
    gate: &Arc<InternalGate>,
    data: &web::Data<AstraRoutes>,
) {
    let route = |path: &'static str, allow: &'static str| {
        guarded(Arc::clone(gate), path, allow).app_data(data.clone())
    };
    cfg.service(route(ASTRA_USERS_PATH, "GET").route(web::get().to(astra::list)))
        .service(
            route(ASTRA_USER_PATH, "GET, DELETE")
                .route(web::get().to(astra::summary))
                .route(web::delete().to(astra::delete)),
        )
        .service(
            route(ASTRA_AUTHORIZATION_PATH, "POST")
                .route(web::post().to(astra::start_authorization)),
        )
        .service(
            route(ASTRA_AUTHORIZATION_CONFIRM_PATH, "POST")
                .route(web::post().to(astra::confirm_authorization)),
        )
        .service(
            route(ASTRA_AUTHORIZATION_CODE_PATH, "POST")
                .route(web::post().to(astra::exchange_code)),
        )
        .service(
            route(ASTRA_REFRESH_TOKEN_PATH, "PUT")
                .route(web::put().to(astra::import_refresh_token)),
        )
        .service(route(ASTRA_TOKEN_PATH, "GET").route(web::get().to(astra::token)))
        .service(
            route(ASTRA_TOKEN_REFRESH_PATH, "POST").route(web::post().to(astra::refresh_stale)),
        );
}

/// One proxy route, behind the gate's proxy check (`access::proxy_guard`).
fn proxy_route(
    cfg: &mut web::ServiceConfig,
    gate: &Arc<InternalGate>,
    data: &web::Data<ProxyRoutes>,
    path: &'static str,
    upstream: Upstream,
) {
    let gate = Arc::clone(gate);
    let route = |method: Method| match upstream {
        Upstream::Astrada => web::route().method(method).to(proxy::astrada),
        Upstream::Astra => web::route().method(method).to(proxy::astra),
    };
    let methods = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut resource = web::resource(proxy_pattern(path))
        .app_data(RouteLabel(path))
        .app_data(data.clone())
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(Problem::from(HttpError::MethodNotAllowed {
                allow: PROXY_METHODS,
            }))
        }));
    for method in methods {
        resource = resource.route(route(method));
    }
    cfg.service(resource.wrap(from_fn(move |req, next| {
        access::proxy_guard(Arc::clone(&gate), path, upstream, req, next)
    })));
}

/// The actix pattern of a documented proxy path: its `{path}` spans segments.
fn proxy_pattern(path: &str) -> String {
    path.replace("{path}", "{path:.*}")
}

fn health(cfg: &mut web::ServiceConfig, readiness: &web::Data<Readiness>) {
    cfg.service(get_only("/healthz").route(web::get().to(routes::health::healthz)))
        .service(
            get_only("/readyz")
                .app_data(readiness.clone())
                .route(web::get().to(routes::health::readyz)),
        );
}

/// A route of the internal listener behind the gate (`access::ACCESS`
/// says which permission each method needs).
fn guarded(
    gate: Arc<InternalGate>,
    path: &'static str,
    allow: &'static str,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    only(path, allow).wrap(from_fn(move |req, next| {
        access::guard(Arc::clone(&gate), path, req, next)
    }))
}

fn get_only(path: &'static str) -> actix_web::Resource {
    only(path, "GET")
}

fn only(path: &'static str, allow: &'static str) -> actix_web::Resource {
    web::resource(path)
        .app_data(RouteLabel(path))
        .default_service(web::to(move || async move {
            Err::<HttpResponse, _>(Problem::from(HttpError::MethodNotAllowed { allow }))
        }))
}

/// A plain `OPTIONS` (not a CORS preflight, which the CORS middleware answers).
async fn options() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ALLOW, "GET, OPTIONS"))
        .finish()
}

/// Answer for any path no route matches.
async fn not_found() -> Result<HttpResponse, Problem> {
    Err(HttpError::NotFound.into())
}

/// Route label of requests no route matched.
const UNMATCHED: &str = "unmatched";

/// The route a request matched, for metric labels: set on every resource
/// (so reading it needs no pattern matching or allocation). Route labels are
/// the closed set of routed paths, so that scanners cannot blow up
/// cardinality.
#[derive(Clone, Copy)]
struct RouteLabel(&'static str);

impl RouteLabel {
    fn of(req: &actix_web::HttpRequest) -> &'static str {
        req.app_data::<RouteLabel>().map_or(UNMATCHED, |r| r.0)
    }
}
