//! Proxy mode: `/astrada/api/{path}` and `/astra/users/{user_ref}/api/{path}`
//! reach the upstream's API with the right token injected, behind the
//! caller's proxy rules; a 401 costs one new token and one replay; nothing
//! of the caller's credentials or the upstream's cookies crosses; paths
//! cannot leave the upstream; failures are problems, never hangs.

use std::time::Duration;

use astrada_token_vendor::config::{GrantSettings, ProxyGrantSettings, Settings};
use serde_json::{Value, json};
use test_support::astra::{Store, TestApp, World};
use test_support::*;
use wiremock::matchers::{any, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Keys of the callers; each is a credential the upstream must never see.
const BILLING_KEY: &str = "proxy-test-billing-key-0123456789";
const TENANT_KEY: &str = "proxy-test-tenant-key-0123456789";
const NOBODY_KEY: &str = "proxy-test-nobody-key-0123456789";

const ALICE: &str = "tenant-a:alice";
const BOB: &str = "tenant-b:bob";

fn rule(upstream: &str, methods: &[&str], paths: &[&str]) -> ProxyGrantSettings {
    ProxyGrantSettings {
        upstream: upstream.into(),
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    }
}

/// `billing` may read cards on Astrada and do anything below `/v1/` on
/// Astra for any user; `tenant` the same on Astra for `tenant-a:` only;
/// `nobody` holds a permission but no proxy rule.
fn callers(s: &mut Settings) {
    let with_rules =
        |identity: &str, prefixes: &[&str], rules: Vec<ProxyGrantSettings>| GrantSettings {
            proxy: rules,
            ..grant(identity, &[], prefixes)
        };
    let astra_all = || rule("astra", &["GET", "POST", "DELETE"], &["/v1/**"]);
    let grants = vec![
        with_rules(
            "billing",
            &[],
            vec![rule("astrada", &["GET"], &["/v1/cards/*"]), astra_all()],
        ),
        with_rules("tenant", &["tenant-a:"], vec![astra_all()]),
        grant("nobody", &["astra:read"], &[]),
    ];
    let keys = [
        ("billing", BILLING_KEY),
        ("tenant", TENANT_KEY),
        ("nobody", NOBODY_KEY),
    ];
    use_static_keys(s, &keys, grants);
}

/// A fake Astra (tokens), a wiremock for each upstream API, and the app.
struct Scene {
    world: World,
    astra_api: MockServer,
    astrada_api: MockServer,
    app: TestApp,
}

impl Scene {
    async fn new(tweak: impl FnOnce(&mut Settings)) -> Self {
        let world = World::new(Store::sqlite().await).await;
        for user in [ALICE, BOB] {
            world.authorized(user).await;
        }
        let astra_api = MockServer::start().await;
        let astrada_api = MockServer::start().await;
        let (astra_url, astrada_url) = (astra_api.uri(), astrada_api.uri());
        let app = world
            .app_with(|s| {
                callers(s);
                s.proxy.astra_api_url = astra_url;
                s.proxy.astrada_api_url = astrada_url;
                tweak(s);
            })
            .await;
        app.wait_ready().await;
        Self {
            world,
            astra_api,
            astrada_api,
            app,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.app.internal);
        self.app.http.request(method, url).bearer_auth(key)
    }

    async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path, key)
            .send()
            .await
            .unwrap()
    }

    /// The fake Astra's current access token of `user` (authorized as `astra-{user}`).
    fn astra_token(&self, user: &str) -> String {
        self.world
            .astra
            .current_access_token(&format!("astra-{user}"))
            .expect("an authorized user")
    }
}

/// The `Authorization` values `server` received, in order.
async fn bearers(server: &MockServer) -> Vec<String> {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

async fn problem(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    let slug = body["type"]
        .as_str()
        .and_then(|t| t.rsplit(':').next())
        .unwrap_or("")
        .to_owned();
    (status, slug, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_reaches_astrada_with_the_api_token_and_its_query() {
    let scene = Scene::new(|_| {}).await;
    Mock::given(method("GET"))
        .and(path("/v1/cards/c-1"))
        .and(query_param("expand", "limits"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "c-1"})))
        .expect(1)
        .mount(&scene.astrada_api)
        .await;
    let response = scene
        .get("/astrada/api/v1/cards/c-1?expand=limits", BILLING_KEY)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"id": "c-1"})
    );
    let sent = bearers(&scene.astrada_api).await;
    let token = sent[0].strip_prefix("Bearer ").expect("a bearer token");
    assert_eq!(token.split('.').count(), 3, "the cached API token: {token}");
    assert!(!token.contains(BILLING_KEY));
    let labels = r#"upstream="astrada",method="GET",status="2xx""#;
    assert_eq!(scene.app.metric("atv_proxy_calls_total", labels).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_reaches_astra_with_its_body_query_and_the_users_token() {
    let scene = Scene::new(|_| {}).await;
    Mock::given(method("POST"))
        .and(path("/v1/transfers"))
        .and(query_param("dry_run", "true"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "t-1"})))
        .mount(&scene.astra_api)
        .await;
    let body = json!({"amount": 1250, "memo": "rent"});
    let response = scene
        .request(
            reqwest::Method::POST,
            &format!("/astra/users/{ALICE}/api/v1/transfers?dry_run=true"),
            BILLING_KEY,
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let received = scene.astra_api.received_requests().await.unwrap();
    assert_eq!(received[0].body_json::<Value>().unwrap(), body);
    assert_eq!(
        bearers(&scene.astra_api).await,
        [format!("Bearer {}", scene.astra_token(ALICE))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_credentials_and_hop_by_hop_headers_never_cross_the_proxy() {
    let scene = Scene::new(|_| {}).await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("set-cookie", "astra_session=1; Path=/")
                .insert_header("connection", "x-upstream-hop")
                .insert_header("x-upstream-hop", "1")
                .insert_header("x-astra-request-id", "a-1"),
        )
        .mount(&scene.astra_api)
        .await;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let response = scene
        .request(
            reqwest::Method::GET,
            &format!("/astra/users/{ALICE}/api/v1/user"),
            BILLING_KEY,
        )
        .header("cookie", "vendor_session=1")
        .header("proxy-authorization", "Basic cHJveHk6cHJveHk=")
        .header("connection", "x-caller-hop")
        .header("x-caller-hop", "1")
        .header("x-request-id", "caller-req-1")
        .header("traceparent", traceparent)
        .header("idempotency-key", "k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert!(headers.get("set-cookie").is_none());
    assert!(headers.get("x-upstream-hop").is_none());
    assert_eq!(headers["x-astra-request-id"], "a-1");
    let received = &scene.astra_api.received_requests().await.unwrap()[0];
    for gone in ["cookie", "proxy-authorization", "x-caller-hop"] {
        assert!(received.headers.get(gone).is_none(), "{gone} reached Astra");
    }
    let sent = |name: &str| received.headers[name].to_str().unwrap().to_owned();
    assert_eq!(sent("x-request-id"), "caller-req-1");
    assert_eq!(sent("traceparent"), traceparent);
    assert_eq!(sent("idempotency-key"), "k-1");
    assert_eq!(sent("host"), scene.astra_api.address().to_string());
    assert!(!sent("authorization").contains(BILLING_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_astra_token_is_refreshed_once_and_the_call_replayed() {
    // The fake Astra is the API too: its `/v1/user` takes current tokens only.
    let scene = Scene::new(|s| s.proxy.astra_api_url = String::new()).await;
    let astra_user = format!("astra-{ALICE}");
    let stale = scene.astra_token(ALICE);
    // Astra's tokens expire by its clock; the service still believes in its own.
    scene.world.astra.advance_clock(Duration::from_secs(7201));
    assert!(!scene.world.astra.is_current_access_token(&stale));
    let path = format!("/astra/users/{ALICE}/api/v1/user");
    let calls = (0..5).map(|_| scene.get(&path, BILLING_KEY));
    for response in futures::future::join_all(calls).await {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["id"], astra_user.as_str());
    }
    assert_eq!(
        scene.world.astra.refreshes_for(&astra_user),
        1,
        "one refresh for all"
    );
    let replays = scene
        .app
        .metric("atv_proxy_replays_total", r#"upstream="astra""#)
        .await;
    assert_eq!(replays, 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_refused_again_passes_the_401_through_without_a_second_replay() {
    let scene = Scene::new(|_| {}).await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "nope"})))
        .mount(&scene.astra_api)
        .await;
    let response = scene
        .get(&format!("/astra/users/{ALICE}/api/v1/user"), BILLING_KEY)
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "nope"})
    );
    let sent = bearers(&scene.astra_api).await;
    assert_eq!(sent.len(), 2, "one call, one replay");
    assert_ne!(sent[0], sent[1], "the replay carries the refreshed token");
    assert_eq!(sent[1], format!("Bearer {}", scene.astra_token(ALICE)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_astrada_token_is_exchanged_anew_and_the_call_replayed() {
    let scene = Scene::new(|_| {}).await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .mount(&scene.astrada_api)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&scene.astrada_api)
        .await;
    let response = scene.get("/astrada/api/v1/cards/c-1", BILLING_KEY).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
    let sent = bearers(&scene.astrada_api).await;
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0], sent[1], "a new token for the replay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_refuse_other_methods_paths_upstreams_and_users() {
    let scene = Scene::new(|_| {}).await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&scene.astrada_api)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&scene.astra_api)
        .await;
    let astra = |user: &str| format!("/astra/users/{user}/api/v1/user");
    let refused = [
        (
            reqwest::Method::POST,
            "/astrada/api/v1/cards/c-1".to_owned(),
            BILLING_KEY,
            "proxy rule",
        ),
        (
            reqwest::Method::GET,
            "/astrada/api/v1/cards".to_owned(),
            BILLING_KEY,
            "proxy rule",
        ),
        (
            reqwest::Method::GET,
            "/astrada/api/v1/%63ards/c-1/x".to_owned(),
            BILLING_KEY,
            "proxy rule",
        ),
        (
            reqwest::Method::PUT,
            astra(ALICE),
            BILLING_KEY,
            "proxy rule",
        ),
        (
            reqwest::Method::GET,
            "/astrada/api/v1/cards/c-1".to_owned(),
            TENANT_KEY,
            "proxy rule",
        ),
        (
            reqwest::Method::GET,
            astra(BOB),
            TENANT_KEY,
            "`tenant-b:bob`",
        ),
        (reqwest::Method::GET, astra(ALICE), NOBODY_KEY, "proxy rule"),
    ];
    for (method, path, key, says) in refused {
        let what = format!("{method} {path}");
        let response = scene.request(method, &path, key).send().await.unwrap();
        let (status, slug, body) = problem(response).await;
        assert_eq!(
            (status, slug.as_str()),
            (403, "forbidden"),
            "{what}: {body}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains(says),
            "{what}: {body}"
        );
    }
    assert!(
        scene
            .astrada_api
            .received_requests()
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        scene
            .astra_api
            .received_requests()
            .await
            .unwrap()
            .is_empty()
    );
    let (status, slug, _) =
        problem(scene.get("/astrada/api/v1/cards/c-1", "wrong-key").await).await;
    assert_eq!((status, slug.as_str()), (401, "invalid-credentials"));
    // What the rules allow goes through, spelled either way.
    assert_eq!(
        scene
            .get("/astrada/api/v1/%63ards/c-1", BILLING_KEY)
            .await
            .status(),
        200
    );
    assert_eq!(scene.get(&astra(ALICE), TENANT_KEY).await.status(), 200);
    let labels = r#"permission="proxy:astrada",reason="proxy_rule""#;
    let counted = scene
        .app
        .metric("atv_internal_auth_refusals_total", labels)
        .await;
    assert_eq!(counted, 4.0);
}

mod limits;
mod paths;
