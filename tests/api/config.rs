//! Configuration layering and start-up validation.

// figment::Jail's closure signature is fixed by figment.
#![allow(clippy::result_large_err)]

use astrada_token_vendor::config::{ConfigError, Settings};
use astrada_token_vendor::credentials::SecretLayout;
use figment::Jail;

/// A complete production-style authentication set-up, through the environment
/// (lists too), so that a test can focus on other keys.
fn set_auth_env(jail: &mut Jail) {
    jail.set_env(
        "ATV_CALLER_AUTH__JWT__JWKS_URL",
        "https://login.example.com/.well-known/jwks.json",
    );
    jail.set_env("ATV_CALLER_AUTH__JWT__ISSUER", "https://login.example.com/");
    jail.set_env("ATV_CALLER_AUTH__JWT__AUDIENCE", "card-linking-app");
    jail.set_env(
        "ATV_INTERNAL_AUTH__KUBERNETES__ISSUER",
        "https://kubernetes.default.svc",
    );
    jail.set_env(
        "ATV_INTERNAL_AUTH__KUBERNETES__ALLOWED_SUBJECTS",
        r#"["system:serviceaccount:payments:billing"]"#,
    );
}

fn set_credentials_env(jail: &mut Jail) {
    jail.set_env("ATV_CREDENTIALS__API__CLIENT_ID", "a");
    jail.set_env("ATV_CREDENTIALS__API__CLIENT_SECRET", "s");
    jail.set_env("ATV_CREDENTIALS__SDK__CLIENT_ID", "a");
    jail.set_env("ATV_CREDENTIALS__SDK__CLIENT_SECRET", "s");
}

fn error_text(result: Result<Settings, ConfigError>) -> String {
    result
        .expect_err("configuration must be refused")
        .to_string()
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "atv.toml",
            "[cache]\nrefresh_ahead_secs = 100\nmin_remaining_secs = 20\n[credentials.sdk]\nclient_id = \"from-file\"\n",
        )?;
        set_auth_env(jail);
        jail.set_env("ATV_CACHE__REFRESH_AHEAD_SECS", "90");
        jail.set_env("ATV_CREDENTIALS__SDK__CLIENT_SECRET", "s");
        jail.set_env("ATV_CREDENTIALS__API__CLIENT_ID", "a");
        jail.set_env("ATV_CREDENTIALS__API__CLIENT_SECRET", "s");
        let s = Settings::load(Some("atv.toml".as_ref())).expect("valid");
        assert_eq!(s.cache.refresh_ahead_secs, 90);
        assert_eq!(s.cache.min_remaining_secs, 20);
        assert_eq!(s.credentials.sdk.client_id, "from-file");
        assert_eq!(s.token_endpoint.url, "https://api.astrada.co/oauth/token");
        Ok(())
    });
}

#[test]
fn missing_credentials_name_the_key_and_the_variable() {
    Jail::expect_with(|_| {
        let text = error_text(Settings::load(None));
        assert!(text.contains("credentials.api.client_id"), "{text}");
        assert!(text.contains("ATV_CREDENTIALS__API__CLIENT_ID"), "{text}");
        Ok(())
    });
}

#[test]
fn a_mistyped_key_is_refused_by_name() {
    Jail::expect_with(|jail| {
        jail.create_file("atv.toml", "[cache]\nrefresh_ahaed_secs = 10\n")?;
        let text = error_text(Settings::load(Some("atv.toml".as_ref())));
        assert!(text.contains("refresh_ahaed_secs"), "{text}");
        Ok(())
    });
}

#[test]
fn a_wrongly_typed_value_names_its_key_and_source() {
    Jail::expect_with(|jail| {
        jail.set_env("ATV_CACHE__MIN_REMAINING_SECS", "soon");
        let text = error_text(Settings::load(None));
        assert!(text.contains("min_remaining_secs"), "{text}");
        assert!(text.contains("ATV_CACHE__MIN_REMAINING_SECS"), "{text}");
        Ok(())
    });
}

#[test]
fn timing_rules_are_checked() {
    Jail::expect_with(|jail| {
        set_auth_env(jail);
        set_credentials_env(jail);
        jail.set_env("ATV_TOKEN_ENDPOINT__TIMEOUT_MS", "6000");
        assert!(error_text(Settings::load(None)).contains("token_endpoint.timeout_ms"));
        jail.set_env("ATV_TOKEN_ENDPOINT__TIMEOUT_MS", "2000");
        jail.set_env("ATV_CACHE__REFRESH_AHEAD_SECS", "10");
        assert!(error_text(Settings::load(None)).contains("cache.refresh_ahead_secs"));
        jail.set_env("ATV_CACHE__REFRESH_AHEAD_SECS", "120");
        jail.set_env(
            "ATV_TOKEN_ENDPOINT__URL",
            "http://api.astrada.co/oauth/token",
        );
        assert!(error_text(Settings::load(None)).contains("token_endpoint.url"));
        jail.set_env("ATV_TOKEN_ENDPOINT__URL", "http://127.0.0.1:9/oauth/token");
        assert!(Settings::load(None).is_ok());
        Ok(())
    });
}

#[test]
fn debug_output_of_settings_redacts_secrets() {
    Jail::expect_with(|jail| {
        set_auth_env(jail);
        jail.set_env("ATV_CREDENTIALS__API__CLIENT_ID", "a");
        jail.set_env("ATV_CREDENTIALS__API__CLIENT_SECRET", "very-secret-api");
        jail.set_env("ATV_CREDENTIALS__SDK__CLIENT_ID", "a");
        jail.set_env("ATV_CREDENTIALS__SDK__CLIENT_SECRET", "very-secret-sdk");
        let s = Settings::load(None).expect("valid");
        let debug = format!("{s:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        Ok(())
    });
}

#[test]
fn atv_config_names_the_file_and_is_not_taken_for_a_key() {
    Jail::expect_with(|jail| {
        set_auth_env(jail);
        jail.create_file("atv.toml", "[cache]\nmin_remaining_secs = 25\n")?;
        jail.set_env("ATV_CONFIG", "atv.toml");
        set_credentials_env(jail);
        let s =
            Settings::load(Some("atv.toml".as_ref())).expect("ATV_CONFIG is not an unknown key");
        assert_eq!(s.cache.min_remaining_secs, 25);
        Ok(())
    });
}

#[test]
fn secrets_manager_source_is_configured_from_the_environment() {
    Jail::expect_with(|jail| {
        set_auth_env(jail);
        let api = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:atv/api-AbCdEf";
        jail.set_env("ATV_CREDENTIALS__SOURCE", "aws_secrets_manager");
        jail.set_env("ATV_CREDENTIALS__API__SECRET_ID", api);
        jail.set_env("ATV_CREDENTIALS__SDK__SECRET_ID", "atv/sdk");
        jail.set_env("ATV_CREDENTIALS__AWS_REGION", "eu-west-1");
        let s = Settings::load(None).expect("valid");
        assert_eq!(
            SecretLayout::from_settings(&s.credentials),
            SecretLayout::PerSet {
                api: api.into(),
                sdk: "atv/sdk".into()
            }
        );
        assert_eq!(s.credentials.aws_region, "eu-west-1");
        Ok(())
    });
}

#[test]
fn secrets_manager_source_needs_exactly_one_secret_layout() {
    Jail::expect_with(|jail| {
        set_auth_env(jail);
        jail.set_env("ATV_CREDENTIALS__SOURCE", "aws_secrets_manager");
        let text = error_text(Settings::load(None));
        assert!(text.contains("`credentials.secret_id`"), "{text}");
        assert!(text.contains("ATV_CREDENTIALS__SECRET_ID"), "{text}");

        jail.set_env("ATV_CREDENTIALS__API__SECRET_ID", "atv/api");
        let text = error_text(Settings::load(None));
        assert!(text.contains("`credentials.sdk.secret_id`"), "{text}");
        assert!(text.contains("ATV_CREDENTIALS__SDK__SECRET_ID"), "{text}");

        jail.set_env("ATV_CREDENTIALS__SECRET_ID", "atv/both");
        let text = error_text(Settings::load(None));
        assert!(text.contains("`credentials.secret_id`"), "{text}");
        assert!(text.contains("not both"), "{text}");

        jail.set_env("ATV_CREDENTIALS__API__SECRET_ID", "");
        let s = Settings::load(None).expect("one secret for both sets is valid");
        assert_eq!(
            SecretLayout::from_settings(&s.credentials),
            SecretLayout::Bundle("atv/both".into())
        );
        Ok(())
    });
}

#[test]
fn secrets_manager_keys_under_another_source_are_refused() {
    Jail::expect_with(|jail| {
        set_credentials_env(jail);
        jail.set_env("ATV_CREDENTIALS__SECRET_ID", "atv/credentials");
        let text = error_text(Settings::load(None));
        assert!(text.contains("`credentials.secret_id`"), "{text}");
        assert!(
            text.contains("ATV_CREDENTIALS__SOURCE=aws_secrets_manager"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn secure_defaults_refuse_to_serve_without_a_key_source_or_issuer() {
    Jail::expect_with(|jail| {
        set_credentials_env(jail);
        let text = error_text(Settings::load(None));
        assert!(text.contains("caller_auth.jwt.jwks_url"), "{text}");
        jail.set_env(
            "ATV_CALLER_AUTH__JWT__JWKS_URL",
            "https://login.example.com/jwks",
        );
        let text = error_text(Settings::load(None));
        assert!(text.contains("caller_auth.jwt.issuer"), "{text}");
        assert!(text.contains("ATV_CALLER_AUTH__JWT__ISSUER"), "{text}");
        jail.set_env("ATV_CALLER_AUTH__JWT__ISSUER", "https://login.example.com/");
        let text = error_text(Settings::load(None));
        assert!(text.contains("caller_auth.jwt.audience"), "{text}");
        jail.set_env("ATV_CALLER_AUTH__JWT__AUDIENCE", "app");
        let text = error_text(Settings::load(None));
        assert!(text.contains("internal_auth.kubernetes.issuer"), "{text}");
        jail.set_env(
            "ATV_INTERNAL_AUTH__KUBERNETES__ISSUER",
            "https://k8s.example",
        );
        let text = error_text(Settings::load(None));
        assert!(
            text.contains("internal_auth.kubernetes.allowed_subjects"),
            "{text}"
        );
        jail.set_env(
            "ATV_INTERNAL_AUTH__KUBERNETES__ALLOWED_SUBJECTS",
            r#"["payments/billing"]"#,
        );
        let text = error_text(Settings::load(None));
        assert!(
            text.contains("system:serviceaccount:NAMESPACE:NAME"),
            "{text}"
        );
        jail.set_env(
            "ATV_INTERNAL_AUTH__KUBERNETES__ALLOWED_SUBJECTS",
            r#"["system:serviceaccount:payments:billing"]"#,
        );
        assert!(Settings::load(None).is_ok());
        Ok(())
    });
}

#[test]
fn prefixed_variables_outside_any_section_are_not_settings() {
    Jail::expect_with(|jail| {
        set_auth_env(jail);
        set_credentials_env(jail);
        // What scripts/test.sh and scripts/test-deps/*.sh export.
        jail.set_env("ATV_CI_CACHE", "/tmp/ci-cache");
        jail.set_env("ATV_MOTO_SERVER", "/tmp/ci-cache/venv-moto/bin/moto_server");
        assert!(Settings::load(None).is_ok());

        jail.set_env("ATV_CACH__REFRESH_AHEAD_SECS", "90");
        let text = error_text(Settings::load(None));
        assert!(text.contains("unknown field: found `cach`"), "{text}");
        Ok(())
    });
}

#[test]
fn mode_none_needs_the_explicit_flag() {
    Jail::expect_with(|jail| {
        set_credentials_env(jail);
        set_auth_env(jail);
        jail.set_env("ATV_CALLER_AUTH__MODE", "none");
        let text = error_text(Settings::load(None));
        assert!(text.contains("caller_auth.allow_unauthenticated"), "{text}");
        jail.set_env("ATV_CALLER_AUTH__ALLOW_UNAUTHENTICATED", "true");
        jail.set_env("ATV_INTERNAL_AUTH__MODE", "none");
        let text = error_text(Settings::load(None));
        assert!(
            text.contains("internal_auth.allow_unauthenticated"),
            "{text}"
        );
        jail.set_env("ATV_INTERNAL_AUTH__ALLOW_UNAUTHENTICATED", "true");
        assert!(Settings::load(None).is_ok());
        Ok(())
    });
}

#[test]
fn symmetric_and_none_algorithms_are_refused() {
    for algorithms in [r#"["HS256"]"#, r#"["none"]"#, r#"["RS256", "HS512"]"#, "[]"] {
        Jail::expect_with(|jail| {
            set_credentials_env(jail);
            set_auth_env(jail);
            jail.set_env("ATV_CALLER_AUTH__JWT__ALGORITHMS", algorithms);
            let text = error_text(Settings::load(None));
            assert!(
                text.contains("caller_auth.jwt.algorithms"),
                "{algorithms}: {text}"
            );
            Ok(())
        });
    }
}

#[test]
fn a_plain_http_jwks_url_is_refused_unless_loopback() {
    Jail::expect_with(|jail| {
        set_credentials_env(jail);
        set_auth_env(jail);
        jail.set_env(
            "ATV_CALLER_AUTH__JWT__JWKS_URL",
            "http://login.example.com/jwks",
        );
        let text = error_text(Settings::load(None));
        assert!(text.contains("caller_auth.jwt.jwks_url"), "{text}");
        jail.set_env("ATV_CALLER_AUTH__JWT__JWKS_URL", "http://127.0.0.1:9/jwks");
        assert!(Settings::load(None).is_ok());
        Ok(())
    });
}

#[test]
fn cors_origins_must_be_exact() {
    for origins in [
        r#"["*"]"#,
        r#"["https://*.example.com"]"#,
        r#"["https://app.example.com/path"]"#,
        r#"["app.example.com"]"#,
        r#"["null"]"#,
    ] {
        Jail::expect_with(|jail| {
            set_credentials_env(jail);
            set_auth_env(jail);
            jail.set_env("ATV_CORS__ALLOWED_ORIGINS", origins);
            let text = error_text(Settings::load(None));
            assert!(text.contains("cors.allowed_origins"), "{origins}: {text}");
            Ok(())
        });
    }
}

#[test]
fn trusted_header_mode_needs_proxy_addresses() {
    Jail::expect_with(|jail| {
        set_credentials_env(jail);
        set_auth_env(jail);
        jail.set_env("ATV_CALLER_AUTH__MODE", "trusted_header");
        let text = error_text(Settings::load(None));
        assert!(
            text.contains("caller_auth.trusted_header.trusted_proxies"),
            "{text}"
        );
        jail.set_env(
            "ATV_CALLER_AUTH__TRUSTED_HEADER__TRUSTED_PROXIES",
            r#"["10.0.0.0/33"]"#,
        );
        let text = error_text(Settings::load(None));
        assert!(
            text.contains("caller_auth.trusted_header.trusted_proxies"),
            "{text}"
        );
        jail.set_env(
            "ATV_CALLER_AUTH__TRUSTED_HEADER__TRUSTED_PROXIES",
            r#"["10.0.0.0/8", "192.0.2.7"]"#,
        );
        assert!(Settings::load(None).is_ok());
        Ok(())
    });
}

#[test]
fn static_keys_must_be_stored_as_sha256_hashes() {
    Jail::expect_with(|jail| {
        set_credentials_env(jail);
        set_auth_env(jail);
        jail.set_env("ATV_INTERNAL_AUTH__MODE", "static_keys");
        let text = error_text(Settings::load(None));
        assert!(
            text.contains("internal_auth.static_keys.key_hashes"),
            "{text}"
        );
        jail.set_env(
            "ATV_INTERNAL_AUTH__STATIC_KEYS__KEY_HASHES",
            r#"["my-plain-text-key"]"#,
        );
        let text = error_text(Settings::load(None));
        assert!(
            text.contains("internal_auth.static_keys.key_hashes"),
            "{text}"
        );
        assert!(
            !text.contains("my-plain-text-key"),
            "the value is not echoed: {text}"
        );
        jail.set_env(
            "ATV_INTERNAL_AUTH__STATIC_KEYS__KEY_HASHES",
            format!("[\"{}\"]", "ab".repeat(32)),
        );
        assert!(Settings::load(None).is_ok());
        Ok(())
    });
}

#[test]
fn the_shipped_production_configuration_is_valid() {
    use astrada_token_vendor::config::{CallerAuthMode, InternalAuthMode};

    Jail::expect_with(|_| {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/overlays/production/config.toml"
        );
        let s = Settings::load(Some(file.as_ref())).expect("production config.toml is valid");
        assert_eq!(s.caller_auth.mode, CallerAuthMode::Jwt);
        assert_eq!(s.internal_auth.mode, InternalAuthMode::Kubernetes);
        assert!(!s.cors.allowed_origins.is_empty());
        Ok(())
    });
}
