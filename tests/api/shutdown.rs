//! Graceful shutdown: stop accepting, finish what is in flight, return cleanly.

use std::time::Duration;

use wiremock::MockServer;

use test_support::*;

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops_accepting() {
    let upstream = MockServer::start().await;
    mount_answers(
        &upstream,
        FreshToken::lasting(300).after(Duration::from_millis(800)),
    )
    .await;
    let mut app = spawn_app_with(&upstream, |s| s.server.shutdown_timeout_secs = 5).await;
    // Cold cache: this request is still waiting on the exchange when shutdown starts.
    let in_flight = tokio::spawn(app.sdk_request().send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown().await.expect("clean shutdown");

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(response.status(), 200);
    let after = app.http.get(format!("{}/healthz", app.public)).send().await;
    assert!(after.is_err(), "new connections are refused after shutdown");
}
