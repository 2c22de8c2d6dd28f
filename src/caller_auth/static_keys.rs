//! Pre-shared keys for internal callers outside Kubernetes. Only SHA-256
//! hashes are configured, so the configuration itself holds no usable key,
//! and presented keys are compared in constant time.

use actix_web::HttpRequest;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::{AuthError, Caller, bearer};
use crate::config::{ConfigError, invalid};

/// The accepted keys' SHA-256 digests.
pub struct StaticKeys {
    hashes: Vec<[u8; 32]>,
}

impl StaticKeys {
    /// Parses hex SHA-256 digests, naming the key on error.
    pub fn parse(hex_hashes: &[String]) -> Result<Self, ConfigError> {
        const KEY: &str = "internal_auth.static_keys.key_hashes";
        if hex_hashes.is_empty() {
            return invalid(
                KEY,
                "is empty, so no caller could get the API token".into(),
                "add the SHA-256 of each key: printf %s \"$KEY\" | sha256sum",
            );
        }
        let hashes = hex_hashes
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut digest = [0u8; 32];
                match hex::decode_to_slice(h.trim(), &mut digest) {
                    Ok(()) => Ok(digest),
                    Err(_) => invalid(
                        KEY,
                        format!("entry {i} is not 64 hex digits (a SHA-256)"),
                        "store the hash, never the key: printf %s \"$KEY\" | sha256sum",
                    ),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { hashes })
    }

    /// Accepts `Authorization: Bearer KEY` when KEY hashes to a listed digest.
    pub fn authenticate(&self, req: &HttpRequest) -> Result<Caller, AuthError> {
        let key = bearer(req)?.ok_or(AuthError::Missing)?;
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
            let hash = &self.hashes[usize::try_from(index).unwrap_or_default()];
            Ok(Caller {
                subject: format!("static-key:{}", hex::encode(&hash[..6])),
                method: "static_key",
            })
        } else {
            Err(AuthError::Invalid("unknown key"))
        }
    }
}
