//! The built binary in `dev` mode, as a user runs it: on two free loopback
//! ports, killed when the test drops it.
//!
//! Only a test binary of the crate knows the executable's path
//! (`env!("CARGO_BIN_EXE_astrada-token-vendor")`), so it passes it in.

use std::time::Duration;

use tokio::process::{Child, Command};

/// Free public and internal loopback ports for one `dev` process.
pub struct DevMode {
    pub public_port: u16,
    pub internal_port: u16,
}

impl DevMode {
    /// Two ports that were free a moment ago.
    pub fn on_free_ports() -> Self {
        Self {
            public_port: crate::free_port(),
            internal_port: crate::free_port(),
        }
    }

    /// `bin dev` on these ports, killed on drop; the caller adds its own
    /// settings and output handling, then spawns it.
    pub fn command(&self, bin: &str) -> Command {
        let mut command = Command::new(bin);
        command
            .arg("dev")
            .env(
                "ATV_SERVER__PUBLIC_ADDR",
                format!("127.0.0.1:{}", self.public_port),
            )
            .env(
                "ATV_SERVER__INTERNAL_ADDR",
                format!("127.0.0.1:{}", self.internal_port),
            )
            .kill_on_drop(true);
        command
    }

    /// `http://127.0.0.1:<public port>`.
    pub fn public_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.public_port)
    }

    /// `http://127.0.0.1:<internal port>`.
    pub fn internal_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.internal_port)
    }
}

/// Polls `GET url` every 100 ms until it answers 200 and returns that
/// answer; fails if `child` exits first or after `limit`, with `log()` (what
/// the process wrote, if the caller kept it) in the message.
pub async fn first_ok(
    child: &mut Child,
    url: &str,
    limit: Duration,
    log: impl Fn() -> String,
) -> reqwest::Response {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status() == 200
        {
            return r;
        }
        assert!(
            child.try_wait().expect("the process's status").is_none(),
            "the process exited before {url} answered 200:\n{}",
            log()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} did not answer 200 within {limit:?}:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
