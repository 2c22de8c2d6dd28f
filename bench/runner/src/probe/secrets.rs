//! `atv-bench put-secret`: the credentials secret the Secrets Manager drills
//! serve from moto, in the shape of the credentials file
//! (`{"api": {...}, "sdk": {...}}`). AWS settings come from the environment
//! (`AWS_ENDPOINT_URL_SECRETS_MANAGER`, test keys, region).

use anyhow::Context;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Secret name.
    #[arg(long)]
    secret_id: String,
    /// API set as `client_id:client_secret`.
    #[arg(long)]
    api: String,
    /// SDK set as `client_id:client_secret`.
    #[arg(long)]
    sdk: String,
}

fn set(pair: &str) -> anyhow::Result<serde_json::Value> {
    let (id, secret) = pair
        .split_once(':')
        .context("expected client_id:client_secret")?;
    Ok(json!({"client_id": id, "client_secret": secret}))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let value = json!({"api": set(&args.api)?, "sdk": set(&args.sdk)?}).to_string();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let put = sm
        .put_secret_value()
        .secret_id(&args.secret_id)
        .secret_string(&value)
        .send()
        .await;
    match put {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            sm.create_secret()
                .name(&args.secret_id)
                .secret_string(&value)
                .send()
                .await
                .context("cannot create the secret")?;
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context("cannot put the secret")),
    }
}
