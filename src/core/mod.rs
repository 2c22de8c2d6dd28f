//! The small shared vocabulary every other part speaks: which credential set,
//! a token and its lifetime, the wall clock, retry jitter. Nothing here
//! imports another module of the crate, so anything may import it.

mod access_token;
mod backoff;
mod clock;
mod credential_set;
mod log_text;

pub use access_token::AccessToken;
pub use backoff::jittered;
pub use clock::unix_now;
pub use credential_set::{CredentialSet, PerSet};
pub use log_text::{escape_controls, has_controls};
