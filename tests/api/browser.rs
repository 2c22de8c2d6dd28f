//! The example integration page (examples/browser) in a real headless
//! Chromium: the browser, not a mock, enforces CORS and cookies. The
//! service runs in `jwt` mode; the app's session is an HttpOnly cookie set by
//! the app's own origin, as a real app would.
//!
//! Needs Debian's chromium and tests/browser/node_modules, which
//! `./scripts/test.sh` installs (scripts/test-deps/browser.sh).

use std::path::Path;
use std::time::Duration;

use test_support::binary::{DevMode, first_ok};
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

/// Debian's Chromium (`$ATV_CHROMIUM` or /usr/bin/chromium), once it and
/// the driver's node_modules are known to be installed.
fn chromium() -> String {
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
    chromium
}

/// Runs the driver (run.mjs) on `config` and returns its JSON report; on
/// failure the message carries the driver's stderr, then `context()`.
async fn drive(config: serde_json::Value, context: impl Fn() -> String) -> serde_json::Value {
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
    assert!(
        output.status.success(),
        "browser driver failed: {stderr}{}",
        context()
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("driver printed no JSON ({e}): {stderr}"))
}

#[tokio::test]
async fn the_example_page_gets_a_token_only_from_an_allowed_origin_with_a_session() {
    let chromium = chromium();

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
    let report = drive(config, String::new).await;

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

/// The binary, for the Astra scenario: it runs `dev` mode as a user would.
const BIN: &str = env!("CARGO_BIN_EXE_astrada-token-vendor");

/// Sends `request`, which must be answered with `status`.
async fn answer(request: reqwest::RequestBuilder, status: u16) -> reqwest::Response {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), status);
    response
}

/// The Astra walkthrough of docs/getting-started.md ("Astra per-user tokens in dev mode")
/// in a real browser: the test starts an authorization on the internal
/// listener (as a backend would), Chromium follows `authorize_url` to the
/// fake Astra's OAuth module, clicks Authorize, goes through the public
/// `/astra/callback` and lands on examples/browser/astra.html
/// (`astra.completion_url`); then the backend confirms the handle for its
/// logged-in user and gets the user's token.
#[tokio::test]
async fn the_astra_example_page_completes_an_authorization_in_dev_mode() {
    let chromium = chromium();

    // The completion page, on its own origin (the app's).
    let site = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/astra.html"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            std::fs::read_to_string(format!("{EXAMPLE}/astra.html")).unwrap(),
            "text/html",
        ))
        .mount(&site)
        .await;
    let completion = format!("{}/astra.html", site.uri());

    // Dev mode on free ports; its redirect URI follows the public address.
    let dev = DevMode::on_free_ports();
    let (public, internal) = (dev.public_url(), dev.internal_url());
    let log_path = std::env::temp_dir().join(format!(
        "atv-browser-astra-{}-{}.log",
        std::process::id(),
        dev.public_port
    ));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut service = dev
        .command(BIN)
        .env("ATV_ASTRA__COMPLETION_URL", &completion)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("the service starts");
    let service_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // Dev mode becomes ready within 30 s.
    let readyz = format!("{public}/readyz");
    first_ok(&mut service, &readyz, Duration::from_secs(30), service_log).await;

    let http = reqwest::Client::new();

    // Step 1, the backend's part: start an authorization (internal listener).
    let user = "browser-user-1";
    let started = http.post(format!("{internal}/astra/users/{user}/authorization"));
    let started: serde_json::Value = answer(started, 201).await.json().await.unwrap();
    let authorize_url = started["authorize_url"].as_str().unwrap().to_owned();
    assert!(started["state"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(started["expires_in"].as_u64().unwrap() > 0);

    // Steps 2 and 3, the browser's part.
    let config = serde_json::json!({
        "chromium": chromium,
        "scenarios": [
            {"name": "astra_authorize", "astra": true,
             "authorize_url": authorize_url, "completion": completion},
        ],
    });
    let report = drive(config, || format!("\nservice log:\n{}", service_log())).await;
    let astra = &report["astra_authorize"];

    assert_eq!(astra["state"], "confirm", "{astra}");
    assert_eq!(
        astra["callbackStatuses"],
        serde_json::json!([303]),
        "the callback redirected once to the completion page: {astra}"
    );
    assert_eq!(
        astra["callbackOrigins"],
        serde_json::json!([public]),
        "the browser went through the service's own callback: {astra}"
    );
    let landed = url::Url::parse(astra["finalUrl"].as_str().unwrap()).unwrap();
    assert_eq!(
        format!("{}{}", landed.origin().ascii_serialization(), landed.path()),
        completion
    );
    let query: std::collections::HashMap<String, String> =
        landed.query_pairs().into_owned().collect();
    assert_eq!(query.get("outcome").map(String::as_str), Some("confirm"));
    assert!(
        !query.contains_key("code") && !query.contains_key("state"),
        "neither the code nor the state reaches the app's page: {landed}"
    );
    let handle = &query["handle"];
    assert!(
        astra["text"].as_str().unwrap().contains(handle),
        "the dev page shows the confirming curl: {astra}"
    );
    let not_yet = http.get(format!("{internal}/astra/users/{user}"));
    answer(not_yet, 404).await;

    // The backend behind the completion page confirms for its logged-in user.
    let confirm = http
        .post(format!(
            "{internal}/astra/users/{user}/authorization/confirm"
        ))
        .json(&serde_json::json!({ "handle": handle }));
    answer(confirm, 200).await;

    // Step 4, the backend again: the user's access token.
    let token = http.get(format!("{internal}/astra/users/{user}/token"));
    let token: serde_json::Value = answer(token, 200).await.json().await.unwrap();
    let access_token = token["access_token"].as_str().unwrap();
    assert!(!access_token.is_empty(), "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_in"].as_u64().unwrap() > 0, "{token}");
    assert_eq!(token["generation"], 1, "{token}");
    for (i, seen) in astra["seen"].as_array().unwrap().iter().enumerate() {
        assert!(
            !seen.as_str().unwrap().contains(access_token),
            "the browser saw the access token (item {i})"
        );
    }
    // The summary never carries a token either.
    let summary = http.get(format!("{internal}/astra/users/{user}"));
    let summary = answer(summary, 200).await.text().await.unwrap();
    assert!(summary.contains("\"status\":\"active\""), "{summary}");
    assert!(!summary.contains(access_token));

    service.start_kill().unwrap();
    let _ = service.wait().await;
    let _ = std::fs::remove_file(&log_path);
}
