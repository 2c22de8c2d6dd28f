//! AWS Secrets Manager as a credential source: where customers keep the
//! Astrada credentials in production, rotated in place without a restart.
//!
//! Everything AWS-specific (region, credentials, endpoint) follows the SDK's
//! standard chains, so IRSA, EKS Pod Identity, environment variables,
//! profiles and `AWS_ENDPOINT_URL_SECRETS_MANAGER` work as operators expect.
//! The secret's text goes straight into a [`SecretString`]; SDK errors are
//! turned into fixed, curated reasons and never formatted as they come.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use secrecy::{ExposeSecret, SecretString};

use super::{CredentialBundle, CredentialError, CredentialSource, Origin};
use crate::config::{ConfigError, CredentialSettings, invalid};
use crate::core::{CredentialSet, PerSet};

// A reload must never hang: the SDK retries within these bounds, and the
// reload loop retries after them.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Which secrets hold the two credential sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretLayout {
    /// One secret (name or ARN) whose value is `{"api": {…}, "sdk": {…}}`.
    Bundle(String),
    /// One secret per set, each `{"client_id": "…", "client_secret": "…"}`;
    /// for customers who store each Astrada credential set as it was issued.
    PerSet { api: String, sdk: String },
}

impl SecretLayout {
    /// The layout named by `credentials.secret_id` or `credentials.{api,sdk}.secret_id`:
    /// exactly one of the two must be set.
    pub fn from_settings(c: &CredentialSettings) -> Result<Self, ConfigError> {
        let bundle = c.secret_id.trim();
        let api = c.api.secret_id.trim();
        let sdk = c.sdk.secret_id.trim();
        match (!bundle.is_empty(), !api.is_empty(), !sdk.is_empty()) {
            (true, false, false) => Ok(SecretLayout::Bundle(bundle.to_owned())),
            (false, true, true) => Ok(SecretLayout::PerSet {
                api: api.to_owned(),
                sdk: sdk.to_owned(),
            }),
            (true, _, _) => invalid(
                "credentials.secret_id",
                "is set together with credentials.api.secret_id / credentials.sdk.secret_id".into(),
                "use either one secret holding both sets (credentials.secret_id) or one secret per set (credentials.api.secret_id and credentials.sdk.secret_id), not both",
            ),
            (false, false, false) => invalid(
                "credentials.secret_id",
                "source is \"aws_secrets_manager\" but no secret is named".into(),
                "set ATV_CREDENTIALS__SECRET_ID to the name or ARN of a secret holding both sets, or ATV_CREDENTIALS__API__SECRET_ID and ATV_CREDENTIALS__SDK__SECRET_ID to one secret each",
            ),
            (false, true, false) => secret_missing_for(CredentialSet::Sdk, CredentialSet::Api),
            (false, false, true) => secret_missing_for(CredentialSet::Api, CredentialSet::Sdk),
        }
    }
}

/// The error for a per-set layout that names a secret for `named` but none
/// for `missing`.
fn secret_missing_for(
    missing: CredentialSet,
    named: CredentialSet,
) -> Result<SecretLayout, ConfigError> {
    let key = PerSet {
        api: "credentials.api.secret_id",
        sdk: "credentials.sdk.secret_id",
    };
    invalid(
        key.get(missing),
        format!("is empty while {} is set", key.get(named)),
        &format!(
            "set ATV_CREDENTIALS__{}__SECRET_ID too, or name one secret holding both sets in credentials.secret_id",
            missing.as_str().to_uppercase()
        ),
    )
}

/// Reads the credentials with `GetSecretValue` (the `AWSCURRENT` version) on
/// every load, so a `PutSecretValue` reaches the next token exchange.
pub struct AwsSecretsManagerSource {
    client: Client,
    layout: SecretLayout,
}

impl AwsSecretsManagerSource {
    /// Loads the standard AWS configuration (region from `credentials.aws_region`
    /// when set) and refuses to start without a region, which no retry could fix.
    pub async fn from_settings(settings: &CredentialSettings) -> Result<Self, ConfigError> {
        let layout = SecretLayout::from_settings(settings)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        let region = settings.aws_region.trim();
        if !region.is_empty() {
            loader = loader.region(Region::new(region.to_owned()));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(ConfigError::Invalid {
                key: "credentials.aws_region",
                problem: "is empty and the standard AWS chain (AWS_REGION, AWS_DEFAULT_REGION, profile, instance metadata) names no region".into(),
                fix: "set ATV_CREDENTIALS__AWS_REGION or AWS_REGION to the secret's region, e.g. us-east-1".into(),
            });
        }
        Ok(Self::new(&config, layout))
    }

    /// A source on an already-loaded AWS configuration (tests point it at an
    /// emulator). The timeouts are always ours, whatever `config` says.
    pub fn new(config: &SdkConfig, layout: SecretLayout) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let service = aws_sdk_secretsmanager::config::Builder::from(config)
            .timeout_config(timeouts)
            .build();
        Self {
            client: Client::from_conf(service),
            layout,
        }
    }

    /// The current text of any secret on this source's client, for secrets
    /// other parts of the service keep in Secrets Manager too (`astra.secret_id`).
    pub async fn read(&self, secret_id: &str) -> Result<SecretString, CredentialError> {
        self.fetch(secret_id, "the secret")
            .await
            .map(|(text, _)| text)
    }

    /// One `GetSecretValue`: the secret text (only ever as a [`SecretString`])
    /// and its `VersionId`. `label` names the secret in errors.
    async fn fetch(
        &self,
        secret_id: &str,
        label: &str,
    ) -> Result<(SecretString, String), CredentialError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| self.classify(label, &e))?;
        let version = output.version_id().unwrap_or("-").to_owned();
        match output.secret_string() {
            Some(text) => Ok((SecretString::from(text), version)),
            None => Err(CredentialError::Malformed {
                source_name: self.describe(),
                secret: label.to_owned(),
                problem: "it holds a binary value (SecretBinary); store the JSON as the secret's text (SecretString)".into(),
            }),
        }
    }

    /// Maps an SDK error to a reason an operator can act on. Deliberately
    /// never formats the SDK error itself: a response that failed to parse
    /// could echo part of the secret, and a credential-chain error could echo
    /// a profile file.
    fn classify(
        &self,
        label: &str,
        error: &SdkError<GetSecretValueError, aws_sdk_secretsmanager::config::http::HttpResponse>,
    ) -> CredentialError {
        let reason = match error {
            SdkError::ServiceError(service) => match service.err() {
                GetSecretValueError::ResourceNotFoundException(_) => {
                    return CredentialError::NotFound {
                        source_name: self.describe(),
                        secret: label.to_owned(),
                    };
                }
                GetSecretValueError::DecryptionFailure(_) => {
                    "Secrets Manager cannot decrypt it (DecryptionFailure): the role needs kms:Decrypt on the secret's KMS key".to_owned()
                }
                GetSecretValueError::InvalidRequestException(_) => {
                    "it cannot be read in its current state, e.g. scheduled for deletion (InvalidRequestException)".to_owned()
                }
                GetSecretValueError::InvalidParameterException(_) => {
                    "the secret id is not valid (InvalidParameterException)".to_owned()
                }
                other => {
                    let status = service.raw().status().as_u16();
                    match other.code().map(sanitize_code) {
                        Some(code) if code == "AccessDeniedException" => {
                            "access denied (AccessDeniedException): the role needs secretsmanager:GetSecretValue on this secret".to_owned()
                        }
                        Some(code) => format!("Secrets Manager answered HTTP {status} ({code})"),
                        None => format!("Secrets Manager answered HTTP {status}"),
                    }
                }
            },
            SdkError::TimeoutError(_) => "Secrets Manager did not answer in time".to_owned(),
            SdkError::DispatchFailure(failure) if failure.is_timeout() => {
                "Secrets Manager did not answer in time".to_owned()
            }
            SdkError::DispatchFailure(failure) if failure.is_io() => {
                "Secrets Manager could not be reached (connection, DNS or TLS failure)".to_owned()
            }
            SdkError::DispatchFailure(_) => {
                "the request could not be sent: no AWS credentials could be resolved (IRSA, EKS Pod Identity, environment, profile) or the endpoint is unusable".to_owned()
            }
            SdkError::ResponseError(_) => "Secrets Manager sent an unreadable response".to_owned(),
            SdkError::ConstructionFailure(_) => {
                "the request could not be built (check the region and endpoint configuration)".to_owned()
            }
            _ => "the request failed".to_owned(),
        };
        // With one secret per set, say which of the two failed.
        let reason = match self.layout {
            SecretLayout::Bundle(_) => reason,
            SecretLayout::PerSet { .. } => format!("{label}: {reason}"),
        };
        CredentialError::Unavailable {
            source_name: self.describe(),
            reason,
        }
    }
}

/// Error codes are identifiers; anything else in one is dropped rather than
/// logged.
fn sanitize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
        .take(64)
        .collect()
}

#[async_trait]
impl CredentialSource for AwsSecretsManagerSource {
    async fn load(&self) -> Result<CredentialBundle, CredentialError> {
        let name = self.describe();
        match &self.layout {
            SecretLayout::Bundle(id) => {
                let label = "the secret";
                let (text, version) = self.fetch(id, label).await?;
                let mut bundle =
                    Origin::new(&name, label).parse_bundle(text.expose_secret().as_bytes())?;
                bundle.version = Some(version);
                Ok(bundle)
            }
            SecretLayout::PerSet { api, sdk } => {
                let (api_label, sdk_label) =
                    (format!("api secret {api}"), format!("sdk secret {sdk}"));
                let ((api_text, api_version), (sdk_text, sdk_version)) =
                    tokio::try_join!(self.fetch(api, &api_label), self.fetch(sdk, &sdk_label))?;
                Ok(CredentialBundle {
                    sets: PerSet {
                        api: Origin::new(&name, &api_label)
                            .parse_pair(api_text.expose_secret().as_bytes())?,
                        sdk: Origin::new(&name, &sdk_label)
                            .parse_pair(sdk_text.expose_secret().as_bytes())?,
                    },
                    version: Some(format!("api {api_version}, sdk {sdk_version}")),
                })
            }
        }
    }

    fn describe(&self) -> String {
        match &self.layout {
            SecretLayout::Bundle(id) => format!("aws secrets manager secret {id}"),
            SecretLayout::PerSet { api, sdk } => {
                format!("aws secrets manager secrets {api} (api) and {sdk} (sdk)")
            }
        }
    }
}
