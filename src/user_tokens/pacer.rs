//! A cap on calls to Astra's token endpoint (`astra.max_calls_per_sec`), so a
//! stampede or a scheduler catch-up never turns into a flood Astra throttles.
//! The cap is for the whole deployment: each live replica takes an equal
//! share ([`Pacer::set_share`], from the heartbeat in [`super::replicas`]).
//! [`PacedAstra`] is the only way the service calls Astra's token endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::astra_client::{AstraClient, AstraError, AstraTokens};
use crate::observability::Metrics;

/// Astra's token endpoint behind this replica's share of the cap, each call timed.
pub struct PacedAstra {
    pub client: AstraClient,
    pub pacer: Arc<Pacer>,
    pub metrics: Metrics,
}

impl PacedAstra {
    /// Redeems an authorization code.
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        code_verifier: Option<&SecretString>,
    ) -> Result<AstraTokens, AstraError> {
        self.call(self.client.exchange_code(code, code_verifier))
            .await
    }

    /// Rotates a refresh token.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<AstraTokens, AstraError> {
        self.call(self.client.refresh(refresh_token)).await
    }

    async fn call(
        &self,
        call: impl Future<Output = Result<AstraTokens, AstraError>>,
    ) -> Result<AstraTokens, AstraError> {
        self.pacer.wait().await;
        let started = Instant::now();
        let answer = call.await;
        self.metrics.astra().call(started.elapsed());
        answer
    }
}

/// Spaces calls at least `replicas / rate` apart, in arrival order.
pub struct Pacer {
    per_sec: u32,
    interval_nanos: AtomicU64,
    next: Mutex<Instant>,
}

impl Pacer {
    /// A pacer for one replica alone, until told otherwise.
    pub fn new(per_sec: u32) -> Self {
        let pacer = Self {
            per_sec: per_sec.max(1),
            interval_nanos: AtomicU64::new(0),
            next: Mutex::new(Instant::now()),
        };
        pacer.set_share(1);
        pacer
    }

    /// Takes one `replicas`-th of the cap.
    pub fn set_share(&self, replicas: usize) {
        let replicas = u64::try_from(replicas.max(1)).unwrap_or(u64::MAX);
        let nanos = 1_000_000_000u64.saturating_mul(replicas) / u64::from(self.per_sec);
        self.interval_nanos.store(nanos, Ordering::Relaxed);
    }

    /// How many calls fit in `window` at the current share (at least one).
    pub fn calls_within(&self, window: Duration) -> u32 {
        let interval = self.interval_nanos.load(Ordering::Relaxed).max(1);
        let calls = window.as_nanos() / u128::from(interval);
        u32::try_from(calls).unwrap_or(u32::MAX).max(1)
    }

    /// Waits for this call's slot.
    pub async fn wait(&self) {
        let interval = Duration::from_nanos(self.interval_nanos.load(Ordering::Relaxed));
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_at_the_configured_rate() {
        let pacer = Pacer::new(10);
        let started = Instant::now();
        for _ in 0..11 {
            pacer.wait().await;
        }
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[test]
    fn calls_within_a_window_follow_the_share() {
        let pacer = Pacer::new(20);
        assert_eq!(pacer.calls_within(Duration::from_secs(15)), 300);
        pacer.set_share(6);
        assert_eq!(pacer.calls_within(Duration::from_secs(15)), 50);
        assert_eq!(pacer.calls_within(Duration::ZERO), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn each_of_four_live_replicas_takes_a_quarter_of_the_cap() {
        let pacer = Pacer::new(20);
        pacer.set_share(4);
        let started = Instant::now();
        for _ in 0..6 {
            pacer.wait().await;
        }
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "5 calls a second"
        );
    }
}
