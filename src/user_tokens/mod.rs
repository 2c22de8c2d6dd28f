//! Per-user Astra authorizations (authorization code, rotating refresh
//! tokens, encrypted storage, one refresh at a time across replicas). Lands
//! with the Astra issues; empty until then.
