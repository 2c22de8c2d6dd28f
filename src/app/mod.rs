//! The composition root: builds every part from its own settings section,
//! once, wires them into the listeners, and owns the background tasks and
//! the shutdown order. Dev mode lives in [`dev`].

pub mod dev;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::dev::Server;
use tokio::task::JoinHandle;

use crate::caller_auth::{CallerAuth, InternalAuth};
use crate::client_tokens::ClientTokens;
use crate::client_tokens::credentials::{
    AwsSecretsManagerSource, CredentialSource, source_from_settings,
};
use crate::config::{ConfigError, Settings, invalid};
use crate::http::audit::AuditTrail;
use crate::http::client_addr::TrustedProxies;
use crate::http::cors::Cors;
use crate::http::limits::RequestLimits;
use crate::http::proxy::upstream::Upstreams;
use crate::http::rate_limit::RateLimiter;
use crate::http::{self, Services};
use crate::observability::Metrics;
use crate::user_tokens::{self, UserTokens};

/// Runs the service until SIGTERM or SIGINT, then drains and returns.
pub async fn run(settings: Settings) -> Result<(), StartupError> {
    let app = Application::build(settings).await?;
    tracing::info!(
        public_port = app.public_port(),
        internal_port = app.internal_port(),
        "listening"
    );
    app.run_until(shutdown_signal()).await?;
    Ok(())
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the HTTP server: {0}")]
    Server(#[from] std::io::Error),
}

/// Every part of the service, built and checked, before anything listens or
/// runs. Building this is how a configuration is validated.
pub struct Parts {
    services: Services,
    client_tokens: Arc<ClientTokens>,
    user_tokens: Option<Arc<UserTokens>>,
}

impl Parts {
    /// Builds every part with the credential source named in `settings`,
    /// and the Astra secrets from Secrets Manager when `astra.secret_id` is set.
    pub async fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let source = source_from_settings(&settings.credentials).await?;
        if settings.astra.enabled && !settings.astra.secret_id.trim().is_empty() {
            let mut settings = settings.clone();
            read_astra_secret(&mut settings).await?;
            return Self::with_source(&settings, source).await;
        }
        Self::with_source(settings, source).await
    }

    /// Builds every part with an explicit credential source (tests, other backends).
    pub async fn with_source(
        settings: &Settings,
        source: Arc<dyn CredentialSource>,
    ) -> Result<Self, ConfigError> {
        let metrics = Metrics::new();
        let caller_auth = CallerAuth::from_settings(&settings.caller_auth)?;
        let internal_auth = InternalAuth::from_settings(&settings.internal_auth)?;
        let cors = Cors::from_settings(&settings.cors)?;
        let rate_limit = RateLimiter::from_settings(&settings.rate_limit)?;
        let limits = RequestLimits::from_settings(&settings.server, &settings.proxy)?;
        let proxy = Upstreams::from_settings(&settings.proxy, &settings.astra)?;
        let trusted_proxies = TrustedProxies::from_settings(&settings.server)?;
        let client_tokens = Arc::new(ClientTokens::from_settings(settings, source, &metrics)?);
        let user_tokens = UserTokens::from_settings(&settings.astra, &metrics).await?;
        caller_auth.warn_if_open();
        internal_auth.warn_if_open();
        let services = Services {
            client_tokens: Arc::clone(&client_tokens),
            user_tokens: user_tokens.clone(),
            caller_auth,
            internal_auth,
            cors,
            rate_limit,
            audit: AuditTrail::new(settings.rate_limit.max_tracked_callers),
            proxy,
            limits,
            metrics,
            trusted_proxies,
            shutting_down: Arc::new(AtomicBool::new(false)),
        };
        Ok(Self {
            services,
            client_tokens,
            user_tokens,
        })
    }
}

/// Reads `astra.secret_id` once, at start-up, into `[astra]`.
async fn read_astra_secret(settings: &mut Settings) -> Result<(), ConfigError> {
    let id = settings.astra.secret_id.trim().to_owned();
    let mut aws = settings.credentials.clone();
    // The Astra secret is read on its own: the layout here only picks the client.
    aws.secret_id = id.clone();
    aws.api.secret_id.clear();
    aws.sdk.secret_id.clear();
    let reader = AwsSecretsManagerSource::from_settings(&aws).await?;
    match reader.read(&id).await {
        Ok(text) => user_tokens::secret::apply(&mut settings.astra, &text),
        Err(e) => invalid(
            "astra.secret_id",
            format!("cannot be read: {e}"),
            "check the secret's name, region (credentials.aws_region) and the role's secretsmanager:GetSecretValue permission",
        ),
    }
}

/// A built, not yet running, service.
pub struct Application {
    public_port: u16,
    internal_port: u16,
    public: Server,
    internal: Server,
    shutting_down: Arc<AtomicBool>,
    background: Vec<JoinHandle<()>>,
    /// Signs off from the store at shutdown (see `user_tokens::replicas`).
    user_tokens: Option<Arc<UserTokens>>,
}

impl Application {
    /// Builds the service with the credential source named in `settings`.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let parts = Parts::from_settings(&settings).await?;
        Self::start(&settings, parts)
    }

    /// Builds the service with an explicit credential source (tests, other backends).
    pub async fn build_with_source(
        settings: Settings,
        source: Arc<dyn CredentialSource>,
    ) -> Result<Self, StartupError> {
        let parts = Parts::with_source(&settings, source).await?;
        Self::start(&settings, parts)
    }

    /// Binds the listeners and starts the background tasks.
    fn start(settings: &Settings, parts: Parts) -> Result<Self, StartupError> {
        let shutting_down = Arc::clone(&parts.services.shutting_down);
        let listeners = http::bind(parts.services, &settings.server)?;
        let mut background = parts.client_tokens.spawn_background();
        if let Some(users) = &parts.user_tokens {
            background.extend(users.spawn_background());
        }
        Ok(Self {
            public_port: listeners.public_port,
            internal_port: listeners.internal_port,
            public: listeners.public,
            internal: listeners.internal,
            shutting_down,
            background,
            user_tokens: parts.user_tokens,
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
        self.shutting_down.store(true, Ordering::Relaxed);
        tokio::join!(public_handle.stop(true), internal_handle.stop(true));
        for task in self.background {
            task.abort();
        }
        if let Some(users) = &self.user_tokens {
            users.membership().leave().await;
        }
        for server in [public, internal] {
            server.await.map_err(std::io::Error::other)??;
        }
        tracing::info!("stopped");
        Ok(())
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
