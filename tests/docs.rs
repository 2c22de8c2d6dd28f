//! The README is the operator's reference: every configuration key and every
//! audit field the service emits is documented there.

use astrada_token_vendor::config::DEFAULTS_TOML;
use figment::Figment;
use figment::providers::{Format, Toml};

fn keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value.as_object() {
        Some(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                keys(&key, v, out);
            }
        }
        None => out.push(prefix.to_owned()),
    }
}

#[test]
fn every_configuration_key_is_in_the_readme() {
    let defaults: serde_json::Value = Figment::from(Toml::string(DEFAULTS_TOML))
        .extract()
        .expect("defaults parse");
    let mut all = Vec::new();
    keys("", &defaults, &mut all);
    let readme = include_str!("../README.md");
    let missing: Vec<&String> = all
        .iter()
        // A table row may group sibling keys: `a.b.x` / `y`.
        .filter(|k| {
            let leaf = k.rsplit('.').next().unwrap();
            // Per-set keys are written once for both sets.
            let both = k
                .replace(".api.", ".{api,sdk}.")
                .replace(".sdk.", ".{api,sdk}.");
            !readme.contains(&format!("`{k}`"))
                && !readme.contains(&format!("`{both}`"))
                && !readme.contains(&format!("/ `{leaf}`"))
        })
        .collect();
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
}

#[test]
fn audit_event_fields_are_in_the_readme() {
    let readme = include_str!("../README.md");
    for field in [
        "token_issued",
        "token_refused",
        "token_sha256_prefix",
        "subject",
        "origin",
        "expires_in",
        "astra_token_issued",
        "astra_authorization",
        "internal_refused",
        "internal_refused_summary",
        "user_ref",
        "permission",
        "outcome",
    ] {
        assert!(readme.contains(field), "README documents `{field}`");
    }
}
