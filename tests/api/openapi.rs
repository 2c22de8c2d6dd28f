//! `openapi.yaml` and the router agree: every documented path is served on
//! the documented listener and nowhere else, and every routed path is documented.

use std::collections::BTreeSet;

use astrada_token_vendor::caller_auth::grants::proxy::METHODS as PROXY_METHODS;
use astrada_token_vendor::http::access::{ACCESS, PROXY_ACCESS, proxy_needs};
use astrada_token_vendor::http::{INTERNAL_PATHS, PUBLIC_PATHS};

use astrada_token_vendor::http::problem::PROBLEM_BASE;
use test_support::astra;

fn spec() -> serde_yaml_ng::Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("openapi.yaml parses")
}

fn documented(listener: &str) -> BTreeSet<String> {
    let spec = spec();
    spec["paths"]
        .as_mapping()
        .expect("paths")
        .iter()
        .filter(|(_, item)| {
            let on = item["x-listener"]
                .as_str()
                .expect("every path names its x-listener");
            on == listener || on == "both"
        })
        .map(|(path, _)| path.as_str().unwrap().to_owned())
        .collect()
}

fn routed(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| (*p).to_owned()).collect()
}

#[test]
fn every_routed_path_is_documented_and_every_documented_path_is_routed() {
    assert_eq!(documented("public"), routed(PUBLIC_PATHS));
    assert_eq!(documented("internal"), routed(INTERNAL_PATHS));
}

#[test]
fn each_guarded_operation_documents_the_permission_the_gate_checks() {
    let spec = spec();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, operation) in item.as_mapping().unwrap() {
            if let Some(permission) = operation["x-permission"].as_str() {
                let method = method.as_str().unwrap().to_ascii_uppercase();
                let path = path.as_str().unwrap().to_owned();
                documented.insert((path, method, permission.to_owned()));
                assert_eq!(
                    operation["responses"]["403"]["$ref"],
                    "#/components/responses/Forbidden"
                );
            }
        }
    }
    let checked: BTreeSet<(String, String, String)> = ACCESS
        .iter()
        .map(|(path, method, permission)| {
            (
                (*path).to_owned(),
                (*method).to_owned(),
                permission.to_string(),
            )
        })
        .chain(PROXY_ACCESS.iter().flat_map(|(path, upstream)| {
            PROXY_METHODS.iter().map(move |method| {
                (
                    (*path).to_owned(),
                    (*method).to_owned(),
                    proxy_needs(*upstream).to_owned(),
                )
            })
        }))
        .collect();
    assert_eq!(documented, checked);
}

/// Every `(path, method)` the spec documents for `listener`, with
/// `{user_ref}` filled in.
fn operations(listener: &str) -> Vec<(String, reqwest::Method)> {
    let spec = spec();
    let mut operations = Vec::new();
    for path in documented(listener) {
        let item = &spec["paths"][path.as_str()];
        const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];
        for method in item.as_mapping().unwrap().keys().filter_map(|k| k.as_str()) {
            if METHODS.contains(&method) {
                let method = method.to_ascii_uppercase().parse().unwrap();
                operations.push((path.replace("{user_ref}", "probe-user"), method));
            }
        }
    }
    operations
}

#[tokio::test]
async fn the_running_listeners_serve_exactly_the_documented_operations() {
    let world = astra::World::new(astra::Store::sqlite().await).await;
    let app = world.app(|_| {}).await;
    app.wait_ready().await;
    let not_found = format!("{PROBLEM_BASE}not-found");

    for (base, mine, other) in [
        (&app.public, "public", "internal"),
        (&app.internal, "internal", "public"),
    ] {
        let served = operations(mine);
        for (path, method) in &served {
            let r = app
                .http
                .request(method.clone(), format!("{base}{path}"))
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {base}{path} is documented");
            assert_ne!(
                body["type"],
                not_found.as_str(),
                "{method} {base}{path} is routed"
            );
        }
        for (path, method) in operations(other) {
            if served.iter().any(|(p, _)| *p == path) {
                continue;
            }
            let r = app
                .http
                .request(method.clone(), format!("{base}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                404,
                "{method} {base}{path} must not be served here"
            );
        }
    }
}
