//! An optional webhook: when a user enters `reauthorization_required`, the
//! customer hears about it (HMAC-SHA256 signed, retried with backoff) and
//! can ask the user to authorize again before anything else breaks.
//!
//! Signature: `X-ATV-Signature: t=UNIX_SECONDS,v1=HEX(HMAC-SHA256(secret,
//! "UNIX_SECONDS." + body))`; the timestamp lets receivers refuse replays.

use std::time::Duration;

use aws_lc_rs::hmac;
use secrecy::ExposeSecret;

use super::user_ref::UserRef;
use crate::config::{AstraSettings, ConfigError, https_url, invalid};
use crate::core::{jittered, outbound_client, unix_secs};

/// Attempts per event, with doubling waits between them (1 s, 2 s, 4 s, …).
const ATTEMPTS: u32 = 6;

/// Where events go and how they are signed.
pub struct Webhook {
    url: url::Url,
    key: hmac::Key,
    http: reqwest::Client,
}

impl Webhook {
    /// `None` when `astra.webhook_url` is empty.
    pub fn from_settings(s: &AstraSettings) -> Result<Option<Self>, ConfigError> {
        if s.webhook_url.trim().is_empty() {
            return Ok(None);
        }
        let url = https_url(
            "astra.webhook_url",
            &s.webhook_url,
            "would expose user references in clear text",
            "use e.g. https://app.example.com/hooks/astra",
        )?;
        let secret = s.webhook_secret.expose_secret();
        if secret.len() < 16 {
            return invalid(
                "astra.webhook_secret",
                "is shorter than 16 characters, so signatures could be guessed".into(),
                "set ATV_ASTRA__WEBHOOK_SECRET to a random value (openssl rand -hex 32)",
            );
        }
        let timeout = Duration::from_secs(5);
        let Ok(http) = outbound_client(timeout, timeout).build() else {
            return invalid(
                "astra.webhook_url",
                "no HTTP client can be built for it".into(),
                "check the system's TLS configuration",
            );
        };
        Ok(Some(Self {
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            http,
        }))
    }

    /// Sends the event in the background, retrying with backoff. Every
    /// attempt carries the same event id, so a receiver that saw an attempt
    /// whose answer got lost can drop the next one.
    pub fn reauthorization_required(&self, user: &UserRef, astra_request_id: Option<&str>) {
        let id = event_id();
        let body = serde_json::json!({
            "id": id,
            "type": "astra.user.reauthorization_required",
            "user_ref": user.as_str(),
            "occurred_at": unix_secs(),
            "last_astra_request_id": astra_request_id,
        })
        .to_string();
        let signature = self.sign(unix_secs(), &body);
        let (http, url, user) = (self.http.clone(), self.url.clone(), user.clone());
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            for attempt in 1..=ATTEMPTS {
                let sent = http
                    .post(url.clone())
                    .header("content-type", "application/json")
                    .header("x-atv-signature", &signature)
                    .header("x-atv-event-id", &id)
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) => {
                        tracing::warn!(user_ref = %user, attempt, status = r.status().as_u16(), "webhook refused the event")
                    }
                    Err(_) => tracing::warn!(user_ref = %user, attempt, "webhook unreachable"),
                }
                tokio::time::sleep(jittered(wait)).await;
                wait *= 2;
            }
            tracing::error!(user_ref = %user, "webhook event dropped after {ATTEMPTS} attempts");
        });
    }

    /// The `X-ATV-Signature` value for `body` sent at `timestamp`.
    pub fn sign(&self, timestamp: i64, body: &str) -> String {
        let tag = hmac::sign(&self.key, format!("{timestamp}.{body}").as_bytes());
        format!("t={timestamp},v1={}", hex::encode(tag.as_ref()))
    }
}

/// `evt_` and 128 random bits in hex. Should the system's random source
/// fail, the time and a process-wide counter still keep ids apart.
fn event_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    if super::crypto::fill_random(&mut bytes).is_err() {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&unix_secs().to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
    }
    format!("evt_{}", hex::encode(bytes))
}
