//! Retry jitter shared by every retry loop.

use std::time::Duration;

/// "Equal jitter": a random wait in `[d/2, d]`, so replicas never retry in lockstep.
pub fn jittered(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_the_whole_wait() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(10));
            assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(10));
        }
    }
}
