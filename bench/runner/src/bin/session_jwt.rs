//! Mints a session JWT for benchmarks with caller auth on (`bench/auth.sh`):
//! what a team's login service would hand its browser. Test keys only.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

#[derive(Parser)]
#[command(about = "Signs a session JWT with a PEM private key (benchmarks only)")]
struct Args {
    /// PEM private key (RSA for RS256, EC P-256 for ES256).
    #[arg(long)]
    key: PathBuf,
    /// RS256 or ES256.
    #[arg(long, default_value = "RS256")]
    alg: String,
    #[arg(long)]
    issuer: String,
    #[arg(long)]
    audience: String,
    #[arg(long, default_value = "bench-user")]
    subject: String,
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
    /// `kid` header, when the verifier selects keys by id.
    #[arg(long)]
    kid: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pem = std::fs::read(&args.key).with_context(|| format!("cannot read {:?}", args.key))?;
    let (alg, key) = match args.alg.as_str() {
        "RS256" => (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem)?),
        "ES256" => (Algorithm::ES256, EncodingKey::from_ec_pem(&pem)?),
        other => anyhow::bail!("unsupported --alg {other}: use RS256 or ES256"),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "iss": args.issuer,
        "aud": args.audience,
        "sub": args.subject,
        "iat": now,
        "nbf": now,
        "exp": now + args.ttl_secs,
    });
    let mut header = Header::new(alg);
    header.kid = args.kid;
    println!("{}", jsonwebtoken::encode(&header, &claims, &key)?);
    Ok(())
}
