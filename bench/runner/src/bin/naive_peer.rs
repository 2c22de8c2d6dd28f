//! The naive peer for `bench/run.sh`: what the vendor's sample does without a
//! cache — one upstream exchange per request. Run against the same fake
//! upstream (with a realistic latency) to show what the cache saves.

#[path = "common/serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "One upstream token exchange per request (no cache), for contrast")]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:7090")]
    addr: SocketAddr,
    /// Worker threads (use the vendor's `server.workers`).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// The token endpoint, e.g. the fake upstream's.
    #[arg(long)]
    token_url: String,
    /// Credentials as `client_id:client_secret`.
    #[arg(long)]
    client: String,
}

struct Upstream {
    http: reqwest::Client,
    url: String,
    body: serde_json::Value,
}

async fn token(upstream: web::Data<Upstream>) -> HttpResponse {
    let answer = upstream
        .http
        .post(&upstream.url)
        .json(&upstream.body)
        .send()
        .await;
    match answer {
        Ok(answer) if answer.status().is_success() => match answer.bytes().await {
            Ok(bytes) => HttpResponse::Ok()
                .content_type("application/json")
                .insert_header(("cache-control", "no-store"))
                .body(bytes),
            Err(_) => HttpResponse::BadGateway().finish(),
        },
        _ => HttpResponse::BadGateway().finish(),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (id, secret) = args
        .client
        .split_once(':')
        .context("--client must be client_id:client_secret")?;
    let upstream = web::Data::new(Upstream {
        http: reqwest::Client::builder()
            .timeout(Duration::from_millis(2500))
            .build()
            .context("cannot build the HTTP client")?,
        url: args.token_url.clone(),
        body: serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": id,
            "client_secret": secret,
        }),
    });
    println!(
        "naive_peer ready: http://{}/ -> {}",
        args.addr, args.token_url
    );
    serve::serve(args.addr, args.workers, upstream, token).await
}
