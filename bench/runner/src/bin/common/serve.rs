//! The one-route actix-web server the bench's comparison servers share
//! (`ceiling`, `naive_peer`): every path answered by one handler, with
//! shared state, on a given address and worker count.

use std::net::SocketAddr;

use actix_web::dev::Handler;
use actix_web::{App, FromRequest, HttpServer, Responder, web};
use anyhow::Context;

pub async fn serve<T, F, Args>(
    addr: SocketAddr,
    workers: usize,
    state: web::Data<T>,
    handler: F,
) -> anyhow::Result<()>
where
    T: Send + Sync + 'static,
    F: Handler<Args> + Send + Clone + 'static,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::to(handler.clone()))
    })
    .workers(workers)
    .bind(addr)
    .with_context(|| format!("cannot listen on {addr}"))?
    .run()
    .await
    .context("server failed")
}
