//! Once Astra has issued tokens for a new authorization, they are stored:
//! neither a store outage straddling the exchange nor a caller who hangs up
//! mid-exchange loses them (the code is used up by then).

use std::sync::Arc;
use std::time::Duration;

use astrada_token_vendor::user_tokens::Grant;
use secrecy::{ExposeSecret, SecretString};
use test_support::astra::{Store, World, postgres_behind_a_proxy, user_ref};

/// Astra answers slowly enough for a fault to fall between its answer and the write.
const ASTRA_LATENCY: Duration = Duration::from_millis(400);

#[tokio::test]
async fn a_code_exchange_whose_write_meets_a_store_outage_lands_when_the_store_is_back() {
    let (world, proxy, via_proxy) = postgres_behind_a_proxy(None).await;
    let replica = world
        .service(|s| s.store_url = SecretString::from(via_proxy))
        .await;
    world.astra.set_latency(ASTRA_LATENCY);
    let code = Grant::Code(SecretString::from(world.astra.issue_code("astra-dee")));

    // The database goes away while Astra is answering, for 1.5 s.
    let proxy = Arc::new(proxy);
    let outage = Arc::clone(&proxy);
    tokio::spawn(async move {
        tokio::time::sleep(ASTRA_LATENCY / 4).await;
        outage.cut();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        outage.restore();
    });
    let row = replica
        .authorizations()
        .authorize(&user_ref("dee"), code)
        .await
        .expect("the authorization lands once the store is back");

    assert_eq!(row.generation, 1);
    assert_eq!(
        world.astra.code_exchanges(),
        1,
        "the code was exchanged once"
    );
    let direct = world.service(|_| {}).await;
    let token = direct.token(&user_ref("dee")).await.expect("stored");
    assert!(
        world
            .astra
            .is_current_access_token(token.access_token.expose_secret())
    );
}

pub async fn a_caller_who_hangs_up_during_the_code_exchange_still_gets_the_tokens_stored(
    store: Store,
) {
    let world = World::new(store).await;
    let service = world.service(|_| {}).await;
    world.astra.set_latency(ASTRA_LATENCY);
    let code = Grant::Code(SecretString::from(world.astra.issue_code("astra-eve")));

    let hung_up = tokio::time::timeout(
        ASTRA_LATENCY / 4,
        service.authorizations().authorize(&user_ref("eve"), code),
    )
    .await;
    assert!(hung_up.is_err(), "the caller left before Astra answered");

    world.astra.set_latency(Duration::ZERO);
    let stored = async {
        loop {
            if let Ok(token) = service.token(&user_ref("eve")).await {
                return token;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let token = tokio::time::timeout(Duration::from_secs(10), stored)
        .await
        .expect("the tokens Astra issued were stored");
    assert!(
        world
            .astra
            .is_current_access_token(token.access_token.expose_secret())
    );
    assert_eq!(world.astra.code_exchanges(), 1);
}
