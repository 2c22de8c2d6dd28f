//! Proxy permissions: which methods and paths a caller may send to which
//! upstream through the API proxy (`http::proxy`). Paths are the ones the
//! upstream sees, below its API base, as the proxy normalises them.
//!
//! A path pattern is `/`-separated segments: a literal segment matches
//! itself, `*` matches any one segment, and `**` (last only) matches the
//! rest of the path, however long, including nothing.

use crate::config::{ConfigError, ProxyGrantSettings, invalid};

const KEY: &str = "internal_auth.grants";

crate::core::named_enum! {
    /// The APIs this service holds credentials for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Upstream {
        Astrada = "astrada",
        Astra = "astra",
    }
}

/// Methods a proxy rule may name; there is no wildcard, on purpose.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// One `[[internal_auth.grants.proxy]]` table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRule {
    upstream: Upstream,
    methods: Vec<&'static str>,
    paths: Vec<PathPattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    AnyOne,
}

/// A checked path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PathPattern {
    segments: Vec<Segment>,
    /// Ends in `**`.
    rest: bool,
}

impl ProxyRule {
    /// Checks one proxy table of grant `entry` (for `identity`).
    pub(super) fn from_settings(
        entry: usize,
        identity: &str,
        rule: &ProxyGrantSettings,
    ) -> Result<Self, ConfigError> {
        let at = |what: String| format!("entry {entry} (`{identity}`): proxy {what}");
        let Some(upstream) = Upstream::ALL
            .into_iter()
            .find(|u| u.as_str() == rule.upstream)
        else {
            return invalid(
                KEY,
                at(format!("upstream `{}` is unknown", rule.upstream)),
                "use \"astrada\" or \"astra\"",
            );
        };
        if rule.methods.is_empty() || rule.paths.is_empty() {
            return invalid(
                KEY,
                at("needs at least one method and one path".into()),
                "list e.g. methods = [\"GET\"] and paths = [\"/v1/cards/*\"]",
            );
        }
        let methods = rule
            .methods
            .iter()
            .map(|m| {
                METHODS.iter().copied().find(|known| known == m).map_or_else(
                    || {
                        invalid(
                            KEY,
                            at(format!("method `{m}` is not one of {}", METHODS.join(", "))),
                            "list methods in upper case, each one explicitly (there is no wildcard)",
                        )
                    },
                    Ok,
                )
            })
            .collect::<Result<_, _>>()?;
        let paths = rule
            .paths
            .iter()
            .map(|p| {
                PathPattern::parse(p).map_err(|problem| ConfigError::Invalid {
                    key: KEY,
                    problem: at(format!("path `{p}` {problem}")),
                    fix: "write /-separated segments, `*` for one whole segment and `**` as the \
                          last segment for the rest, e.g. \"/v1/cards/*\" or \"/v1/users/**\""
                        .into(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            upstream,
            methods,
            paths,
        })
    }

    /// Whether this rule lets `method` on `path` through to `upstream`.
    pub fn permits(&self, upstream: Upstream, method: &str, path: &str) -> bool {
        self.upstream == upstream
            && self.methods.contains(&method)
            && self.paths.iter().any(|p| p.matches(path))
    }
}

/// Characters of a literal segment: RFC 3986 `pchar` without `%` (no
/// encoded characters, so one path has one spelling).
fn segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()+,;=:@".contains(c)
}

impl PathPattern {
    fn parse(pattern: &str) -> Result<Self, &'static str> {
        let Some(rest) = pattern.strip_prefix('/') else {
            return Err("does not start with /");
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut ends_in_rest = false;
        for (i, part) in parts.iter().enumerate() {
            match *part {
                "**" if i + 1 == parts.len() => ends_in_rest = true,
                "**" => return Err("has `**` before its last segment"),
                "*" => segments.push(Segment::AnyOne),
                "" => return Err("has an empty segment (`//` or a trailing /)"),
                "." | ".." => return Err("has a `.` or `..` segment"),
                literal if literal.contains('*') => {
                    return Err("has a `*` inside a segment; `*` stands for a whole segment");
                }
                literal if !literal.chars().all(segment_char) => {
                    return Err(
                        "has a character outside A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) + , ; = : @",
                    );
                }
                literal => segments.push(Segment::Literal(literal.to_owned())),
            }
        }
        Ok(Self {
            segments,
            rest: ends_in_rest,
        })
    }

    fn matches(&self, path: &str) -> bool {
        let Some(path) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = path.split('/');
        for segment in &self.segments {
            match (segment, parts.next()) {
                (_, None | Some("")) => return false,
                (Segment::AnyOne, Some(_)) => {}
                (Segment::Literal(l), Some(p)) if l == p => {}
                (Segment::Literal(_), Some(_)) => return false,
            }
        }
        self.rest || parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(methods: &[&str], paths: &[&str]) -> Result<ProxyRule, String> {
        let settings = ProxyGrantSettings {
            upstream: "astrada".into(),
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        };
        ProxyRule::from_settings(3, "ops", &settings).map_err(|e| e.to_string())
    }

    #[test]
    fn one_star_is_one_segment_and_two_stars_the_rest() {
        let r = rule(&["GET"], &["/v1/cards/*", "/v1/users/**"]).unwrap();
        let astrada = Upstream::Astrada;
        assert!(r.permits(astrada, "GET", "/v1/cards/c-1"));
        assert!(!r.permits(astrada, "GET", "/v1/cards/c-1/transactions"));
        assert!(!r.permits(astrada, "GET", "/v1/cards/"));
        assert!(!r.permits(astrada, "GET", "/v1/cards"));
        assert!(r.permits(astrada, "GET", "/v1/users"));
        assert!(r.permits(astrada, "GET", "/v1/users/u-1/cards/c-2"));
        assert!(!r.permits(astrada, "POST", "/v1/cards/c-1"), "method");
        assert!(
            !r.permits(Upstream::Astra, "GET", "/v1/cards/c-1"),
            "upstream"
        );
        assert!(!r.permits(astrada, "GET", "v1/cards/c-1"), "relative");
    }

    #[test]
    fn malformed_patterns_and_methods_are_refused_naming_the_entry() {
        for bad in [
            "v1/cards",
            "/v1//cards",
            "/v1/cards/",
            "/v1/**/cards",
            "/v1/card*",
            "/v1/../admin",
            "/v1/caf%C3%A9",
            "/v1/a b",
        ] {
            let e = rule(&["GET"], &[bad]).expect_err(bad);
            assert!(e.contains("internal_auth.grants"), "{e}");
            assert!(e.contains("entry 3 (`ops`)"), "{e}");
        }
        for bad in ["get", "*", "CONNECT"] {
            assert!(rule(&[bad], &["/v1/x"]).is_err(), "{bad}");
        }
        assert!(rule(&[], &["/v1/x"]).is_err());
        assert!(rule(&["GET"], &[]).is_err());
        assert!(rule(&["GET"], &["/**"]).is_ok());
    }

    #[test]
    fn an_unknown_upstream_is_refused() {
        let settings = ProxyGrantSettings {
            upstream: "stripe".into(),
            methods: vec!["GET".into()],
            paths: vec!["/v1/x".into()],
        };
        let e = ProxyRule::from_settings(0, "ops", &settings)
            .unwrap_err()
            .to_string();
        assert!(e.contains("upstream `stripe` is unknown"), "{e}");
    }
}
