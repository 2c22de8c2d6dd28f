//! The example integration page (examples/browser) in a real headless
//! Chromium: the browser, not a mock, enforces CORS and cookies. The
//! service runs in `jwt` mode; the app's session is an HttpOnly cookie set by
//! the app's own origin, as a real app would.
//!
//! Needs Debian's chromium and tests/browser/node_modules, which
//! `./scripts/test.sh` installs (scripts/test-deps/browser.sh).

use std::path::Path;
use std::time::Duration;

use test_support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/browser");
const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");

/// Serves the example page from `site` (one origin), pointing it at the
/// service, plus the app's `/login` that sets the session cookie.
async fn serve_example(site: &MockServer, token_url: &str, session: &str) {
    let file = |name: &str| std::fs::read_to_string(format!("{EXAMPLE}/{name}")).unwrap();
    let routes = [
        ("/index.html", "text/html", file("index.html")),
        ("/sdk-standin.js", "text/javascript", file("sdk-standin.js")),
        (
            "/config.js",
            "text/javascript",
            format!("window.ATV_TOKEN_URL = {token_url:?};\n"),
        ),
    ];
    for (route, content_type, body) in routes {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, content_type))
            .mount(site)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/login"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "set-cookie",
                    format!("app_session={session}; Path=/; HttpOnly; SameSite=Lax"),
                )
                .set_body_raw("<p>signed in</p>", "text/html"),
        )
        .mount(site)
        .await;
}

#[tokio::test]
async fn the_example_page_gets_a_token_only_from_an_allowed_origin_with_a_session() {
    let chromium = std::env::var("ATV_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run ./scripts/test.sh, which installs Debian's chromium"
    );
    assert!(
        Path::new(DRIVER)
            .join("node_modules/playwright-core")
            .exists(),
        "tests/browser/node_modules is missing: run ./scripts/test.sh (npm ci in tests/browser)"
    );

    let key = TestKey::app_rsa("app-key-1");
    let jwks = jwks_server(&[&key]).await;
    let upstream = MockServer::start().await;
    mount_tokens(&upstream, 300).await;
    // Two loopback ports are two origins.
    let shop = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    let app = spawn_app_with(&upstream, |s| {
        use_jwt_callers(s, &jwks);
        s.caller_auth.jwt.cookie_name = "app_session".into();
        s.cors.allowed_origins = vec![shop.uri()];
    })
    .await;
    let token_url = app.sdk_url();
    let session = key.session("shopper-42", 600);
    serve_example(&shop, &token_url, &session).await;
    serve_example(&elsewhere, &token_url, &session).await;

    let config = serde_json::json!({
        "chromium": chromium,
        "forbidden": [SDK_SECRET, API_SECRET, SDK_CLIENT_ID, API_CLIENT_ID],
        "scenarios": [
            {"name": "allowed_with_session",
             "login": format!("{}/login", shop.uri()),
             "page": format!("{}/index.html", shop.uri())},
            {"name": "disallowed_with_session",
             "login": format!("{}/login", shop.uri()),
             "page": format!("{}/index.html", elsewhere.uri())},
            {"name": "allowed_without_session",
             "page": format!("{}/index.html", shop.uri())},
        ],
    });
    let run = tokio::process::Command::new("node")
        .arg("run.mjs")
        .arg(config.to_string())
        .current_dir(DRIVER)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser run ends within 2 minutes")
        .expect("node starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser driver failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("driver printed no JSON ({e}): {stderr}"));

    let allowed = &report["allowed_with_session"];
    assert_eq!(allowed["state"], "ready", "{allowed}");
    assert_eq!(allowed["tokenRequests"][0]["status"], 200, "{allowed}");
    assert_eq!(
        allowed["sawAccessToken"], true,
        "the token response was inspected"
    );

    let blocked = &report["disallowed_with_session"];
    assert_eq!(blocked["state"], "error", "{blocked}");
    assert!(
        blocked["text"]
            .as_str()
            .unwrap()
            .contains("TypeError: Failed to fetch"),
        "{blocked}"
    );
    assert!(
        blocked["consoleErrors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("CORS policy")),
        "the browser says why: {blocked}"
    );
    assert_eq!(blocked["sawAccessToken"], false, "{blocked}");

    let anonymous = &report["allowed_without_session"];
    assert_eq!(anonymous["state"], "error", "{anonymous}");
    assert_eq!(anonymous["tokenRequests"][0]["status"], 401, "{anonymous}");
    assert!(
        anonymous["text"].as_str().unwrap().contains("401"),
        "{anonymous}"
    );

    for (name, scenario) in report.as_object().unwrap() {
        assert!(
            scenario["bodiesChecked"].as_u64().unwrap() >= 3,
            "{name}: page, SDK and config bodies were inspected"
        );
        assert_eq!(
            scenario["leaks"],
            serde_json::json!([]),
            "{name}: the page saw a client credential"
        );
    }
}
