//! Per-user Astra authorizations: authorization code, rotating refresh
//! tokens, encrypted storage, one refresh at a time across replicas.

pub mod astra_client;
