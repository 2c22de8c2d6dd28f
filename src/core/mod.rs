//! The small shared vocabulary every other part speaks: which credential set,
//! a token and its lifetime, the wall clock, retry jitter, outbound HTTP
//! clients, log-safe text, single-flight work, a hasher for keys that are hashes already. Nothing here imports another module of the crate,
//! so anything may import it.

mod access_token;
mod backoff;
mod clock;
mod credential_set;
mod log_text;
mod named;
mod outbound;
mod prehashed;
mod single_flight;

pub use access_token::AccessToken;
pub use backoff::jittered;
pub use clock::{unix_now, unix_secs};
pub use credential_set::{CredentialSet, PerSet};
pub use log_text::{escape_controls, has_controls};
pub(crate) use named::named_enum;
pub use outbound::{USER_AGENT, outbound_client};
pub use prehashed::Prehashed;
pub use single_flight::{Flight, FlightError, SingleFlight};
