//! Per-caller token buckets on the SDK-token endpoint, so that one session
//! (or one address, when callers are anonymous or fail to authenticate)
//! cannot mint tokens or burn verification work without bound.
//!
//! Buckets live in a bounded cache and are forgotten once idle long enough
//! to have refilled, so memory stays bounded under floods of identities.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::client_addr::ClientAddr;
use crate::config::{ConfigError, RateLimitSettings, invalid};
use crate::core::Prehashed;

/// Whom a token hand-out is counted and audited under: an authenticated
/// caller, or an anonymous one's address. Hashed where it is used, never
/// formatted into a key on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder<'a> {
    Caller(&'a str),
    Address(ClientAddr),
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by admitted caller, and separate ones keyed by
/// client address for refused requests (so that failures at one address
/// never spend a caller's budget, and honest callers get 401, not 429).
/// All in memory: the limits are per replica.
pub struct RateLimiter {
    callers: Buckets,
    pre_auth: Buckets,
}

impl RateLimiter {
    /// Checks `[rate_limit]` and builds the limiter; `per_caller_per_minute = 0`
    /// (or `pre_auth_per_minute = 0`) turns that limit off.
    pub fn from_settings(settings: &RateLimitSettings) -> Result<Self, ConfigError> {
        Ok(Self {
            callers: Buckets::new(
                settings.per_caller_per_minute,
                settings.burst,
                settings.max_tracked_callers,
                "rate_limit.burst",
            )?,
            pre_auth: Buckets::new(
                settings.pre_auth_per_minute,
                settings.pre_auth_burst,
                settings.max_tracked_callers,
                "rate_limit.pre_auth_burst",
            )?,
        })
    }

    /// Takes one token from admitted caller `holder`'s bucket (a
    /// [`Holder`]), or says how long until one is there.
    pub fn check(&self, holder: impl Hash) -> Result<(), Duration> {
        self.callers.check(holder)
    }

    /// Charges a refused request to client `address`; `Err` once that
    /// address is over the pre-authentication limit.
    pub fn check_pre_auth(&self, address: impl Hash) -> Result<(), Duration> {
        self.pre_auth.check(address)
    }
}

/// One set of token buckets, keyed by a hash of whom they count under a key
/// drawn at start-up: nobody outside can aim two holders at one bucket, and
/// 64 bits leave a chance sharing one bucket out of the question.
struct Buckets {
    buckets: Option<moka::sync::Cache<u64, Arc<Mutex<Bucket>>, Prehashed>>,
    hasher: RandomState,
    per_sec: f64,
    burst: f64,
}

impl Buckets {
    fn new(
        per_minute: u32,
        burst: u32,
        max_tracked: u64,
        burst_key: &'static str,
    ) -> Result<Self, ConfigError> {
        if per_minute > 0 && (burst == 0 || max_tracked == 0) {
            return invalid(
                burst_key,
                "the burst and rate_limit.max_tracked_callers must be at least 1 while the \
                 limit is on"
                    .into(),
                "use e.g. 10 (and max_tracked_callers = 100000), or set the per-minute rate to 0",
            );
        }
        let per_sec = f64::from(per_minute) / 60.0;
        let burst = f64::from(burst.max(1));
        let buckets = (per_minute > 0).then(|| {
            // An idle bucket is full again after burst / rate: forgetting it then loses nothing.
            let refill = Duration::from_secs_f64(burst / per_sec) + Duration::from_secs(1);
            moka::sync::Cache::builder()
                .max_capacity(max_tracked)
                .time_to_idle(refill)
                .build_with_hasher(Prehashed)
        });
        Ok(Self {
            buckets,
            hasher: RandomState::new(),
            per_sec,
            burst,
        })
    }

    fn check(&self, holder: impl Hash) -> Result<(), Duration> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        let now = Instant::now();
        let bucket = buckets.get_with(self.hasher.hash_one(holder), || {
            Arc::new(Mutex::new(Bucket {
                tokens: self.burst,
                updated: now,
            }))
        });
        // A poisoned lock still holds a usable count.
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter::from_settings(&RateLimitSettings {
            per_caller_per_minute: per_minute,
            burst,
            pre_auth_per_minute: per_minute,
            pre_auth_burst: burst,
            max_tracked_callers: 100,
        })
        .expect("valid settings")
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_allowed_then_the_rate_refills_it() {
        let l = limiter(60, 3);
        assert!((0..3).all(|_| l.check("a").is_ok()));
        let wait = l.check("a").expect_err("burst used up");
        assert!(wait <= Duration::from_secs(1));
        assert!(l.check("b").is_ok(), "callers have separate buckets");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_never_spend_a_callers_budget() {
        let l = limiter(60, 2);
        assert!((0..2).all(|_| l.check_pre_auth("ip:192.0.2.1").is_ok()));
        assert!(l.check_pre_auth("ip:192.0.2.1").is_err());
        assert!(l.check("ip:192.0.2.1").is_ok(), "separate buckets");
    }

    #[test]
    fn zero_per_minute_turns_the_limit_off() {
        let l = limiter(0, 1);
        assert!((0..1000).all(|_| l.check("a").is_ok()));
    }
}
