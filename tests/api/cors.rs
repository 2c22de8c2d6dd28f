//! Only pages from allowed origins can read the SDK token: they get their own
//! origin echoed back with credentials; any other origin gets no CORS header
//! at all (so the browser blocks the page) and no token.

use astrada_token_vendor::http::problem::PROBLEM_BASE;
use wiremock::MockServer;

use test_support::*;

const ALLOWED: &str = "https://shop.example.com";
const EVIL: &str = "https://evil.example.net";
/// What an allowed origin's page gets: its own origin back, with credentials.
const ALLOWED_WITH_CREDENTIALS: &[(&str, &str)] = &[
    ("access-control-allow-origin", ALLOWED),
    ("access-control-allow-credentials", "true"),
];

async fn cors_app() -> (TestApp, MockServer) {
    app_with_tokens(|s| {
        // Configured as written by hand: trailing slash, upper case.
        s.cors.allowed_origins = vec!["HTTPS://Shop.Example.com/".into()];
    })
    .await
}

async fn get_from(app: &TestApp, origin: &str) -> reqwest::Response {
    app.sdk_request()
        .header("origin", origin)
        .send()
        .await
        .unwrap()
}

async fn preflight_from(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(reqwest::Method::OPTIONS, app.sdk_url())
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap()
}

fn cors_headers(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn an_allowed_origin_gets_its_own_origin_back_with_credentials() {
    let (app, _upstream) = cors_app().await;

    let response = get_from(&app, ALLOWED).await;

    assert_eq!(response.status(), 200);
    assert_headers(&response, ALLOWED_WITH_CREDENTIALS);
    assert_headers(&response, &[("vary", "Origin")]);
    assert!(json(response).await["access_token"].is_string());
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered() {
    let (app, _upstream) = cors_app().await;

    let response = preflight_from(&app, ALLOWED).await;

    assert_eq!(response.status(), 204);
    let h = response.headers();
    assert_eq!(h["access-control-allow-methods"], "GET");
    assert_eq!(h["access-control-allow-headers"], "authorization");
    assert_eq!(h["access-control-max-age"], "600");
    assert_headers(&response, ALLOWED_WITH_CREDENTIALS);
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_cors_headers_and_no_token() {
    let (app, _upstream) = cors_app().await;

    for response in [get_from(&app, EVIL).await, preflight_from(&app, EVIL).await] {
        assert_eq!(response.status(), 403);
        assert_eq!(cors_headers(&response), Vec::<String>::new());
        let body = json(response).await;
        assert_eq!(body["type"], format!("{PROBLEM_BASE}origin-not-allowed"));
        assert!(body.get("access_token").is_none());
    }
    // Near misses are other origins too.
    for near in [
        "http://shop.example.com",
        "https://shop.example.com:8443",
        "https://shop.example.com.evil.net",
        "null",
    ] {
        let response = get_from(&app, near).await;
        assert_eq!(response.status(), 403, "{near}");
        assert!(cors_headers(&response).is_empty(), "{near}");
    }
}

#[tokio::test]
async fn a_request_without_origin_is_not_a_cors_request() {
    let (app, _upstream) = cors_app().await;

    let response = app.sdk_token().await;

    assert_eq!(response.status(), 200);
    assert!(cors_headers(&response).is_empty());
}

#[tokio::test]
async fn refusals_to_allowed_origins_are_readable_by_the_page() {
    let key = TestKey::app_rsa("k1");
    let jwks = jwks_server(&[&key]).await;
    let (app, _upstream) = app_with_tokens(|s| {
        use_jwt_callers(s, &jwks);
        s.cors.allowed_origins = vec![ALLOWED.into()];
    })
    .await;

    // So that the SDK's error callback can tell "not signed in" from "network down".
    let response = get_from(&app, ALLOWED).await;

    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["access-control-allow-origin"], ALLOWED);
}

#[tokio::test]
async fn a_plain_options_request_lists_the_methods() {
    let (app, _upstream) = cors_app().await;

    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.sdk_url())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()["allow"], "GET, OPTIONS");
}
