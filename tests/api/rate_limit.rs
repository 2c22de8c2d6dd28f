//! One caller cannot mint tokens without bound: per-caller buckets, per
//! address for anonymous callers, and a separate per-address bucket for
//! failed authentication attempts.

use astrada_token_vendor::config::Settings;
use wiremock::MockServer;

use test_support::*;

async fn limited_app(tweak: impl FnOnce(&mut Settings)) -> (TestApp, MockServer) {
    app_with_tokens(|s| {
        s.rate_limit.per_caller_per_minute = 6;
        s.rate_limit.burst = 3;
        tweak(s);
    })
    .await
}

fn trusted_gateway(s: &mut Settings) {
    use_trusted_gateway(s, "127.0.0.1");
}

#[tokio::test]
async fn a_caller_over_its_limit_gets_429_with_retry_after() {
    let (app, _upstream) = limited_app(trusted_gateway).await;

    for _ in 0..3 {
        assert_eq!(app.sdk_token_for(Some("alice")).await.status(), 200);
    }
    let limited = app.sdk_token_for(Some("alice")).await;

    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert_eq!(problem_type(limited).await, "rate-limited");
    assert_eq!(
        app.sdk_token_for(Some("bob")).await.status(),
        200,
        "another caller from the same address has its own bucket"
    );
}

#[tokio::test]
async fn anonymous_callers_are_limited_per_address() {
    let (app, _upstream) = limited_app(|_| {}).await;

    let statuses: Vec<u16> = futures::future::join_all((0..5).map(|_| app.sdk_token()))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();

    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2);
}

#[tokio::test]
async fn failed_authentication_attempts_are_limited_per_address() {
    let (app, _upstream) = limited_app(|s| {
        trusted_gateway(s);
        s.rate_limit.pre_auth_per_minute = 6;
        s.rate_limit.pre_auth_burst = 3;
    })
    .await;

    for _ in 0..3 {
        assert_eq!(app.sdk_token_for(None).await.status(), 401);
    }

    assert_eq!(app.sdk_token_for(None).await.status(), 429);
}
