//! Encryption of per-user tokens at rest (AES-256-GCM, aws-lc-rs).
//!
//! A database dump or backup must not hand out working Astra tokens, so every
//! token is sealed before it reaches the store and opened only in memory.
//!
//! **Keyring.** A [`TokenCipher`] holds several keys, each under a short key
//! id, and seals with the *active* one. Every [`Sealed`] value records the id
//! of the key that sealed it, so old rows stay readable while keys rotate:
//! add a new key, make it active, let refreshes re-seal rows, and retire the
//! old key once the store counts no row using it.
//!
//! **Associated data.** The AAD binds a ciphertext to where it belongs:
//! `atv:v1:{field}:{key_id}:{user_ref}`. Copying one user's ciphertext onto
//! another user's row, into a different column, or relabelling its key id
//! makes [`TokenCipher::open`] fail instead of yielding a token for the wrong
//! user. Neither the field name nor a key id may contain `:`, and the user
//! reference comes last, so the format cannot be read two ways.
//!
//! **Why refresh tokens have one field name.** On every refresh the current
//! refresh token becomes the *previous* one (still valid at Astra until it
//! expires). The store moves that ciphertext from one column to another in
//! the same SQL statement that writes the new tokens, without decrypting it;
//! so current and previous refresh tokens are both sealed as
//! [`Field::RefreshToken`]. What stays impossible is opening a refresh token
//! as an access token or vice versa.
//!
//! **Nonces.** A fresh random 96-bit nonce per seal from `SystemRandom`. At
//! the rate tokens are written (one access token per user per ~2 h) the
//! random-nonce collision bound for one key is nowhere near reach; rotating
//! keys yearly keeps it that way.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

use super::user_ref::UserRef;

/// The length of an AES-256 key.
pub const KEY_LEN: usize = 32;
/// The longest accepted key id.
pub const MAX_KEY_ID_LEN: usize = 64;
const TAG_LEN: usize = 16;
const AAD_VERSION: &str = "atv:v1";

crate::core::named_enum! {
    /// Which kind of token a ciphertext holds; part of the AAD.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Field {
        AccessToken = "access_token",
        /// Both the current and the previous refresh token (see the module docs).
        RefreshToken = "refresh_token",
        /// A PKCE `code_verifier` kept until the callback.
        CodeVerifier = "code_verifier",
    }
}

/// A sealed token: the id of the key that sealed it and `nonce || ciphertext || tag`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub blob: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("len", &self.blob.len())
            .finish()
    }
}

/// Why a keyring cannot be built. Names key ids, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "the token encryption keyring is empty; configure at least one key (generate one with `openssl rand -base64 32`)"
    )]
    Empty,
    #[error(
        "token encryption key id #{index} is not valid: it must be 1-{MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 . _ -"
    )]
    InvalidKeyId { index: usize },
    #[error("token encryption key id `{key_id}` appears more than once; each key needs its own id")]
    DuplicateKeyId { key_id: String },
    #[error(
        "token encryption key `{key_id}` is not valid base64; it must be 32 bytes, base64-encoded (generate with `openssl rand -base64 32`)"
    )]
    NotBase64 { key_id: String },
    #[error(
        "token encryption key `{key_id}` decodes to {len} bytes; it must be 32 bytes, base64-encoded (generate with `openssl rand -base64 32`)"
    )]
    WrongLength { key_id: String, len: usize },
    #[error("token encryption key `{key_id}` was refused by the AES-256-GCM implementation")]
    Refused { key_id: String },
    #[error(
        "the active token encryption key id `{key_id}` is not in the keyring; add that key or choose one of the configured ids"
    )]
    ActiveKeyMissing { key_id: String },
}

/// Why a token could not be sealed or opened. Never carries token bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "the token was sealed with key `{key_id}`, which is not in the keyring; restore that key to read it"
    )]
    UnknownKey { key_id: String },
    #[error("the sealed token is too short to be a ciphertext")]
    Truncated,
    #[error(
        "the sealed token does not open: it belongs to another user or field, was relabelled, or was tampered with"
    )]
    Rejected,
    #[error("the opened token is not UTF-8")]
    NotUtf8,
    #[error("sealing failed (the system random generator or AES-256-GCM refused)")]
    SealFailed,
}

/// Seals and opens per-user tokens with a keyring; see the module docs.
pub struct TokenCipher {
    keys: HashMap<String, LessSafeKey>,
    active: String,
    rng: SystemRandom,
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        f.debug_struct("TokenCipher")
            .field("key_ids", &ids)
            .field("active", &self.active)
            .finish()
    }
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl TokenCipher {
    /// Builds a keyring from `(key id, base64 of 32 bytes)` pairs; `active`
    /// names the key new seals use.
    pub fn new(
        keys: Vec<(String, SecretString)>,
        active: impl Into<String>,
    ) -> Result<Self, KeyringError> {
        let active = active.into();
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        let mut ring = HashMap::with_capacity(keys.len());
        for (index, (key_id, encoded)) in keys.into_iter().enumerate() {
            if !valid_key_id(&key_id) {
                return Err(KeyringError::InvalidKeyId { index });
            }
            if ring.contains_key(&key_id) {
                return Err(KeyringError::DuplicateKeyId { key_id });
            }
            let bytes = match STANDARD.decode(encoded.expose_secret().trim()) {
                Ok(bytes) => Zeroizing::new(bytes),
                Err(_) => return Err(KeyringError::NotBase64 { key_id }),
            };
            if bytes.len() != KEY_LEN {
                let len = bytes.len();
                return Err(KeyringError::WrongLength { key_id, len });
            }
            let Ok(unbound) = UnboundKey::new(&AES_256_GCM, &bytes) else {
                return Err(KeyringError::Refused { key_id });
            };
            ring.insert(key_id, LessSafeKey::new(unbound));
        }
        if !ring.contains_key(&active) {
            return Err(KeyringError::ActiveKeyMissing { key_id: active });
        }
        Ok(Self {
            keys: ring,
            active,
            rng: SystemRandom::new(),
        })
    }

    /// The id of the key new seals use.
    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Whether rows sealed under `key_id` can be opened.
    /// Every key id in the ring, for rotation metrics.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn has_key(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// Seals `plaintext` for `user`'s `field` under the active key.
    pub fn seal(
        &self,
        user: &UserRef,
        field: Field,
        plaintext: &SecretString,
    ) -> Result<Sealed, CryptoError> {
        let key = self.keys.get(&self.active).ok_or(CryptoError::SealFailed)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| CryptoError::SealFailed)?;
        let plain = plaintext.expose_secret().as_bytes();
        let mut blob = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        blob.extend_from_slice(&nonce);
        // Seals in a separate buffer so the plaintext copy can be wiped.
        let mut in_out = Zeroizing::new(plain.to_vec());
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(field, &self.active, user)),
            &mut *in_out,
        )
        .map_err(|_| CryptoError::SealFailed)?;
        blob.extend_from_slice(&in_out);
        Ok(Sealed {
            key_id: self.active.clone(),
            blob,
        })
    }

    /// Opens a value sealed for `user`'s `field` by any key in the keyring.
    pub fn open(
        &self,
        user: &UserRef,
        field: Field,
        sealed: &Sealed,
    ) -> Result<SecretString, CryptoError> {
        let key = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey {
                key_id: sealed.key_id.clone(),
            })?;
        if sealed.blob.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Truncated);
        }
        let (nonce, ciphertext) = sealed.blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Truncated)?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plain = key
            .open_in_place(
                nonce,
                Aad::from(aad(field, &sealed.key_id, user)),
                &mut in_out,
            )
            .map_err(|_| CryptoError::Rejected)?;
        let text = std::str::from_utf8(plain).map_err(|_| CryptoError::NotUtf8)?;
        Ok(SecretString::from(text.to_owned()))
    }
}

fn aad(field: Field, key_id: &str, user: &UserRef) -> Vec<u8> {
    format!(
        "{AAD_VERSION}:{}:{key_id}:{}",
        field.as_str(),
        user.as_str()
    )
    .into_bytes()
}

/// Fills `buf` from the operating system's CSPRNG (for `state` values).
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::SealFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretString {
        SecretString::from(STANDARD.encode([byte; KEY_LEN]))
    }

    fn cipher() -> TokenCipher {
        TokenCipher::new(vec![("k1".into(), key(1)), ("k2".into(), key(2))], "k2").unwrap()
    }

    fn user(s: &str) -> UserRef {
        s.parse().unwrap()
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn seal(c: &TokenCipher, u: &str, field: Field, plaintext: &str) -> Sealed {
        c.seal(&user(u), field, &secret(plaintext)).unwrap()
    }

    /// Why `sealed` does not open as `u`'s `field`.
    fn open_error(c: &TokenCipher, u: &str, field: Field, sealed: &Sealed) -> CryptoError {
        c.open(&user(u), field, sealed).map(|_| ()).unwrap_err()
    }

    #[test]
    fn seal_then_open_round_trips_with_the_active_key() {
        let c = cipher();
        let sealed = seal(&c, "alice", Field::AccessToken, "tok-123");
        assert_eq!(sealed.key_id, "k2");
        assert_eq!(sealed.blob.len(), NONCE_LEN + "tok-123".len() + TAG_LEN);
        let opened = c.open(&user("alice"), Field::AccessToken, &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "tok-123");
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let c = cipher();
        let a = seal(&c, "a", Field::AccessToken, "same");
        let b = seal(&c, "a", Field::AccessToken, "same");
        assert_ne!(a.blob, b.blob);
    }

    #[test]
    fn another_user_field_or_key_label_does_not_open() {
        let c = cipher();
        let sealed = seal(&c, "alice", Field::RefreshToken, "r");
        let relabelled = Sealed {
            key_id: "k1".into(),
            blob: sealed.blob.clone(),
        };
        let mut flipped = sealed.clone();
        let last = flipped.blob.len() - 1;
        flipped.blob[last] ^= 1;
        for (u, field, sealed, what) in [
            ("bob", Field::RefreshToken, &sealed, "another user"),
            ("alice", Field::AccessToken, &sealed, "another field"),
            (
                "alice",
                Field::RefreshToken,
                &relabelled,
                "another key label",
            ),
            ("alice", Field::RefreshToken, &flipped, "a flipped bit"),
        ] {
            assert_eq!(
                open_error(&c, u, field, sealed),
                CryptoError::Rejected,
                "{what}"
            );
        }
        let short = Sealed {
            key_id: "k2".into(),
            blob: vec![0; NONCE_LEN + TAG_LEN - 1],
        };
        assert_eq!(
            open_error(&c, "alice", Field::RefreshToken, &short),
            CryptoError::Truncated
        );
    }

    #[test]
    fn rows_sealed_with_a_retired_active_key_still_open_after_rotation() {
        let old = TokenCipher::new(vec![("k1".into(), key(1))], "k1").unwrap();
        let sealed = seal(&old, "u", Field::AccessToken, "t");
        let rotated = cipher();
        assert_eq!(rotated.active_key_id(), "k2");
        assert!(rotated.has_key("k1"));
        let opened = rotated
            .open(&user("u"), Field::AccessToken, &sealed)
            .unwrap();
        assert_eq!(opened.expose_secret(), "t");

        let without_k1 = TokenCipher::new(vec![("k2".into(), key(2))], "k2").unwrap();
        assert_eq!(
            open_error(&without_k1, "u", Field::AccessToken, &sealed),
            CryptoError::UnknownKey {
                key_id: "k1".into()
            }
        );
    }

    #[test]
    fn keyring_errors_name_the_key_id_and_the_fix_but_not_the_key() {
        let short = SecretString::from(STANDARD.encode([7u8; 16]));
        let err = TokenCipher::new(vec![("2026-01".into(), short)], "2026-01").unwrap_err();
        assert_eq!(
            err,
            KeyringError::WrongLength {
                key_id: "2026-01".into(),
                len: 16
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("2026-01") && msg.contains("openssl rand -base64 32"),
            "{msg}"
        );
        assert!(!msg.contains(&STANDARD.encode([7u8; 16])), "{msg}");

        let garbage = SecretString::from("not base64 !!".to_owned());
        let msg = TokenCipher::new(vec![("k".into(), garbage)], "k")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`k`") && !msg.contains("not base64 !!"),
            "{msg}"
        );

        assert_eq!(
            TokenCipher::new(vec![], "k").unwrap_err(),
            KeyringError::Empty
        );
        assert_eq!(
            TokenCipher::new(vec![("k:1".into(), key(1))], "k:1").unwrap_err(),
            KeyringError::InvalidKeyId { index: 0 }
        );
        assert_eq!(
            TokenCipher::new(vec![("a".into(), key(1)), ("a".into(), key(2))], "a").unwrap_err(),
            KeyringError::DuplicateKeyId { key_id: "a".into() }
        );
        assert_eq!(
            TokenCipher::new(vec![("a".into(), key(1))], "b").unwrap_err(),
            KeyringError::ActiveKeyMissing { key_id: "b".into() }
        );
    }

    #[test]
    fn debug_output_shows_no_key_or_token_material() {
        let c = cipher();
        let sealed = seal(&c, "u", Field::AccessToken, "plain-tok");
        let debug = format!("{c:?} {sealed:?}");
        assert!(debug.contains("k1") && debug.contains("len"), "{debug}");
        assert!(!debug.contains("plain-tok"), "{debug}");
        assert!(!debug.contains(&STANDARD.encode([1u8; KEY_LEN])), "{debug}");
        assert!(!debug.contains("blob"), "{debug}");
    }
}
