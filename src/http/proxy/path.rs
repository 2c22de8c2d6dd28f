//! What of a caller's path the upstream sees. `{path}` is taken from the raw
//! request target (still percent-encoded) and normalised once: unreserved
//! characters are decoded (`%63ards` is `cards`, so a grant cannot be
//! sidestepped by spelling), other encodings are kept in upper case. The
//! result is what the grant is matched on and what is appended to the
//! upstream's base, so the two can never disagree.
//!
//! Anything that could make the upstream's URL parser climb above the base or
//! change host is refused rather than repaired: a `.` or `..` segment however
//! encoded (`%2e%2e`), an encoded `/` or `\`, a raw `\`, an empty segment
//! (`//host`, `http://…`), a control character.

use actix_web::HttpRequest;

/// Where the Astrada proxy's `{path}` starts in the raw request path.
const ASTRADA_PREFIX: &str = "/astrada/api";

/// Whether `path` is a proxy route's (whose bodies `proxy.max_body_bytes`
/// bounds instead of `server.max_body_bytes`).
pub fn is_proxy_path(path: &str) -> bool {
    path.starts_with("/astrada/api/")
        || path
            .strip_prefix("/astra/users/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, rest)| rest.starts_with("api/"))
}

/// The raw (still percent-encoded) `{path}` of a proxy request: what
/// follows `/astrada/api/` or `/astra/users/{user_ref}/api/`.
pub fn raw_path(req: &HttpRequest) -> Option<&str> {
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix(ASTRADA_PREFIX) {
        return rest.strip_prefix('/');
    }
    let (_, rest) = path.strip_prefix("/astra/users/")?.split_once('/')?;
    rest.strip_prefix("api/")
}

/// Why a proxy path was refused (a closed set of texts, safe to show).
pub type Refusal = &'static str;

/// `raw` (the request path after the route's `/api/` prefix, percent-encoded
/// as it arrived) as the absolute path the upstream sees below its base,
/// e.g. `v1/cards/%7Eabc` → `/v1/cards/~abc`.
pub fn normalize(raw: &str) -> Result<String, Refusal> {
    if raw.contains('\\') {
        return Err("has a backslash");
    }
    let mut out = String::with_capacity(raw.len() + 1);
    if raw.is_empty() {
        out.push('/');
        return Ok(out);
    }
    let segments: Vec<&str> = raw.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.into_iter().enumerate() {
        out.push('/');
        // A trailing `/` is the upstream's business; an empty segment
        // anywhere else is `//`, which a URL parser may read as a host.
        if segment.is_empty() && i == last && i > 0 {
            break;
        }
        if segment.is_empty() {
            return Err("has an empty segment (`//`)");
        }
        let start = out.len();
        normalize_segment(segment, &mut out)?;
        if matches!(&out[start..], "." | "..") {
            return Err("has a `.` or `..` segment");
        }
    }
    Ok(out)
}

/// Appends `segment` to `out`, normalised.
fn normalize_segment(segment: &str, out: &mut String) -> Result<(), Refusal> {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            if !pchar(b) {
                return Err("has a character that is not allowed in a path");
            }
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let decoded = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .ok_or("has a malformed percent-encoding")?;
        match decoded {
            b'/' | b'\\' => return Err("has an encoded `/` or `\\`"),
            0..=0x1f | 0x7f => return Err("has an encoded control character"),
            d if d.is_ascii_alphanumeric() || b"-._~".contains(&d) => out.push(char::from(d)),
            d => {
                out.push('%');
                out.push_str(&format!("{d:02X}"));
            }
        }
        i += 3;
    }
    Ok(())
}

/// RFC 3986 `pchar` without `%` (handled by the caller).
fn pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_are_kept_and_unreserved_escapes_decoded() {
        assert_eq!(normalize("v1/cards/c-1").unwrap(), "/v1/cards/c-1");
        assert_eq!(normalize("").unwrap(), "/");
        assert_eq!(normalize("v1/cards/").unwrap(), "/v1/cards/");
        assert_eq!(normalize("v1/%63ards").unwrap(), "/v1/cards");
        assert_eq!(normalize("v1/a%3ab%7e").unwrap(), "/v1/a%3Ab~");
        assert_eq!(normalize("v1/caf%C3%A9").unwrap(), "/v1/caf%C3%A9");
        assert_eq!(normalize("v1/a:b@c").unwrap(), "/v1/a:b@c");
    }

    #[test]
    fn paths_that_could_leave_the_base_are_refused() {
        for bad in [
            "..",
            "v1/../admin",
            "v1/./x",
            "%2e%2e/admin",
            "v1/%2E%2e",
            ".%2e",
            "v1/%2fetc",
            "v1%2F..%2Fadmin",
            "v1/%5c..",
            "v1\\..\\admin",
            "/evil.example/x",
            "v1//x",
            "http://evil.example/x",
            "v1/%0d%0aHost:x",
            "v1/%zz",
            "v1/%2",
            "v1/a b",
            "v1/<x>",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
