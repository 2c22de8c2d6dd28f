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
use figment::providers::{Env, Format, Serialized, Toml};

pub use checks::{CALLER_BUDGET, env_var, https_url, invalid, ip_ranges, required};
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
        let settings_env = || {
            Env::prefixed(ENV_PREFIX)
                .filter(|key| key.as_str().contains("__"))
                .split("__")
        };
        let mut figment = figment
            .merge(settings_env().filter(|key| !is_secret_key(&key.as_str().replace("__", "."))));
        // Secrets are taken exactly as written: the generic environment
        // provider would read `12345678` as a number and `"x"` as x.
        for (key, value) in settings_env().iter() {
            if is_secret_key(key.as_str()) {
                figment = figment.merge(Serialized::default(key.as_str(), value));
            }
        }
        figment
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
            let from = e.metadata.as_ref().map_or_else(
                || "defaults".to_owned(),
                |m| match &m.source {
                    Some(figment::Source::File(path)) => format!("{} {}", m.name, path.display()),
                    _ => m.name.to_string(),
                },
            );
            // figment's text can quote the value itself (`found string "…"`).
            let problem = if SECRET_KEYS
                .iter()
                .any(|secret| key == *secret || key.starts_with(&format!("{secret}.")))
            {
                "unusable value (not shown: this key holds a secret; give it as text)".to_owned()
            } else if let figment::error::Kind::Message(message) = &e.kind {
                without_quoted_lines(message)
            } else {
                e.kind.to_string()
            };
            if key.is_empty() {
                format!("{problem} (from {from})")
            } else {
                let var = env_var(&key);
                format!("`{key}`: {problem} (from {from}; environment variable {var})")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A parser's message without the lines that quote the file: a TOML
/// syntax error shows the offending line, which may hold a secret
/// (`client_secret = "…` without its closing quote). What is left names the
/// line and column and says what is wrong.
fn without_quoted_lines(message: &str) -> String {
    let quotes_source = |line: &str| {
        let line = line
            .trim_start()
            .trim_start_matches(|c: char| c.is_ascii_digit());
        line.trim_start().starts_with('|')
    };
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !quotes_source(line))
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
// figment::Jail fixes the closures' error type.
#[allow(clippy::result_large_err)]
mod secret_tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn sdk_secret_from_env(raw: &str) -> Result<String, String> {
        let mut out = Err(String::new());
        figment::Jail::expect_with(|jail| {
            jail.set_env("ATV_CREDENTIALS__SDK__CLIENT_SECRET", raw);
            out = Settings::load(None)
                .map(|s| s.credentials.sdk.client_secret.expose_secret().to_owned())
                .map_err(|e| e.to_string());
            Ok(())
        });
        out
    }

    #[test]
    fn secrets_from_the_environment_are_taken_as_written() {
        for raw in [
            "12345678",
            "true",
            "1.50",
            "-7",
            "\"quoted\"",
            "[1, 2]",
            "a b",
        ] {
            assert_eq!(sdk_secret_from_env(raw).as_deref(), Ok(raw), "{raw}");
        }
    }

    #[test]
    fn secrets_in_a_file_may_be_any_scalar() {
        for (toml, want) in [
            ("12345678", "12345678"),
            ("false", "false"),
            ("2.5", "2.5"),
            ("\"s3cr3t\"", "s3cr3t"),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.create_file(
                    "atv.toml",
                    &format!("[credentials.api]\nclient_secret = {toml}\n"),
                )?;
                let settings =
                    Settings::load(Some(Path::new("atv.toml"))).map_err(|e| e.to_string())?;
                assert_eq!(settings.credentials.api.client_secret.expose_secret(), want);
                Ok(())
            });
        }
    }

    #[test]
    fn a_non_scalar_secret_is_refused_without_its_value() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "atv.toml",
                "[credentials.api]\nclient_secret = [\"hunter2-part\"]\n",
            )?;
            let e = Settings::load(Some(Path::new("atv.toml")))
                .expect_err("a list is no secret")
                .to_string();
            assert!(e.contains("credentials.api.client_secret"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn load_errors_on_secret_keys_never_print_the_value() {
        let mut e = figment::Error::from(figment::error::Kind::InvalidType(
            figment::error::Actual::Str("hunter2".into()),
            "a number".into(),
        ));
        e.path = vec!["credentials".into(), "sdk".into(), "client_secret".into()];
        let text = describe_load_error(&e);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("credentials.sdk.client_secret"), "{text}");
        assert!(
            text.contains("ATV_CREDENTIALS__SDK__CLIENT_SECRET"),
            "{text}"
        );

        e.path = vec!["cache".into(), "refresh_ahead_secs".into()];
        assert!(
            describe_load_error(&e).contains("hunter2"),
            "other keys keep figment's full text"
        );
    }
}
