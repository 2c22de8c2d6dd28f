//! Header hygiene in both directions. The caller's credentials (its own
//! `Authorization`, cookies, `Proxy-*`) are for this service, not the
//! upstream; hop-by-hop headers (RFC 9110 §7.6.1) describe one connection
//! and must not be forwarded; `Host` is the upstream's, set by the client
//! from the URL. The upstream's `Set-Cookie` would plant cookies for this
//! service's origin in whoever calls it.

use actix_web::http::header::HeaderMap as InboundHeaders;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers, plus `Proxy-Connection`, which old clients send.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Never forwarded upstream, whatever the hop: the caller's credentials,
/// the host, and what the client recomputes for the buffered body.
const CALLER_ONLY: &[&str] = &["authorization", "cookie", "host", "content-length"];

/// Never passed back to the caller: the body is re-framed by actix.
const UPSTREAM_ONLY: &[&str] = &["set-cookie", "set-cookie2", "content-length"];

/// The names a `Connection` header lists (lower case), which are hop-by-hop too.
fn connection_listed<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    values
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

fn hop_by_hop(name: &str, listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name) || listed.iter().any(|l| l == name)
}

/// The caller's headers that may go upstream, with the request id set to
/// this request's (so the upstream's logs can be joined with ours).
/// `traceparent` and `tracestate` pass as they came: the internal listener
/// believes its callers' trace context.
pub fn outbound(inbound: &InboundHeaders, request_id: Option<&str>) -> HeaderMap {
    let listed = connection_listed(
        inbound
            .get_all(actix_web::http::header::CONNECTION)
            .map(|v| v.as_bytes()),
    );
    let mut out = HeaderMap::with_capacity(inbound.len());
    for (name, value) in inbound {
        let name = name.as_str();
        if CALLER_ONLY.contains(&name)
            || name.starts_with("proxy-")
            || hop_by_hop(name, &listed)
            || name == "x-request-id"
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
    if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        out.insert("x-request-id", value);
    }
    out
}

/// The upstream's headers that may go back to the caller.
pub fn inbound(upstream: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let listed = connection_listed(
        upstream
            .get_all(reqwest::header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    upstream
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            !UPSTREAM_ONLY.contains(&name)
                && !name.starts_with("proxy-")
                && !hop_by_hop(name, &listed)
        })
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName as In, HeaderValue as InValue};

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_behind() {
        let mut headers = InboundHeaders::new();
        for (name, value) in [
            ("authorization", "Bearer caller-key"),
            ("cookie", "session=1"),
            ("proxy-authorization", "Basic x"),
            ("connection", "close, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "5"),
            ("te", "trailers"),
            ("host", "vendor.internal"),
            ("x-request-id", "planted"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("content-type", "application/json"),
            ("idempotency-key", "k-1"),
        ] {
            headers.append(In::from_static(name), InValue::from_static(value));
        }
        let out = outbound(&headers, Some("req-1"));
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-type",
                "idempotency-key",
                "traceparent",
                "x-request-id"
            ]
        );
        assert_eq!(out["x-request-id"], "req-1");
    }

    #[test]
    fn upstream_cookies_and_framing_stay_behind() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("set-cookie", "astra=1"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("content-length", "12"),
            ("content-type", "application/json"),
            ("x-astra-request-id", "a-1"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let names: Vec<String> = inbound(&headers).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["content-type", "x-astra-request-id"]);
    }
}
