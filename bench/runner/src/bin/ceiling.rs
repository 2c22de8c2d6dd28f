//! The throughput ceiling for `bench/run.sh`: a bare actix-web handler that
//! returns a constant JSON body of the same size as a real token answer, with
//! the same worker count. Whatever the vendor loses against this is the cost
//! of its own work (cache lookup, middleware, metrics, serialization).

#[path = "common/serve.rs"]
mod serve;

use std::net::SocketAddr;

use actix_web::{HttpResponse, web};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Bare actix-web server returning a constant token-shaped JSON body")]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:7080")]
    addr: SocketAddr,
    /// Worker threads (use the vendor's `server.workers`).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Body size in bytes (use the size of a real `/astrada-sdk-token` body).
    #[arg(long, default_value_t = 420)]
    body_bytes: usize,
}

fn body(size: usize) -> String {
    let frame = r#"{"access_token":"","expires_in":299,"token_type":"Bearer"}"#;
    let token = "x".repeat(size.saturating_sub(frame.len()));
    format!(r#"{{"access_token":"{token}","expires_in":299,"token_type":"Bearer"}}"#)
}

async fn constant(body: web::Data<web::Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.get_ref().clone())
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = web::Bytes::from(body(args.body_bytes));
    println!(
        "ceiling ready: http://{}/ ({} byte body)",
        args.addr,
        body.len()
    );
    serve::serve(args.addr, args.workers, web::Data::new(body), constant).await
}
