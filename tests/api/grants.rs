//! Least privilege on the internal listener: every route answers only the
//! callers granted the permission it needs, per-user routes only for
//! `user_ref`s inside the caller's prefixes, and the list only the caller's
//! users; with Kubernetes service accounts (real projected-token JWTs) and
//! with named static keys alike.

use reqwest::Method;
use serde_json::{Value, json};

use astrada_token_vendor::config::{GrantSettings, Settings};
use test_support::astra::{Store, TestApp, World};
use test_support::*;

/// Who calls: a name, what it is granted, and to which `user_ref`s.
struct Caller {
    name: &'static str,
    permissions: &'static [&'static str],
    prefixes: &'static [&'static str],
}

const ALL: &[&str] = &[
    "astrada:api_token",
    "astra:token",
    "astra:manage",
    "astra:read",
];

const CALLERS: &[Caller] = &[
    Caller {
        name: "backend",
        permissions: &["astrada:api_token"],
        prefixes: &[],
    },
    Caller {
        name: "payments",
        permissions: &["astra:token"],
        prefixes: &[],
    },
    Caller {
        name: "operator",
        permissions: &["astra:manage"],
        prefixes: &[],
    },
    Caller {
        name: "support",
        permissions: &["astra:read"],
        prefixes: &[],
    },
    Caller {
        name: "tenant-a-worker",
        permissions: ALL,
        prefixes: &["tenant-a:"],
    },
];

/// A user inside `tenant-a:` and one outside it.
const IN_SCOPE: &str = "tenant-a:alice";
const OUT_OF_SCOPE: &str = "tenant-b:bob";

/// What a request sends.
#[derive(Clone, Copy)]
enum Body {
    None,
    Json(&'static str),
    /// `{"code": …}` with a code freshly issued by the fake Astra.
    FreshCode,
}

/// One guarded route: the permission it needs and its answer to a caller
/// holding it (status and, for a problem, its type). `{u}` is the user.
struct Route {
    method: Method,
    path: &'static str,
    needs: &'static str,
    body: Body,
    allowed: (u16, &'static str),
    /// Each request is about a user authorized just before it (`DELETE`).
    fresh_user: bool,
}

fn routes() -> Vec<Route> {
    let route = |method: Method, path, needs, body, allowed| Route {
        method,
        path,
        needs,
        body,
        allowed,
        fresh_user: false,
    };
    vec![
        route(
            Method::GET,
            "/astrada-api-token",
            "astrada:api_token",
            Body::None,
            (200, ""),
        ),
        route(
            Method::GET,
            "/astra/users/{u}/token",
            "astra:token",
            Body::None,
            (200, ""),
        ),
        route(
            Method::POST,
            "/astra/users/{u}/token/refresh",
            "astra:token",
            Body::Json(r#"{"stale_generation": 0}"#),
            (200, ""),
        ),
        route(
            Method::POST,
            "/astra/users/{u}/authorization",
            "astra:manage",
            Body::Json("{}"),
            (201, ""),
        ),
        route(
            Method::POST,
            "/astra/users/{u}/authorization-code",
            "astra:manage",
            Body::FreshCode,
            (200, ""),
        ),
        route(
            Method::PUT,
            "/astra/users/{u}/refresh-token",
            "astra:manage",
            Body::Json(r#"{"refresh_token": "rt_never-issued"}"#),
            (400, "astra-grant-refused"),
        ),
        Route {
            fresh_user: true,
            ..route(
                Method::DELETE,
                "/astra/users/{u}",
                "astra:manage",
                Body::None,
                (204, ""),
            )
        },
        route(
            Method::GET,
            "/astra/users/{u}",
            "astra:read",
            Body::None,
            (200, ""),
        ),
        route(
            Method::GET,
            "/astra/users",
            "astra:read",
            Body::None,
            (200, ""),
        ),
    ]
}

/// How callers authenticate in one run of the matrix.
enum Mode {
    Kubernetes {
        key: TestKey,
        jwks: wiremock::MockServer,
    },
    StaticKeys,
}

impl Mode {
    fn identity(&self, name: &str) -> String {
        match self {
            Mode::Kubernetes { .. } => format!("system:serviceaccount:grants-test:{name}"),
            Mode::StaticKeys => name.to_owned(),
        }
    }

    fn credential(&self, name: &str) -> String {
        match self {
            Mode::Kubernetes { key, .. } => service_account_token(key, &self.identity(name)),
            Mode::StaticKeys => format!("static-key-of-{name}-5f0c9a"),
        }
    }

    fn configure(&self, s: &mut Settings) {
        let grants: Vec<GrantSettings> = CALLERS
            .iter()
            .map(|c| grant(&self.identity(c.name), c.permissions, c.prefixes))
            .collect();
        match self {
            Mode::Kubernetes { jwks, .. } => use_service_accounts(s, jwks, grants),
            Mode::StaticKeys => {
                let keys: Vec<(String, String)> = CALLERS
                    .iter()
                    .map(|c| (c.name.to_owned(), self.credential(c.name)))
                    .collect();
                let keys: Vec<(&str, &str)> =
                    keys.iter().map(|(n, k)| (n.as_str(), k.as_str())).collect();
                use_static_keys(s, &keys, grants);
            }
        }
    }
}

/// The world, the app with every caller's grant, and the mode.
struct Scene {
    world: World,
    app: TestApp,
    mode: Mode,
    fresh: std::cell::Cell<u32>,
}

impl Scene {
    async fn new(mode: Mode) -> Self {
        let world = World::new(Store::sqlite().await).await;
        for user in [IN_SCOPE, OUT_OF_SCOPE, "tenant-a:carol", "tenant-ab:dave"] {
            world.authorized(user).await;
        }
        let app = world.app_with(|s| mode.configure(s)).await;
        app.wait_ready().await;
        Self {
            world,
            app,
            mode,
            fresh: std::cell::Cell::new(0),
        }
    }

    /// Sends `route` for `user` (or, for a fresh-user route, a user of the
    /// same tenant authorized just now) as `caller` (`None`: no
    /// credentials): the status, the body and the user asked about.
    async fn send(&self, route: &Route, caller: Option<&str>, user: &str) -> (u16, Value, String) {
        let user = if route.fresh_user {
            let n = self.fresh.get() + 1;
            self.fresh.set(n);
            let tenant = user.split(':').next().unwrap_or(user);
            let fresh = format!("{tenant}:gone-{n}");
            self.world.authorized(&fresh).await;
            fresh
        } else {
            user.to_owned()
        };
        let url = format!("{}{}", self.app.internal, route.path.replace("{u}", &user));
        let mut request = self.app.http.request(route.method.clone(), url);
        if let Some(name) = caller {
            request = request.bearer_auth(self.mode.credential(name));
        }
        request = match route.body {
            Body::None => request,
            Body::Json(text) => request
                .header("content-type", "application/json")
                .body(text),
            Body::FreshCode => {
                request.json(&json!({"code": self.world.astra.issue_code("astra-again")}))
            }
        };
        let response = request.send().await.expect("the listener answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default(), user)
    }
}

fn problem_slug(body: &Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|t| t.rsplit(':').next())
        .unwrap_or("")
}

/// The whole matrix: every route × every caller × a user in and out of the
/// `tenant-a:` scope, plus no credentials at all.
async fn every_route_answers_exactly_the_callers_granted_its_permission(mode: Mode) {
    let scene = Scene::new(mode).await;
    let mut refused_for = std::collections::HashMap::<&str, u32>::new();
    for route in routes() {
        let per_user = route.path.contains("{u}");
        let what = |caller: &str, user: &str| {
            format!("{} {} as {caller} for {user}", route.method, route.path)
        };

        let (status, body, _) = scene.send(&route, None, IN_SCOPE).await;
        assert_eq!(status, 401, "{}: {body}", what("nobody", IN_SCOPE));
        assert_eq!(problem_slug(&body), "unauthenticated");

        for caller in CALLERS {
            for user in [IN_SCOPE, OUT_OF_SCOPE] {
                let (status, body, user) = scene.send(&route, Some(caller.name), user).await;
                let what = what(caller.name, &user);
                let granted = caller.permissions.contains(&route.needs);
                let in_scope = caller.prefixes.is_empty()
                    || !per_user
                    || caller.prefixes.iter().any(|p| user.starts_with(p));
                let detail = body["detail"].as_str().unwrap_or_default();
                if !granted {
                    assert_eq!(status, 403, "{what}: {body}");
                    assert_eq!(problem_slug(&body), "forbidden", "{what}");
                    assert!(
                        detail.contains(&format!("`{}`", route.needs)),
                        "{what}: {detail}"
                    );
                    *refused_for.entry(route.needs).or_default() += 1;
                } else if !in_scope {
                    assert_eq!(status, 403, "{what}: {body}");
                    assert_eq!(problem_slug(&body), "forbidden", "{what}");
                    assert!(detail.contains(&format!("`{user}`")), "{what}: {detail}");
                } else {
                    assert_eq!(
                        (status, problem_slug(&body)),
                        route.allowed,
                        "{what}: {body}"
                    );
                }
                // A credential is never part of an answer.
                assert!(
                    !body
                        .to_string()
                        .contains(&scene.mode.credential(caller.name))
                );
            }
        }
    }
    for (permission, count) in refused_for {
        let labels = format!("permission=\"{permission}\",reason=\"permission\"");
        let counted = scene
            .app
            .metric("atv_internal_auth_refusals_total", &labels)
            .await;
        assert_eq!(counted, f64::from(count), "{permission}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_exactly_the_granted_service_accounts() {
    let key = TestKey::cluster_rsa("cluster-key-1");
    let jwks = cluster_jwks(&key).await;
    every_route_answers_exactly_the_callers_granted_its_permission(Mode::Kubernetes { key, jwks })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_exactly_the_granted_static_keys() {
    every_route_answers_exactly_the_callers_granted_its_permission(Mode::StaticKeys).await;
}

/// Every `user_ref` `caller` sees in the list, page by page (`limit`).
async fn listed(scene: &Scene, caller: &str, query: &str, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{}/astra/users?limit={limit}{query}", scene.app.internal);
        if let Some(after) = &after {
            url.push_str(&format!("&after={after}"));
        }
        let response = scene
            .app
            .http
            .get(url)
            .bearer_auth(scene.mode.credential(caller))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= limit as usize);
        seen.extend(
            users
                .iter()
                .map(|u| u["user_ref"].as_str().unwrap().to_owned()),
        );
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return seen,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_shows_only_the_callers_users_on_every_page() {
    let scene = Scene::new(Mode::StaticKeys).await;
    // Named exactly like the prefix, and next to it in user_ref order.
    for user in ["tenant-a:", "tenant-a:zoe", "tenant-a", "tenant-a:b"] {
        scene.world.authorized(user).await;
    }
    let tenant_a = [
        "tenant-a:",
        "tenant-a:alice",
        "tenant-a:b",
        "tenant-a:carol",
        "tenant-a:zoe",
    ];
    for limit in [1, 2, 3, 100] {
        assert_eq!(
            listed(&scene, "tenant-a-worker", "", limit).await,
            tenant_a,
            "limit {limit}"
        );
    }
    let everyone = listed(&scene, "support", "", 3).await;
    assert_eq!(everyone.len(), 8, "{everyone:?}");
    assert_eq!(
        listed(
            &scene,
            "tenant-a-worker",
            "&status=reauthorization_required",
            2
        )
        .await,
        Vec::<String>::new()
    );
    // A cursor before the range starts it at the prefix itself; one past
    // it ends the list.
    let page = |after: &'static str| {
        let url = format!("{}/astra/users?after={after}&limit=1", scene.app.internal);
        let request = scene.app.http.get(url);
        let request = request.bearer_auth(scene.mode.credential("tenant-a-worker"));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(page("tenant-a").await["users"][0]["user_ref"], "tenant-a:");
    assert_eq!(page("tenant-ab:dave").await["users"], json!([]));
    assert_eq!(
        page("tenant-a:b").await["users"][0]["user_ref"],
        "tenant-a:carol"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_with_several_prefixes_lists_each_tenant_in_order() {
    let world = World::new(Store::sqlite().await).await;
    for user in ["a:1", "b:1", "c:1", "c:2", "d:1"] {
        world.authorized(user).await;
    }
    let key = "two-tenants-key-8e1d";
    let app = world
        .app_with(|s| {
            use_static_keys(
                s,
                &[("two-tenants", key)],
                vec![grant("two-tenants", &["astra:read"], &["c:", "a:"])],
            )
        })
        .await;
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let url = format!("{}/astra/users?limit=1{after}", app.internal);
        let page: Value = app
            .http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for user in page["users"].as_array().unwrap() {
            seen.push(user["user_ref"].as_str().unwrap().to_owned());
        }
        match page["next_after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["a:1", "c:1", "c:2"]);
}
