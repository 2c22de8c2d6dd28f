//! A cap on calls to Astra's token endpoint (`astra.max_calls_per_sec`), so a
//! stampede or a scheduler catch-up never turns into a flood Astra throttles.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces calls at least `1 / rate` apart, in arrival order.
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn new(per_sec: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_sec.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this call's slot.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
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
}
