//! Only callers with a valid app session (or a gateway's word for one) get an
//! SDK token; every way a session token can be wrong is refused with 401.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use astrada_token_vendor::config::Settings;
use astrada_token_vendor::core::USER_AGENT;

use test_support::*;

/// The app, and the token endpoint it uses (kept alive as long as the app).
type Running = (TestApp, MockServer);

async fn jwt_app(jwks: &MockServer) -> Running {
    jwt_app_with(jwks, |_| {}).await
}

async fn jwt_app_with(jwks: &MockServer, tweak: impl FnOnce(&mut Settings)) -> Running {
    app_with_tokens(|s| {
        use_jwt_callers(s, jwks);
        tweak(s);
    })
    .await
}

/// The app's key `k1`, the JWKS serving it, and the app trusting that JWKS.
async fn k1_app() -> (TestKey, MockServer, Running) {
    let key = TestKey::app_rsa("k1");
    let jwks = jwks_server(&[&key]).await;
    let running = jwt_app(&jwks).await;
    (key, jwks, running)
}

/// A session for alice from the app, changed by `tweak`, is refused with
/// `description`.
async fn assert_claims_refused(tweak: impl FnOnce(&mut serde_json::Value), description: &str) {
    let (key, _jwks, (app, _upstream)) = k1_app().await;
    let mut claims = session_claims("alice", 600);
    tweak(&mut claims);

    assert_refused(app.sdk_token_as(&key.sign(&claims)).await, description).await;
}

/// A JWKS endpoint that answers `first` once, then `then` for good.
async fn jwks_then(first: ResponseTemplate, then: ResponseTemplate) -> MockServer {
    let jwks = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(first)
        .up_to_n_times(1)
        .mount(&jwks)
        .await;
    Mock::given(method("GET"))
        .respond_with(then)
        .mount(&jwks)
        .await;
    jwks
}

async fn assert_refused(response: reqwest::Response, description: &str) {
    assert_eq!(response.status(), 401, "{description}");
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"astrada-token-vendor\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("error_description=\"{description}\"")),
        "{challenge}"
    );
    assert_eq!(problem_type(response).await, "invalid-credentials");
}

#[tokio::test]
async fn a_valid_session_token_gets_an_sdk_token_and_keys_are_fetched_once() {
    let (key, jwks, (app, _upstream)) = k1_app().await;

    for i in 0..20 {
        let session = key.session(&format!("user-{i}"), 600);
        let response = app.sdk_token_as(&session).await;
        assert_eq!(response.status(), 200);
        assert!(json(response).await["access_token"].is_string());
    }

    assert_eq!(jwks_fetches(&jwks).await, 1, "the JWKS is cached");
}

#[tokio::test]
async fn a_session_cookie_is_accepted_when_configured() {
    let key = TestKey::app_rsa("k1");
    let jwks = jwks_server(&[&key]).await;
    let (app, _upstream) = jwt_app_with(&jwks, |s| {
        s.caller_auth.jwt.cookie_name = "app_session".into()
    })
    .await;
    let session = key.session("alice", 600);

    let response = app
        .sdk_request()
        .header("cookie", format!("theme=dark; app_session={session}"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn no_session_gets_401_with_a_bare_bearer_challenge() {
    let (_key, _jwks, (app, _upstream)) = k1_app().await;

    let response = app.sdk_token().await;

    assert_eq!(response.status(), 401);
    assert_headers(
        &response,
        &[
            ("www-authenticate", "Bearer realm=\"astrada-token-vendor\""),
            ("content-type", "application/problem+json"),
            ("cache-control", "no-store"),
        ],
    );
    assert_eq!(problem_type(response).await, "unauthenticated");
}

#[tokio::test]
async fn an_expired_session_token_is_refused() {
    assert_claims_refused(|c| c["exp"] = (unix_now() - 120).into(), "expired").await;
}

#[tokio::test]
async fn expiry_within_the_leeway_is_tolerated() {
    let (key, _jwks, (app, _upstream)) = k1_app().await;

    // Default leeway is 30 s: a clock 5 s apart must not lock users out.
    let just_expired = key.session("alice", -5);

    assert_eq!(app.sdk_token_as(&just_expired).await.status(), 200);
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    assert_claims_refused(|c| c["nbf"] = (unix_now() + 300).into(), "not yet valid").await;
}

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    assert_claims_refused(|c| c["iss"] = "https://evil.test/".into(), "wrong issuer").await;
}

#[tokio::test]
async fn a_wrong_audience_is_refused() {
    assert_claims_refused(|c| c["aud"] = "some-other-app".into(), "wrong audience").await;
}

#[tokio::test]
async fn a_token_without_subject_is_refused() {
    let no_subject = |c: &mut serde_json::Value| {
        c.as_object_mut().unwrap().remove("sub");
    };
    assert_claims_refused(no_subject, "missing or malformed claim").await;
}

#[tokio::test]
async fn a_token_signed_with_the_wrong_key_is_refused() {
    let key = TestKey::app_rsa("k1");
    let forger = TestKey::other_rsa("k1"); // claims to be k1
    let jwks = jwks_server(&[&key]).await;
    let (app, _upstream) = jwt_app(&jwks).await;

    let forged = forger.session("alice", 600);

    assert_refused(app.sdk_token_as(&forged).await, "bad signature").await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let (_key, _jwks, (app, _upstream)) = k1_app().await;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(session_claims("alice", 600).to_string());

    for unsigned in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        let response = app.sdk_token_as(&unsigned).await;
        assert_eq!(response.status(), 401, "{unsigned}");
        assert_eq!(problem_type(response).await, "invalid-credentials");
    }
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    let (key, _jwks, (app, _upstream)) = k1_app().await;
    // The classic confusion: HMAC "signed" with the RSA public key as secret.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &session_claims("alice", 600),
        &jsonwebtoken::EncodingKey::from_secret(key.public_pem.as_bytes()),
    )
    .unwrap();

    assert_refused(app.sdk_token_as(&confused).await, "algorithm not allowed").await;
}

#[tokio::test]
async fn an_algorithm_outside_the_allowlist_is_refused() {
    let key = TestKey::app_ec("ec1");
    let jwks = jwks_server(&[&key]).await;
    let (app, _upstream) = jwt_app_with(&jwks, |s| {
        s.caller_auth.jwt.algorithms = vec!["RS256".into()]
    })
    .await;

    let session = key.session("alice", 600);

    assert_refused(app.sdk_token_as(&session).await, "algorithm not allowed").await;
}

#[tokio::test]
async fn an_unknown_kid_triggers_exactly_one_jwks_refetch() {
    let old = TestKey::app_rsa("old");
    let new = TestKey::app_ec("new");
    let jwks = jwks_then(jwks_answer(&[&old]), jwks_answer(&[&old, &new])).await;
    let (app, _upstream) = jwt_app(&jwks).await;
    assert_eq!(
        app.sdk_token_as(&old.session("alice", 600)).await.status(),
        200
    );
    assert_eq!(jwks_fetches(&jwks).await, 1);

    // The app rotated its keys: a token with the new kid makes us look again.
    let rotated = new.session("bob", 600);
    assert_eq!(app.sdk_token_as(&rotated).await.status(), 200);
    assert_eq!(jwks_fetches(&jwks).await, 2);

    // Forged kids cannot turn us into a JWKS flooder: that refetch was the
    // one allowed per interval (jwks_min_refetch_secs).
    for kid in ["forged-1", "forged-2", "forged-3"] {
        let stranger = TestKey::other_rsa(kid);
        assert_refused(
            app.sdk_token_as(&stranger.session("eve", 600)).await,
            "unknown signing key",
        )
        .await;
    }
    assert_eq!(jwks_fetches(&jwks).await, 2);
}

#[tokio::test]
async fn a_jwks_endpoint_that_is_down_fails_closed_with_503() {
    let key = TestKey::app_rsa("k1");
    let jwks = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&jwks)
        .await;
    let (app, _upstream) = jwt_app(&jwks).await;

    for _ in 0..5 {
        let response = app.sdk_token_as(&key.session("alice", 600)).await;
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(problem_type(response).await, "auth-keys-unavailable");
    }
    assert_eq!(
        jwks_fetches(&jwks).await,
        1,
        "a failed fetch is not retried on every request"
    );
}

#[tokio::test]
async fn a_hanging_jwks_endpoint_times_out_and_fails_closed() {
    let key = TestKey::app_rsa("k1");
    let jwks = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(jwks_answer(&[&key]).set_delay(Duration::from_secs(5)))
        .mount(&jwks)
        .await;
    let (app, _upstream) = jwt_app_with(&jwks, |s| s.caller_auth.jwt.jwks_timeout_ms = 300).await;

    let response = app.sdk_token_as(&key.session("alice", 600)).await;

    assert_eq!(response.status(), 503);
    assert_eq!(problem_type(response).await, "auth-keys-unavailable");
}

#[tokio::test]
async fn a_redirecting_jwks_endpoint_is_not_followed_and_fails_closed() {
    let key = TestKey::app_rsa("k1");
    let jwks = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/moved.json"))
        .mount(&jwks)
        .await;
    Mock::given(method("GET"))
        .and(path("/moved.json"))
        .respond_with(jwks_answer(&[&key]))
        .mount(&jwks)
        .await;
    let (app, _upstream) = jwt_app(&jwks).await;

    let response = app.sdk_token_as(&key.session("alice", 600)).await;

    assert_eq!(response.status(), 503);
    assert_eq!(problem_type(response).await, "auth-keys-unavailable");
    assert_eq!(jwks_fetches(&jwks).await, 1, "the redirect is not followed");
}

#[tokio::test]
async fn the_jwks_is_fetched_with_the_service_user_agent() {
    let key = TestKey::app_rsa("k1");
    let jwks = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/jwks.json"))
        .and(header("user-agent", USER_AGENT))
        .respond_with(jwks_answer(&[&key]))
        .mount(&jwks)
        .await;
    let (app, _upstream) = jwt_app(&jwks).await;

    let response = app.sdk_token_as(&key.session("alice", 600)).await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn fetched_keys_keep_working_while_the_jwks_endpoint_is_down() {
    let key = TestKey::app_rsa("k1");
    let jwks = jwks_then(jwks_answer(&[&key]), ResponseTemplate::new(503)).await;
    let (app, _upstream) = jwt_app(&jwks).await;
    assert_eq!(
        app.sdk_token_as(&key.session("alice", 600)).await.status(),
        200
    );

    // An unknown kid forces a refetch, which fails...
    let stranger = TestKey::other_rsa("rotated");
    let response = app.sdk_token_as(&stranger.session("eve", 600)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(jwks_fetches(&jwks).await, 2);

    // ...and sessions signed with the keys we have still work.
    let response = app.sdk_token_as(&key.session("bob", 600)).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_static_pem_key_verifies_session_tokens() {
    let key = TestKey::app_ec("ignored-kid");
    let unused = MockServer::start().await;
    let (app, _upstream) = jwt_app_with(&unused, |s| {
        s.caller_auth.jwt.jwks_url = String::new();
        s.caller_auth.jwt.public_key_pem = key.public_pem.into();
    })
    .await;

    let good = key.session("alice", 600);
    assert_eq!(app.sdk_token_as(&good).await.status(), 200);

    let forged = TestKey::other_rsa("x").session("eve", 600);
    let response = app.sdk_token_as(&forged).await;
    assert_eq!(response.status(), 401);
    assert_eq!(jwks_fetches(&unused).await, 0);
}

#[tokio::test]
async fn a_cached_verification_never_outlives_the_token() {
    let key = TestKey::app_rsa("k1");
    let jwks = jwks_server(&[&key]).await;
    let (app, _upstream) = jwt_app_with(&jwks, |s| {
        s.caller_auth.jwt.leeway_secs = 0;
        s.caller_auth.jwt.cache_ttl_secs = 600;
    })
    .await;
    let short = key.session("alice", 2);
    assert_eq!(app.sdk_token_as(&short).await.status(), 200);
    assert_eq!(app.sdk_token_as(&short).await.status(), 200);

    tokio::time::sleep(Duration::from_millis(3100)).await;

    assert_refused(app.sdk_token_as(&short).await, "expired").await;
}

#[tokio::test]
async fn a_malformed_authorization_header_is_refused() {
    let (_key, _jwks, (app, _upstream)) = k1_app().await;

    for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Token abc"] {
        let response = app
            .sdk_request()
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{value}");
        assert_eq!(problem_type(response).await, "invalid-credentials");
    }
}

async fn trusted_header_app(trusted: &str) -> Running {
    app_with_tokens(|s| use_trusted_gateway(s, trusted)).await
}

#[tokio::test]
async fn a_trusted_proxy_identifies_the_caller_by_header() {
    let (app, _upstream) = trusted_header_app("127.0.0.0/8").await;

    assert_eq!(app.sdk_token_for(Some("alice")).await.status(), 200);
    let anonymous = app.sdk_token_for(None).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(problem_type(anonymous).await, "unauthenticated");
}

#[tokio::test]
async fn an_identity_header_from_an_untrusted_address_is_refused() {
    let (app, _upstream) = trusted_header_app("10.0.0.0/8").await;

    let response = app.sdk_token_for(Some("alice")).await;

    assert_eq!(response.status(), 401);
    assert_eq!(problem_type(response).await, "invalid-credentials");
}
