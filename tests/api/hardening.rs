//! Tests of the hardening changes that need the built binary or a running
//! service. Uses only the crate's public paths.

mod hardening_cli {
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const BIN: &str = env!("CARGO_BIN_EXE_astrada-token-vendor");

    #[test]
    fn no_subcommand_is_refused_with_usage_not_dev_mode() {
        let mut child = Command::new(BIN)
            .env_remove("ATV_CONFIG")
            // Were dev mode started, it must not clash with anything running here.
            .env("ATV_SERVER__PUBLIC_ADDR", "127.0.0.1:0")
            .env("ATV_SERVER__INTERNAL_ADDR", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the binary kept running with no subcommand (started a server?)");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("piped")
            .read_to_string(&mut stderr)
            .expect("stderr");
        assert!(!status.success(), "no subcommand must fail");
        assert!(stderr.contains("Usage"), "usage on stderr: {stderr}");
        assert!(stderr.contains("serve") && stderr.contains("dev"));
    }
}

mod hardening_rate_limits {
    use std::sync::Arc;

    use astrada_token_vendor::app::Application;
    use astrada_token_vendor::client_tokens::credentials::{
        ClientCredentials, CredentialBundle, InlineSource,
    };
    use astrada_token_vendor::config::{CallerAuthMode, InternalAuthMode, Settings};
    use astrada_token_vendor::core::PerSet;
    use astrada_token_vendor::http::SDK_TOKEN_PATH;
    use secrecy::SecretString;

    /// Trusted-header caller auth from loopback, so that "no credentials" is
    /// just a request without the header; nothing reaches the token endpoint.
    async fn start(trusted_proxies: &[&str], pre_auth_burst: u32) -> u16 {
        let mut s = Settings::defaults().expect("defaults");
        s.server.public_addr = "127.0.0.1:0".parse().expect("addr");
        s.server.internal_addr = "127.0.0.1:0".parse().expect("addr");
        s.server.workers = 1;
        s.server.trusted_proxies = trusted_proxies.iter().map(|p| (*p).to_owned()).collect();
        s.token_endpoint.url = "https://127.0.0.1:9/oauth/token".into();
        s.caller_auth.mode = CallerAuthMode::TrustedHeader;
        s.caller_auth.trusted_header.trusted_proxies = vec!["127.0.0.1/32".into()];
        s.internal_auth.mode = InternalAuthMode::None;
        s.internal_auth.allow_unauthenticated = true;
        s.rate_limit.per_caller_per_minute = 1;
        s.rate_limit.burst = 1;
        s.rate_limit.pre_auth_per_minute = 1;
        s.rate_limit.pre_auth_burst = pre_auth_burst;
        let creds = ClientCredentials {
            client_id: "id".into(),
            client_secret: SecretString::from("secret"),
        };
        let source = InlineSource::new(CredentialBundle {
            sets: PerSet::from_fn(|_| creds.clone()),
            version: None,
        });
        let app = Application::build_with_source(s, Arc::new(source))
            .await
            .expect("app builds");
        let port = app.public_port();
        tokio::spawn(app.run_until(std::future::pending()));
        port
    }

    async fn echoed_request_id(port: u16) -> String {
        let answer = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .header("x-request-id", "planted-id-1")
            .send()
            .await
            .expect("answer");
        answer.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    #[tokio::test]
    async fn public_request_ids_are_kept_only_from_trusted_proxies() {
        let untrusted = start(&[], 20).await;
        assert_ne!(echoed_request_id(untrusted).await, "planted-id-1");
        let behind_proxy = start(&["127.0.0.1"], 20).await;
        assert_eq!(echoed_request_id(behind_proxy).await, "planted-id-1");
    }

    async fn status(port: u16, forwarded_for: Option<&str>) -> u16 {
        let mut req =
            reqwest::Client::new().get(format!("http://127.0.0.1:{port}{SDK_TOKEN_PATH}"));
        if let Some(xff) = forwarded_for {
            req = req.header("x-forwarded-for", xff);
        }
        req.send().await.expect("answer").status().as_u16()
    }

    #[tokio::test]
    async fn requests_without_credentials_get_401_not_429() {
        // The per-caller limit (burst 1) used to be spent by failed attempts.
        let port = start(&[], 20).await;
        for _ in 0..10 {
            assert_eq!(status(port, None).await, 401);
        }
    }

    /// The statuses of one request after another, each with its
    /// `X-Forwarded-For`.
    async fn statuses<const N: usize>(port: u16, forwarded_for: [&str; N]) -> [u16; N] {
        let mut answers = [0; N];
        for (answer, xff) in answers.iter_mut().zip(forwarded_for) {
            *answer = status(port, Some(xff)).await;
        }
        answers
    }

    #[tokio::test]
    async fn clients_behind_one_trusted_proxy_do_not_share_a_bucket() {
        let port = start(&["127.0.0.1"], 2).await;
        assert_eq!(
            statuses(port, ["203.0.113.1"; 3]).await,
            [401, 401, 429],
            "over its own limit on the third"
        );
        assert_eq!(status(port, Some("203.0.113.2")).await, 401, "another user");
    }

    #[tokio::test]
    async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
        let port = start(&[], 2).await;
        assert_eq!(
            statuses(port, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]).await,
            [401, 401, 429],
            "a made-up X-Forwarded-For must not buy a fresh bucket"
        );
    }
}
