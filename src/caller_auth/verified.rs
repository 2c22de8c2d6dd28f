//! Tokens verified lately, so that a caller presenting the same session
//! token again is recognised by a lookup instead of a signature check.
//!
//! Entries are found by a keyed hash of the token's last bytes and accepted
//! only when the whole token is equal to the one that was verified. The last
//! bytes of a JWS are its signature, which nobody can forge, so two tokens a
//! caller can present never share a key by chance; the equality check makes
//! the cache correct even if they did. Hashing the tail instead of the whole
//! token keeps a hit's cost flat however long the token is (a session token
//! is often a kilobyte).

use std::hash::Hasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use siphasher::sip128::{Hasher128, SipHasher};

use crate::core::Prehashed;

/// How many of a token's last bytes choose its entry: inside the signature
/// for every algorithm allowed (the shortest, ES256's, is 86 characters).
const KEYED_TAIL: usize = 32;

/// What a verified token says about its bearer.
#[derive(Debug, Clone)]
pub struct VerifiedClaims {
    /// Shared with the cache entry: a recognised caller copies no text.
    pub subject: Arc<str>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Verified tokens and what they said, each kept until its TTL runs out.
pub struct VerifiedCache {
    /// SipHash-2-4 under a key drawn at start-up: nobody outside the process
    /// can steer tokens onto one entry.
    keyer: SipHasher,
    entries: moka::sync::Cache<u128, Arc<Entry>, Prehashed>,
}

struct Entry {
    token: Box<[u8]>,
    claims: VerifiedClaims,
    ttl: Duration,
}

struct EntryExpiry;

impl moka::Expiry<u128, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(&self, _: &u128, entry: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
}

impl VerifiedCache {
    /// `None` if the system cannot supply random bytes: then nothing is cached.
    pub fn new(capacity: u64) -> Option<Self> {
        let mut key = [0u8; 16];
        aws_lc_rs::rand::fill(&mut key).ok()?;
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .expire_after(EntryExpiry)
            .build_with_hasher(Prehashed);
        Some(Self {
            keyer: SipHasher::new_with_key(&key),
            entries,
        })
    }

    /// What `token` said when it was verified, if that was within its TTL
    /// and the token has not expired since (`now`: Unix seconds).
    pub fn get(&self, token: &[u8], now: u64) -> Option<VerifiedClaims> {
        let entry = self.entries.get(&self.key(token))?;
        (*entry.token == *token && entry.claims.expires_at > now).then(|| entry.claims.clone())
    }

    /// Remembers a token that passed every check, for at most `ttl`.
    pub fn insert(&self, token: &[u8], claims: &VerifiedClaims, ttl: Duration) {
        let entry = Entry {
            token: token.into(),
            claims: claims.clone(),
            ttl,
        };
        self.entries.insert(self.key(token), Arc::new(entry));
    }

    fn key(&self, token: &[u8]) -> u128 {
        let mut hasher = self.keyer;
        hasher.write(&token[token.len().saturating_sub(KEYED_TAIL)..]);
        hasher.finish128().as_u128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(subject: &str) -> VerifiedClaims {
        VerifiedClaims {
            subject: subject.into(),
            expires_at: 2_000,
        }
    }

    #[test]
    fn a_token_sharing_a_verified_tokens_signature_is_not_recognised() {
        let cache = VerifiedCache::new(10).unwrap();
        let signature = "s".repeat(86);
        let verified = format!("header.alice-claims.{signature}");
        cache.insert(
            verified.as_bytes(),
            &claims("alice"),
            Duration::from_secs(60),
        );

        let forged = format!("header.mallory-claims.{signature}");
        assert_eq!(cache.key(forged.as_bytes()), cache.key(verified.as_bytes()));
        assert!(cache.get(forged.as_bytes(), 1_000).is_none());
        let hit = cache.get(verified.as_bytes(), 1_000).unwrap();
        assert_eq!(&*hit.subject, "alice");
    }

    #[test]
    fn an_expired_token_is_not_recognised_even_within_the_ttl() {
        let cache = VerifiedCache::new(10).unwrap();
        cache.insert(b"a.b.c", &claims("alice"), Duration::from_secs(60));
        assert!(cache.get(b"a.b.c", 1_999).is_some());
        assert!(cache.get(b"a.b.c", 2_000).is_none());
    }
}
