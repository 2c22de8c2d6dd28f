//! What the in-process fakes share: a loopback guard for their control route,
//! and starting an actix server on the current Tokio runtime.

use std::net::{SocketAddr, TcpListener};

use actix_web::{FromRequest, Handler, Responder, web};

/// A fake's listening socket, and whether the fake mounts its control route.
pub(crate) struct Listener {
    pub tcp: TcpListener,
    pub addr: SocketAddr,
    pub control: bool,
}

impl Listener {
    /// Binds `addr` (port 0 picks a free one) for a fake without control route.
    pub fn plain(addr: SocketAddr) -> std::io::Result<Self> {
        Self::bind(addr, false)
    }

    /// Binds `addr` for `fake` with its control route, which has no
    /// authentication, so anything but a loopback address is refused.
    pub fn with_control(addr: SocketAddr, fake: &str) -> std::io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{fake}'s control route listens on loopback only, not {addr}"),
            ));
        }
        Self::bind(addr, true)
    }

    fn bind(addr: SocketAddr, control: bool) -> std::io::Result<Self> {
        let tcp = TcpListener::bind(addr)?;
        let addr = tcp.local_addr()?;
        Ok(Self { tcp, addr, control })
    }
}

/// `GET /_control` and `POST /_control`, when `control` is on.
pub(crate) fn control_routes<G, GArgs, S, SArgs>(
    control: bool,
    get: G,
    set: S,
) -> impl FnOnce(&mut web::ServiceConfig)
where
    G: Handler<GArgs>,
    GArgs: FromRequest + 'static,
    G::Output: Responder + 'static,
    S: Handler<SArgs>,
    SArgs: FromRequest + 'static,
    S::Output: Responder + 'static,
{
    move |cfg| {
        if control {
            cfg.route("/_control", web::get().to(get))
                .route("/_control", web::post().to(set));
        }
    }
}

/// Serves the apps `$app` builds on `$tcp` with one worker and no signal
/// handling, spawned on the current Tokio runtime; evaluates to the
/// [`ServerHandle`](actix_web::dev::ServerHandle), or returns the bind error.
///
/// A macro because the bounds on an actix app factory name types from
/// `actix-http` and `actix-service`, which this crate does not depend on.
macro_rules! spawn_server {
    ($tcp:expr, $app:expr) => {{
        let server = actix_web::HttpServer::new($app)
            .workers(1)
            .disable_signals()
            .listen($tcp)?
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        handle
    }};
}
