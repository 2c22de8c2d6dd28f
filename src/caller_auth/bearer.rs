//! The caller's credential as it arrives: the token of an
//! `Authorization: Bearer` header, checked against RFC 6750's token68
//! alphabet on the way. Every authenticated request passes through here.

use actix_web::HttpRequest;
use actix_web::http::header;

use super::AuthError;

/// The credential of an `Authorization: Bearer` header, its scheme checked
/// but its token not yet read. No `Debug`: it holds the token.
pub struct Bearer<'a> {
    value: &'a [u8],
    token: &'a [u8],
}

impl<'a> Bearer<'a> {
    /// The token as sent, unchecked: only for looking it up among tokens
    /// that passed [`Bearer::token`] or a verification before (a JWT
    /// verifier's cache), which proves these bytes sound when they match.
    pub fn unchecked(&self) -> &'a [u8] {
        self.token
    }

    /// The token, refused unless it is of RFC 6750's token68 alphabet.
    pub fn token(&self) -> Result<&'a str, AuthError> {
        if !all_token68(self.token) {
            return Err(not_bearer(self.value));
        }
        std::str::from_utf8(self.token).map_err(|_| not_bearer(self.value))
    }
}

/// The `Authorization: Bearer` header (RFC 6750 §2.1), `None` when there is
/// no such header, an error when it is not a bearer credential.
pub fn bearer(req: &HttpRequest) -> Result<Option<Bearer<'_>>, AuthError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::Invalid("more than one Authorization header"));
    }
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return Err(not_bearer(value));
    };
    let (scheme, token) = (&value[..space], &value[space + 1..]);
    if !scheme.eq_ignore_ascii_case(b"bearer") || token.is_empty() {
        return Err(not_bearer(value));
    }
    Ok(Some(Bearer { value, token }))
}

/// Why an `Authorization` header is refused: unreadable, or not a bearer token.
fn not_bearer(value: &[u8]) -> AuthError {
    if value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        AuthError::Invalid("Authorization must be `Bearer` and a token")
    } else {
        AuthError::Invalid("malformed Authorization header")
    }
}

/// Whether every byte of `token` is of the token68 alphabet (visible ASCII,
/// so the token needs no separate UTF-8 check to be read). Session tokens
/// are long and this runs over every byte of every one: no early exit and
/// no table, so that the compiler checks 16 bytes at a time.
fn all_token68(token: &[u8]) -> bool {
    token
        .iter()
        .fold(0u8, |refused, &b| refused | u8::from(!is_token68(b)))
        == 0
}

fn is_token68(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10)
        // Upper case folded onto lower; nothing else lands on a..z.
        | ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
        | (b == b'=')
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn parse(value: &[u8]) -> Result<Option<String>, String> {
        let value = header::HeaderValue::from_bytes(value).unwrap();
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, value))
            .to_http_request();
        let token = match bearer(&req) {
            Ok(Some(credential)) => credential.token().map(|t| Some(t.to_owned())),
            Ok(None) => Ok(None),
            Err(refused) => Err(refused),
        };
        token.map_err(|e| e.to_string())
    }

    #[test]
    fn the_token68_alphabet_is_exactly_rfc_6750s() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
            assert_eq!(is_token68(b), expected, "{b:#04x}");
            assert_eq!(all_token68(&[b'a', b, b'z']), expected, "{b:#04x}");
        }
    }

    #[test]
    fn a_bearer_token_is_taken_and_anything_else_says_why_not() {
        assert_eq!(
            parse(b"Bearer abc.DEF-_~+/=").unwrap().unwrap(),
            "abc.DEF-_~+/="
        );
        assert_eq!(
            parse(b"bEaReR x").unwrap().unwrap(),
            "x",
            "scheme is case-blind"
        );
        let shape = "Authorization must be `Bearer` and a token";
        for refused in [
            &b"Basic abc"[..],
            b"Bearer ",
            b"Bearer",
            b"Bearer a b",
            b"Bearer a\tb",
        ] {
            assert!(parse(refused).unwrap_err().contains(shape), "{refused:?}");
        }
        let unreadable = parse(b"Bearer caf\xc3\xa9").unwrap_err();
        assert!(
            unreadable.contains("malformed Authorization header"),
            "{unreadable}"
        );
        let no_header = TestRequest::default().to_http_request();
        assert!(bearer(&no_header).unwrap().is_none());
    }
}
