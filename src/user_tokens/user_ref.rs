//! The identifier a caller uses for one Astra end user.
//!
//! It is a primary key, a part of every ciphertext's associated data and a
//! label in logs, so it is validated once at the edge and carried as a
//! [`UserRef`] afterwards. The alphabet (`A-Z a-z 0-9 . _ : @ -`, 1–128
//! characters) admits e-mail addresses, UUIDs and `tenant:user` forms while
//! keeping out separators that would make the AAD format ambiguous
//! (no whitespace, `/`, or anything that needs quoting in a log line).
//! `.` and `..` alone are refused: clients and proxies rewrite them in URL
//! paths, so `/astra/users/..` would not reach the user it names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest accepted user reference, in bytes (all accepted characters are ASCII).
pub const MAX_LEN: usize = 128;

/// A validated user reference. See the module docs for the accepted form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserRef(String);

/// Why a string is not a [`UserRef`]. Never echoes the rejected value: it
/// might be something a caller pasted by mistake, such as a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserRefError {
    #[error("user reference is empty; it must be 1-{MAX_LEN} characters of A-Z a-z 0-9 . _ : @ -")]
    Empty,
    #[error("user reference is {len} characters long; the maximum is {MAX_LEN}")]
    TooLong { len: usize },
    #[error("user reference has a character outside A-Z a-z 0-9 . _ : @ - at position {position}")]
    InvalidCharacter { position: usize },
    /// `.` and `..` name no one, and mean something else in a URL path.
    #[error("user reference is a path segment (. or ..)")]
    DotSegment,
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')
}

impl UserRef {
    /// Checks `value` against the accepted form.
    pub fn parse(value: &str) -> Result<Self, UserRefError> {
        Self::validate(value)?;
        Ok(Self(value.to_owned()))
    }

    fn validate(value: &str) -> Result<(), UserRefError> {
        if value.is_empty() {
            return Err(UserRefError::Empty);
        }
        if let Some(position) = value.chars().position(|c| !allowed(c)) {
            return Err(UserRefError::InvalidCharacter { position });
        }
        // Checked after the alphabet so that `len` is a character count.
        if value.len() > MAX_LEN {
            return Err(UserRefError::TooLong { len: value.len() });
        }
        if matches!(value, "." | "..") {
            return Err(UserRefError::DotSegment);
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserRef {
    type Error = UserRefError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::validate(&value)?;
        Ok(Self(value))
    }
}

impl TryFrom<&str> for UserRef {
    type Error = UserRefError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl FromStr for UserRef {
    type Err = UserRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for UserRef {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UserRef").field(&self.0).finish()
    }
}

impl Serialize for UserRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        UserRef::try_from(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in [
            "u",
            "user-1",
            "alice@example.com",
            "tenant:42",
            "A.b_C-d:e@f",
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            let parsed: UserRef = ok.parse().unwrap();
            assert_eq!(parsed.as_str(), ok);
            assert_eq!(parsed.to_string(), ok);
        }
        assert!(UserRef::parse(&"x".repeat(MAX_LEN)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        assert_eq!(UserRef::parse(""), Err(UserRefError::Empty));
        assert_eq!(
            UserRef::parse(&"x".repeat(MAX_LEN + 1)),
            Err(UserRefError::TooLong { len: MAX_LEN + 1 })
        );
        for (bad, position) in [("a b", 1), ("a/b", 1), ("é", 0), ("ab\n", 2), ("%", 0)] {
            assert_eq!(
                UserRef::parse(bad),
                Err(UserRefError::InvalidCharacter { position }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn dot_segments_are_refused_but_dots_inside_a_name_are_not() {
        assert_eq!(UserRef::parse("."), Err(UserRefError::DotSegment));
        assert_eq!(UserRef::parse(".."), Err(UserRefError::DotSegment));
        for ok in ["...", ".a", "a..b", "..a"] {
            assert!(UserRef::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn error_messages_do_not_echo_the_value() {
        let secret_looking = "eyJhbGciOi secret";
        let err = UserRef::parse(secret_looking).unwrap_err().to_string();
        assert!(!err.contains("eyJ"), "{err}");
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let user: UserRef = serde_json::from_str("\"alice@example.com\"").unwrap();
        assert_eq!(
            serde_json::to_string(&user).unwrap(),
            "\"alice@example.com\""
        );
        assert!(serde_json::from_str::<UserRef>("\"a b\"").is_err());
        assert!(serde_json::from_str::<UserRef>("\"\"").is_err());
    }
}
