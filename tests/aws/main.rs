//! Credentials from AWS Secrets Manager, against moto's server (a real AWS
//! emulator, one per test) and a token endpoint that checks which client
//! credentials it receives (`test_support::moto`, `test_support::Astrada`).

mod loading;
mod outages;
mod rotation;
mod serve;

/// The secret after the SDK credentials are rotated: `api-v1` kept, `sdk-v2` new.
fn rotated_bundle() -> String {
    test_support::bundle("api-v1", "sdk-v2")
}
