//! The internal listener reads bodies within `server.max_body_bytes` as they
//! arrive, takes only JSON, and while internal authentication is off answers
//! only programs on this machine, never a web page.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use test_support::astra::{Store, World};

/// Sends `head` and then `chunks` as a chunked body on a raw connection;
/// the status code and the body of the answer.
async fn chunked(internal: &str, head: &str, chunks: usize) -> (u16, String) {
    let addr = internal.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}Host: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        // The server may answer and close before every chunk is sent.
        if tcp.write_all(b"200\r\n").await.is_err()
            || tcp.write_all(&[b' '; 0x200]).await.is_err()
            || tcp.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    (status, answer)
}

pub async fn a_chunked_body_over_the_limit_is_refused_as_problem_json(store: Store) {
    let (world, app) = World::with_app(store).await;
    world.authorized("ann").await;
    let head = "POST /astra/users/ann/token/refresh HTTP/1.1\r\nContent-Type: application/json\r\nConnection: close\r\n";

    // No Content-Length: 8 chunks of 512 bytes against the 1024-byte limit.
    let (status, answer) = chunked(&app.internal, head, 8).await;

    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("payload-too-large"), "{answer}");
    let (status, answer) = chunked(&app.internal, head, 1).await;
    assert_eq!(
        status, 400,
        "a small chunked body is read (and is not JSON): {answer}"
    );
}

pub async fn a_form_post_to_the_internal_listener_is_refused_as_not_json(store: Store) {
    let (_world, app) = World::with_app(store).await;
    let form = app
        .http
        .post(format!("{}/astra/users/ann/authorization", app.internal))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user_intent_id=x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let problem: serde_json::Value = form.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("unsupported-media-type")
    );

    let (status, _) = app.post("/astra/users/ann/authorization", json!({})).await;
    assert_eq!(status, 201, "the same request as JSON passes");
}

pub async fn with_internal_auth_off_a_web_page_cannot_drive_the_internal_listener(store: Store) {
    let (_world, app) = World::with_app(store).await;
    let users = format!("{}/astra/users", app.internal);
    let status = |r: reqwest::Response| r.status().as_u16();

    let local = app.http.get(&users).send().await.unwrap();
    assert_eq!(status(local), 200);
    // DNS rebinding: the page's own name resolves to 127.0.0.1.
    let rebound = app
        .http
        .get(&users)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status(rebound), 403);
    // A page fetching 127.0.0.1 directly: its browser names it in Origin.
    let from_page = app
        .http
        .post(format!("{users}/ann/authorization"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(from_page.status(), 403);
    let problem: serde_json::Value = from_page.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("local-only"));
}
