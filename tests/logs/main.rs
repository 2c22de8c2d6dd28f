//! Secrets and tokens never reach a log line, even at `trace` level with every
//! dependency's logging on, and the audit trail is complete. Its own binary,
//! because capturing installs the one global subscriber (and traces every
//! dependency, which would slow the rest of the suite); the tests here share
//! it, and each looks for its own secrets in everything captured.

mod astra;
mod service;
