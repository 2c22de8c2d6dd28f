//! What every test binary of `astrada-token-vendor` shares, so that each
//! helper exists once: the service on free loopback ports ([`app`]), the
//! mock Astrada token endpoint ([`upstream`]), the app's session JWTs and
//! JWKS ([`session`]), Secrets Manager on moto ([`moto`]), a throw-away
//! PostgreSQL cluster ([`postgres`]), the per-user Astra world ([`astra`]),
//! internal callers with their grants ([`internal`]), captured trace-level
//! logs ([`logs`]), the built binary in `dev` mode
//! ([`binary`]) and a TCP proxy a test can cut ([`cut_proxy`]).
//!
//! Paths and problem types come from the crate's own exports
//! (`http::SDK_TOKEN_PATH`, `http::problem::PROBLEM_BASE`, ...), never copies.

pub mod app;
pub mod astra;
pub mod binary;
pub mod cut_proxy;
pub mod internal;
pub mod logs;
pub mod moto;
pub mod postgres;
pub mod session;
pub mod upstream;

use std::future::Future;
use std::time::Duration;

pub use app::*;
pub use internal::*;
pub use session::*;
pub use upstream::*;

/// Seconds since the Unix epoch, for JWT claims.
pub fn unix_now() -> i64 {
    astrada_token_vendor::core::unix_now().as_secs() as i64
}

/// A loopback port that was free a moment ago, for a server the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Polls `condition` every 100 ms until it holds; fails after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `attempt` every 100 ms until it returns a value, failing after `limit`.
pub async fn eventually_some<T, F, Fut>(what: &str, limit: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Instantiates each named test, an `async fn(B)`, once per database, as
/// `sqlite::name` and `postgres::name`, where `B::sqlite()` and
/// `B::postgres()` build its argument:
/// `on_sqlite_and_postgres!(Backend: a_test, another_test)`.
#[macro_export]
macro_rules! on_sqlite_and_postgres {
    ($backend:ident: $($name:ident),* $(,)?) => {
        $crate::on_sqlite_and_postgres!(@db sqlite, $backend: $($name),*);
        $crate::on_sqlite_and_postgres!(@db postgres, $backend: $($name),*);
    };
    (@db $db:ident, $backend:ident: $($name:ident),*) => {
        mod $db {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::$backend::$db().await).await
                }
            )*
        }
    };
}
