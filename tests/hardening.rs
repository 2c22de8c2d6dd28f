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
