//! Astra's `request-id` is metadata: whatever characters it carries, the
//! tokens it came with are stored and the lease is ended.

use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use astrada_token_vendor::user_tokens::Grant;
use test_support::astra::{Store, World, user_ref};

/// An Astra whose every token answer carries `request-id: req/1+2==`.
async fn astra_with_slashes_in_request_ids() -> MockServer {
    let astra = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("request-id", "req/1+2==")
                .set_body_json(json!({
                    "access_token": format!("at-{}", fastrand::u64(..)),
                    "refresh_token": format!("rt-{}", fastrand::u64(..)),
                    "expires_in": 7200,
                    "token_type": "Bearer",
                })),
        )
        .mount(&astra)
        .await;
    astra
}

pub async fn a_request_id_with_slashes_and_pluses_never_blocks_a_code_exchange_or_a_refresh(
    store: Store,
) {
    let world = World::new(store).await;
    let astra = astra_with_slashes_in_request_ids().await;
    let service = world.service(|s| s.api_url = astra.uri()).await;
    let user = user_ref("rid");

    let row = service
        .authorizations()
        .authorize(&user, Grant::Code(SecretString::from("code-1")))
        .await
        .expect("the code exchange stores the tokens");
    assert_eq!(row.last_astra_request_id.as_deref(), Some("req_1_2__"));

    world.store.expire_access_token("rid").await;
    let token = service.token(&user).await.expect("the refresh is stored");
    assert_eq!(token.generation, 2);
    // The lease ended with the commit: a report of the new token as stale
    // refreshes again at once instead of waiting for a held lease.
    let again = service
        .refresh_stale(&user, token.generation)
        .await
        .expect("no lease is left held");
    assert_eq!(again.generation, 3);
    let summary = service.summary(&user).await.unwrap();
    assert_eq!(summary.last_astra_request_id.as_deref(), Some("req_1_2__"));
}
