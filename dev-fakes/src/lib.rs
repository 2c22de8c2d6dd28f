//! Hand-written stand-ins for Astrada's token endpoint and Astra's OAuth
//! surface, kept out of the shipped library: `astrada-token-vendor dev`
//! starts them (`src/app/dev/mod.rs`), and tests, examples and the bench
//! drills use them as upstreams. NOT FOR PRODUCTION: random signing keys,
//! and an unauthenticated `/_control` route where a caller asks for one
//! (loopback only).
//!
//! This crate depends on nothing of the service, so the service can depend
//! on it for dev mode without an import circle.

// Declared first: the fakes use its macro.
#[macro_use]
mod serve;
pub mod fake_astra;
pub mod fake_astrada;
