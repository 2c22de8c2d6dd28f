//! The upstream is fixed: no spelling of `{path}` reaches another host or
//! climbs above the API base.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::any;
use wiremock::{Mock, ResponseTemplate};

use super::*;

/// Sends `target` as written (no client normalises it): status and body.
async fn raw_get(base: &str, target: &str, key: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_could_leave_the_upstream_are_refused() {
    let scene = Scene::new(|_| {}).await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&scene.astra_api)
        .await;
    let astra = format!("/astra/users/{ALICE}/api");
    let escapes = [
        "/../admin",
        "/v1/../../admin",
        "/v1/%2e%2e/%2E%2E/admin",
        "/v1/.%2e/admin",
        "/v1%2f..%2fadmin",
        "/v1/%5c..%5cadmin",
        "/v1\\..\\admin",
        "//evil.example/v1/user",
        "/http://evil.example/v1/user",
        "/v1/%0d%0aHost:%20evil.example",
    ];
    for prefix in [astra.as_str(), "/astrada/api"] {
        for escape in escapes {
            let target = format!("{prefix}{escape}");
            let (status, body) = raw_get(&scene.app.internal, &target, BILLING_KEY).await;
            assert_eq!(status, 400, "{target}: {body}");
            assert!(body.contains("proxy-path-refused"), "{target}: {body}");
        }
    }
    assert!(
        scene
            .astra_api
            .received_requests()
            .await
            .unwrap()
            .is_empty()
    );
}
