//! What the proxy refuses or gives up on: a body too large to replay, an
//! upstream that cannot be reached or does not answer, and more calls in
//! flight than `proxy.max_concurrent` allows. Each is a problem, never a hang.

use std::time::Duration;

use test_support::*;
use wiremock::matchers::any;
use wiremock::{Mock, ResponseTemplate};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_replay_limit_is_refused_with_413() {
    let scene = Scene::new(|s| s.proxy.max_body_bytes = 1024).await;
    let path = format!("/astra/users/{ALICE}/api/v1/transfers");
    let send = |size: usize| {
        scene
            .request(reqwest::Method::POST, &path, BILLING_KEY)
            .body(vec![b'x'; size])
            .send()
    };
    let (status, slug, _) = problem(send(1025).await.unwrap()).await;
    assert_eq!((status, slug.as_str()), (413, "payload-too-large"));
    assert!(
        scene
            .astra_api
            .received_requests()
            .await
            .unwrap()
            .is_empty()
    );
    Mock::given(any())
        .respond_with(ResponseTemplate::new(204))
        .mount(&scene.astra_api)
        .await;
    assert_eq!(send(1024).await.unwrap().status(), 204, "within the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_a_502_and_a_slow_one_a_504() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let scene = Scene::new(move |s| {
        s.proxy.astrada_api_url = closed;
        s.proxy.timeout_ms = 500;
    })
    .await;
    let started = std::time::Instant::now();
    let (status, slug, body) =
        problem(scene.get("/astrada/api/v1/cards/c-1", BILLING_KEY).await).await;
    assert_eq!(
        (status, slug.as_str()),
        (502, "proxy-upstream-unreachable"),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Astrada could not be reached"),
        "{body}"
    );

    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&scene.astra_api)
        .await;
    let slow = scene
        .get(&format!("/astra/users/{ALICE}/api/v1/user"), BILLING_KEY)
        .await;
    let (status, slug, body) = problem(slow).await;
    assert_eq!(
        (status, slug.as_str()),
        (504, "proxy-upstream-timeout"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "never a hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_finding_every_slot_taken_for_the_timeout_is_refused_with_503_proxy_busy() {
    // One slot. The first call holds it through a refused attempt and its
    // replay (1.5 s each), longer than a second call may wait for it (2 s).
    let scene = Scene::new(|s| {
        s.proxy.max_concurrent = 1;
        s.proxy.timeout_ms = 2000;
    })
    .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).set_delay(Duration::from_millis(1500)))
        .mount(&scene.astrada_api)
        .await;
    let path = "/astrada/api/v1/cards/c-1";
    let holder = tokio::spawn(
        scene
            .request(reqwest::Method::GET, path, BILLING_KEY)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    let waited = std::time::Instant::now();
    let response = scene.get(path, BILLING_KEY).await;
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, slug, body) = problem(response).await;
    assert_eq!((status, slug.as_str()), (503, "proxy-busy"), "{body}");
    assert!(retry_after.is_some(), "a 503 says when to come back");
    assert!(
        waited.elapsed() >= Duration::from_millis(1900),
        "it waited for a slot first"
    );
    let held = holder.await.unwrap().unwrap();
    assert_eq!(held.status(), 401, "the holder's call ran to its end");
    assert_eq!(
        scene.astrada_api.received_requests().await.unwrap().len(),
        2,
        "only the holder reached the upstream: its call and one replay"
    );
}
