//! Internal callers as Kubernetes workloads: a projected service-account
//! token (a JWT from the cluster's OIDC issuer, with our audience) from a
//! service account on the allowlist.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use actix_web::HttpRequest;

use super::jwt::{JwtRules, JwtVerifier};
use super::{AuthError, Caller, JwksKeys, algorithms, bearer, jwks_source};
use crate::config::{ConfigError, KubernetesAuthSettings, invalid, required};
use crate::core::escape_controls;

/// Verifies service-account tokens and checks the account against the allowlist.
pub struct ServiceAccountAuth {
    verifier: JwtVerifier,
    allowed: HashSet<String>,
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
        if k.allowed_subjects.is_empty() {
            return invalid(
                "internal_auth.kubernetes.allowed_subjects",
                "is empty, so no workload could get the API token".into(),
                "list the callers, e.g. [\"system:serviceaccount:payments:billing\"]",
            );
        }
        for subject in &k.allowed_subjects {
            let parts: Vec<&str> = subject.split(':').collect();
            if !matches!(parts.as_slice(), ["system", "serviceaccount", ns, name] if !ns.is_empty() && !name.is_empty())
            {
                return invalid(
                    "internal_auth.kubernetes.allowed_subjects",
                    format!("`{subject}` is not system:serviceaccount:NAMESPACE:NAME"),
                    "use e.g. \"system:serviceaccount:payments:billing\"",
                );
            }
        }
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
        Ok(Self {
            verifier,
            allowed: k.allowed_subjects.iter().cloned().collect(),
        })
    }

    /// The service account behind `req`'s bearer token, if it is allowed.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Caller, AuthError> {
        let token = bearer(req)?.ok_or(AuthError::Missing)?;
        let claims = self.verifier.verify(token).await?;
        if !self.allowed.contains(&claims.subject) {
            tracing::warn!(
                subject = %escape_controls(&claims.subject),
                "service account is not in internal_auth.kubernetes.allowed_subjects: refused"
            );
            return Err(AuthError::Forbidden("service account not allowed"));
        }
        Ok(Caller {
            subject: claims.subject,
            method: "kubernetes",
        })
    }
}

fn non_empty(path: &Path) -> Option<&Path> {
    (!path.as_os_str().is_empty()).then_some(path)
}
