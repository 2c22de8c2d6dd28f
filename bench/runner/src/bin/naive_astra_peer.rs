//! The naive peer for `bench/drills/astra-stampede.sh`: per-user Astra tokens
//! the usual way, read → refresh if expired → write back, with no lease and
//! no in-process de-duplication. Several processes share one PostgreSQL
//! table, as replicas of such a service would. NOT FOR PRODUCTION: tokens
//! are stored in clear text, nobody is authenticated.
//!
//! Routes (the vendor's shapes, so the same probe drives both):
//! `POST /astra/users/{u}/authorization-code {"code"}` and
//! `GET /astra/users/{u}/token` → `{"access_token", "generation"}`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

#[derive(Parser)]
#[command(
    about = "Lock-free read-refresh-write Astra token peer, for contrast (not for production)"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:7092")]
    addr: SocketAddr,
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// `postgres://…`; the table `naive_astra_users` is created if missing.
    #[arg(long)]
    store_url: String,
    /// The fake Astra's base URL (token endpoint at `v1/oauth/token`).
    #[arg(long)]
    astra_url: url::Url,
    #[arg(long, default_value = "bench-astra")]
    client_id: String,
    #[arg(long, default_value = "bench-astra-secret-not-real")]
    client_secret: String,
    #[arg(long)]
    redirect_uri: String,
    /// Refresh when less than this is left (the vendor's default margin).
    #[arg(long, default_value_t = 300)]
    margin_secs: i64,
}

struct Peer {
    db: PgPool,
    http: reqwest::Client,
    token_url: url::Url,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    margin_secs: i64,
}

#[derive(Deserialize)]
struct AstraTokens {
    access_token: String,
    refresh_token: String,
    expires_in: i64,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Peer {
    async fn grant(&self, form: &[(&str, &str)]) -> anyhow::Result<AstraTokens> {
        let answer = self
            .http
            .post(self.token_url.clone())
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(form)
            .send()
            .await?
            .error_for_status()?;
        Ok(answer.json().await?)
    }

    async fn store(&self, user: &str, tokens: &AstraTokens) -> anyhow::Result<i64> {
        let row = sqlx::query(
            "INSERT INTO naive_astra_users (user_ref, access_token, refresh_token, access_expires_at, generation) \
             VALUES ($1, $2, $3, $4, 1) \
             ON CONFLICT (user_ref) DO UPDATE SET access_token = $2, refresh_token = $3, \
             access_expires_at = $4, generation = naive_astra_users.generation + 1 \
             RETURNING generation",
        )
        .bind(user)
        .bind(&tokens.access_token)
        .bind(&tokens.refresh_token)
        .bind(now() + tokens.expires_in)
        .fetch_one(&self.db)
        .await?;
        Ok(row.try_get("generation")?)
    }

    /// Read, refresh if due, write: the race this drill exists to show.
    async fn token(&self, user: &str) -> anyhow::Result<Option<(String, i64)>> {
        let Some(row) = sqlx::query(
            "SELECT access_token, refresh_token, access_expires_at, generation \
             FROM naive_astra_users WHERE user_ref = $1",
        )
        .bind(user)
        .fetch_optional(&self.db)
        .await?
        else {
            return Ok(None);
        };
        let expires_at: i64 = row.try_get("access_expires_at")?;
        if expires_at - self.margin_secs > now() {
            return Ok(Some((
                row.try_get("access_token")?,
                row.try_get("generation")?,
            )));
        }
        let refresh_token: String = row.try_get("refresh_token")?;
        let tokens = self
            .grant(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
                ("redirect_uri", &self.redirect_uri),
            ])
            .await?;
        let generation = self.store(user, &tokens).await?;
        Ok(Some((tokens.access_token, generation)))
    }
}

async fn token(peer: web::Data<Peer>, user: web::Path<String>) -> HttpResponse {
    match peer.token(&user).await {
        Ok(Some((access_token, generation))) => HttpResponse::Ok().json(serde_json::json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "generation": generation,
        })),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(e) => {
            eprintln!("token for {user}: {e:#}");
            HttpResponse::BadGateway().finish()
        }
    }
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

async fn exchange_code(
    peer: web::Data<Peer>,
    user: web::Path<String>,
    body: web::Json<CodeBody>,
) -> HttpResponse {
    let stored = async {
        let tokens = peer
            .grant(&[
                ("grant_type", "authorization_code"),
                ("code", &body.code),
                ("redirect_uri", &peer.redirect_uri),
            ])
            .await?;
        peer.store(&user, &tokens).await
    };
    match stored.await {
        Ok(generation) => HttpResponse::Ok().json(serde_json::json!({ "generation": generation })),
        Err(e) => {
            eprintln!("code for {user}: {e:#}");
            HttpResponse::BadGateway().finish()
        }
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = PgPoolOptions::new()
        .max_connections(8)
        .connect(&args.store_url)
        .await
        .context("cannot connect to the store")?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS naive_astra_users (\
         user_ref TEXT PRIMARY KEY, access_token TEXT NOT NULL, refresh_token TEXT NOT NULL, \
         access_expires_at BIGINT NOT NULL, generation BIGINT NOT NULL)",
    )
    .execute(&db)
    .await
    .context("cannot create naive_astra_users (start one peer first, then the others)")?;
    let peer = web::Data::new(Peer {
        db,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .context("cannot build the HTTP client")?,
        token_url: args
            .astra_url
            .join("v1/oauth/token")
            .context("--astra-url")?,
        client_id: args.client_id,
        client_secret: args.client_secret,
        redirect_uri: args.redirect_uri,
        margin_secs: args.margin_secs,
    });
    println!("naive_astra_peer ready: http://{}/", args.addr);
    HttpServer::new(move || {
        App::new()
            .app_data(peer.clone())
            .route("/readyz", web::get().to(HttpResponse::Ok))
            .route("/astra/users/{user}/token", web::get().to(token))
            .route(
                "/astra/users/{user}/authorization-code",
                web::post().to(exchange_code),
            )
    })
    .workers(args.workers)
    .bind(args.addr)
    .with_context(|| format!("cannot listen on {}", args.addr))?
    .run()
    .await
    .context("server failed")
}
