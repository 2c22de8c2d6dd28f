//! [`Authorizations`]: how a user's Astra authority arrives. A backend starts
//! an authorization (a single-use `state`, stored hashed) and sends the user
//! to Astra; Astra's redirect brings a code that is exchanged for tokens. A
//! backend may also hand over a code it received itself, or import a refresh
//! token it held before adopting this service.

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
use super::sealer::Sealer;
use super::store::{self, UserRow, UserStore};
use super::user_ref::UserRef;
use crate::core::unix_secs;

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

/// A started authorization, for the browser to follow.
pub struct StartedAuthorization {
    pub authorize_url: Url,
    pub state: String,
    pub expires_in: u64,
}

/// Starts and completes authorizations.
pub struct Authorizations {
    store: Arc<dyn UserStore>,
    astra: Arc<PacedAstra>,
    sealer: Arc<Sealer>,
    cache: Option<Arc<UserTokenCache>>,
    /// How long a started authorization may be completed, in seconds.
    state_ttl: i64,
    completion_url: Option<Url>,
}

impl Authorizations {
    pub(super) fn new(
        store: Arc<dyn UserStore>,
        astra: Arc<PacedAstra>,
        sealer: Arc<Sealer>,
        cache: Option<Arc<UserTokenCache>>,
        state_ttl: i64,
        completion_url: Option<Url>,
    ) -> Self {
        Self {
            store,
            astra,
            sealer,
            cache,
            state_ttl,
            completion_url,
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
        let state = random_state()?;
        let expires_at = unix_secs() + self.state_ttl;
        self.store
            .put_state(&state_hash(&state), user, user_intent_id, expires_at)
            .await?;
        Ok(StartedAuthorization {
            authorize_url: self.astra.client.authorize_url(&state, user_intent_id),
            state,
            expires_in: u64::try_from(self.state_ttl).unwrap_or(0),
        })
    }

    /// `GET /astra/callback`: consumes the state, exchanges the code.
    pub async fn complete_callback(
        &self,
        code: &SecretString,
        state: &str,
    ) -> Result<UserRow, UserTokenError> {
        let pending = self
            .store
            .take_state(&state_hash(state))
            .await?
            .ok_or(UserTokenError::StateInvalid)?;
        self.authorize(&pending.user_ref, &Grant::Code(code.clone()))
            .await
    }

    /// Turns `grant` into a new authorization of `user`: an authorization
    /// code is exchanged; an imported refresh token is proven by refreshing
    /// once (`PUT /astra/users/{user_ref}/refresh-token`).
    pub async fn authorize(
        &self,
        user: &UserRef,
        grant: &Grant,
    ) -> Result<UserRow, UserTokenError> {
        let (answer, failed) = match grant {
            Grant::Code(code) => (
                self.astra.exchange_code(code).await,
                "authorization code exchange failed",
            ),
            Grant::RefreshToken(token) => (
                self.astra.refresh(token).await,
                "refresh token import failed",
            ),
        };
        let tokens = answer.map_err(|e: AstraError| {
            tracing::warn!(user_ref = %user, astra_request_id = e.request_id(), error = %e, "{failed}");
            UserTokenError::from_astra(&e)
        })?;
        self.store_new(user, &tokens).await
    }

    async fn store_new(
        &self,
        user: &UserRef,
        tokens: &AstraTokens,
    ) -> Result<UserRow, UserTokenError> {
        let sealed = self.sealer.seal(user, tokens, unix_secs())?;
        let row = self.store.store_authorization(user, sealed).await?;
        forget(self.cache.as_ref(), user);
        tracing::info!(
            user_ref = %user,
            generation = row.generation,
            astra_request_id = tokens.request_id.as_deref(),
            "astra user authorized"
        );
        Ok(row)
    }
}

/// 256 random bits, URL-safe: the `state` is a bearer secret until used.
fn random_state() -> Result<String, UserTokenError> {
    let mut bytes = [0u8; 32];
    super::crypto::fill_random(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Only the hash of a `state` is stored, so a database reader cannot
/// complete someone else's pending authorization.
fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}
