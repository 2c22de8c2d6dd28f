//! The app's session tokens: signing keys from `tests/fixtures/keys`, claims,
//! and the JWKS the service fetches them from.

use astrada_token_vendor::config::{CallerAuthMode, Settings};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{exchanges, unix_now};

/// `iss` of the test app's session tokens.
pub const APP_ISSUER: &str = "https://login.app.test/";
/// `aud` of the test app's session tokens.
pub const APP_AUDIENCE: &str = "card-linking-app";

/// A test signing key (from tests/fixtures/keys) with its `kid`.
pub struct TestKey {
    pub kid: String,
    pub alg: jsonwebtoken::Algorithm,
    encoding: jsonwebtoken::EncodingKey,
    pub public_pem: &'static str,
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/keys/",
            $name
        ))
    };
}

impl TestKey {
    /// The app's RSA key (RS256).
    pub fn app_rsa(kid: &str) -> Self {
        Self::rsa(kid, fixture!("app-rsa.pem"), fixture!("app-rsa.pub.pem"))
    }

    /// Another RSA key nobody trusts (RS256).
    pub fn other_rsa(kid: &str) -> Self {
        Self::rsa(
            kid,
            fixture!("other-rsa.pem"),
            fixture!("other-rsa.pub.pem"),
        )
    }

    /// The cluster's service-account signing key (RS256).
    pub fn cluster_rsa(kid: &str) -> Self {
        Self::rsa(
            kid,
            fixture!("cluster-rsa.pem"),
            fixture!("cluster-rsa.pub.pem"),
        )
    }

    /// The app's P-256 key (ES256).
    pub fn app_ec(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            alg: jsonwebtoken::Algorithm::ES256,
            encoding: jsonwebtoken::EncodingKey::from_ec_pem(fixture!("app-ec.pem").as_bytes())
                .expect("EC fixture"),
            public_pem: fixture!("app-ec.pub.pem"),
        }
    }

    fn rsa(kid: &str, private: &str, public: &'static str) -> Self {
        Self {
            kid: kid.into(),
            alg: jsonwebtoken::Algorithm::RS256,
            encoding: jsonwebtoken::EncodingKey::from_rsa_pem(private.as_bytes())
                .expect("RSA fixture"),
            public_pem: public,
        }
    }

    /// Signs `claims` with this key, naming it in the header.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing works")
    }

    /// A session token of the test app for `sub`, expiring in `secs`.
    pub fn session(&self, sub: &str, secs: i64) -> String {
        self.sign(&session_claims(sub, secs))
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.encoding, self.alg)
            .expect("public JWK");
        jwk.common.key_id = Some(self.kid.clone());
        serde_json::to_value(jwk).expect("JWK serializes")
    }
}

/// Claims of a session token for `sub` from the test app, expiring in `secs`.
pub fn session_claims(sub: &str, secs: i64) -> serde_json::Value {
    serde_json::json!({
        "iss": APP_ISSUER,
        "aud": APP_AUDIENCE,
        "sub": sub,
        "iat": unix_now(),
        "exp": unix_now() + secs,
    })
}

/// A JWKS document holding `keys`.
pub fn jwks(keys: &[&TestKey]) -> serde_json::Value {
    serde_json::json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// An answer serving `keys` as a JWKS.
pub fn jwks_answer(keys: &[&TestKey]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(jwks(keys))
}

/// Serves `keys` as a JWKS at `/jwks.json` on a new mock server.
pub async fn jwks_server(keys: &[&TestKey]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(jwks_answer(keys))
        .mount(&server)
        .await;
    server
}

/// Requests the JWKS server has seen.
pub async fn jwks_fetches(server: &MockServer) -> usize {
    exchanges(server).await
}

/// Turns on `jwt` caller authentication against `jwks`'s `/jwks.json`.
pub fn use_jwt_callers(s: &mut Settings, jwks: &MockServer) {
    s.caller_auth.mode = CallerAuthMode::Jwt;
    s.caller_auth.allow_unauthenticated = false;
    s.caller_auth.jwt.jwks_url = format!("{}/jwks.json", jwks.uri());
    s.caller_auth.jwt.issuer = APP_ISSUER.into();
    s.caller_auth.jwt.audience = APP_AUDIENCE.into();
}
