//! Pre-shared keys for internal callers outside Kubernetes. Each key has a
//! name (what grants and audit lines call it); only its SHA-256 is
//! configured, so the configuration itself holds no usable key, and
//! presented keys are compared in constant time.

use actix_web::HttpRequest;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::{AuthError, Caller, bearer};
use crate::config::{ConfigError, StaticKeysSettings, invalid};

const KEY: &str = "internal_auth.static_keys.keys";

/// The longest key name.
const MAX_NAME_LEN: usize = 64;

/// The accepted keys' names and SHA-256 digests.
pub struct StaticKeys {
    names: Vec<String>,
    hashes: Vec<[u8; 32]>,
}

impl StaticKeys {
    /// Checks `[internal_auth.static_keys]`: named keys, each a SHA-256,
    /// no name or hash twice.
    pub fn from_settings(settings: &StaticKeysSettings) -> Result<Self, ConfigError> {
        if settings.keys.is_empty() {
            return invalid(
                KEY,
                "is empty, so no caller could authenticate".into(),
                "add a [[internal_auth.static_keys.keys]] table per caller with its name and the \
                 SHA-256 of its key: printf %s \"$KEY\" | sha256sum",
            );
        }
        let mut names: Vec<String> = Vec::with_capacity(settings.keys.len());
        let mut hashes: Vec<[u8; 32]> = Vec::with_capacity(settings.keys.len());
        for (i, key) in settings.keys.iter().enumerate() {
            if !is_name(&key.name) {
                return invalid(
                    KEY,
                    format!(
                        "entry {i}: the name is not 1-{MAX_NAME_LEN} characters of a-z 0-9 . _ -"
                    ),
                    "name the caller, e.g. name = \"ops-cli\"",
                );
            }
            let mut digest = [0u8; 32];
            if hex::decode_to_slice(key.sha256.trim(), &mut digest).is_err() {
                return invalid(
                    KEY,
                    format!("entry {i} (`{}`): sha256 is not 64 hex digits", key.name),
                    "store the hash, never the key: printf %s \"$KEY\" | sha256sum",
                );
            }
            if names.contains(&key.name) || hashes.contains(&digest) {
                return invalid(
                    KEY,
                    format!(
                        "entry {i} (`{}`): the name or the hash is listed twice",
                        key.name
                    ),
                    "give each caller its own key and name",
                );
            }
            names.push(key.name.clone());
            hashes.push(digest);
        }
        Ok(Self { names, hashes })
    }

    /// The keys' names, for checking grants.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Accepts `Authorization: Bearer KEY` when KEY hashes to a listed digest.
    pub fn authenticate(&self, req: &HttpRequest) -> Result<Caller, AuthError> {
        let key = bearer(req)?.ok_or(AuthError::Missing)?.token()?;
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Every entry is compared, so timing tells nothing about which (if any) matched.
        let mut matched = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, hash) in self.hashes.iter().enumerate() {
            let equal = hash.ct_eq(&digest);
            matched |= equal;
            index = u64::conditional_select(&index, &(i as u64), equal);
        }
        if bool::from(matched) {
            let name = &self.names[usize::try_from(index).unwrap_or_default()];
            Ok(Caller {
                subject: name.as_str().into(),
                method: "static_key",
            })
        } else {
            Err(AuthError::Invalid("unknown key"))
        }
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}
