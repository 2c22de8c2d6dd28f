//! Value checks shared by the parts that validate their own sections, so
//! every refusal reads the same: the key, the problem, the fix.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::{ConfigError, ENV_PREFIX};

/// The SDK gives up after 5 s; every wait we control must end well before that.
pub const CALLER_BUDGET: Duration = Duration::from_millis(4500);

/// The environment variable that sets `key` (`a.b_c` → `ATV_A__B_C`).
pub fn env_var(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// The error for `key` with `problem` and `fix`, as a `Result` so that
/// validators can `return invalid(...)`.
pub fn invalid<T>(key: &'static str, problem: String, fix: &str) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid {
        key,
        problem,
        fix: fix.to_owned(),
    })
}

/// Refuses an empty `value` for `key`, saying which variable sets it to `what`.
pub fn required(key: &'static str, value: &str, what: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        let var = env_var(key);
        return invalid(key, "is empty".into(), &format!("set {var} to {what}"));
    }
    Ok(())
}

/// Parses `url` for `key`, accepting https, and plain http for loopback only
/// (tests, dev mode); `why` says what plain http would expose.
pub fn https_url(
    key: &'static str,
    url: &str,
    why: &str,
    example: &str,
) -> Result<url::Url, ConfigError> {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => return invalid(key, format!("not a URL ({e})"), example),
    };
    let loopback = matches!(
        parsed.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    );
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        scheme => invalid(
            key,
            format!("scheme `{scheme}` {why}"),
            "use an https:// URL (plain http is accepted for loopback only)",
        ),
    }
}

/// Parses addresses and CIDR ranges (an address is its own /32 or /128),
/// naming `key` on error.
pub fn ip_ranges(key: &'static str, values: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    values
        .iter()
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                .or_else(|_| {
                    invalid(
                        key,
                        format!("`{p}` is neither an IP address nor a CIDR range"),
                        "use e.g. \"10.12.34.0/26\" or \"192.0.2.7\"",
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_joins_sections_with_double_underscores() {
        assert_eq!(
            env_var("credentials.api.client_id"),
            "ATV_CREDENTIALS__API__CLIENT_ID"
        );
    }
}
