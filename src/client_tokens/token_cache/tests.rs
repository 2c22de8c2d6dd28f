//! The cache's timing rules, each against an exchanger that behaves one way.

use super::*;

struct AlwaysFails(ExchangeError);

#[async_trait]
impl Exchanger for AlwaysFails {
    async fn exchange(&self, _set: CredentialSet) -> Result<AccessToken, ExchangeError> {
        Err(self.0.clone())
    }
}

fn long_backoff() -> CachePolicy {
    CachePolicy {
        refresh_ahead: Duration::from_secs(120),
        min_remaining: Duration::from_secs(30),
        wait_timeout: Duration::from_secs(3),
        backoff_initial: Duration::from_secs(20),
        backoff_max: Duration::from_secs(60),
    }
}

fn cache(set: CredentialSet, exchanger: Arc<dyn Exchanger>) -> Arc<TokenCache> {
    TokenCache::new(set, long_backoff(), exchanger, Metrics::new())
}

async fn retry_after_first_failure(error: ExchangeError) -> Duration {
    let cache = cache(CredentialSet::Sdk, Arc::new(AlwaysFails(error)));
    cache.get().await.expect_err("the exchange fails");
    // The next caller is inside the backoff window and told when to return.
    cache.get().await.expect_err("backing off").retry_after
}

#[tokio::test]
async fn with_no_token_cached_an_upstream_outage_is_retried_within_a_second() {
    for error in [
        ExchangeError::Unreachable,
        ExchangeError::Timeout,
        ExchangeError::ServerError { status: 503 },
        ExchangeError::Malformed("not JSON"),
    ] {
        let kind = error.kind();
        let retry_after = retry_after_first_failure(error).await;
        assert!(retry_after <= OUTAGE_RETRY_MAX, "{kind}: {retry_after:?}");
    }
}

#[tokio::test]
async fn rejected_credentials_keep_the_configured_backoff() {
    for error in [
        ExchangeError::InvalidClient,
        ExchangeError::Rejected {
            status: 400,
            error: Some("invalid_scope".into()),
        },
    ] {
        let kind = error.kind();
        let retry_after = retry_after_first_failure(error).await;
        // Initial backoff 20 s, jittered to between 10 and 20 s.
        assert!(
            retry_after > Duration::from_secs(9),
            "{kind}: {retry_after:?}"
        );
    }
}

/// Waits out an exchange timeout, then fails as a timed-out exchange does.
struct TimesOut(std::sync::atomic::AtomicU32);

#[async_trait]
impl Exchanger for TimesOut {
    async fn exchange(&self, _set: CredentialSet) -> Result<AccessToken, ExchangeError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        Err(ExchangeError::Timeout)
    }
}

#[tokio::test(start_paused = true)]
async fn an_exchange_that_waited_out_its_timeout_is_retried_without_a_further_backoff() {
    let exchanger = Arc::new(TimesOut(std::sync::atomic::AtomicU32::new(0)));
    let cache = cache(CredentialSet::Sdk, exchanger.clone());
    cache.get().await.expect_err("the first exchange times out");
    // The outage backoff (at most a second) ran out while the attempt
    // waited 2.5 s, so the next caller starts the next attempt at once.
    let second = cache
        .get()
        .await
        .expect_err("the second exchange times out too");
    assert!(matches!(second.cause, ExchangeError::Timeout));
    assert_eq!(exchanger.0.load(Ordering::SeqCst), 2);
}

/// Hands out a new token per exchange and counts them.
struct Counting(std::sync::atomic::AtomicU32);

#[async_trait]
impl Exchanger for Counting {
    async fn exchange(&self, _set: CredentialSet) -> Result<AccessToken, ExchangeError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(AccessToken {
            value: format!("token-{n}").into(),
            token_type: "Bearer",
            expires_at: Instant::now() + Duration::from_secs(3600),
            lifetime: Duration::from_secs(3600),
            fingerprint: format!("{n:012}"),
        })
    }
}

#[tokio::test]
async fn a_caller_that_looked_before_an_exchange_finished_takes_its_token_not_a_new_exchange() {
    let exchanger = Arc::new(Counting(std::sync::atomic::AtomicU32::new(0)));
    let cache = cache(CredentialSet::Sdk, exchanger.clone());
    let first = cache.get().await.unwrap();
    // What a caller does after its lookup found nothing, while the
    // exchange above was still in flight.
    let late = cache.fetch().await.unwrap();
    assert_eq!(exchanger.0.load(Ordering::SeqCst), 1);
    assert_eq!(late.fingerprint, first.fingerprint);
}

#[tokio::test]
async fn many_rejections_of_one_token_cost_one_exchange() {
    let exchanger = Arc::new(Counting(std::sync::atomic::AtomicU32::new(0)));
    let cache = cache(CredentialSet::Api, exchanger.clone());
    let refused = cache.get().await.unwrap();
    let calls = (0..10).map(|_| {
        let cache = Arc::clone(&cache);
        let refused = Arc::clone(&refused);
        async move {
            cache.reject(&refused);
            cache.get().await.unwrap()
        }
    });
    let fresh = futures::future::join_all(calls).await;
    assert_eq!(exchanger.0.load(Ordering::SeqCst), 2);
    assert!(fresh.iter().all(|t| t.fingerprint == fresh[0].fingerprint));
    assert_ne!(fresh[0].fingerprint, refused.fingerprint);
    // A late rejection of the old token leaves the new one alone.
    cache.reject(&refused);
    assert!(cache.usable(Instant::now()).is_some());
}
