//! What the person sees when Astra does not authorize or fails, and bodies
//! and paths the routes refuse.

use atv_dev_fakes::fake_astra::FakeAstraFault;
use serde_json::json;

use test_support::astra::{Store, World};

use super::problem;

/// The query `/astra/callback` sent the browser to the completion page with.
async fn completion_query(app: &test_support::astra::TestApp, query: &str) -> String {
    let r = app
        .http
        .get(format!("{}/astra/callback?{query}", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:9/done?"),
        "{location}"
    );
    location
}

pub async fn an_astra_error_redirect_is_a_denied_authorization_not_an_invalid_state(store: Store) {
    let world = World::new(store).await;
    let app = world
        .app(|s| s.completion_url = "http://127.0.0.1:9/done".into())
        .await;
    let (_, started) = app.post("/astra/users/dan/authorization", json!({})).await;
    let state = started["state"].as_str().unwrap();

    let denied = format!("error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E&state={state}");
    let location = completion_query(&app, &denied).await;
    assert!(location.contains("outcome=failed"), "{location}");
    assert!(
        location.contains("astra-authorization-denied"),
        "{location}"
    );
    assert!(!location.contains("retryable"), "{location}");
    assert!(
        !location.contains("%3Cb") && !location.contains("error_description"),
        "Astra's text is not repeated: {location}"
    );

    // The state was used up: the link cannot be replayed with a code.
    let code = world.astra.issue_code("astra-dan");
    let location = completion_query(&app, &format!("code={code}&state={state}")).await;
    assert!(location.contains("astra-state-invalid"), "{location}");

    // Without a completion URL, the problem itself.
    let app = world.app(|_| {}).await;
    let (status, body) = app.get_public("/astra/callback?error=access_denied").await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], problem("astra-authorization-denied"));
}

pub async fn a_failed_code_exchange_sends_the_person_back_with_a_way_to_retry(store: Store) {
    let world = World::new(store).await;
    let app = world
        .app(|s| s.completion_url = "http://127.0.0.1:9/done".into())
        .await;
    let (_, started) = app.post("/astra/users/eve/authorization", json!({})).await;
    let state = started["state"].as_str().unwrap();
    world.astra.set_fault(FakeAstraFault::ServerError(503));

    let code = world.astra.issue_code("astra-eve");
    let location = completion_query(&app, &format!("code={code}&state={state}")).await;
    assert!(location.contains("astra-unavailable"), "{location}");
    assert!(location.contains("retryable=true"), "{location}");

    // Retrying means starting again, and that works once Astra is back.
    world.astra.set_fault(FakeAstraFault::None);
    let (_, started) = app.post("/astra/users/eve/authorization", json!({})).await;
    let state = started["state"].as_str().unwrap();
    let code = world.astra.issue_code("astra-eve");
    let location = completion_query(&app, &format!("code={code}&state={state}")).await;
    assert!(location.contains("outcome=confirm&handle="), "{location}");
}

pub async fn json_bodies_must_be_objects(store: Store) {
    let (_world, app) = World::with_app(store).await;
    for (path, body) in [
        ("/astra/users/fay/token/refresh", json!([5])),
        ("/astra/users/fay/authorization", json!(["intent"])),
        ("/astra/users/fay/authorization/confirm", json!(["handle"])),
        ("/astra/users/fay/authorization-code", json!(["code"])),
    ] {
        let (status, problem_body) = app.post(path, body).await;
        assert_eq!(status, 400, "{path}: {problem_body}");
        assert_eq!(problem_body["type"], problem("bad-request"), "{path}");
    }
}

pub async fn dot_segments_are_not_user_refs(store: Store) {
    let (_world, app) = World::with_app(store).await;
    // Sent as is: URL libraries turn `%2E` segments into `.` and drop them.
    for path in ["/astra/users/%2E/token", "/astra/users/%2E%2E/token"] {
        let answer = raw_get(&app.internal, path).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(
            answer.contains("problem:invalid-user-ref"),
            "{path}: {answer}"
        );
    }
}

/// `GET path` over a bare TCP connection, so that nothing rewrites the path.
async fn raw_get(origin: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = origin.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    answer
}
