//! The Astra part of a Secrets Manager secret: client credentials and the
//! encryption keyring, so that none of them sits in configuration files.
//!
//! Layout: `{"client_id": "…", "client_secret": "…", "encryption_keys":
//! {"ID": "BASE64", …}, "active_key_id": "ID", "webhook_secret": "…"}`
//! (`webhook_secret` optional).

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::{AstraSettings, ConfigError, invalid};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AstraSecret {
    client_id: String,
    client_secret: SecretString,
    encryption_keys: BTreeMap<String, SecretString>,
    active_key_id: String,
    #[serde(default)]
    webhook_secret: Option<SecretString>,
}

/// Replaces the secret-held keys of `settings` with the values in `text`.
pub fn apply(settings: &mut AstraSettings, text: &SecretString) -> Result<(), ConfigError> {
    // serde's message could quote a value: only say that the shape is wrong.
    let Ok(secret) = serde_json::from_str::<AstraSecret>(text.expose_secret()) else {
        return invalid(
            "astra.secret_id",
            "the secret's text is not the expected JSON object".into(),
            "store {\"client_id\", \"client_secret\", \"encryption_keys\": {\"ID\": \"BASE64\"}, \"active_key_id\"} (docs/security/secrets-and-keys.md: Astra secrets)",
        );
    };
    let keys: Vec<String> = secret
        .encryption_keys
        .iter()
        .map(|(id, key)| format!("{id}:{}", key.expose_secret()))
        .collect();
    settings.client_id = secret.client_id;
    settings.client_secret = secret.client_secret;
    settings.encryption_keys = SecretString::from(keys.join(","));
    settings.active_key_id = secret.active_key_id;
    if let Some(webhook) = secret.webhook_secret {
        settings.webhook_secret = webhook;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AstraSettings {
        crate::config::Settings::defaults()
            .expect("defaults parse")
            .astra
    }

    #[test]
    fn the_secret_replaces_credentials_and_keys() {
        let mut s = settings();
        let text = SecretString::from(
            r#"{"client_id":"c","client_secret":"s3cr3t","encryption_keys":{"k1":"AAAA","k2":"BBBB"},"active_key_id":"k2"}"#,
        );
        apply(&mut s, &text).expect("valid secret");
        assert_eq!(s.client_id, "c");
        assert_eq!(s.client_secret.expose_secret(), "s3cr3t");
        assert_eq!(s.encryption_keys.expose_secret(), "k1:AAAA,k2:BBBB");
        assert_eq!(s.active_key_id, "k2");
    }

    #[test]
    fn a_malformed_secret_is_refused_without_quoting_it() {
        let mut s = settings();
        let text = SecretString::from(r#"{"client_id":"c","client_secret":"s3cr3t"}"#);
        let error = apply(&mut s, &text)
            .expect_err("keys are missing")
            .to_string();
        assert!(error.contains("astra.secret_id"), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}
