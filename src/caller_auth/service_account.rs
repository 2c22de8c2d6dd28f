//! Internal callers as Kubernetes workloads: a projected service-account
//! token (a JWT from the cluster's OIDC issuer, with our audience). What
//! each account may do is its grant's business (`super::grants`).

use std::path::Path;
use std::time::Duration;

use actix_web::HttpRequest;

use super::jwt::{JwtRules, JwtVerifier};
use super::{AuthError, Caller, JwksKeys, algorithms, bearer, jwks_source};
use crate::config::{ConfigError, KubernetesAuthSettings, required};

/// Verifies service-account tokens.
pub struct ServiceAccountAuth {
    verifier: JwtVerifier,
}

impl ServiceAccountAuth {
    /// Checks `[internal_auth.kubernetes]` and builds the verifier (reading
    /// the CA bundle).
    pub fn from_settings(k: &KubernetesAuthSettings) -> Result<Self, ConfigError> {
        required(
            "internal_auth.kubernetes.issuer",
            &k.issuer,
            "your cluster's service-account issuer \
         (kubectl get --raw /.well-known/openid-configuration)",
        )?;
        required(
            "internal_auth.kubernetes.jwks_url",
            &k.jwks_url,
            "the cluster's JWKS, e.g. https://kubernetes.default.svc/openid/v1/jwks",
        )?;
        required(
            "internal_auth.kubernetes.audience",
            &k.audience,
            "the audience your callers' projected tokens request",
        )?;
        let keys = jwks_source(JwksKeys {
            url_key: "internal_auth.kubernetes.jwks_url",
            timing_keys: (
                "internal_auth.kubernetes.jwks_timeout_ms",
                "internal_auth.kubernetes.jwks_min_refetch_secs",
            ),
            url: &k.jwks_url,
            timeout_ms: k.jwks_timeout_ms,
            cache_secs: k.jwks_cache_secs,
            min_refetch_secs: k.jwks_min_refetch_secs,
            ca_file: non_empty(&k.jwks_ca_file)
                .map(|p| ("internal_auth.kubernetes.jwks_ca_file", p)),
            token_file: non_empty(&k.jwks_token_file),
        })?;
        let verifier = JwtVerifier::new(
            keys,
            JwtRules {
                issuer: k.issuer.clone(),
                audience: k.audience.clone(),
                algorithms: algorithms("internal_auth.kubernetes.algorithms", &k.algorithms)?,
                leeway: Duration::from_secs(k.leeway_secs),
                cache_ttl: Duration::from_secs(k.cache_ttl_secs),
                max_age: Some(Duration::from_secs(k.max_token_age_secs)),
            },
        );
        Ok(Self { verifier })
    }

    /// The service account behind `req`'s bearer token.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Caller, AuthError> {
        let credential = bearer(req)?.ok_or(AuthError::Missing)?;
        let claims = self.verifier.verify_bearer(credential).await?;
        Ok(Caller {
            subject: claims.subject,
            method: "kubernetes",
        })
    }
}

fn non_empty(path: &Path) -> Option<&Path> {
    (!path.as_os_str().is_empty()).then_some(path)
}
