//! The audit trail (log target `audit`): who received which token (named by
//! its fingerprint, never the token), who started, completed, imported or
//! deleted which Astra authorization, and who was refused.
//!
//! Token hand-outs are logged once per token per holder: the browser SDK
//! asks again at launch and on expiry, and a workload may ask for a user's
//! token before every Astra call, so that is one line per real hand-out,
//! while polling cannot turn the audit log into a per-request access log
//! (and its cost onto the hot path: the decision is a hash and a cache
//! lookup, no allocation). Every hand-out is still counted in
//! `atv_tokens_issued_total`. Refusals on the internal listener are logged
//! one by one up to [`REFUSAL_LINES_PER_SECOND`] a second; beyond that they
//! are counted and summarised in one line (every one is counted in
//! `atv_internal_auth_refusals_total` regardless).

use std::fmt::Display;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::client_addr::ClientAddr;
use super::rate_limit::Holder;
use crate::caller_auth::{AuthError, Caller};
use crate::core::{AccessToken, CredentialSet, Prehashed, escape_controls};
use crate::user_tokens::{HandedToken, UserRef};

/// Refusal lines written one by one per second; the rest are summarised.
pub const REFUSAL_LINES_PER_SECOND: u32 = 20;

/// Remembers which holder already got which token.
pub struct AuditTrail {
    seen: moka::sync::Cache<u64, (), Prehashed>,
    hasher: std::collections::hash_map::RandomState,
    refusals: Mutex<RefusalWindow>,
}

/// Refusals in the current second: lines written and lines held back.
struct RefusalWindow {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

/// Who authorized a user: an internal caller, or the user's own browser
/// through Astra's redirect (no caller at all).
#[derive(Clone, Copy)]
pub enum Actor<'a> {
    Caller(&'a Caller),
    BrowserCallback,
}

crate::core::named_enum! {
    /// What happened to an Astra authorization.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum AuthorizationAction {
        /// An authorization was started (a `state` handed out).
        Started = "started",
        /// Astra's redirect brought a code, exchanged and kept until the
        /// customer's backend confirms it.
        Exchanged = "exchanged",
        /// An authorization became active: a code the backend submitted,
        /// or a callback's result it confirmed.
        Completed = "completed",
        /// A refresh token obtained elsewhere was imported.
        Imported = "imported",
        /// The stored tokens were erased.
        Deleted = "deleted",
    }
}

/// A refused request on the internal listener, for its audit line.
pub struct Refusal<'a> {
    pub route: &'static str,
    /// The permission the route needs, or `proxy:UPSTREAM` for the proxy.
    pub permission: &'static str,
    /// `None` when the caller could not be authenticated.
    pub caller: Option<&'a Caller>,
    pub user_ref: Option<&'a str>,
}

/// A proxied call, for its audit line.
pub struct ProxiedCall<'a> {
    pub upstream: &'static str,
    pub caller: &'a Caller,
    pub user: Option<&'a UserRef>,
    pub method: &'a str,
    pub path: &'a str,
}

impl AuditTrail {
    /// Bounded memory: at most `capacity` holder/token pairs, each forgotten
    /// after the longest lifetime a token can have.
    pub fn new(capacity: u64) -> Self {
        Self {
            seen: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build_with_hasher(Prehashed),
            hasher: std::collections::hash_map::RandomState::new(),
            refusals: Mutex::new(RefusalWindow {
                started: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// True the first time `key` is seen (within the cache's bounds).
    fn first_time(&self, key: u64) -> bool {
        if self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, ());
        true
    }

    /// Logs the hand-out of `token` to `holder` unless this holder got it before.
    pub fn issued(
        &self,
        req: &HttpRequest,
        set: CredentialSet,
        caller: &Caller,
        holder: Holder<'_>,
        token: &AccessToken,
    ) {
        if !self.first_time(self.hasher.hash_one((set, holder, &token.fingerprint))) {
            return;
        }
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

    /// Logs one proxied call: who sent what to which upstream (for whom)
    /// and how it ended (the upstream's status, or the proxy's own answer).
    /// Every call, not once per token: each is an act on the caller's or a
    /// user's account. The path is the normalised one (no controls, no
    /// query string, which may carry the caller's data).
    pub fn proxied(&self, call: &ProxiedCall<'_>, status: u16) {
        tracing::info!(
            target: "audit",
            event = "proxied",
            upstream = call.upstream,
            subject = %escape_controls(&call.caller.subject),
            auth = call.caller.method,
            user_ref = call.user.map_or("-", UserRef::as_str),
            method = call.method,
            path = %escape_controls(call.path),
            status,
            "proxied call"
        );
    }

    /// Logs a refusal on the public listener; every one, since refusals are
    /// what an investigation looks for (the pre-authentication rate limit
    /// bounds them).
    pub fn refused(
        &self,
        req: &HttpRequest,
        set: CredentialSet,
        peer: ClientAddr,
        refused: &AuthError,
    ) {
        tracing::info!(
            target: "audit",
            event = "token_refused",
            set = set.as_str(),
            reason = %refused,
            origin = %origin(req),
            peer = %peer,
            "token refused"
        );
    }

    /// Logs the hand-out of `user`'s Astra token to `caller`, once per
    /// token generation and caller; `via` is the route (`token` or
    /// `stale_generation`).
    pub fn astra_token_issued(
        &self,
        caller: &Caller,
        user: &UserRef,
        token: &HandedToken,
        via: &'static str,
    ) {
        let key = ("astra", &*caller.subject, user, token.generation);
        if !self.first_time(self.hasher.hash_one(key)) {
            return;
        }
        let digest = Sha256::digest(token.access_token.expose_secret().as_bytes());
        tracing::info!(
            target: "audit",
            event = "astra_token_issued",
            subject = %escape_controls(&caller.subject),
            auth = caller.method,
            user_ref = %user,
            via,
            generation = token.generation,
            expires_in = token.expires_in,
            token_sha256_prefix = %hex::encode(&digest[..6]),
            outcome = "ok",
            "astra token issued"
        );
    }

    /// Logs an authorization event for `user` and its outcome (`ok` or the
    /// problem type); `replaced` says whether a stored authorization was
    /// replaced (completed and imported only).
    pub fn astra_authorization(
        &self,
        actor: Actor<'_>,
        user: &UserRef,
        action: AuthorizationAction,
        outcome: &str,
        replaced: bool,
    ) {
        let (subject, auth) = match actor {
            Actor::Caller(caller) => (escape_controls(&caller.subject), caller.method),
            Actor::BrowserCallback => ("-".into(), "astra_callback"),
        };
        tracing::info!(
            target: "audit",
            event = "astra_authorization",
            action = action.as_str(),
            subject = %subject,
            auth,
            user_ref = %user,
            replaced,
            outcome,
            "astra authorization {action}"
        );
    }

    /// Logs a `401` or `403` on the internal listener, summarising floods.
    pub fn internal_refused(&self, req: &HttpRequest, refusal: &Refusal<'_>, why: &dyn Display) {
        let summary = {
            let mut window = self
                .refusals
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let mut held_back = 0;
            if now.duration_since(window.started) >= Duration::from_secs(1) {
                held_back = std::mem::take(&mut window.suppressed);
                window.started = now;
                window.logged = 0;
            }
            if window.logged >= REFUSAL_LINES_PER_SECOND {
                window.suppressed += 1;
                return;
            }
            window.logged += 1;
            held_back
        };
        if summary > 0 {
            tracing::info!(
                target: "audit",
                event = "internal_refused_summary",
                suppressed = summary,
                "internal refusals not logged one by one"
            );
        }
        let (subject, auth) = refusal.caller.map_or(("-".into(), "-"), |c| {
            (escape_controls(&c.subject), c.method)
        });
        tracing::info!(
            target: "audit",
            event = "internal_refused",
            status = if refusal.caller.is_some() { 403 } else { 401 },
            permission = refusal.permission,
            route = refusal.route,
            method = req.method().as_str(),
            subject = %subject,
            auth,
            user_ref = refusal.user_ref.unwrap_or("-"),
            reason = %why,
            peer = %ClientAddr::of(req),
            "internal request refused"
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
