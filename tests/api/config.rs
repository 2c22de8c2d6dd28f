//! Configuration layering and start-up validation. Each case sets its
//! environment (and files) in a `figment::Jail`, loads the settings, then
//! builds every part of the service from them, as start-up does: that is
//! where values are checked.

use std::fmt::Display;
use std::path::Path;

use astrada_token_vendor::app::Parts;
use astrada_token_vendor::client_tokens::credentials::SecretLayout;
use astrada_token_vendor::config::{CallerAuthMode, InternalAuthMode, Settings};
use figment::Jail;

/// One grant, as an environment variable holds it (an array of inline tables).
pub const BILLING_GRANT: &str = r#"[{identity = "system:serviceaccount:payments:billing", permissions = ["astrada:api_token"]}]"#;

/// One configuration: the environment and files of a jail (both gone when
/// the case ends), and the file to load, if any.
pub struct Case<'j> {
    jail: &'j mut Jail,
    file: Option<String>,
}

/// Runs `check` on a fresh [`Case`]. AWS settings come only from the case
/// (no profile files, no instance-metadata lookups), and there is no pod:
/// no cluster CA bundle to read, as with the production overlay, whose
/// Kubernetes JWKS is public.
#[allow(clippy::result_large_err)] // figment::Jail fixes the closure's signature.
pub fn case(check: impl FnOnce(&mut Case)) {
    Jail::expect_with(|jail| {
        jail.set_env("AWS_EC2_METADATA_DISABLED", "true");
        jail.set_env("AWS_CONFIG_FILE", "/dev/null");
        jail.set_env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        jail.set_env("ATV_INTERNAL_AUTH__KUBERNETES__JWKS_CA_FILE", "");
        check(&mut Case { jail, file: None });
        Ok(())
    });
}

impl Case<'_> {
    /// Sets environment variable `key`.
    pub fn set(&mut self, key: &str, value: impl Display) -> &mut Self {
        self.jail.set_env(key, value);
        self
    }

    /// Writes `contents` to `name` in the jail and loads it as the config file.
    pub fn file(&mut self, name: &str, contents: &str) -> &mut Self {
        self.jail.create_file(name, contents).expect("file written");
        self.load_file(name)
    }

    /// Loads `path` as the config file.
    pub fn load_file(&mut self, path: &str) -> &mut Self {
        self.file = Some(path.into());
        self
    }

    /// A complete production-style authentication set-up, through the
    /// environment (lists too), so that a case can focus on other keys.
    pub fn with_auth(&mut self) -> &mut Self {
        self.with_auth_but_grants()
            .set("ATV_INTERNAL_AUTH__GRANTS", BILLING_GRANT)
    }

    /// [`Case::with_auth`] without any grant.
    pub fn with_auth_but_grants(&mut self) -> &mut Self {
        self.set(
            "ATV_CALLER_AUTH__JWT__JWKS_URL",
            "https://login.example.com/.well-known/jwks.json",
        )
        .set("ATV_CALLER_AUTH__JWT__ISSUER", "https://login.example.com/")
        .set("ATV_CALLER_AUTH__JWT__AUDIENCE", "card-linking-app")
        .set(
            "ATV_INTERNAL_AUTH__KUBERNETES__ISSUER",
            "https://kubernetes.default.svc",
        )
    }

    /// Inline credentials for both sets.
    pub fn with_credentials(&mut self) -> &mut Self {
        self.set("ATV_CREDENTIALS__API__CLIENT_ID", "a")
            .set("ATV_CREDENTIALS__API__CLIENT_SECRET", "s")
            .set("ATV_CREDENTIALS__SDK__CLIENT_ID", "a")
            .set("ATV_CREDENTIALS__SDK__CLIENT_SECRET", "s")
    }

    /// Loads the settings and builds every part from them, as start-up does.
    pub fn load(&self) -> Result<Settings, String> {
        let settings = Settings::load(self.file.as_deref().map(Path::new)).map_err(text)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime
            .block_on(async { Parts::from_settings(&settings).await.map(drop) })
            .map_err(text)?;
        Ok(settings)
    }

    /// The settings, which must be valid.
    pub fn accepted(&self) -> Settings {
        self.load()
            .unwrap_or_else(|e| panic!("configuration must be accepted: {e}"))
    }

    /// `var` set to `bad` is refused naming `key`, and set to `good` accepted.
    pub fn only_accepts(&mut self, var: &str, bad: &str, key: &str, good: &str) {
        self.set(var, bad).refused_naming(key);
        self.set(var, good);
        assert!(self.load().is_ok());
    }

    /// Why the configuration is refused, which it must be.
    pub fn refused(&self) -> String {
        self.load().expect_err("configuration must be refused")
    }

    /// [`Case::refused`], which must name `key`.
    pub fn refused_naming(&self, key: &str) -> String {
        let text = self.refused();
        assert!(text.contains(key), "{text}");
        text
    }
}

fn text(error: impl Display) -> String {
    error.to_string()
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    case(|c| {
        c.file(
            "atv.toml",
            "[cache]\nrefresh_ahead_secs = 100\nmin_remaining_secs = 20\n[credentials.sdk]\nclient_id = \"from-file\"\n",
        );
        c.with_auth()
            .set("ATV_CACHE__REFRESH_AHEAD_SECS", "90")
            .set("ATV_CREDENTIALS__SDK__CLIENT_SECRET", "s")
            .set("ATV_CREDENTIALS__API__CLIENT_ID", "a")
            .set("ATV_CREDENTIALS__API__CLIENT_SECRET", "s");
        let s = c.accepted();
        assert_eq!(s.cache.refresh_ahead_secs, 90);
        assert_eq!(s.cache.min_remaining_secs, 20);
        assert_eq!(s.credentials.sdk.client_id, "from-file");
        assert_eq!(s.token_endpoint.url, "https://api.astrada.co/oauth/token");
    });
}

#[test]
fn missing_credentials_name_the_key_and_the_variable() {
    case(|c| {
        let text = c.refused_naming("credentials.api.client_id");
        assert!(text.contains("ATV_CREDENTIALS__API__CLIENT_ID"), "{text}");
    });
}

#[test]
fn a_mistyped_key_is_refused_by_name() {
    case(|c| {
        c.file("atv.toml", "[cache]\nrefresh_ahaed_secs = 10\n")
            .refused_naming("refresh_ahaed_secs");
    });
}

#[test]
fn a_toml_syntax_error_names_the_line_but_never_shows_its_text() {
    case(|c| {
        let file = "[credentials.sdk]\nclient_id = \"sdk\"\nclient_secret = \"S3CRET-never-shown\n";
        let text = c.file("atv.toml", file).refused();
        assert!(!text.contains("S3CRET"), "{text}");
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("atv.toml"), "{text}");
    });
}

#[test]
fn a_wrongly_typed_value_names_its_key_and_source() {
    case(|c| {
        let text = c
            .set("ATV_CACHE__MIN_REMAINING_SECS", "soon")
            .refused_naming("min_remaining_secs");
        assert!(text.contains("ATV_CACHE__MIN_REMAINING_SECS"), "{text}");
    });
}

#[test]
fn timing_rules_are_checked() {
    case(|c| {
        c.with_auth().with_credentials();
        c.set("ATV_TOKEN_ENDPOINT__TIMEOUT_MS", "6000");
        c.refused_naming("token_endpoint.timeout_ms");
        c.set("ATV_TOKEN_ENDPOINT__TIMEOUT_MS", "2000");
        c.set("ATV_CACHE__REFRESH_AHEAD_SECS", "10");
        c.refused_naming("cache.refresh_ahead_secs");
        c.set("ATV_CACHE__REFRESH_AHEAD_SECS", "120");
        c.only_accepts(
            "ATV_TOKEN_ENDPOINT__URL",
            "http://api.astrada.co/oauth/token",
            "token_endpoint.url",
            "http://127.0.0.1:9/oauth/token",
        );
    });
}

#[test]
fn debug_output_of_settings_redacts_secrets() {
    case(|c| {
        c.with_auth()
            .set("ATV_CREDENTIALS__API__CLIENT_ID", "a")
            .set("ATV_CREDENTIALS__API__CLIENT_SECRET", "very-secret-api")
            .set("ATV_CREDENTIALS__SDK__CLIENT_ID", "a")
            .set("ATV_CREDENTIALS__SDK__CLIENT_SECRET", "very-secret-sdk");
        let debug = format!("{:?}", c.accepted());
        assert!(!debug.contains("very-secret"), "{debug}");
    });
}

#[test]
fn atv_config_names_the_file_and_is_not_taken_for_a_key() {
    case(|c| {
        c.with_auth()
            .file("atv.toml", "[cache]\nmin_remaining_secs = 25\n")
            .set("ATV_CONFIG", "atv.toml")
            .with_credentials();
        let s = c.load().expect("ATV_CONFIG is not an unknown key");
        assert_eq!(s.cache.min_remaining_secs, 25);
    });
}

#[test]
fn secrets_manager_source_is_configured_from_the_environment() {
    case(|c| {
        let api = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:atv/api-AbCdEf";
        c.with_auth()
            .set("ATV_CREDENTIALS__SOURCE", "aws_secrets_manager")
            .set("ATV_CREDENTIALS__API__SECRET_ID", api)
            .set("ATV_CREDENTIALS__SDK__SECRET_ID", "atv/sdk")
            .set("ATV_CREDENTIALS__AWS_REGION", "eu-west-1");
        let s = c.accepted();
        assert_eq!(
            SecretLayout::from_settings(&s.credentials).expect("a valid layout"),
            SecretLayout::PerSet {
                api: api.into(),
                sdk: "atv/sdk".into()
            }
        );
        assert_eq!(s.credentials.aws_region, "eu-west-1");
    });
}

#[test]
fn secrets_manager_source_needs_exactly_one_secret_layout() {
    case(|c| {
        c.with_auth()
            .set("ATV_CREDENTIALS__SOURCE", "aws_secrets_manager");
        let text = c.refused_naming("`credentials.secret_id`");
        assert!(text.contains("ATV_CREDENTIALS__SECRET_ID"), "{text}");

        let text = c
            .set("ATV_CREDENTIALS__API__SECRET_ID", "atv/api")
            .refused_naming("`credentials.sdk.secret_id`");
        assert!(text.contains("ATV_CREDENTIALS__SDK__SECRET_ID"), "{text}");

        let text = c
            .set("ATV_CREDENTIALS__SECRET_ID", "atv/both")
            .refused_naming("`credentials.secret_id`");
        assert!(text.contains("not both"), "{text}");

        // Building the source also needs a region (see the aws tests).
        c.set("ATV_CREDENTIALS__API__SECRET_ID", "")
            .set("ATV_CREDENTIALS__AWS_REGION", "eu-west-1");
        let s = c.load().expect("one secret for both sets is valid");
        assert_eq!(
            SecretLayout::from_settings(&s.credentials).expect("a valid layout"),
            SecretLayout::Bundle("atv/both".into())
        );
    });
}

#[test]
fn secrets_manager_keys_under_another_source_are_refused() {
    case(|c| {
        let text = c
            .with_credentials()
            .set("ATV_CREDENTIALS__SECRET_ID", "atv/credentials")
            .refused_naming("`credentials.secret_id`");
        assert!(
            text.contains("ATV_CREDENTIALS__SOURCE=aws_secrets_manager"),
            "{text}"
        );
    });
}

#[test]
fn secure_defaults_refuse_to_serve_without_a_key_source_or_issuer() {
    case(|c| {
        c.with_credentials()
            .refused_naming("caller_auth.jwt.jwks_url");
        c.set(
            "ATV_CALLER_AUTH__JWT__JWKS_URL",
            "https://login.example.com/jwks",
        );
        let text = c.refused_naming("caller_auth.jwt.issuer");
        assert!(text.contains("ATV_CALLER_AUTH__JWT__ISSUER"), "{text}");
        c.set("ATV_CALLER_AUTH__JWT__ISSUER", "https://login.example.com/");
        c.refused_naming("caller_auth.jwt.audience");
        c.set("ATV_CALLER_AUTH__JWT__AUDIENCE", "app")
            .refused_naming("internal_auth.kubernetes.issuer");
        c.set(
            "ATV_INTERNAL_AUTH__KUBERNETES__ISSUER",
            "https://k8s.example",
        );
        c.refused_naming("internal_auth.grants");
        c.set(
            "ATV_INTERNAL_AUTH__GRANTS",
            r#"[{identity = "payments/billing", permissions = ["astrada:api_token"]}]"#,
        );
        c.refused_naming("system:serviceaccount:NAMESPACE:NAME");
        c.set("ATV_INTERNAL_AUTH__GRANTS", BILLING_GRANT);
        assert!(c.load().is_ok());
    });
}

#[test]
fn prefixed_variables_outside_any_section_are_not_settings() {
    case(|c| {
        c.with_auth().with_credentials();
        // What scripts/test.sh and scripts/test-deps/*.sh export.
        c.set("ATV_CI_CACHE", "/tmp/ci-cache")
            .set("ATV_MOTO_SERVER", "/tmp/ci-cache/venv-moto/bin/moto_server");
        assert!(c.load().is_ok());

        c.set("ATV_CACH__REFRESH_AHEAD_SECS", "90")
            .refused_naming("unknown field: found `cach`");
    });
}

#[test]
fn mode_none_needs_the_explicit_flag() {
    case(|c| {
        c.with_credentials().with_auth();
        c.set("ATV_CALLER_AUTH__MODE", "none")
            .refused_naming("caller_auth.allow_unauthenticated");
        c.set("ATV_CALLER_AUTH__ALLOW_UNAUTHENTICATED", "true");
        c.set("ATV_INTERNAL_AUTH__MODE", "none")
            .refused_naming("internal_auth.allow_unauthenticated");
        c.set("ATV_INTERNAL_AUTH__ALLOW_UNAUTHENTICATED", "true");
        assert!(c.load().is_ok());
    });
}

#[test]
fn symmetric_and_none_algorithms_are_refused() {
    for algorithms in [r#"["HS256"]"#, r#"["none"]"#, r#"["RS256", "HS512"]"#, "[]"] {
        case(|c| {
            c.with_credentials().with_auth();
            let text = c
                .set("ATV_CALLER_AUTH__JWT__ALGORITHMS", algorithms)
                .refused();
            assert!(
                text.contains("caller_auth.jwt.algorithms"),
                "{algorithms}: {text}"
            );
        });
    }
}

#[test]
fn a_plain_http_jwks_url_is_refused_unless_loopback() {
    case(|c| {
        c.with_credentials().with_auth();
        c.only_accepts(
            "ATV_CALLER_AUTH__JWT__JWKS_URL",
            "http://login.example.com/jwks",
            "caller_auth.jwt.jwks_url",
            "http://127.0.0.1:9/jwks",
        );
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
        case(|c| {
            c.with_credentials().with_auth();
            let text = c.set("ATV_CORS__ALLOWED_ORIGINS", origins).refused();
            assert!(text.contains("cors.allowed_origins"), "{origins}: {text}");
        });
    }
}

/// A mode (`mode_var` = `mode`) that needs the list `key` (set through
/// `list_var`): refused, naming `key`, while the list is empty and while it
/// holds `bad`; loads once it holds `good`. Returns the refusal of `bad`.
fn mode_needs_list(
    (mode_var, mode): (&str, &str),
    (list_var, key): (&str, &str),
    bad: &str,
    good: &str,
) -> String {
    let mut refusal = String::new();
    case(|c| {
        c.with_credentials().with_auth();
        c.set(mode_var, mode).refused_naming(key);
        refusal = c.set(list_var, bad).refused_naming(key);
        c.set(list_var, good);
        assert!(c.load().is_ok());
    });
    refusal
}

#[test]
fn trusted_header_mode_needs_proxy_addresses() {
    mode_needs_list(
        ("ATV_CALLER_AUTH__MODE", "trusted_header"),
        (
            "ATV_CALLER_AUTH__TRUSTED_HEADER__TRUSTED_PROXIES",
            "caller_auth.trusted_header.trusted_proxies",
        ),
        r#"["10.0.0.0/33"]"#,
        r#"["10.0.0.0/8", "192.0.2.7"]"#,
    );
}

#[test]
fn static_keys_must_be_named_and_stored_as_sha256_hashes() {
    let key = |name: &str, sha256: &str| format!(r#"[{{name = "{name}", sha256 = "{sha256}"}}]"#);
    let hash = "ab".repeat(32);
    case(|c| {
        c.with_credentials().with_auth();
        c.set("ATV_INTERNAL_AUTH__MODE", "static_keys")
            .refused_naming("internal_auth.static_keys.keys");
        let text = c
            .set(
                "ATV_INTERNAL_AUTH__STATIC_KEYS__KEYS",
                key("ops-cli", "my-plain-text-key"),
            )
            .refused_naming("internal_auth.static_keys.keys");
        assert!(
            !text.contains("my-plain-text-key"),
            "the value is not echoed: {text}"
        );
        c.set(
            "ATV_INTERNAL_AUTH__STATIC_KEYS__KEYS",
            key("Ops CLI", &hash),
        )
        .refused_naming("the name is not");
        c.set(
            "ATV_INTERNAL_AUTH__STATIC_KEYS__KEYS",
            key("ops-cli", &hash),
        );
        // The service-account grant names no key.
        c.refused_naming("names no key in internal_auth.static_keys.keys");
        c.set(
            "ATV_INTERNAL_AUTH__GRANTS",
            r#"[{identity = "ops-cli", permissions = ["astra:read"]}]"#,
        );
        assert!(c.load().is_ok());
    });
}

#[test]
fn the_shipped_production_configuration_is_valid() {
    case(|c| {
        c.load_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/overlays/production/config.toml"
        ));
        // On EKS the pod identity webhook sets AWS_REGION next to the role.
        c.set("AWS_REGION", "us-east-1");
        let s = c.load().expect("production config.toml is valid");
        assert_eq!(s.caller_auth.mode, CallerAuthMode::Jwt);
        assert_eq!(s.internal_auth.mode, InternalAuthMode::Kubernetes);
        assert!(!s.cors.allowed_origins.is_empty());
        let grants: Vec<(&str, &[String], &[String])> = s
            .internal_auth
            .grants
            .iter()
            .map(|g| {
                let (identity, permissions) = (g.identity.as_str(), g.permissions.as_slice());
                (identity, permissions, g.user_ref_prefixes.as_slice())
            })
            .collect();
        assert_eq!(
            grants,
            [
                (
                    "system:serviceaccount:billing:billing-api",
                    &["astrada:api_token".to_owned()][..],
                    &[][..]
                ),
                (
                    "system:serviceaccount:tenant-a:payments-worker",
                    &["astra:token".to_owned()][..],
                    &["tenant-a:".to_owned()][..]
                ),
                (
                    "system:serviceaccount:ops:astra-operator",
                    &["astra:manage".to_owned(), "astra:read".to_owned()][..],
                    &[][..]
                ),
            ],
            "one workload with the API token only, one with one tenant's Astra tokens, one operator"
        );
    });
}
