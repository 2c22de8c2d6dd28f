//! Builds the configured credential source from `[credentials]`, refusing
//! settings that would load nothing or silently ignore a key.

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::{
    AwsSecretsManagerSource, ClientCredentials, CredentialBundle, CredentialSource, FileSource,
    InlineSource,
};
use crate::config::{
    ClientSettings, ConfigError, CredentialSettings, CredentialSourceKind, invalid,
};
use crate::core::{CredentialSet, PerSet};

/// The client id and secret keys of each set, for error messages.
const KEYS: PerSet<(&str, &str)> = PerSet {
    api: ("credentials.api.client_id", "credentials.api.client_secret"),
    sdk: ("credentials.sdk.client_id", "credentials.sdk.client_secret"),
};

/// Builds the configured source. Async because the AWS configuration chain
/// (region, credentials) is resolved here, once.
pub async fn source_from_settings(
    settings: &CredentialSettings,
) -> Result<Arc<dyn CredentialSource>, ConfigError> {
    if settings.reload_interval_secs == 0 {
        return invalid(
            "credentials.reload_interval_secs",
            "0 would re-read credentials in a busy loop".into(),
            "use a value such as 300",
        );
    }
    Ok(match settings.source {
        CredentialSourceKind::Inline => {
            refuse_aws_keys(settings, "inline")?;
            Arc::new(InlineSource::new(CredentialBundle {
                sets: PerSet::try_from_fn(|set| {
                    let clients = PerSet {
                        api: &settings.api,
                        sdk: &settings.sdk,
                    };
                    inline_pair(set, clients.get(set))
                })?,
                version: None,
            }))
        }
        CredentialSourceKind::File => {
            refuse_aws_keys(settings, "file")?;
            if settings.file.as_os_str().is_empty() {
                return invalid(
                    "credentials.file",
                    "source is \"file\" but no file is named".into(),
                    "set ATV_CREDENTIALS__FILE to a JSON file (see docs/security/secrets-and-keys.md)",
                );
            }
            Arc::new(FileSource::new(settings.file.clone()))
        }
        CredentialSourceKind::AwsSecretsManager => {
            Arc::new(AwsSecretsManagerSource::from_settings(settings).await?)
        }
    })
}

fn inline_pair(
    set: CredentialSet,
    client: &ClientSettings,
) -> Result<ClientCredentials, ConfigError> {
    let (id_key, secret_key) = *KEYS.get(set);
    let upper = set.as_str().to_ascii_uppercase();
    if client.client_id.trim().is_empty() {
        return invalid(
            id_key,
            "is empty".into(),
            &format!(
                "set ATV_CREDENTIALS__{upper}__CLIENT_ID, or use credentials.source = \"file\" or \"aws_secrets_manager\""
            ),
        );
    }
    if client.client_secret.expose_secret().trim().is_empty() {
        return invalid(
            secret_key,
            "is empty".into(),
            &format!(
                "set ATV_CREDENTIALS__{upper}__CLIENT_SECRET, or use credentials.source = \"file\" or \"aws_secrets_manager\""
            ),
        );
    }
    Ok(ClientCredentials {
        client_id: client.client_id.clone(),
        client_secret: client.client_secret.clone(),
    })
}

/// Secrets Manager keys under another source would be silently ignored, and
/// the service would run on credentials the operator did not mean.
fn refuse_aws_keys(c: &CredentialSettings, source: &str) -> Result<(), ConfigError> {
    let keys: [(&'static str, &str); 4] = [
        ("credentials.secret_id", &c.secret_id),
        ("credentials.api.secret_id", &c.api.secret_id),
        ("credentials.sdk.secret_id", &c.sdk.secret_id),
        ("credentials.aws_region", &c.aws_region),
    ];
    match keys.iter().find(|(_, value)| !value.trim().is_empty()) {
        Some((key, _)) => invalid(
            key,
            format!("is set but credentials.source is \"{source}\", which ignores it"),
            "set ATV_CREDENTIALS__SOURCE=aws_secrets_manager, or remove the key",
        ),
        None => Ok(()),
    }
}
