//! [`Authorizations`]: how a user's Astra authority arrives. A backend starts
//! an authorization (a single-use `state`, stored hashed) and sends the user
//! to Astra; Astra's redirect brings a code that is exchanged for tokens. A
//! backend may also hand over a code it received itself, or import a refresh
//! token it held before adopting this service.
//!
//! **Binding.** The callback runs on this service's host and cannot see who
//! is logged into the customer's app, so a `state` alone would let anyone who
//! passes their own `authorize_url` to a victim collect the victim's Astra
//! authority under their own `user_ref` (login CSRF, RFC 6749 §10.12). The
//! callback therefore only keeps the tokens *unconfirmed* and hands the
//! browser a one-time handle; the customer's backend, which knows who is
//! logged in, confirms the handle for that person's `user_ref`. A handle
//! confirmed for another `user_ref` erases the tokens and changes nothing
//! else (docs/security/astra-threat-model.md).

use std::future::Future;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

use super::astra_client::{AstraError, AstraTokens};
use super::cache::{UserTokenCache, forget};
use super::error::UserTokenError;
use super::pacer::PacedAstra;
use super::persist;
use super::sealer::Sealer;
use super::store::{self, NewTokens, UserRow, UserStore};
use super::user_ref::UserRef;
use crate::core::unix_secs;
use crate::observability::Metrics;

/// What a customer's backend hands over to authorize a user.
pub enum Grant {
    /// An authorization code from Astra's redirect.
    Code(SecretString),
    /// A refresh token obtained before adopting this service.
    RefreshToken(SecretString),
}

impl Grant {
    fn secret(&self) -> &SecretString {
        match self {
            Grant::Code(s) | Grant::RefreshToken(s) => s,
        }
    }

    /// Whether the grant carries no text at all.
    pub fn is_empty(&self) -> bool {
        self.secret().expose_secret().trim().is_empty()
    }
}

/// A callback's result: tokens kept until the customer's backend confirms
/// `handle` for the user who started the authorization.
pub struct AwaitingConfirmation {
    /// Whom the authorization was started for.
    pub user_ref: UserRef,
    /// One-time, 256 random bits; only its hash is stored.
    pub handle: String,
    pub expires_in: u64,
}

/// A started authorization, for the browser to follow.
pub struct StartedAuthorization {
    pub authorize_url: Url,
    pub state: String,
    pub expires_in: u64,
}

/// How the browser's part of an authorization goes (from `[astra]`).
pub(super) struct Flow {
    /// How long a started authorization may be completed, in seconds.
    pub state_ttl: i64,
    pub completion_url: Option<Url>,
    /// Whether authorizations started here carry a PKCE challenge.
    pub pkce: bool,
}

/// Starts and completes authorizations.
pub struct Authorizations {
    store: Arc<dyn UserStore>,
    astra: Arc<PacedAstra>,
    sealer: Arc<Sealer>,
    cache: Option<Arc<UserTokenCache>>,
    state_ttl: i64,
    completion_url: Option<Url>,
    pkce: bool,
    metrics: Metrics,
}

impl Authorizations {
    pub(super) fn new(
        store: Arc<dyn UserStore>,
        astra: Arc<PacedAstra>,
        sealer: Arc<Sealer>,
        cache: Option<Arc<UserTokenCache>>,
        flow: Flow,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            astra,
            sealer,
            cache,
            state_ttl: flow.state_ttl,
            completion_url: flow.completion_url,
            pkce: flow.pkce,
            metrics,
        }
    }

    /// Where the browser goes after the callback, if configured.
    pub fn completion_url(&self) -> Option<&Url> {
        self.completion_url.as_ref()
    }

    /// `POST /astra/users/{user_ref}/authorization`: a single-use `state`,
    /// stored hashed, and the Astra URL the user must visit.
    pub async fn start(
        &self,
        user: &UserRef,
        user_intent_id: Option<&str>,
    ) -> Result<StartedAuthorization, UserTokenError> {
        if user_intent_id.is_some_and(|id| !store::is_label(id)) {
            return Err(UserTokenError::BadRequest(
                "user_intent_id must be 1 to 128 characters of A-Z a-z 0-9 . _ : -",
            ));
        }
        let state = random_secret()?;
        let expires_at = unix_secs() + self.state_ttl;
        let (challenge, verifier) = match self.pkce {
            true => {
                let verifier = random_secret()?;
                let sealed = self
                    .sealer
                    .seal_verifier(user, &SecretString::from(verifier.clone()))?;
                (Some(secret_challenge(&verifier)), Some(sealed))
            }
            false => (None, None),
        };
        let hash = secret_hash(&state);
        self.store
            .put_state(&hash, user, user_intent_id, verifier.as_ref(), expires_at)
            .await?;
        let client = &self.astra.client;
        Ok(StartedAuthorization {
            authorize_url: client.authorize_url(&state, user_intent_id, challenge.as_deref()),
            state,
            expires_in: u64::try_from(self.state_ttl).unwrap_or(0),
        })
    }

    /// `GET /astra/callback`: consumes the state, exchanges the code and
    /// keeps the tokens, sealed for the state's user, until confirmed.
    pub async fn complete_callback(
        self: &Arc<Self>,
        code: &SecretString,
        state: &str,
    ) -> Result<AwaitingConfirmation, UserTokenError> {
        let (this, code, state) = (Arc::clone(self), code.clone(), secret_hash(state));
        detached(async move { this.exchange_for_confirmation(code, &state).await }).await
    }

    async fn exchange_for_confirmation(
        &self,
        code: SecretString,
        state_hash: &str,
    ) -> Result<AwaitingConfirmation, UserTokenError> {
        let started = self
            .store
            .take_state(state_hash)
            .await?
            .ok_or(UserTokenError::StateInvalid)?;
        let user = &started.user_ref;
        let verifier = match &started.code_verifier {
            Some(sealed) => Some(self.sealer.verifier(user, sealed)?),
            None => None,
        };
        let tokens = self
            .exchange(user, &Grant::Code(code), verifier.as_ref())
            .await?;
        let now = unix_secs();
        let sealed = self.sealer.seal(user, &tokens, now)?;
        let handle = random_secret()?;
        let (hash, expires_at) = (secret_hash(&handle), now + self.state_ttl);
        persist::until_stored(user, self.give_up_at(), &self.metrics, || {
            self.store
                .put_unconfirmed(&hash, user, sealed.clone(), expires_at)
        })
        .await?;
        tracing::info!(
            user_ref = %user,
            astra_request_id = tokens.request_id.as_deref(),
            "astra authorization awaits confirmation"
        );
        Ok(AwaitingConfirmation {
            user_ref: user.clone(),
            handle,
            expires_in: u64::try_from(self.state_ttl).unwrap_or(0),
        })
    }

    /// `GET /astra/callback?error=…`: Astra sent the person back without a
    /// code. The state, if any, is used up so the link cannot be replayed.
    pub async fn deny_callback(&self, error: &str, state: Option<&str>) -> UserTokenError {
        if let Some(state) = state
            && let Err(e) = self.store.take_state(&secret_hash(state)).await
        {
            // It expires with astra.state_ttl_secs anyway.
            tracing::warn!(error = %e, "a denied authorization's state could not be used up");
        }
        let code = oauth_error_code(error);
        tracing::info!(oauth_error = code, "astra authorization denied");
        UserTokenError::AuthorizationDenied(code)
    }

    /// `POST /astra/users/{user_ref}/authorization/confirm`: the customer's
    /// backend vouches that `handle` came back to `user`'s own session. The
    /// unconfirmed tokens are consumed whoever confirms: a handle from an
    /// authorization started for another user erases them, and `user`'s
    /// stored authorization stays as it was.
    pub async fn confirm(
        self: &Arc<Self>,
        user: &UserRef,
        handle: &str,
    ) -> Result<UserRow, UserTokenError> {
        let (this, user, handle) = (Arc::clone(self), user.clone(), secret_hash(handle));
        detached(async move {
            let unconfirmed = this
                .store
                .take_unconfirmed(&handle)
                .await?
                .ok_or(UserTokenError::ConfirmationInvalid)?;
            if unconfirmed.user_ref != user {
                tracing::warn!(
                    user_ref = %user,
                    started_for = %unconfirmed.user_ref,
                    "astra authorization confirmed by another user than the one who started it; its tokens were erased"
                );
                return Err(UserTokenError::AuthorizationMismatch);
            }
            this.store_sealed(&user, unconfirmed.tokens).await
        })
        .await
    }

    /// Turns `grant` into a new authorization of `user`: an authorization
    /// code is exchanged; an imported refresh token is proven by refreshing
    /// once (`PUT /astra/users/{user_ref}/refresh-token`).
    pub async fn authorize(
        self: &Arc<Self>,
        user: &UserRef,
        grant: Grant,
    ) -> Result<UserRow, UserTokenError> {
        let (this, user) = (Arc::clone(self), user.clone());
        detached(async move {
            let tokens = this.exchange(&user, &grant, None).await?;
            let sealed = this.sealer.seal(&user, &tokens, unix_secs())?;
            this.store_sealed(&user, sealed).await
        })
        .await
    }

    /// Astra's answer to `grant` (with the PKCE verifier of a code whose
    /// authorization started here with a challenge).
    async fn exchange(
        &self,
        user: &UserRef,
        grant: &Grant,
        code_verifier: Option<&SecretString>,
    ) -> Result<AstraTokens, UserTokenError> {
        let (answer, failed) = match grant {
            Grant::Code(code) => (
                self.astra.exchange_code(code, code_verifier).await,
                "authorization code exchange failed",
            ),
            Grant::RefreshToken(token) => (
                self.astra.refresh(token).await,
                "refresh token import failed",
            ),
        };
        answer.map_err(|e: AstraError| {
            tracing::warn!(user_ref = %user, astra_request_id = e.request_id(), error = %e, "{failed}");
            UserTokenError::from_astra(&e)
        })
    }

    async fn store_sealed(
        &self,
        user: &UserRef,
        sealed: NewTokens,
    ) -> Result<UserRow, UserTokenError> {
        let row = persist::until_stored(user, self.give_up_at(), &self.metrics, || {
            self.store.store_authorization(user, sealed.clone())
        })
        .await?;
        forget(self.cache.as_ref(), user);
        tracing::info!(
            user_ref = %user,
            generation = row.generation,
            astra_request_id = row.last_astra_request_id.as_deref(),
            "astra user authorized"
        );
        Ok(row)
    }

    /// Until when the tokens of a new authorization are written again while
    /// the store is unreachable: the person is waiting, and their code is
    /// used up.
    fn give_up_at(&self) -> i64 {
        unix_secs() + WRITE_BUDGET_SECS
    }
}

const WRITE_BUDGET_SECS: i64 = 30;

/// Runs `work` as a task of its own: once a code is being exchanged, a
/// caller who hangs up must not cancel the write of what Astra issues.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, UserTokenError>> + Send + 'static,
) -> Result<T, UserTokenError> {
    tokio::spawn(work)
        .await
        .unwrap_or(Err(UserTokenError::Crashed))
}

/// OAuth's error codes (RFC 6749 §4.1.2.1), or `other`: Astra's text is
/// never repeated.
fn oauth_error_code(error: &str) -> &'static str {
    const KNOWN: [&str; 7] = [
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    ];
    KNOWN.into_iter().find(|k| *k == error).unwrap_or("other")
}

/// 256 random bits, URL-safe: a `state` or a handle is a bearer secret
/// until used.
fn random_secret() -> Result<String, UserTokenError> {
    let mut bytes = [0u8; 32];
    super::crypto::fill_random(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Only the hash of a `state` or a handle is stored, so a database reader
/// cannot complete or confirm someone else's authorization.
fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The PKCE S256 `code_challenge` of `verifier` (RFC 7636 §4.2). A verifier
/// from [`random_secret`] is 43 characters of the unreserved set, as §4.1 asks.
fn secret_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}
