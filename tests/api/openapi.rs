//! `openapi.yaml` and the router agree: every documented path is served on
//! the documented listener and nowhere else, and every routed path is documented.

use std::collections::BTreeSet;

use astrada_token_vendor::http::{INTERNAL_PATHS, PUBLIC_PATHS};

use test_support::*;

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
fn every_documented_operation_is_a_get() {
    let spec = spec();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        let methods: Vec<_> = item
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| !k.starts_with("x-"))
            .collect();
        assert!(methods.contains(&"get"), "{path:?} documents {methods:?}");
    }
}

#[tokio::test]
async fn the_running_listeners_serve_exactly_the_documented_paths() {
    let (app, _upstream) = ready_app().await;

    for (base, mine, other) in [
        (&app.public, documented("public"), documented("internal")),
        (&app.internal, documented("internal"), documented("public")),
    ] {
        for path in &mine {
            let status = app.get(format!("{base}{path}")).await.status();
            assert_eq!(status, 200, "{base}{path}");
        }
        for path in other.difference(&mine) {
            let status = app.get(format!("{base}{path}")).await.status();
            assert_eq!(status, 404, "{base}{path} must not be served here");
        }
    }
}
