//! The service from the outside: in-process API tests against a wiremock
//! token endpoint, the real binary (`process`, `hardening`), the docs'
//! commands (`docs`), the example page in headless Chromium (`browser`), and
//! the source layout's layer rule (`layout`). One binary, so the suite links
//! actix, sqlx and the AWS SDK once for all of them.

mod auth_styles;
mod browser;
mod caller_auth;
mod config;
mod cors;
mod docs;
mod grants;
mod grants_config;
mod hardening;
mod internal_auth;
mod layout;
mod listeners;
mod openapi;
mod process;
mod proxy;
mod rate_limit;
mod request_limits;
mod shutdown;
mod token_cache;
mod upstream_errors;
