//! The real binary: dev mode serves a token, `--help` lists every option,
//! SIGTERM exits 0, and a bad configuration exits non-zero with the key named.

use std::process::{Command, Stdio};
use std::time::Duration;

use test_support::binary::{DevMode, first_ok};

const BIN: &str = env!("CARGO_BIN_EXE_astrada-token-vendor");

#[test]
fn help_lists_every_configuration_key() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let defaults = include_str!("../../config/default.toml");
    for line in defaults
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = "))
    {
        let key = line.split(" = ").next().unwrap().trim();
        assert!(help.contains(key), "--help does not mention `{key}`");
    }
    assert!(help.contains("ATV_"));
}

#[test]
fn serve_with_a_bad_configuration_exits_non_zero_naming_the_key() {
    let out = Command::new(BIN)
        .arg("serve")
        .env("ATV_CACHE__WAIT_TIMEOUT_MS", "9000")
        // Everything else valid: caller checks explicitly off (each part
        // checks its own section, the callers' before the cache's).
        .env("ATV_CALLER_AUTH__MODE", "none")
        .env("ATV_CALLER_AUTH__ALLOW_UNAUTHENTICATED", "true")
        .env("ATV_INTERNAL_AUTH__MODE", "none")
        .env("ATV_INTERNAL_AUTH__ALLOW_UNAUTHENTICATED", "true")
        .env("ATV_CREDENTIALS__API__CLIENT_ID", "a")
        .env("ATV_CREDENTIALS__API__CLIENT_SECRET", "b")
        .env("ATV_CREDENTIALS__SDK__CLIENT_ID", "c")
        .env("ATV_CREDENTIALS__SDK__CLIENT_SECRET", "d")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cache.wait_timeout_ms"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}

#[tokio::test]
async fn dev_mode_serves_a_token_and_exits_0_on_sigterm() {
    let dev = DevMode::on_free_ports();
    let mut child = dev
        .command(BIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Dev mode serves a token within 10 s.
    let url = format!("{}/astrada-sdk-token", dev.public_url());
    let answer = first_ok(&mut child, &url, Duration::from_secs(10), String::new).await;
    let body = answer.json::<serde_json::Value>().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["access_token"].as_str().unwrap().split('.').count() == 3,
        "a JWT"
    );

    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stdout = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    assert!(stdout.contains("NOT FOR PRODUCTION"), "{stdout}");
}
