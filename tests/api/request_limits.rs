//! Oversized requests are refused before any handler runs, with the same
//! problem+json answers and security headers as every other error.

use wiremock::MockServer;

use test_support::*;

#[tokio::test]
async fn a_get_with_a_body_over_the_limit_gets_413() {
    let (app, _upstream) = app_with_tokens(|_| {}).await;

    let response = app.sdk_request().body(vec![b'x'; 4096]).send().await;
    let response = response.unwrap();

    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(problem_type(response).await, "payload-too-large");
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let (app, _upstream) = app_with_tokens(|_| {}).await;

    let with_cookie = |size: usize| app.sdk_request().header("cookie", "a".repeat(size)).send();

    let response = with_cookie(20_000).await.unwrap();

    assert_eq!(response.status(), 431);
    assert_eq!(problem_type(response).await, "headers-too-large");
    let fine = with_cookie(4_000).await.unwrap();
    assert_eq!(fine.status(), 200, "a session-sized header passes");
}

#[tokio::test]
async fn refusals_carry_the_security_headers() {
    let key = TestKey::app_rsa("k1");
    let jwks = jwks_server(&[&key]).await;
    let upstream = MockServer::start().await;
    let app = spawn_app_with(&upstream, |s| use_jwt_callers(s, &jwks)).await;

    let response = app.sdk_token().await;

    assert_eq!(response.status(), 401);
    assert_headers(&response, NO_STORE_HEADERS);
    assert_headers(&response, &[("referrer-policy", "no-referrer")]);
}
