//! Map keys that are already a keyed hash: a rate-limit bucket's, an audit
//! entry's, a verified token's. Hashing them a second time (SipHash, the
//! standard maps' default) cost more per request than the lookup itself.

use std::hash::{BuildHasher, Hasher};

/// A `BuildHasher` that takes a `u64` or `u128` key as its own hash. Only for
/// keys that come out of a hash under a key drawn at start-up: they are
/// uniform, and nobody outside the process can aim them at one bucket.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prehashed;

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;

    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher(0)
    }
}

/// See [`Prehashed`].
#[derive(Debug)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Not used by `u64` or `u128` keys; folds any other key's bytes so
    /// that a misuse is slow, never wrong.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn write_u128(&mut self, n: u128) {
        // Both halves are uniform: either alone would do, their sum costs nothing.
        self.0 ^= (n as u64).wrapping_add((n >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prehashed_key_is_its_own_hash() {
        assert_eq!(Prehashed.hash_one(0xdead_beef_u64), 0xdead_beef);
        assert_eq!(Prehashed.hash_one(7_u128 << 64 | 5), 12);
        assert_ne!(Prehashed.hash_one("a"), Prehashed.hash_one("b"));
    }
}
