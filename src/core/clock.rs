//! The wall clock, for comparing with timestamps other systems wrote (JWT
//! `exp`, database rows). Durations inside the process use `Instant`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch; zero if the clock is set before 1970.
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// Wall-clock unix seconds, the unit stored rows use.
pub fn unix_secs() -> i64 {
    i64::try_from(unix_now().as_secs()).unwrap_or(i64::MAX)
}
