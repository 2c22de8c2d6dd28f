//! [`Sealer`]: Astra's answers turned into the sealed columns of a row, and
//! a row's tokens opened again; the only holder of the keyring.

use secrecy::SecretString;

use super::astra_client::AstraTokens;
use super::crypto::{CryptoError, Field, Sealed, TokenCipher};
use super::settings::REFRESH_TOKEN_LIFETIME_SECS;
use super::store::{NewTokens, UserRow};
use super::user_ref::UserRef;

/// Seals new tokens and opens stored ones.
pub struct Sealer {
    cipher: TokenCipher,
    /// When the scheduler replaces a new refresh token (seconds after issue).
    refresh_token_max_age: i64,
}

impl Sealer {
    pub(super) fn new(cipher: TokenCipher, refresh_token_max_age: i64) -> Self {
        Self {
            cipher,
            refresh_token_max_age,
        }
    }

    /// Astra's answer as a row's new tokens, issued at `now`.
    pub fn seal(
        &self,
        user: &UserRef,
        tokens: &AstraTokens,
        now: i64,
    ) -> Result<NewTokens, CryptoError> {
        let access_secs = i64::try_from(tokens.expires_in.as_secs()).unwrap_or(i64::MAX / 4);
        Ok(NewTokens {
            access_token: self
                .cipher
                .seal(user, Field::AccessToken, &tokens.access_token)?,
            access_expires_at: now + access_secs,
            refresh_token: self
                .cipher
                .seal(user, Field::RefreshToken, &tokens.refresh_token)?,
            refresh_issued_at: now,
            refresh_expires_at: now + REFRESH_TOKEN_LIFETIME_SECS,
            next_refresh_at: now + self.refresh_token_max_age,
            astra_request_id: tokens.request_id.clone(),
        })
    }

    /// Seals a PKCE `code_verifier` for `user` until the callback.
    pub fn seal_verifier(
        &self,
        user: &UserRef,
        verifier: &SecretString,
    ) -> Result<Sealed, CryptoError> {
        self.cipher.seal(user, Field::CodeVerifier, verifier)
    }

    /// Opens what [`Sealer::seal_verifier`] sealed.
    pub fn verifier(&self, user: &UserRef, sealed: &Sealed) -> Result<SecretString, CryptoError> {
        self.cipher.open(user, Field::CodeVerifier, sealed)
    }

    /// The access token of `row`.
    pub fn access_token(&self, row: &UserRow) -> Result<SecretString, CryptoError> {
        self.cipher
            .open(&row.user_ref, Field::AccessToken, &row.access_token)
    }

    /// A refresh token of `user` (the current or the previous one).
    pub fn refresh_token(
        &self,
        user: &UserRef,
        sealed: &Sealed,
    ) -> Result<SecretString, CryptoError> {
        self.cipher.open(user, Field::RefreshToken, sealed)
    }

    /// The keyring's key ids, for the rows-per-key gauge.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.cipher.key_ids()
    }
}
