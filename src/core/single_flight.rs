//! Run one piece of work per key and let every concurrent caller share its
//! result: the Astrada token exchange (one per credential set) and the Astra
//! refresh (one per user and generation) both rest on it.
//!
//! The work runs as a task of its own, so a caller that goes away or times
//! out never cancels what the others are waiting for. The key is free again
//! the moment the work ends, however it ends: a panic in the work reaches
//! every waiter as [`FlightError::Crashed`] instead of a key stuck forever.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// Why a waiter got no result of the shared work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlightError {
    /// The work panicked, or its runtime shut down under it.
    #[error("the shared work ended without a result")]
    Crashed,
    /// The waiter's own deadline passed; the work goes on for the others.
    #[error("the shared work did not finish within the wait")]
    TimedOut,
}

/// A handle on work in flight; cloning it is cheap.
pub struct Flight<V: Clone> {
    result: Shared<BoxFuture<'static, Result<V, FlightError>>>,
    /// Whether this caller joined work someone else started.
    pub joined: bool,
}

impl<V: Clone> Flight<V> {
    /// The work's result, or [`FlightError::TimedOut`] after `wait`.
    pub async fn wait(self, wait: Duration) -> Result<V, FlightError> {
        tokio::time::timeout(wait, self.result)
            .await
            .unwrap_or(Err(FlightError::TimedOut))
    }

    /// The work's result, however long it takes.
    pub async fn finish(self) -> Result<V, FlightError> {
        self.result.await
    }
}

type SharedResult<V> = Shared<BoxFuture<'static, Result<V, FlightError>>>;

/// The work in flight by key, each with the number that tells it from
/// earlier and later work under the same key.
struct Flights<K, V: Clone> {
    by_key: HashMap<K, (u64, SharedResult<V>)>,
    started: u64,
}

/// At most one piece of work per key in flight.
pub struct SingleFlight<K, V: Clone> {
    flights: Arc<Mutex<Flights<K, V>>>,
    runtime: tokio::runtime::Handle,
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Work starts on the runtime current here, not on a caller's.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn new() -> Self {
        Self {
            flights: Arc::new(Mutex::new(Flights {
                by_key: HashMap::new(),
                started: 0,
            })),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Joins the work in flight for `key`; otherwise asks `start` for the
    /// work and runs it. `start` may decline (a backoff window, say); it is
    /// called under the same lock as the lookup, so two callers can never
    /// both start.
    pub fn join_or_start<R, F, W>(&self, key: K, start: F) -> Result<Flight<V>, R>
    where
        F: FnOnce() -> Result<W, R>,
        W: Future<Output = V> + Send + 'static,
    {
        let (work, done, sender, result) = {
            let mut flights = lock(&self.flights);
            if let Some((_, result)) = flights.by_key.get(&key) {
                return Ok(Flight {
                    result: result.clone(),
                    joined: true,
                });
            }
            let work = start()?;
            flights.started += 1;
            let id = flights.started;
            let (sender, receiver) = tokio::sync::oneshot::channel();
            // A sender dropped unsent is work that panicked or was aborted.
            let result = async move { receiver.await.unwrap_or(Err(FlightError::Crashed)) }
                .boxed()
                .shared();
            flights.by_key.insert(key.clone(), (id, result.clone()));
            let done = Done {
                flights: Arc::clone(&self.flights),
                key,
                id,
            };
            (work, done, sender, result)
        };
        // Spawned outside the lock: a runtime shutting down drops the task
        // at once, and `done` takes the lock as it goes.
        self.runtime.spawn(async move {
            let value = work.await;
            // Freed before the result is published: a caller that comes
            // after it finds the work's effects, not this flight.
            drop(done);
            let _ = sender.send(Ok(value));
        });
        Ok(Flight {
            result,
            joined: false,
        })
    }

    /// Joins or starts the work for `key` and waits at most `wait` for it.
    pub async fn run<W>(&self, key: K, wait: Duration, work: W) -> Result<V, FlightError>
    where
        W: Future<Output = V> + Send + 'static,
    {
        let flight = self.join_or_start(key, || Ok::<_, std::convert::Infallible>(work));
        match flight {
            Ok(flight) => flight.wait(wait).await,
            Err(never) => match never {},
        }
    }

    /// How many keys have work in flight.
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).by_key.len()
    }
}

impl<K, V> Default for SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

/// Frees the key when the work ends, also by panic or abort (the task's
/// future is dropped then), unless newer work holds it already.
struct Done<K: Hash + Eq, V: Clone> {
    flights: Arc<Mutex<Flights<K, V>>>,
    key: K,
    id: u64,
}

impl<K: Hash + Eq, V: Clone> Drop for Done<K, V> {
    fn drop(&mut self) {
        let mut flights = lock(&self.flights);
        if flights
            .by_key
            .get(&self.key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            flights.by_key.remove(&self.key);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const LONG: Duration = Duration::from_secs(10);

    fn counted(runs: &Arc<AtomicUsize>, value: u32) -> impl Future<Output = u32> + Send + 'static {
        let runs = Arc::clone(runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            value
        }
    }

    #[tokio::test]
    async fn work_runs_once_for_1000_concurrent_callers() {
        let flights = Arc::new(SingleFlight::<&str, u32>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let callers = (0..1000).map(|_| {
            let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
            tokio::spawn(async move { flights.run("k", LONG, counted(&runs, 7)).await })
        });
        for caller in futures::future::join_all(callers).await {
            assert_eq!(caller.expect("caller"), Ok(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn different_keys_run_apart() {
        let flights = SingleFlight::<u8, u8>::new();
        let (a, b) = tokio::join!(
            flights.run(1, LONG, async { 1 }),
            flights.run(2, LONG, async { 2 })
        );
        assert_eq!((a, b), (Ok(1), Ok(2)));
    }

    #[tokio::test]
    async fn a_caller_going_away_does_not_cancel_the_work_for_the_others() {
        let flights = Arc::new(SingleFlight::<&str, u32>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let first = {
            let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
            tokio::spawn(async move { flights.run("k", LONG, counted(&runs, 3)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.abort();
        let second = flights.run("k", LONG, counted(&runs, 4)).await;
        assert_eq!(second, Ok(3), "the second caller shares the first's work");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_waiter_that_times_out_leaves_the_work_running() {
        let flights = SingleFlight::<&str, u32>::new();
        let slow = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            9
        };
        let impatient = flights.run("k", Duration::from_millis(10), slow).await;
        assert_eq!(impatient, Err(FlightError::TimedOut));
        assert_eq!(flights.in_flight(), 1, "the work goes on");
        let patient = flights.run("k", LONG, async { 0 }).await;
        assert_eq!(patient, Ok(9), "a later caller joins the same work");
    }

    #[tokio::test]
    async fn a_panic_in_the_work_reaches_every_waiter_and_frees_the_key() {
        let flights = Arc::new(SingleFlight::<&str, u32>::new());
        let gate = Arc::new(tokio::sync::Notify::new());
        let leader = {
            let (flights, gate) = (Arc::clone(&flights), Arc::clone(&gate));
            tokio::spawn(async move {
                flights
                    .run("k", LONG, async move {
                        gate.notified().await;
                        panic!("the work failed hard")
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let follower = flights
            .join_or_start("k", || Err::<std::future::Ready<u32>, _>("must join"))
            .expect("joins the leader's work");
        assert!(follower.joined);
        gate.notify_one();
        assert_eq!(follower.wait(LONG).await, Err(FlightError::Crashed));
        assert_eq!(leader.await.expect("leader"), Err(FlightError::Crashed));
        assert_eq!(flights.in_flight(), 0);
        assert_eq!(flights.run("k", LONG, async { 5 }).await, Ok(5));
    }

    #[tokio::test]
    async fn a_declined_start_leaves_nothing_in_flight() {
        let flights = SingleFlight::<&str, u32>::new();
        let declined =
            flights.join_or_start("k", || Err::<std::future::Ready<u32>, _>("backing off"));
        assert_eq!(declined.err(), Some("backing off"));
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_caller_after_the_work_ended_starts_new_work() {
        let flights = SingleFlight::<&str, u32>::new();
        let runs = Arc::new(AtomicUsize::new(0));
        assert_eq!(flights.run("k", LONG, counted(&runs, 1)).await, Ok(1));
        assert_eq!(flights.run("k", LONG, counted(&runs, 2)).await, Ok(2));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
