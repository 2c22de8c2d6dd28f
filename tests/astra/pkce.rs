//! PKCE (`astra.pkce = true`): authorizations started here carry an S256
//! challenge, the callback redeems the code with the sealed verifier, and a
//! code that leaks is worthless without it.

use serde_json::json;

use test_support::astra::{Store, World};

use super::binding::{Browser, hidden_inputs};
use super::problem;

pub async fn with_pkce_an_authorization_started_here_completes_with_its_verifier(store: Store) {
    let world = World::new(store).await;
    let app = world.app(|s| s.pkce = true).await;
    let (status, started) = app.post("/astra/users/pia/authorization", json!({})).await;
    assert_eq!(status, 201, "{started}");
    let authorize_url = url::Url::parse(started["authorize_url"].as_str().unwrap()).unwrap();
    let query: Vec<(String, String)> = authorize_url.query_pairs().into_owned().collect();
    let has = |k: &str| query.iter().any(|(key, _)| key == k);
    assert!(has("code_challenge"), "{authorize_url}");
    assert!(query.contains(&("code_challenge_method".into(), "S256".into())));

    // The fake Astra refuses a challenged code without the matching verifier.
    let browser = Browser::logged_into("http://127.0.0.1:9", "pia", &app.public);
    let (_, shown) = browser.authorize(authorize_url.as_str()).await;
    assert_eq!(shown["outcome"], "confirm", "{shown}");
    let (status, summary) = app
        .post(
            "/astra/users/pia/authorization/confirm",
            json!({ "handle": shown["handle"] }),
        )
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(world.astra.code_exchanges(), 1);
}

pub async fn with_pkce_a_leaked_code_cannot_be_redeemed_without_its_verifier(store: Store) {
    let world = World::new(store).await;
    let app = world.app(|s| s.pkce = true).await;
    let (_, started) = app.post("/astra/users/pia/authorization", json!({})).await;
    let authorize_url = started["authorize_url"].as_str().unwrap();

    // The person authorizes; the code leaks from the redirect before the
    // callback runs, and someone submits it as a backend would.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(authorize_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let redirect = http
        .post(
            world
                .astra
                .base_url()
                .join("login/oauth/authorize")
                .unwrap(),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(hidden_inputs(&page))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(redirect.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let (status, body) = app
        .post(
            "/astra/users/mallory/authorization-code",
            json!({ "code": code }),
        )
        .await;

    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], problem("astra-grant-refused"));
    let (status, _) = app.get("/astra/users/mallory").await;
    assert_eq!(status, 404, "nothing was stored");
}
