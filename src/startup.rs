//! Wires configuration into running listeners and background tasks, so that
//! `main` and the tests start the service the same way.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tokio::task::JoinHandle;

use crate::audit::AuditTrail;
use crate::caller_auth::{CallerAuth, InternalAuth};
use crate::config::Settings;
use crate::cors::Cors;
use crate::credentials::{CredentialSet, CredentialSource, CredentialStore, source_from_settings};
use crate::metrics::Metrics;
use crate::oauth_client::{ClientBuildError, ExchangeRequest, OAuthClient};
use crate::rate_limit::RateLimiter;
use crate::routes::{self, Listener};
use crate::telemetry;
use crate::token_cache::{CachePolicy, TokenCache, UpstreamExchanger};

/// Shared by every handler on both listeners.
pub struct AppState {
    pub api: Arc<TokenCache>,
    pub sdk: Arc<TokenCache>,
    pub credentials: Arc<CredentialStore>,
    pub metrics: Metrics,
    /// Who may get the SDK token.
    pub caller_auth: CallerAuth,
    /// Who may get the API token.
    pub internal_auth: InternalAuth,
    /// Which origins' pages may read the SDK token.
    pub cors: Cors,
    pub rate_limit: RateLimiter,
    pub audit: AuditTrail,
    pub limits: RequestLimits,
    /// Set on SIGTERM so `/readyz` turns 503 while in-flight requests drain.
    pub shutting_down: AtomicBool,
}

/// Size limits applied to every request on both listeners.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_body_bytes: u64,
    pub max_header_bytes: usize,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error("cannot start the HTTP server: {0}")]
    Server(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// A built, not yet running, service.
pub struct Application {
    public_port: u16,
    internal_port: u16,
    public: Server,
    internal: Server,
    state: web::Data<AppState>,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    /// Builds the service with the credential source named in `settings`.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let source = source_from_settings(&settings.credentials).await?;
        Self::build_with_source(settings, source).await
    }

    /// Builds the service with an explicit credential source (tests, other backends).
    pub async fn build_with_source(
        settings: Settings,
        source: Arc<dyn CredentialSource>,
    ) -> Result<Self, StartupError> {
        let caller_auth = CallerAuth::from_settings(&settings.caller_auth)?;
        let internal_auth = InternalAuth::from_settings(&settings.internal_auth)?;
        caller_auth.warn_if_open();
        internal_auth.warn_if_open();
        let cors = Cors::from_settings(&settings.cors)?;
        let rate_limit = RateLimiter::new(&settings.rate_limit);
        let audit = AuditTrail::new(settings.rate_limit.max_tracked_callers);
        let metrics = Metrics::new();
        let policy = CachePolicy::from_settings(&settings);
        // One forced re-read per max backoff window keeps invalid_client storms cheap.
        let credentials = Arc::new(CredentialStore::new(
            source,
            policy.backoff_max,
            metrics.clone(),
        ));
        let exchanger = Arc::new(UpstreamExchanger {
            client: OAuthClient::new(&settings)?,
            credentials: Arc::clone(&credentials),
            api: exchange_request(&settings, CredentialSet::Api),
            sdk: exchange_request(&settings, CredentialSet::Sdk),
        });
        let api = TokenCache::new(
            CredentialSet::Api,
            policy.clone(),
            exchanger.clone(),
            metrics.clone(),
        );
        let sdk = TokenCache::new(CredentialSet::Sdk, policy, exchanger, metrics.clone());

        let reload_interval = Duration::from_secs(settings.credentials.reload_interval_secs);
        let background = vec![
            tokio::spawn(Arc::clone(&credentials).run_reload_loop(reload_interval)),
            tokio::spawn(Arc::clone(&api).run_refresh_loop(credentials.subscribe())),
            tokio::spawn(Arc::clone(&sdk).run_refresh_loop(credentials.subscribe())),
        ];

        let state = web::Data::new(AppState {
            api,
            sdk,
            credentials,
            metrics,
            caller_auth,
            internal_auth,
            cors,
            rate_limit,
            audit,
            limits: RequestLimits {
                max_body_bytes: settings.server.max_body_bytes,
                max_header_bytes: settings.server.max_header_bytes,
            },
            shutting_down: AtomicBool::new(false),
        });

        let (public, public_port) = serve(
            &settings,
            settings.server.public_addr,
            Listener::Public,
            state.clone(),
        )?;
        let (internal, internal_port) = serve(
            &settings,
            settings.server.internal_addr,
            Listener::Internal,
            state.clone(),
        )?;
        Ok(Self {
            public_port,
            internal_port,
            public,
            internal,
            state,
            background,
        })
    }

    /// The bound public port (useful when configured as 0).
    pub fn public_port(&self) -> u16 {
        self.public_port
    }

    /// The bound internal port (useful when configured as 0).
    pub fn internal_port(&self) -> u16 {
        self.internal_port
    }

    /// Serves until `shutdown` resolves, then turns readiness off, stops
    /// accepting, lets in-flight requests finish and returns.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let public_handle = self.public.handle();
        let internal_handle = self.internal.handle();
        let public = tokio::spawn(self.public);
        let internal = tokio::spawn(self.internal);
        shutdown.await;
        tracing::info!("shutdown requested; draining in-flight requests");
        self.state.shutting_down.store(true, Ordering::Relaxed);
        tokio::join!(public_handle.stop(true), internal_handle.stop(true));
        for task in self.background {
            task.abort();
        }
        for server in [public, internal] {
            server.await.map_err(std::io::Error::other)??;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

fn exchange_request(settings: &Settings, set: CredentialSet) -> ExchangeRequest {
    let client = match set {
        CredentialSet::Api => &settings.credentials.api,
        CredentialSet::Sdk => &settings.credentials.sdk,
    };
    ExchangeRequest {
        auth_style: client.auth_style,
        scope: Some(client.scope.clone()).filter(|s| !s.trim().is_empty()),
    }
}

fn serve(
    settings: &Settings,
    addr: std::net::SocketAddr,
    listener: Listener,
    state: web::Data<AppState>,
) -> Result<(Server, u16), StartupError> {
    let tcp = TcpListener::bind(addr).map_err(|source| StartupError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let port = tcp.local_addr()?.port();
    let server = HttpServer::new(move || {
        let routes = match listener {
            Listener::Public => routes::public,
            Listener::Internal => routes::internal,
        };
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(routes::request_limits))
            .wrap(routes::security_headers())
            .wrap(from_fn(move |req, next| {
                routes::record_metrics(listener, req, next)
            }))
            .wrap(from_fn(telemetry::trace_request))
            .configure(routes)
            .default_service(web::to(routes::not_found))
    })
    .workers(worker_count(settings.server.workers))
    .shutdown_timeout(settings.server.shutdown_timeout_secs)
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

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
