//! Layered configuration: embedded defaults → optional TOML file → `ATV_*`
//! environment variables. Loading checks key names and types; each part of
//! the service checks its own section's values when it is built from it, so
//! that a bad value stops the process with a message naming the key and the
//! fix, and nothing is checked twice.
//!
//! This module imports no other part of the crate: anyone may import it.

mod checks;
mod sections;

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

pub use checks::{CALLER_BUDGET, env_var, https_url, invalid, required};
pub use sections::*;

/// The embedded defaults, also printed by `--help` as the configuration reference.
pub const DEFAULTS_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of every environment variable the service reads as configuration.
pub const ENV_PREFIX: &str = "ATV_";

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value could not be read or has the wrong type.
    #[error("configuration could not be read: {}", describe_load_error(.0))]
    Load(Box<figment::Error>),
    /// A value was read but makes no sense.
    #[error("invalid configuration `{key}`: {problem}. Fix: {fix}")]
    Invalid {
        key: &'static str,
        problem: String,
        fix: String,
    },
}

// Not `#[from]`: that would make figment's own (less readable) message the
// error's source and print it a second time.
impl From<Box<figment::Error>> for ConfigError {
    fn from(e: Box<figment::Error>) -> Self {
        ConfigError::Load(e)
    }
}

impl Settings {
    /// Loads defaults, then `file` if given, then `ATV_*` variables. Types and
    /// key names are checked here; each part checks its own values when it
    /// is built from its section (see `app`).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(None, file)
    }

    /// Like [`Settings::load`] with an extra TOML layer right above the
    /// defaults (dev mode's).
    pub fn load_with(overrides: Option<&str>, file: Option<&Path>) -> Result<Self, ConfigError> {
        Ok(Self::figment(overrides, file)
            .extract::<Settings>()
            .map_err(Box::new)?)
    }

    fn figment(overrides: Option<&str>, file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Toml::string(DEFAULTS_TOML));
        if let Some(overrides) = overrides {
            figment = figment.merge(Toml::string(overrides));
        }
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        // Every setting sits in a section (`ATV_SECTION__KEY`). Prefixed
        // variables without one are not settings but must not be refused as
        // unknown keys: `ATV_CONFIG` names the file, and the test scripts
        // export `ATV_CI_CACHE` and friends.
        figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        )
    }

    /// The embedded defaults alone; tests and dev mode start from here.
    pub fn defaults() -> Result<Self, ConfigError> {
        Ok(Figment::from(Toml::string(DEFAULTS_TOML))
            .extract::<Settings>()
            .map_err(Box::new)?)
    }
}

/// One line per problem, naming the key in config-file form, where the bad
/// value came from, and the environment variable that would override it.
fn describe_load_error(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".").to_ascii_lowercase();
            let from = e
                .metadata
                .as_ref()
                .map_or_else(|| "defaults".to_owned(), |m| m.name.to_string());
            if key.is_empty() {
                format!("{} (from {from})", e.kind)
            } else {
                let var = env_var(&key);
                format!(
                    "`{key}`: {} (from {from}; environment variable {var})",
                    e.kind
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
