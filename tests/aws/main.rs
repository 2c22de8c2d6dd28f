//! Credentials from AWS Secrets Manager, against moto's server (a real AWS
//! emulator, one per test) and a token endpoint that checks which client
//! credentials it receives (`test_support::moto`, `test_support::Astrada`).

mod loading;
mod outages;
mod rotation;
mod serve;
