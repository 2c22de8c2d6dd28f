//! The client's address as far as it can be trusted. Behind an ingress the
//! socket peer is the ingress pod, shared by every user; the client address is
//! then taken from `Forwarded` (RFC 7239) or `X-Forwarded-For`, but only when
//! the peer is one of `server.trusted_proxies`: from anyone else those headers
//! are whatever the caller wants them to be, and are ignored.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::caller_auth::trusted_header::wider_than_slash_16;
use crate::config::{ConfigError, ServerSettings, ip_ranges};
use crate::observability::request_scope;

const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The resolved client address of a request. Shown as the audit names it
/// (`ip:…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The client address of `req`, as the front layer resolved it for the
    /// request in hand; the socket peer if that layer did not run.
    pub fn of(req: &HttpRequest) -> Self {
        request_scope::with_current(|scope| match scope {
            Some(scope) => Self(scope.client),
            None => Self(req.peer_addr().map(|a| a.ip().to_canonical())),
        })
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "ip:{ip}"),
            None => f.write_str("ip:unknown"),
        }
    }
}

/// The proxies whose forwarding headers (and request ids) are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses `server.trusted_proxies`, naming the key on error.
    pub fn from_settings(settings: &ServerSettings) -> Result<Self, ConfigError> {
        let nets = ip_ranges("server.trusted_proxies", &settings.trusted_proxies)?;
        for net in wider_than_slash_16(&nets) {
            tracing::warn!(
                range = %net,
                "server.trusted_proxies holds a range wider than a /16: every host in it can \
                 choose its client address and request id; list only the proxies' addresses"
            );
        }
        Ok(Self { nets })
    }

    /// Trusts `nets` (tests).
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request from socket peer `peer`: the peer
    /// itself unless it is a trusted proxy; otherwise the right-most hop of
    /// `Forwarded` (or, without it, `X-Forwarded-For`) that is not a trusted
    /// proxy. A malformed hop ends the walk at the last good one, so garbage
    /// can never choose the address.
    pub fn client_addr(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> ClientAddr {
        let Some(peer) = peer.map(|ip| ip.to_canonical()) else {
            return ClientAddr(None);
        };
        if !self.contains(peer) {
            return ClientAddr(Some(peer));
        }
        let hops = if headers.contains_key(FORWARDED) {
            forwarded_for(headers)
        } else {
            x_forwarded_for(headers)
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop else { break };
            client = ip.to_canonical();
            if !self.contains(client) {
                break;
            }
        }
        ClientAddr(Some(client))
    }
}

/// The `X-Forwarded-For` hops, left (client) to right (nearest proxy); `None`
/// for a hop that is not an address.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(X_FORWARDED_FOR)
        .flat_map(|v| {
            v.to_str()
                .map_or_else(|_| vec![None], |s| s.split(',').map(parse_hop).collect())
        })
        .collect()
}

/// The `for=` hops of `Forwarded` (RFC 7239 §4), left to right; `None` for
/// `unknown`, obfuscated identifiers and anything malformed.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all(FORWARDED)
        .flat_map(|v| {
            let Ok(s) = v.to_str() else {
                return vec![None];
            };
            s.split(',')
                .map(|element| {
                    element.split(';').find_map(|pair| {
                        let (name, value) = pair.trim().split_once('=')?;
                        name.trim()
                            .eq_ignore_ascii_case("for")
                            .then(|| value.trim().trim_matches('"'))
                    })
                })
                .map(|value| value.and_then(parse_hop))
                .collect()
        })
        .collect()
}

/// One hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (ip, _port) = rest.split_once(']')?;
        return ip.parse().ok();
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().expect("net")).collect())
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn two_clients_behind_one_trusted_proxy_are_told_apart() {
        let p = proxies(&["10.1.0.0/24"]);
        let peer = ip("10.1.0.5");
        let a = p.client_addr(peer, &headers(&[("x-forwarded-for", "203.0.113.7")]));
        let b = p.client_addr(peer, &headers(&[("x-forwarded-for", "198.51.100.2")]));
        assert_eq!(a, ClientAddr(ip("203.0.113.7")));
        assert_eq!(b, ClientAddr(ip("198.51.100.2")));
        assert_ne!(a.to_string(), b.to_string());
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let p = proxies(&["10.1.0.0/24"]);
        let spoofed = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        assert_eq!(
            p.client_addr(ip("192.0.2.50"), &spoofed),
            ClientAddr(ip("192.0.2.50"))
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_addr(ip("10.1.0.5"), &spoofed),
            ClientAddr(ip("10.1.0.5"))
        );
    }

    /// Headers of one request and the client address they should yield.
    type Case<'a> = (&'a [(&'static str, &'static str)], &'a str);

    /// For each case, the client address `p` finds behind the peer 10.1.0.5.
    fn assert_clients(p: &TrustedProxies, cases: &[Case]) {
        for (pairs, client) in cases {
            assert_eq!(
                p.client_addr(ip("10.1.0.5"), &headers(pairs)),
                ClientAddr(ip(client)),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn the_right_most_untrusted_hop_wins_over_client_supplied_ones() {
        let p = proxies(&["10.1.0.0/24", "10.2.0.9/32"]);
        assert_clients(
            &p,
            &[
                // The client sent "1.1.1.1" itself; the ingress appended the real address.
                (
                    &[("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.2.0.9")],
                    "203.0.113.7",
                ),
                (
                    &[
                        ("x-forwarded-for", "1.1.1.1"),
                        ("x-forwarded-for", "203.0.113.7"),
                    ],
                    "203.0.113.7",
                ),
                // Garbage ends the walk at the last good (trusted) hop.
                (&[("x-forwarded-for", "203.0.113.7, nonsense")], "10.1.0.5"),
            ],
        );
    }

    #[test]
    fn rfc_7239_forwarded_is_preferred_and_parsed() {
        let p = proxies(&["10.1.0.0/24"]);
        assert_clients(
            &p,
            &[
                (
                    &[
                        ("x-forwarded-for", "192.0.2.99"),
                        (
                            "forwarded",
                            "for=192.0.2.60;proto=https, for=\"[2001:db8:cafe::17]:4711\"",
                        ),
                    ],
                    "2001:db8:cafe::17",
                ),
                (
                    &[("forwarded", "for=198.51.100.3:8443;by=10.1.0.5")],
                    "198.51.100.3",
                ),
                (&[("forwarded", "for=unknown")], "10.1.0.5"),
            ],
        );
    }
}
