//! The optional `user_ref` scope of a grant: a multi-tenant backend runs one
//! workload per tenant, each limited to the users whose `user_ref` starts
//! with its tenant's prefix (`tenant-a:`).

use crate::config::{ConfigError, invalid};

/// The longest `user_ref` (and so the longest useful prefix).
const MAX_PREFIX_LEN: usize = 128;

const KEY: &str = "internal_auth.grants";

/// Which users a grant's Astra permissions cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRefScope {
    /// Every user (no `user_ref_prefixes`).
    All,
    /// Users whose `user_ref` starts with one of these: sorted, and none a
    /// prefix of another, so each user falls under at most one and the
    /// prefixes' ranges in `user_ref` order do not overlap.
    Prefixes(Vec<String>),
}

/// Whether `c` may appear in a `user_ref`. The same alphabet as
/// `user_tokens::UserRef` (features do not import each other; a test holds
/// the two together).
pub fn user_ref_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')
}

impl UserRefScope {
    /// Checks the `user_ref_prefixes` of grant `entry` (for `identity`).
    pub(super) fn from_settings(
        entry: usize,
        identity: &str,
        prefixes: &[String],
    ) -> Result<Self, ConfigError> {
        if prefixes.is_empty() {
            return Ok(UserRefScope::All);
        }
        for prefix in prefixes {
            let well_formed = !prefix.is_empty()
                && prefix.len() <= MAX_PREFIX_LEN
                && prefix.chars().all(user_ref_char);
            if !well_formed {
                return invalid(
                    KEY,
                    format!(
                        "entry {entry} (`{identity}`): user_ref_prefixes holds a prefix that is \
                         empty, longer than {MAX_PREFIX_LEN} characters or has a character a \
                         user_ref cannot have"
                    ),
                    "use prefixes of 1-128 characters of A-Z a-z 0-9 . _ : @ -, e.g. \"tenant-a:\", \
                     or leave user_ref_prefixes out to cover every user",
                );
            }
        }
        let mut sorted: Vec<String> = prefixes.to_vec();
        sorted.sort();
        sorted.dedup();
        // A prefix covered by a shorter one adds nothing (sorted order puts
        // the shorter first).
        let mut kept: Vec<String> = Vec::with_capacity(sorted.len());
        for prefix in sorted {
            if !kept.last().is_some_and(|p| prefix.starts_with(p.as_str())) {
                kept.push(prefix);
            }
        }
        Ok(UserRefScope::Prefixes(kept))
    }

    /// Whether the scope covers `user_ref`.
    pub fn covers(&self, user_ref: &str) -> bool {
        match self {
            UserRefScope::All => true,
            UserRefScope::Prefixes(prefixes) => {
                prefixes.iter().any(|p| user_ref.starts_with(p.as_str()))
            }
        }
    }

    /// The prefixes, `None` when every user is covered.
    pub fn prefixes(&self) -> Option<&[String]> {
        match self {
            UserRefScope::All => None,
            UserRefScope::Prefixes(prefixes) => Some(prefixes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(prefixes: &[&str]) -> Result<UserRefScope, ConfigError> {
        let owned: Vec<String> = prefixes.iter().map(|p| (*p).to_owned()).collect();
        UserRefScope::from_settings(0, "ops", &owned)
    }

    #[test]
    fn no_prefixes_cover_everyone() {
        assert_eq!(scope(&[]).unwrap(), UserRefScope::All);
        assert!(scope(&[]).unwrap().covers("anyone"));
    }

    #[test]
    fn prefixes_are_sorted_and_those_under_a_shorter_one_dropped() {
        let s = scope(&["tenant-b:", "tenant-a:x", "tenant-a:", "tenant-b:"]).unwrap();
        assert_eq!(
            s.prefixes().unwrap(),
            &["tenant-a:".to_owned(), "tenant-b:".to_owned()]
        );
        assert!(s.covers("tenant-a:alice") && s.covers("tenant-b:"));
        assert!(!s.covers("tenant-c:carol") && !s.covers("tenant-a"));
    }

    #[test]
    fn a_malformed_prefix_is_refused_without_echoing_it() {
        for bad in ["", "tenant a:", "tenant/a", "é", &"x".repeat(129)] {
            let e = scope(&[bad]).expect_err(bad).to_string();
            assert!(e.contains("internal_auth.grants"), "{e}");
            assert!(e.contains("user_ref_prefixes"), "{e}");
        }
    }
}
