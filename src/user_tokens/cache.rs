//! A bounded, in-process read-through cache of users' current access tokens,
//! for stores with a change feed (PostgreSQL).
//!
//! A token request served from here touches neither the database nor the
//! cipher. It is kept coherent with the other replicas by the store's change
//! feed: every change to what a token request hands out evicts the user, and
//! a read that raced with such a change is not cached (each shard counts
//! evictions; a fill carries the count it started from). While the feed is
//! down, entries are not served as hits, and when it comes back no entry
//! filled before is served as a hit again, since changes may have gone
//! unheard. Those entries are kept for the outage fallback below, not
//! dropped: a feed that reconnects while the database flaps must not take
//! away the tokens a failing read falls back on.
//!
//! When the database cannot be reached, a still-valid entry is served anyway
//! ([`UserTokenCache::still_valid`]): nobody can replace a token while the
//! database is down, so the cached one is still the current one.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use secrecy::SecretString;

use super::store::ChangeSink;
use super::user_ref::UserRef;

/// Shards, so concurrent requests for different users rarely share a lock.
const SHARDS: usize = 64;

/// A hit older than this is read again even if no change was heard: a bound
/// on how long a lost notification could keep a replaced token in use.
const MAX_UNCONFIRMED_SECS: i64 = 30;

/// One user's token as last read from the store.
#[derive(Debug)]
pub struct CachedToken {
    pub access_token: SecretString,
    pub generation: i64,
    pub access_expires_at: i64,
    /// When a planned refresh replaces this token (unix seconds).
    pub planned_replacement: i64,
    filled_at: i64,
    /// The feed session it was filled under (see [`UserTokenCache::fill`]).
    session: u64,
}

impl CachedToken {
    pub fn new(
        access_token: SecretString,
        generation: i64,
        access_expires_at: i64,
        planned_replacement: i64,
        now: i64,
    ) -> Self {
        Self {
            access_token,
            generation,
            access_expires_at,
            planned_replacement,
            filled_at: now,
            session: 0,
        }
    }
}

/// Proof of the shard's eviction count before a store read (see [`UserTokenCache::fill`]).
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    shard: usize,
    evictions: u64,
}

struct Shard {
    evictions: AtomicU64,
    entries: Mutex<HashMap<Box<str>, Arc<CachedToken>>>,
}

/// See the module docs. A capacity of 0 caches nothing.
pub struct UserTokenCache {
    shards: Box<[Shard]>,
    per_shard: usize,
    hasher: RandomState,
    /// Whether the change feed is listening, so hits can be trusted.
    coherent: AtomicBool,
    /// Counts the feed's (re)connections: only entries filled during the
    /// current session are hits.
    session: AtomicU64,
}

impl UserTokenCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    evictions: AtomicU64::new(0),
                    entries: Mutex::new(HashMap::new()),
                })
                .collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: RandomState::new(),
            coherent: AtomicBool::new(false),
            session: AtomicU64::new(0),
        }
    }

    /// A token that may be handed out as is: the feed is listening, the
    /// entry was confirmed recently, and no planned refresh is due.
    pub fn fresh(&self, user: &UserRef, now: i64) -> Option<Arc<CachedToken>> {
        if !self.coherent.load(Ordering::Acquire) {
            return None;
        }
        let session = self.session.load(Ordering::Acquire);
        self.get(user).filter(|t| {
            t.session == session
                && now < t.planned_replacement
                && now - t.filled_at < MAX_UNCONFIRMED_SECS
        })
    }

    /// A token Astra still accepts, for when the store cannot be reached.
    pub fn still_valid(&self, user: &UserRef, now: i64) -> Option<Arc<CachedToken>> {
        self.get(user).filter(|t| now < t.access_expires_at)
    }

    /// Taken before reading the store, for a later [`UserTokenCache::fill`].
    pub fn ticket(&self, user: &UserRef) -> Ticket {
        let shard = self.shard_of(user.as_str());
        Ticket {
            shard,
            evictions: self.shards[shard].evictions.load(Ordering::Acquire),
        }
    }

    /// Caches what a store read returned, unless the shard saw an eviction
    /// since `ticket` was taken (the read may predate a change).
    pub fn fill(&self, ticket: Ticket, user: &UserRef, mut token: CachedToken) {
        if self.per_shard == 0 {
            return;
        }
        let shard = &self.shards[ticket.shard];
        let mut entries = lock(&shard.entries);
        // Checked under the lock: evictions are counted under it too.
        if shard.evictions.load(Ordering::Acquire) != ticket.evictions {
            return;
        }
        if entries.len() >= self.per_shard && !entries.contains_key(user.as_str()) {
            // Evict an arbitrary entry: the map's order is random per process.
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        token.session = self.session.load(Ordering::Acquire);
        entries.insert(user.as_str().into(), Arc::new(token));
    }

    /// Forgets `user_ref`; reads in flight will not cache what they read.
    pub fn evict(&self, user_ref: &str) {
        let shard = &self.shards[self.shard_of(user_ref)];
        let mut entries = lock(&shard.entries);
        shard.evictions.fetch_add(1, Ordering::AcqRel);
        entries.remove(user_ref);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.entries).len()).sum()
    }

    fn get(&self, user: &UserRef) -> Option<Arc<CachedToken>> {
        let shard = &self.shards[self.shard_of(user.as_str())];
        lock(&shard.entries).get(user.as_str()).cloned()
    }

    /// Starts a new feed session: reads in flight will not cache what they
    /// read, and what is cached stops being a hit. Evictions are counted
    /// first, so a fill that slips in between gets the old session.
    fn new_session(&self) {
        for shard in self.shards.iter() {
            let _entries = lock(&shard.entries);
            shard.evictions.fetch_add(1, Ordering::AcqRel);
        }
        self.session.fetch_add(1, Ordering::AcqRel);
    }

    fn shard_of(&self, user_ref: &str) -> usize {
        // The modulo keeps the value below SHARDS, so the cast cannot truncate.
        (self.hasher.hash_one(user_ref) % SHARDS as u64) as usize
    }
}

impl ChangeSink for UserTokenCache {
    fn connected(&self) {
        self.new_session();
        self.coherent.store(true, Ordering::Release);
    }

    fn lost(&self) {
        self.coherent.store(false, Ordering::Release);
    }

    fn changed(&self, user_ref: &str) {
        self.evict(user_ref);
    }
}

/// Drops `user` from `cache`, if there is one, after a write on this
/// replica; other replicas hear of the write through the change feed.
pub fn forget(cache: Option<&Arc<UserTokenCache>>, user: &UserRef) {
    if let Some(cache) = cache {
        cache.evict(user.as_str());
    }
}

/// A panic while holding a shard cannot leave a map half-written, so a
/// poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserRef {
        UserRef::try_from(s.to_owned()).unwrap()
    }

    fn token(generation: i64, now: i64) -> CachedToken {
        CachedToken::new(
            SecretString::from(format!("token-{generation}")),
            generation,
            now + 7200,
            now + 6900,
            now,
        )
    }

    fn listening(capacity: usize) -> UserTokenCache {
        let cache = UserTokenCache::new(capacity);
        cache.connected();
        cache
    }

    #[test]
    fn a_filled_token_is_a_hit_until_its_planned_replacement() {
        let cache = listening(10);
        let u = user("ann");
        let due_soon = CachedToken::new(SecretString::from("t".to_owned()), 1, 1100, 1010, 1000);
        cache.fill(cache.ticket(&u), &u, due_soon);
        assert_eq!(cache.fresh(&u, 1009).unwrap().generation, 1);
        assert!(cache.fresh(&u, 1010).is_none(), "due for refresh");
    }

    #[test]
    fn a_read_that_raced_with_a_change_is_not_cached() {
        let cache = listening(10);
        let u = user("bob");
        let ticket = cache.ticket(&u);
        cache.changed("bob");
        cache.fill(ticket, &u, token(1, 1000));
        assert!(cache.fresh(&u, 1001).is_none());
    }

    #[test]
    fn a_change_evicts_and_a_lost_feed_stops_hits_but_not_the_outage_fallback() {
        let cache = listening(10);
        let (a, b) = (user("a"), user("b"));
        cache.fill(cache.ticket(&a), &a, token(1, 1000));
        cache.fill(cache.ticket(&b), &b, token(1, 1000));
        cache.changed("a");
        assert!(cache.fresh(&a, 1001).is_none());
        cache.lost();
        assert!(cache.fresh(&b, 1001).is_none(), "no hits without the feed");
        assert!(cache.still_valid(&b, 1000 + 7199).is_some());
        assert!(cache.still_valid(&b, 1000 + 7200).is_none(), "expired");
        cache.connected();
        assert!(
            cache.fresh(&b, 1001).is_none(),
            "changes may have gone unheard"
        );
        assert!(
            cache.still_valid(&b, 1001).is_some(),
            "kept for the outage fallback"
        );
        cache.fill(cache.ticket(&b), &b, token(2, 1001));
        assert_eq!(cache.fresh(&b, 1002).unwrap().generation, 2);
    }

    #[test]
    fn a_feed_reconnecting_during_a_store_read_keeps_the_outage_fallback() {
        let cache = listening(10);
        let u = user("dee");
        cache.fill(cache.ticket(&u), &u, token(1, 1000));
        // A request misses (the hit is too old), reads the store, and while
        // that read times out the feed drops and comes back.
        let ticket = cache.ticket(&u);
        cache.lost();
        cache.connected();
        let fallback = cache.still_valid(&u, 1000 + MAX_UNCONFIRMED_SECS + 1);
        assert_eq!(fallback.map(|t| t.generation), Some(1));
        // Had the read succeeded, what it read is not cached: it may predate
        // a change the feed did not hear.
        cache.fill(ticket, &u, token(2, 1000));
        assert!(cache.fresh(&u, 1001).is_none());
    }

    #[test]
    fn hits_are_confirmed_again_after_a_while() {
        let cache = listening(10);
        let u = user("cy");
        cache.fill(cache.ticket(&u), &u, token(1, 1000));
        assert!(cache.fresh(&u, 1000 + MAX_UNCONFIRMED_SECS).is_none());
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity_rounded_up_per_shard() {
        let cache = listening(128);
        for i in 0..10_000 {
            let u = user(&format!("u{i}"));
            cache.fill(cache.ticket(&u), &u, token(1, 1000));
        }
        assert!(cache.len() <= 128, "{}", cache.len());
        assert!(cache.len() >= 64);
        let off = listening(0);
        let u = user("z");
        off.fill(off.ticket(&u), &u, token(1, 1000));
        assert_eq!(off.len(), 0);
    }
}
