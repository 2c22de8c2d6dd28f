//! Everything the process logs, at `trace` level, captured for tests that
//! look for secrets in log lines.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// A log sink the tests can read back.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The audit events (log target `audit`) captured so far, parsed.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["target"] == "audit")
            .collect()
    }

    /// Waits (up to 30 s) until `what` has been logged.
    pub async fn logged(&self, what: &str) {
        crate::eventually(
            &format!("`{what}` is logged"),
            std::time::Duration::from_secs(30),
            || async { self.text().contains(what) },
        )
        .await;
    }
}

/// Installs the process's one global subscriber (JSON, `trace` level, with
/// spans) on first use, and returns what it has captured since, for every
/// test of the binary.
pub fn capture() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(move || writer.clone())
                .init();
            captured
        })
        .clone()
}
