//! The Astra OAuth client against the in-process fake Astra, and against
//! `wiremock` for answers the fake cannot produce (oversized, incomplete or
//! non-JSON bodies, arbitrary statuses).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use astrada_token_vendor::user_tokens::astra_client::{
    AstraClient, AstraClientConfig, AstraError, AstraTokens,
};
use atv_dev_fakes::fake_astra::{FakeAstra, FakeAstraConfig, FakeAstraFault};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use url::Url;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_ID: &str = "vendor-client";
const CLIENT_SECRET: &str = "client-secret-Zq8wX";

fn redirect_uri() -> Url {
    Url::parse("https://vendor.example.test/astra/callback").expect("url")
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn fake_config() -> FakeAstraConfig {
    FakeAstraConfig::new(CLIENT_ID, CLIENT_SECRET, redirect_uri())
}

fn start_fake(config: FakeAstraConfig) -> FakeAstra {
    FakeAstra::start(loopback(), config).expect("fake Astra starts")
}

fn client_config(base: &Url) -> AstraClientConfig {
    AstraClientConfig {
        api_base: base.clone(),
        authorize_base: base.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        redirect_uri: redirect_uri(),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        max_response_bytes: 16 * 1024,
    }
}

fn client(base: &Url) -> AstraClient {
    AstraClient::new(client_config(base)).expect("client builds")
}

/// A client for `fake` that names `redirect_uri`, not the registered one.
fn client_redirecting_to(fake: &FakeAstra, redirect_uri: &str) -> AstraClient {
    let redirect_uri = Url::parse(redirect_uri).expect("url");
    client_with(&fake.base_url(), |c| c.redirect_uri = redirect_uri)
}

/// A fake, a client, and user-1's tokens from a code exchange (`first`) and
/// from refreshing those once (`second`).
async fn refreshed_once() -> (FakeAstra, AstraClient, AstraTokens, AstraTokens) {
    let (fake, astra) = fake_and_client();
    let first = exchange(&fake, &astra, "user-1").await;
    let second = astra.refresh(&first.refresh_token).await.expect("refresh");
    (fake, astra, first, second)
}

/// A client for `base` with `tweak` applied to its configuration.
fn client_with(base: &Url, tweak: impl FnOnce(&mut AstraClientConfig)) -> AstraClient {
    let mut config = client_config(base);
    tweak(&mut config);
    AstraClient::new(config).expect("client builds")
}

/// A fake Astra with the test configuration, and a client for it.
fn fake_and_client() -> (FakeAstra, AstraClient) {
    let fake = start_fake(fake_config());
    let astra = client(&fake.base_url());
    (fake, astra)
}

/// `user`'s tokens, from a code the fake issues them.
async fn exchange(fake: &FakeAstra, astra: &AstraClient, user: &str) -> AstraTokens {
    let code = fake.issue_code(user);
    astra
        .exchange_code(&secret(&code), None)
        .await
        .expect("exchange")
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn mock_base(server: &MockServer) -> Url {
    Url::parse(&server.uri()).expect("mock url")
}

/// A token endpoint answering `response`.
async fn mock_endpoint(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/oauth/token"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

/// Mounts a token endpoint answering `response` and returns a client for it.
async fn mocked(response: ResponseTemplate) -> (MockServer, AstraClient) {
    let server = mock_endpoint(response).await;
    let client = client(&mock_base(&server));
    (server, client)
}

/// Asserts that `error` is Astra refusing the grant itself.
fn assert_grant_refused(error: &AstraError) {
    assert!(
        matches!(error, AstraError::GrantRefused { .. }),
        "{error:?}"
    );
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

async fn get_user(fake: &FakeAstra, token: &str) -> u16 {
    let url = fake.base_url().join("v1/user").expect("url");
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("fake answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_code_is_exchanged_with_basic_auth_and_a_form_body() {
    let server = MockServer::start().await;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    Mock::given(method("POST"))
        .and(path("/v1/oauth/token"))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=authorization_code"))
        .and(body_string_contains("code=the-code"))
        .and(body_string_contains(
            "redirect_uri=https%3A%2F%2Fvendor.example.test%2Fastra%2Fcallback",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "at-1", "refresh_token": "rt-1",
            "expires_in": 7200, "token_type": "Bearer",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let tokens = client(&mock_base(&server))
        .exchange_code(&secret("the-code"), None)
        .await
        .expect("exchange succeeds");
    assert_eq!(tokens.access_token.expose_secret(), "at-1");
    assert_eq!(tokens.refresh_token.expose_secret(), "rt-1");
    assert_eq!(tokens.expires_in, Duration::from_secs(7200));
    assert_eq!(tokens.token_type, "Bearer");

    // And the fake, which insists on the same shape, agrees.
    let fake = start_fake(fake_config());
    let code = fake.issue_code("user-1");
    let tokens = client(&fake.base_url())
        .exchange_code(&secret(&code), None)
        .await
        .expect("fake exchange succeeds");
    assert_eq!(fake.code_exchanges(), 1);
    assert_eq!(
        fake.current_access_token("user-1").as_deref(),
        Some(tokens.access_token.expose_secret())
    );
    fake.stop().await;
}

#[tokio::test]
async fn a_refresh_returns_a_new_refresh_token_and_invalidates_the_old_access_token() {
    let (fake, _, first, second) = refreshed_once().await;

    assert_ne!(
        first.refresh_token.expose_secret(),
        second.refresh_token.expose_secret()
    );
    assert_ne!(
        first.access_token.expose_secret(),
        second.access_token.expose_secret()
    );
    assert!(!fake.is_current_access_token(first.access_token.expose_secret()));
    assert!(fake.is_current_access_token(second.access_token.expose_secret()));
    assert_eq!(fake.refreshes(), 1);
    assert_eq!(fake.refreshes_for("user-1"), 1);
    assert_eq!(fake.refreshes_for("someone-else"), 0);
    fake.stop().await;
}

#[tokio::test]
async fn an_old_refresh_token_still_works_until_it_expires() {
    let (fake, astra, first, second) = refreshed_once().await;
    astra
        .refresh(&first.refresh_token)
        .await
        .expect("the old refresh token is still valid");

    fake.advance_clock(Duration::from_secs(864_000 + 1));
    for token in [&first.refresh_token, &second.refresh_token] {
        let error = astra
            .refresh(token)
            .await
            .expect_err("expired after 10 days");
        assert_grant_refused(&error);
        assert_eq!(error.code(), "astra_grant_refused");
        assert!(!error.is_transient());
    }
    assert_eq!(fake.refreshes_for("user-1"), 2);
    fake.stop().await;
}

#[tokio::test]
async fn a_used_code_is_refused_as_a_grant_error() {
    let (fake, astra) = fake_and_client();
    let code = secret(&fake.issue_code("user-1"));
    astra.exchange_code(&code, None).await.expect("first use");
    let error = astra
        .exchange_code(&code, None)
        .await
        .expect_err("second use");
    assert_grant_refused(&error);
    assert_eq!(fake.code_exchanges(), 1);
    fake.stop().await;
}

#[tokio::test]
async fn an_expired_or_unknown_code_is_refused_as_a_grant_error() {
    let (fake, astra) = fake_and_client();
    let code = secret(&fake.issue_code("user-1"));
    fake.advance_clock(Duration::from_secs(301));
    for code in [code, secret("never-issued")] {
        let error = astra.exchange_code(&code, None).await.expect_err("refused");
        assert_eq!(error.code(), "astra_grant_refused");
    }
    fake.stop().await;
}

#[tokio::test]
async fn a_revoked_user_has_every_refresh_token_refused() {
    let (fake, astra, first, second) = refreshed_once().await;
    fake.revoke_refresh_tokens("user-1");
    for token in [&second.refresh_token, &first.refresh_token] {
        let error = astra.refresh(token).await.expect_err("revoked");
        assert_grant_refused(&error);
    }
    fake.stop().await;
}

#[tokio::test]
async fn wrong_client_credentials_are_client_rejected_not_grant_refused() {
    let fake = start_fake(fake_config());
    let astra = client_with(&fake.base_url(), |c| {
        c.client_secret = SecretString::from("not-the-secret")
    });
    let code = secret(&fake.issue_code("user-1"));
    let error = astra
        .exchange_code(&code, None)
        .await
        .expect_err("rejected");
    assert!(
        matches!(error, AstraError::ClientRejected { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), "astra_client_rejected");
    assert!(!error.is_transient());

    // The code was not consumed by the failed attempt.
    client(&fake.base_url())
        .exchange_code(&code, None)
        .await
        .expect("right credentials still work");
    fake.stop().await;
}

#[tokio::test]
async fn the_request_id_is_kept_on_success_and_on_errors() {
    let (fake, astra) = fake_and_client();
    let code = secret(&fake.issue_code("user-1"));
    let tokens = astra.exchange_code(&code, None).await.expect("exchange");
    let success_id = tokens.request_id.clone().expect("request-id on success");

    let mut seen = vec![success_id];
    let refused = astra
        .exchange_code(&code, None)
        .await
        .expect_err("used code");
    seen.push(refused.request_id().expect("id on 400").to_owned());

    for fault in [
        FakeAstraFault::ServerError(503),
        FakeAstraFault::RateLimited,
        FakeAstraFault::ClientRejected,
        FakeAstraFault::Garbage,
    ] {
        fake.set_fault(fault);
        let error = astra
            .refresh(&tokens.refresh_token)
            .await
            .expect_err("fault");
        let id = error
            .request_id()
            .unwrap_or_else(|| panic!("no request-id for {fault:?}"));
        assert!(error.to_string().contains(id), "{error}");
        seen.push(id.to_owned());
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "request ids repeat: {seen:?}");

    // A status the fake never sends, and a hostile request-id.
    let (_server, mocked) =
        mocked(ResponseTemplate::new(404).insert_header("request-id", "req 42\tabc")).await;
    let error = mocked.refresh(&secret("rt")).await.expect_err("404");
    assert!(
        matches!(error, AstraError::Rejected { status: 404, .. }),
        "{error:?}"
    );
    assert_eq!(error.request_id(), Some("req42abc"));
    assert_eq!(error.code(), "astra_rejected");
    fake.stop().await;
}

#[tokio::test]
async fn errors_never_contain_the_response_body_or_tokens() {
    let leak = "sk_live_LEAKED_9f8e7d";
    let (_server, astra) = mocked(
        ResponseTemplate::new(400)
            .insert_header("request-id", "req-1")
            .set_body_json(serde_json::json!({"error": "invalid_grant", "detail": leak})),
    )
    .await;
    let code = "code-SHOULD-NOT-APPEAR";
    let error = astra
        .exchange_code(&secret(code), None)
        .await
        .expect_err("400");
    assert_grant_refused(&error);
    let (display, debug) = (error.to_string(), format!("{error:?}"));
    for text in [&display, &debug] {
        for forbidden in [leak, "invalid_grant", code, CLIENT_SECRET] {
            assert!(!text.contains(forbidden), "{forbidden} leaked into {text}");
        }
        assert!(text.contains("req-1"), "{text}");
    }

    let (_server, astra) = mocked(ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "access_token": "at-SHOULD-NOT-APPEAR", "refresh_token": "rt-SHOULD-NOT-APPEAR",
        "expires_in": 7200, "token_type": "Bearer",
    })))
    .await;
    let tokens = astra.exchange_code(&secret(code), None).await.expect("200");
    let debug = format!("{tokens:?} {astra:?}");
    assert!(!debug.contains("SHOULD-NOT-APPEAR"), "{debug}");
    assert!(!debug.contains(CLIENT_SECRET), "{debug}");

    // A malformed success must not echo what it could not parse either.
    let (_server, astra) =
        mocked(ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": leak})))
            .await;
    let error = astra
        .exchange_code(&secret(code), None)
        .await
        .expect_err("malformed");
    assert!(!format!("{error} {error:?}").contains(leak));
}

#[tokio::test]
async fn the_authorize_url_carries_the_documented_parameters_encoded() {
    let astra = client(&Url::parse("https://app.astra.example").expect("url"));
    let url = astra.authorize_url("s t&a=te", Some("intent 1"), None);
    assert_eq!(url.path(), "/login/oauth/authorize");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let expected = [
        ("client_id", CLIENT_ID),
        ("redirect_uri", "https://vendor.example.test/astra/callback"),
        ("response_type", "code"),
        ("user_intent_id", "intent 1"),
        ("state", "s t&a=te"),
    ];
    assert_eq!(pairs.len(), expected.len(), "{url}");
    for (name, value) in expected {
        assert!(
            pairs.contains(&(name.to_owned(), value.to_owned())),
            "{name} in {url}"
        );
    }
    let without = astra.authorize_url("x", None, None);
    assert!(!without.as_str().contains("user_intent_id"));
}

/// Loads the OAuth module page, then submits its form like the button does.
async fn authorize_in_browser(astra: &AstraClient, state: &str, intent: Option<&str>) -> Url {
    let http = no_redirects();
    let page_url = astra.authorize_url(state, intent, None);
    let page = http.get(page_url.clone()).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Authorize"), "{html}");
    assert!(
        html.contains(r#"action="/login/oauth/authorize""#),
        "{html}"
    );
    let form: Vec<(String, String)> = page_url.query_pairs().into_owned().collect();
    let answer = http
        .post(page_url.join("/login/oauth/authorize").expect("url"))
        .form(&form)
        .send()
        .await
        .expect("submit");
    assert_eq!(answer.status(), 302);
    let location = answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location");
    Url::parse(location).expect("absolute redirect")
}

fn query_value(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn the_authorize_page_redirects_with_a_code_and_the_state() {
    let (fake, astra) = fake_and_client();
    let landed = authorize_in_browser(&astra, "st<ate>&1", Some("intent-7")).await;
    assert!(
        landed.as_str().starts_with(redirect_uri().as_str()),
        "{landed}"
    );
    assert_eq!(query_value(&landed, "state").as_deref(), Some("st<ate>&1"));
    let code = query_value(&landed, "code").expect("code");

    let tokens = astra
        .exchange_code(&secret(&code), None)
        .await
        .expect("exchange");
    let user = fake.user_for_intent("intent-7");
    assert_eq!(
        fake.current_access_token(&user).as_deref(),
        Some(tokens.access_token.expose_secret())
    );
    fake.stop().await;
}

#[tokio::test]
async fn the_state_can_be_withheld_like_real_astra_may() {
    let mut config = fake_config();
    config.echo_state = false;
    let fake = start_fake(config);
    let astra = client(&fake.base_url());
    let landed = authorize_in_browser(&astra, "state-1", None).await;
    assert_eq!(query_value(&landed, "state"), None);
    assert!(query_value(&landed, "code").is_some());
    fake.stop().await;
}

#[tokio::test]
async fn the_authorize_page_refuses_an_unregistered_redirect_uri() {
    let fake = start_fake(fake_config());
    let astra = client_redirecting_to(&fake, "https://attacker.example/cb");
    let http = no_redirects();
    let page = http
        .get(astra.authorize_url("s", None, None))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 400);
    let submit = http
        .post(fake.base_url().join("login/oauth/authorize").expect("url"))
        .form(
            &astra
                .authorize_url("s", None, None)
                .query_pairs()
                .into_owned()
                .collect::<Vec<_>>(),
        )
        .send()
        .await
        .expect("submit");
    assert_eq!(submit.status(), 400);
    assert!(submit.headers().get("location").is_none());
    fake.stop().await;
}

#[tokio::test]
async fn json_bodies_are_refused_like_the_real_endpoint() {
    let fake = start_fake(fake_config());
    let code = fake.issue_code("user-1");
    let answer = reqwest::Client::new()
        .post(fake.base_url().join("v1/oauth/token").expect("url"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .json(&serde_json::json!({
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri().as_str(),
        }))
        .send()
        .await
        .expect("fake answers");
    assert_eq!(answer.status(), 400);
    assert!(answer.headers().contains_key("request-id"));
    assert_eq!(fake.code_exchanges(), 0);
    client(&fake.base_url())
        .exchange_code(&secret(&code), None)
        .await
        .expect("the code survives a malformed request");
    fake.stop().await;
}

#[tokio::test]
async fn a_mismatched_redirect_uri_is_refused_as_a_grant_error() {
    let fake = start_fake(fake_config());
    let astra = client_redirecting_to(&fake, "https://vendor.example.test/other");
    let code = fake.issue_code("user-1");
    let error = astra
        .exchange_code(&secret(&code), None)
        .await
        .expect_err("mismatch");
    assert_grant_refused(&error);
    fake.stop().await;
}

#[tokio::test]
async fn only_the_current_access_token_reads_the_user() {
    let (fake, astra) = fake_and_client();
    let first = exchange(&fake, &astra, "user-1").await;
    assert_eq!(
        get_user(&fake, first.access_token.expose_secret()).await,
        200
    );

    let second = astra.refresh(&first.refresh_token).await.expect("refresh");
    assert_eq!(
        get_user(&fake, first.access_token.expose_secret()).await,
        401
    );
    assert_eq!(
        get_user(&fake, second.access_token.expose_secret()).await,
        200
    );
    assert_eq!(get_user(&fake, "at_made_up").await, 401);

    fake.advance_clock(Duration::from_secs(7200));
    assert_eq!(
        get_user(&fake, second.access_token.expose_secret()).await,
        401
    );
    assert!(!fake.is_current_access_token(second.access_token.expose_secret()));
    fake.stop().await;
}

#[tokio::test]
async fn faults_map_to_typed_errors_with_stable_codes() {
    let fake = start_fake(fake_config());
    let astra = client_with(&fake.base_url(), |c| c.timeout = Duration::from_millis(300));
    let tokens = exchange(&fake, &astra, "user-1").await;

    let cases = [
        (FakeAstraFault::ServerError(502), "astra_5xx", true),
        (FakeAstraFault::RateLimited, "astra_rate_limited", true),
        (FakeAstraFault::Timeout, "astra_timeout", true),
        (FakeAstraFault::Garbage, "astra_malformed", false),
        (
            FakeAstraFault::ClientRejected,
            "astra_client_rejected",
            false,
        ),
    ];
    for (fault, code, transient) in cases {
        fake.set_fault(fault);
        let error = astra
            .refresh(&tokens.refresh_token)
            .await
            .expect_err("fault");
        assert_eq!(error.code(), code, "{fault:?}: {error:?}");
        assert_eq!(error.is_transient(), transient, "{fault:?}");
        if let AstraError::RateLimited { retry_after, .. } = error {
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
        }
    }
    fake.set_fault(FakeAstraFault::None);
    astra
        .refresh(&tokens.refresh_token)
        .await
        .expect("recovered");
    assert_eq!(fake.refreshes(), 1);
    fake.stop().await;
}

#[tokio::test]
async fn latency_past_the_client_timeout_is_a_timeout() {
    let fake = start_fake(fake_config());
    let astra = client_with(&fake.base_url(), |c| c.timeout = Duration::from_millis(200));
    fake.set_latency(Duration::from_millis(600));
    let error = astra.refresh(&secret("rt")).await.expect_err("slow");
    assert!(matches!(error, AstraError::Timeout { .. }), "{error:?}");
    fake.stop().await;
}

#[tokio::test]
async fn a_slow_answer_past_the_timeout_is_a_transient_timeout() {
    let server = mock_endpoint(ResponseTemplate::new(200).set_delay(Duration::from_secs(2))).await;
    let error = client_with(&mock_base(&server), |c| {
        c.timeout = Duration::from_millis(200)
    })
    .refresh(&secret("rt"))
    .await
    .expect_err("timeout");
    assert!(matches!(error, AstraError::Timeout { .. }), "{error:?}");
    assert!(error.is_transient());
    assert_eq!(error.code(), "astra_timeout");
}

#[tokio::test]
async fn an_unreachable_astra_is_transient() {
    let port = test_support::free_port();
    let base = Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
    let error = client(&base)
        .refresh(&secret("rt"))
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(error, AstraError::Unreachable { request_id: None }),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert_eq!(error.code(), "astra_unreachable");
}

#[tokio::test]
async fn an_oversized_body_is_malformed() {
    let big = format!(
        r#"{{"access_token":"{}","refresh_token":"r","expires_in":7200}}"#,
        "a".repeat(20 * 1024)
    );
    let (_server, astra) = mocked(
        ResponseTemplate::new(200)
            .insert_header("request-id", "req-big")
            .set_body_raw(big, "application/json"),
    )
    .await;
    let error = astra.refresh(&secret("rt")).await.expect_err("too big");
    assert!(matches!(error, AstraError::Malformed { .. }), "{error:?}");
    assert_eq!(error.request_id(), Some("req-big"));
    assert!(!error.is_transient());
}

/// wiremock always sends a Content-Length; this peer streams a chunked body
/// that never ends, so only a limit enforced while reading can stop it.
#[tokio::test]
async fn an_endless_chunked_body_is_cut_off_at_the_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind(loopback())
        .await
        .expect("bind");
    let base =
        Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    let peer = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\nrequest-id: req-chunked\r\n\
                    content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("400\r\n{}\r\n", "a".repeat(0x400));
        // Until the client hangs up.
        while socket.write_all(chunk.as_bytes()).await.is_ok() {}
    });
    let error = client(&base)
        .refresh(&secret("rt"))
        .await
        .expect_err("too big");
    assert!(matches!(error, AstraError::Malformed { .. }), "{error:?}");
    assert_eq!(error.request_id(), Some("req-chunked"));
    peer.abort();
}

#[tokio::test]
async fn missing_fields_non_json_and_non_positive_lifetimes_are_malformed() {
    let bodies = [
        r#"{"refresh_token":"r","expires_in":7200,"token_type":"Bearer"}"#,
        r#"{"access_token":"a","expires_in":7200,"token_type":"Bearer"}"#,
        r#"{"access_token":"a","refresh_token":"r","token_type":"Bearer"}"#,
        r#"{"access_token":"a","refresh_token":"r","expires_in":0,"token_type":"Bearer"}"#,
        r#"{"access_token":"a","refresh_token":"r","expires_in":-1,"token_type":"Bearer"}"#,
        "<html>maintenance</html>",
        "",
    ];
    for body in bodies {
        let (_server, astra) =
            mocked(ResponseTemplate::new(200).set_body_raw(body, "application/json")).await;
        let error = astra.refresh(&secret("rt")).await.expect_err("malformed");
        assert_eq!(error.code(), "astra_malformed", "{body}: {error:?}");
    }
}

#[tokio::test]
async fn every_fake_response_carries_a_unique_request_id() {
    let fake = start_fake(fake_config());
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for path in [
        "v1/oauth/token",
        "v1/user",
        "no/such/route",
        "login/oauth/authorize",
    ] {
        let url = fake.base_url().join(path).expect("url");
        for request in [http.get(url.clone()), http.post(url.clone())] {
            let answer = request.send().await.expect("fake answers");
            let id = answer
                .headers()
                .get("request-id")
                .unwrap_or_else(|| panic!("no request-id on {path}"))
                .to_str()
                .expect("ascii")
                .to_owned();
            ids.push(id);
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count);
    fake.stop().await;
}

#[tokio::test]
async fn the_control_route_is_loopback_only_and_drives_the_fake() {
    let refused =
        FakeAstra::start_with_control(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), fake_config());
    assert!(refused.is_err());

    let plain = start_fake(fake_config());
    let control = plain.base_url().join("_control").expect("url");
    assert_eq!(reqwest::get(control).await.expect("answer").status(), 404);
    plain.stop().await;

    let fake = FakeAstra::start_with_control(loopback(), fake_config()).expect("starts");
    let control = fake.base_url().join("_control").expect("url");
    let http = reqwest::Client::new();
    let set = http
        .post(control.clone())
        .json(&serde_json::json!({"fault": {"server_error": 503}, "latency_ms": 5}))
        .send()
        .await
        .expect("control answers");
    assert_eq!(set.status(), 200);
    let astra = client(&fake.base_url());
    let error = astra.refresh(&secret("rt")).await.expect_err("503");
    assert!(
        matches!(error, AstraError::ServerError { status: 503, .. }),
        "{error:?}"
    );

    http.post(control.clone())
        .json(&serde_json::json!({"fault": "none"}))
        .send()
        .await
        .expect("control answers");
    let tokens = exchange(&fake, &astra, "user-1").await;
    astra.refresh(&tokens.refresh_token).await.expect("refresh");
    let stats: serde_json::Value = http
        .get(control)
        .send()
        .await
        .expect("control answers")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["fault"], "none");
    assert_eq!(stats["latency_ms"], 5);
    assert_eq!(stats["token_requests"], 3);
    assert_eq!(stats["code_exchanges"], 1);
    assert_eq!(stats["refreshes"], 1);
    assert_eq!(stats["refreshes_by_user"]["user-1"], 1);
    fake.stop().await;
}
