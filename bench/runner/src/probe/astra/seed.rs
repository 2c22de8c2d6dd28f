//! `atv-bench astra seed-direct`: many users at once, without the OAuth page
//! and without the vendor's Astra cap. The fake Astra creates users
//! `PREFIX{first}..` with tokens derived from a nonce (`POST /_control
//! {"seed": …}`); this computes the same tokens, seals them with the
//! crate's own [`TokenCipher`] under the key the replicas were given, and
//! `COPY`s the rows into `astra_users` in one transaction. The vendor's
//! migrations must have run (start one replica first), and the users must
//! not exist yet (`COPY` does not upsert).

use std::time::Instant;

use anyhow::Context;
use astrada_token_vendor::user_tokens::{Field, TokenCipher, UserRef};
use atv_dev_fakes::fake_astra::seeded_tokens;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::probe::load::unix_ms;

/// Astra's refresh tokens live 10 days; rows say so as the vendor's do.
const REFRESH_LIFETIME_SECS: i64 = 10 * 86_400;
/// Rows per `COPY` message: large enough to keep PostgreSQL busy, small
/// enough that a million users never sit in memory as one text.
const CHUNK_ROWS: u64 = 10_000;

#[derive(clap::Args, Clone)]
pub struct SeedDirectArgs {
    /// The fake Astra's base URL.
    #[arg(long)]
    pub fake: url::Url,
    /// The replicas' `astra.store_url` (PostgreSQL).
    #[arg(long)]
    pub store_url: String,
    #[arg(long)]
    pub users: u64,
    #[arg(long, default_value = "u")]
    pub prefix: String,
    #[arg(long, default_value_t = 0)]
    pub first: u64,
    /// Tokens differ per nonce; a fresh one per run by default.
    #[arg(long)]
    pub nonce: Option<String>,
    /// How old the refresh tokens are (at the fake and in the rows).
    #[arg(long, default_value_t = 0)]
    pub refresh_issued_ago_secs: i64,
    /// `next_refresh_at`, relative to now (negative: already due).
    #[arg(long, default_value_t = 7 * 86_400, allow_negative_numbers = true)]
    pub next_refresh_in_secs: i64,
    /// `access_expires_at`, relative to now (0 or less: expired in the row).
    #[arg(long, default_value_t = 7200, allow_negative_numbers = true)]
    pub access_expires_in_secs: i64,
    /// The replicas' keyring, `ID:BASE64[,ID:BASE64…]`.
    #[arg(long, env = "ATV_ASTRA__ENCRYPTION_KEYS", hide_env_values = true)]
    pub encryption_keys: String,
    #[arg(long, env = "ATV_ASTRA__ACTIVE_KEY_ID", default_value = "k1")]
    pub active_key_id: String,
}

/// What seeding took, as JSON on stdout.
#[derive(Serialize)]
pub struct Seeded {
    pub seeded: u64,
    pub fake_ms: u64,
    pub rows_ms: u64,
    /// When the rows became visible (the `COPY` committed), unix ms.
    pub committed_unix_ms: u64,
    /// `now` the row times were computed from, unix seconds.
    pub now_secs: i64,
}

fn cipher(args: &SeedDirectArgs) -> anyhow::Result<TokenCipher> {
    let mut keys = Vec::new();
    for entry in args
        .encryption_keys
        .split(',')
        .filter(|e| !e.trim().is_empty())
    {
        // Never echo the entry: it is key material.
        let (id, key) = entry
            .trim()
            .split_once(':')
            .context("a key is not ID:BASE64")?;
        keys.push((id.to_owned(), SecretString::from(key.to_owned())));
    }
    TokenCipher::new(keys, args.active_key_id.clone()).context("the keyring is not valid")
}

fn hex_bytea(out: &mut String, blob: &[u8]) {
    out.push_str("\\x");
    out.push_str(&hex::encode(blob));
}

/// One CSV row per user in the column order of [`COPY`].
fn rows(
    args: &SeedDirectArgs,
    cipher: &TokenCipher,
    nonce: &str,
    now: i64,
    range: std::ops::Range<u64>,
) -> anyhow::Result<String> {
    let mut out = String::with_capacity((range.end - range.start) as usize * 400);
    let issued = now - args.refresh_issued_ago_secs;
    for i in range {
        let name = format!("{}{i}", args.prefix);
        let user = UserRef::parse(&name).context("the prefix makes an invalid user_ref")?;
        let tokens = seeded_tokens(nonce, &name);
        let access = cipher.seal(
            &user,
            Field::AccessToken,
            &SecretString::from(tokens.access_token),
        )?;
        let refresh = cipher.seal(
            &user,
            Field::RefreshToken,
            &SecretString::from(tokens.refresh_token),
        )?;
        out.push_str(&format!("{name},active,1,{},", access.key_id));
        hex_bytea(&mut out, &access.blob);
        out.push_str(&format!(
            ",{},{},",
            now + args.access_expires_in_secs,
            refresh.key_id
        ));
        hex_bytea(&mut out, &refresh.blob);
        out.push_str(&format!(
            ",{issued},{},{},{now},{now}\n",
            issued + REFRESH_LIFETIME_SECS,
            now + args.next_refresh_in_secs,
        ));
    }
    Ok(out)
}

const COPY: &str = "COPY astra_users (user_ref, status, generation, access_key_id, access_token, \
     access_expires_at, refresh_key_id, refresh_token, refresh_issued_at, refresh_expires_at, \
     next_refresh_at, created_at, updated_at) FROM STDIN WITH (FORMAT csv)";

/// Seeds the fake, then the rows; see the module docs.
pub async fn seed_direct(args: &SeedDirectArgs) -> anyhow::Result<Seeded> {
    let cipher = cipher(args)?;
    let nonce = args
        .nonce
        .clone()
        .unwrap_or_else(|| format!("{:016x}", fastrand::u64(..)));
    let http = reqwest::Client::new();
    let started = Instant::now();
    http.post(args.fake.join("_control")?)
        .json(&json!({ "seed": {
            "prefix": args.prefix,
            "first": args.first,
            "count": args.users,
            "nonce": nonce,
            "refresh_issued_ago_secs": args.refresh_issued_ago_secs.max(0),
        }}))
        .send()
        .await?
        .error_for_status()
        .context("the fake refused the seed")?;
    let fake_ms = started.elapsed().as_millis() as u64;

    let started = Instant::now();
    let now = (unix_ms() / 1000) as i64;
    let mut conn = PgConnection::connect(&args.store_url)
        .await
        .context("cannot connect to the store")?;
    // Sealing is CPU work: a thread prepares the next chunk while PostgreSQL
    // takes the current one.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<String>>(2);
    let producer = {
        let args = args.clone();
        std::thread::spawn(move || {
            let end = args.first + args.users;
            let mut from = args.first;
            while from < end {
                let to = (from + CHUNK_ROWS).min(end);
                let chunk = rows(&args, &cipher, &nonce, now, from..to);
                let failed = chunk.is_err();
                if tx.blocking_send(chunk).is_err() || failed {
                    break;
                }
                from = to;
            }
        })
    };
    let mut copy = conn.copy_in_raw(COPY).await?;
    while let Some(chunk) = rx.recv().await {
        copy.send(chunk?.as_bytes()).await?;
    }
    let copied = copy
        .finish()
        .await
        .context("COPY into astra_users failed")?;
    anyhow::ensure!(
        copied == args.users,
        "COPY stored {copied} of {} rows",
        args.users
    );
    let committed_unix_ms = unix_ms();
    conn.close().await?;
    if producer.join().is_err() {
        anyhow::bail!("the row producer panicked");
    }
    Ok(Seeded {
        seeded: args.users,
        fake_ms,
        rows_ms: started.elapsed().as_millis() as u64,
        committed_unix_ms,
        now_secs: now,
    })
}

pub async fn run(args: SeedDirectArgs) -> anyhow::Result<()> {
    let seeded = seed_direct(&args).await?;
    println!("{}", serde_json::to_string(&seeded)?);
    Ok(())
}
