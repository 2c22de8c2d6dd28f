//! Identity asserted by a gateway in front of the service (e.g. oauth2-proxy
//! setting `X-Forwarded-User`). The header is believed only from the
//! gateway's addresses: from anyone else it is a forgery.

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;
use ipnet::IpNet;

use super::{AuthError, Caller};
use crate::config::{ConfigError, TrustedHeaderSettings, invalid, ip_ranges};
use crate::core::has_controls;

/// Longest subject accepted from the header; longer values are refused.
const MAX_SUBJECT_BYTES: usize = 256;

/// The ranges of `nets` wider than a /16 (IPv4) or a /48 (IPv6): far more
/// hosts than a gateway, any of which could claim any identity.
pub fn wider_than_slash_16(nets: &[IpNet]) -> Vec<IpNet> {
    nets.iter()
        .filter(|net| match net {
            IpNet::V4(n) => n.prefix_len() < 16,
            IpNet::V6(n) => n.prefix_len() < 48,
        })
        .copied()
        .collect()
}

/// The identity header and the addresses allowed to set it.
pub struct TrustedHeader {
    header: HeaderName,
    proxies: Vec<IpNet>,
}

impl TrustedHeader {
    /// Parses the header name and proxy ranges, naming the key on error.
    pub fn from_settings(settings: &TrustedHeaderSettings) -> Result<Self, ConfigError> {
        let Ok(header) = HeaderName::from_bytes(settings.header.as_bytes()) else {
            return invalid(
                "caller_auth.trusted_header.header",
                format!("`{}` is not an HTTP header name", settings.header),
                "use e.g. X-Forwarded-User",
            );
        };
        if settings.trusted_proxies.is_empty() {
            return invalid(
                "caller_auth.trusted_header.trusted_proxies",
                "is empty, so no gateway could set the identity header".into(),
                "list only your gateway's addresses, e.g. [\"10.12.34.0/26\"]",
            );
        }
        let proxies = ip_ranges(
            "caller_auth.trusted_header.trusted_proxies",
            &settings.trusted_proxies,
        )?;
        for net in wider_than_slash_16(&proxies) {
            tracing::warn!(
                range = %net,
                "caller_auth.trusted_header.trusted_proxies holds a range wider than a /16: every \
                 host in it may claim any identity; list only the gateway's addresses"
            );
        }
        Ok(Self { header, proxies })
    }

    /// The gateway-asserted caller of `req`.
    pub fn authenticate(&self, req: &HttpRequest) -> Result<Caller, AuthError> {
        let mut values = req.headers().get_all(&self.header);
        let Some(value) = values.next() else {
            return Err(AuthError::Missing);
        };
        let peer = req.peer_addr().map(|a| a.ip().to_canonical());
        if !peer.is_some_and(|ip| self.proxies.iter().any(|net| net.contains(&ip))) {
            tracing::warn!(
                header = %self.header,
                peer = ?peer,
                "identity header from an address that is not a trusted proxy: refused"
            );
            return Err(AuthError::Invalid(
                "identity header from an untrusted address",
            ));
        }
        if values.next().is_some() {
            return Err(AuthError::Invalid("more than one identity header"));
        }
        match value.to_str().map(str::trim) {
            Ok(subject) if has_controls(subject) => Err(AuthError::Invalid(
                "identity header contains control characters",
            )),
            Ok(subject) if !subject.is_empty() && subject.len() <= MAX_SUBJECT_BYTES => {
                Ok(Caller {
                    subject: subject.into(),
                    method: "trusted_header",
                })
            }
            _ => Err(AuthError::Invalid("malformed identity header")),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn ranges_wider_than_a_slash_16_are_flagged() {
        let nets: Vec<IpNet> = [
            "10.0.0.0/8",
            "10.12.0.0/16",
            "192.0.2.7/32",
            "0.0.0.0/0",
            "fd00::/8",
            "2001:db8:1::/48",
        ]
        .iter()
        .map(|n| n.parse().expect("net"))
        .collect();
        assert_eq!(
            wider_than_slash_16(&nets),
            vec![nets[0], nets[3], nets[4]],
            "/16 itself and narrower are fine"
        );
    }

    #[test]
    fn an_identity_with_control_characters_is_refused() {
        let trusted = TrustedHeader::from_settings(&TrustedHeaderSettings {
            header: "X-Forwarded-User".into(),
            trusted_proxies: vec!["127.0.0.1".into()],
        })
        .expect("valid settings");
        let req = |value: &'static [u8]| {
            TestRequest::default()
                .peer_addr("127.0.0.1:4711".parse().expect("addr"))
                .insert_header((
                    "x-forwarded-user",
                    HeaderValue::from_bytes(value).expect("header value"),
                ))
                .to_http_request()
        };
        assert_eq!(
            &*trusted
                .authenticate(&req(b"alice"))
                .expect("plain name")
                .subject,
            "alice"
        );
        let refused = trusted
            .authenticate(&req(b"alice\tadmin"))
            .expect_err("tab");
        assert!(matches!(
            refused,
            AuthError::Invalid("identity header contains control characters")
        ));
    }
}
