//! In-process API tests: the whole service against a wiremock token endpoint.

mod auth_styles;
mod caller_auth;
mod config;
mod cors;
mod grants;
mod grants_config;
mod internal_auth;
mod listeners;
mod openapi;
mod proxy;
mod rate_limit;
mod request_limits;
mod shutdown;
mod token_cache;
mod upstream_errors;
