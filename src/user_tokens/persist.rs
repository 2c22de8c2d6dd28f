//! Writing what Astra has already issued. Once Astra answered, its refresh
//! token has rotated (or the code is used up): if the answer is not stored,
//! the user's authority is gone or must be recovered through the previous
//! refresh token. So a store that cannot be reached is tried again, with
//! growing waits, until a deadline the caller chooses.

use std::future::Future;
use std::time::Duration;

use super::store::StoreError;
use super::user_ref::UserRef;
use crate::core::{jittered, unix_secs};
use crate::observability::Metrics;

/// Waits between writes the store did not take.
const FIRST_WAIT: Duration = Duration::from_millis(100);
const LONGEST_WAIT: Duration = Duration::from_secs(2);

/// Runs `write` until the store takes it, answers with anything but
/// [`StoreError::Unavailable`], or `give_up_at` (Unix seconds) has passed.
pub(super) async fn until_stored<T, Fut>(
    user: &UserRef,
    give_up_at: i64,
    metrics: &Metrics,
    mut write: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut wait = FIRST_WAIT;
    loop {
        match write().await {
            Err(StoreError::Unavailable { reason }) if unix_secs() < give_up_at => {
                metrics.astra().commit_retry();
                tracing::warn!(user_ref = %user, reason, "astra answered but the store did not; writing again");
                tokio::time::sleep(jittered(wait)).await;
                wait = (wait * 2).min(LONGEST_WAIT);
            }
            done => return done,
        }
    }
}
