//! The audit trail of token hand-outs: who received which token (named by
//! its fingerprint, never the token), from which origin, and who was refused.
//!
//! One line per token per holder: the browser SDK asks again at launch and
//! on expiry, so that is one line per real hand-out, while a client polling
//! the endpoint cannot turn the audit log into a per-request access log
//! (and its cost onto the hot path). Every hand-out is still counted in
//! `atv_tokens_issued_total`.

use std::hash::BuildHasher;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header;
use tokio::time::Instant;

use crate::caller_auth::{AuthError, Caller};
use crate::core::{AccessToken, CredentialSet, escape_controls};

/// Remembers which holder already got which token.
pub struct AuditTrail {
    seen: moka::sync::Cache<u64, ()>,
    hasher: std::collections::hash_map::RandomState,
}

impl AuditTrail {
    /// Bounded memory: at most `capacity` holder/token pairs, each forgotten
    /// after the longest lifetime a token can have.
    pub fn new(capacity: u64) -> Self {
        Self {
            seen: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Logs the hand-out of `token` to `holder` unless this holder got it before.
    pub fn issued(
        &self,
        req: &HttpRequest,
        set: CredentialSet,
        caller: &Caller,
        holder: &str,
        token: &AccessToken,
    ) {
        let key = self.hasher.hash_one((set, holder, &token.fingerprint));
        if self.seen.contains_key(&key) {
            return;
        }
        self.seen.insert(key, ());
        tracing::info!(
            target: "audit",
            event = "token_issued",
            set = set.as_str(),
            subject = %escape_controls(&caller.subject),
            auth = caller.method,
            origin = %origin(req),
            expires_in = token.remaining(Instant::now()).as_secs(),
            token_sha256_prefix = %token.fingerprint,
            "token issued"
        );
    }

    /// Logs a refusal; every one, since refusals are what an investigation looks for.
    pub fn refused(&self, req: &HttpRequest, set: CredentialSet, peer: &str, refused: &AuthError) {
        tracing::info!(
            target: "audit",
            event = "token_refused",
            set = set.as_str(),
            reason = %refused,
            origin = %origin(req),
            peer,
            "token refused"
        );
    }
}

fn origin(req: &HttpRequest) -> std::borrow::Cow<'_, str> {
    escape_controls(
        req.headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("-"),
    )
}
