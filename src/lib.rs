//! astrada-token-vendor: exchanges Astrada client credentials for access
//! tokens, caches them, and hands them out — the SDK token to browsers on a
//! public listener, the API token to services on an internal one.
//!
//! # Layout
//!
//! Read from the top down; each layer imports only the layers below it
//! (`tests/api/layout.rs` enforces this):
//!
//! ```text
//! main.rs        parse the command line, start telemetry, call app
//! app/           composition root: builds every part from its own settings
//!                section, once; owns background tasks and shutdown; dev mode
//!                (which starts the fakes of the `atv-dev-fakes` crate,
//!                `dev-fakes/`, never part of this library)
//! http/          everything actix-web: both listeners' routers, problem
//!                (errors -> RFC 9457), cors, limits, request ids, audit,
//!                rate limit, route handlers
//! caller_auth/   who may call (JWT/JWKS, trusted header, Kubernetes service
//!                accounts, static keys)
//! client_tokens/ Astrada client_credentials vending: credentials (sources),
//!                oauth client, token cache
//! user_tokens/   per-user Astra authorizations
//! observability/ metrics, telemetry
//! core/          shared vocabulary with no crate imports: CredentialSet,
//!                PerSet, AccessToken, clock, backoff
//! config/        settings types, layering and shared value checks
//! ```
//!
//! The rule: `main → app → http → {caller_auth, client_tokens, user_tokens}
//! → observability → core`. The three feature modules do not import each
//! other. `config` may be imported by anyone and imports nothing of the crate.

pub mod app;
pub mod caller_auth;
pub mod client_tokens;
pub mod config;
pub mod core;
pub mod http;
pub mod observability;
pub mod user_tokens;

pub use app::run;
