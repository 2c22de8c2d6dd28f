//! In-process API tests: the whole service against a wiremock token endpoint.

mod auth_styles;
mod config;
mod helpers;
mod listeners;
mod openapi;
mod shutdown;
mod token_cache;
mod upstream_errors;
