//! What counts as PASS, drill by drill: each reads the probe's [`Summary`]
//! (and, where it needs them, the fake upstream's counters and the service's
//! metrics) and prints the one line the drill is judged by.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::probe::load::Summary;
use crate::probe::lookup::{FakeStats, Metrics, fetch_json, number};
use crate::probe::rules::{Timing, default_exchange_timeout, default_policy};

const EXCHANGES: &str = "atv_token_exchanges_total";

/// Where a verdict reads what happened.
#[derive(clap::Args)]
pub struct Sources {
    /// The load probe's output (file, or `-` for stdin).
    #[arg(long)]
    probe: String,
    /// The fake upstream's `/_control` URL.
    #[arg(long)]
    fake: Option<String>,
    /// The service's `/metrics` URL.
    #[arg(long)]
    metrics: Option<String>,
}

impl Sources {
    async fn summary(&self) -> anyhow::Result<Summary> {
        fetch_json(&self.probe).await
    }

    async fn fake(&self) -> anyhow::Result<FakeStats> {
        fetch_json(self.fake.as_deref().context("this verdict needs --fake")?).await
    }

    async fn metrics(&self) -> anyhow::Result<Metrics> {
        Metrics::scrape(
            self.metrics
                .as_deref()
                .context("this verdict needs --metrics")?,
        )
        .await
    }
}

#[derive(clap::Subcommand)]
pub enum Drill {
    /// One token-endpoint fault under steady load (`bench/drills/upstream-fault.sh`).
    Fault {
        #[arg(long)]
        name: String,
        /// `valid`: the fault ends while the cached token is valid, so nothing
        /// may fail; `expire`: it outlasts the token, so failures must be fast
        /// 503s with Retry-After and recovery prompt.
        #[arg(long, value_parser = ["valid", "expire"])]
        expect: String,
        #[command(flatten)]
        from: Sources,
        /// Longest allowed time from the endpoint's return to the first 200:
        /// milliseconds, `backoff-max` for the cache's `backoff_max_ms`, or
        /// `exchange-timeout` for the token endpoint's `timeout_ms` plus 500.
        #[arg(long, default_value = "2000")]
        recovery: String,
        /// Upstream requests during the fault, as the script counted them.
        #[arg(long, default_value = "(process down)")]
        requests_during: String,
    },
    /// The refresh soak (`bench/soak.sh`). Prints its line, then the
    /// measurements as JSON for `bench/run.sh`; never exits 1, so that a
    /// failed soak still reaches RESULTS.md.
    Soak {
        #[command(flatten)]
        from: Sources,
        #[arg(long)]
        lifetime_secs: u64,
        /// From the service's start to the end of the load.
        #[arg(long)]
        span_ms: u64,
        #[arg(long)]
        sdk_id: String,
        #[arg(long)]
        api_id: String,
    },
    /// Client secrets rotated under load (`bench/drills/secret-rotation.sh`).
    SecretRotation {
        #[command(flatten)]
        from: Sources,
        /// Whether the service re-read the new secret version.
        #[arg(long, action = clap::ArgAction::Set)]
        picked_up: bool,
    },
    /// Secrets Manager down and back (`bench/drills/secrets-manager-restart.sh`).
    SecretsManagerRestart {
        #[command(flatten)]
        from: Sources,
        /// Failed credential reads counted while the source was down.
        #[arg(long)]
        errors_during: u64,
    },
    /// SIGTERM under load (`bench/drills/sigterm-drain.sh`).
    SigtermDrain {
        #[arg(long)]
        phase: String,
        #[command(flatten)]
        from: Sources,
        #[arg(long)]
        exit_code: i32,
        #[arg(long)]
        exit_ms: u64,
    },
}

fn say(ok: bool, name: &str, detail: &str) -> bool {
    println!("{} {name}: {detail}", if ok { "PASS" } else { "FAIL" });
    ok
}

impl Drill {
    pub async fn judge(self) -> anyhow::Result<bool> {
        match self {
            Drill::Fault {
                name,
                expect,
                from,
                recovery,
                requests_during,
            } => {
                let p = from.summary().await?;
                let metrics = from.metrics().await?;
                let recovery_ms = match recovery.as_str() {
                    "backoff-max" => default_policy()?.backoff_max.as_millis() as u64,
                    // The exchange in flight when the endpoint recovers ends
                    // only at its timeout; the retry that follows gets half a
                    // second for its round trip.
                    "exchange-timeout" => default_exchange_timeout()?.as_millis() as u64 + 500,
                    ms => ms.parse()?,
                };
                fault(&name, &expect, &p, &metrics, recovery_ms, &requests_during)
            }
            Drill::Soak {
                from,

                lifetime_secs,
                span_ms,
                sdk_id,
                api_id,
            } => {
                let (p, f, m) = (
                    from.summary().await?,
                    from.fake().await?,
                    from.metrics().await?,
                );
                let lifetime = Duration::from_secs(lifetime_secs);
                let (least, most) =
                    Timing::new()?.expected_exchanges(Duration::from_millis(span_ms), lifetime);
                let (sdk, api) = (f.issued_to(&sdk_id), f.issued_to(&api_id));
                let misses = m.value(
                    "atv_token_cache_lookups_total",
                    r#"set="sdk",result="miss""#,
                );
                let vendor_sdk = m.value(EXCHANGES, r#"set="sdk",outcome="ok""#);
                let refresh_runs = m.value("atv_token_refresh_ahead_runs_total", r#"set="sdk""#);
                let windows = least..=most;
                let ok = p.failed() == 0
                    && p.hung == 0
                    && misses == 0.0
                    && windows.contains(&sdk)
                    && windows.contains(&api)
                    && sdk as f64 == vendor_sdk
                    && p.rotations as u64 + 1 == sdk
                    && f.requests == f.issued
                    && p.rotation_window_max_ms < 5.0;
                say(
                    ok,
                    "soak",
                    &format!(
                        "{}; {:.0} s at {:.0} req/s; upstream exchanges sdk={sdk} api={api} \
                         (windows {least}..{most}); token rotations seen={}; cache misses={}; \
                         max latency within 1 s of a rotation={:.2} ms (overall max {:.2} ms, p99 {:.2} ms)",
                        p.counts(),
                        p.duration_secs,
                        p.rate,
                        p.rotations,
                        number(misses),
                        p.rotation_window_max_ms,
                        p.latency_ms.max,
                        p.latency_ms.p99,
                    ),
                );
                println!(
                    "{}",
                    json!({
                        "sdk_exchanges": sdk, "api_exchanges": api, "vendor_sdk_exchanges": vendor_sdk,
                        "refresh_ahead_runs": refresh_runs, "misses": misses, "min_windows": least,
                        "max_windows": most, "lifetime_secs": lifetime_secs, "rate": p.target_rate,
                        "pass": ok, "upstream_requests": f.requests, "probe": p,
                    })
                );
                Ok(true)
            }
            Drill::SecretRotation { from, picked_up } => {
                let (p, f) = (from.summary().await?, from.fake().await?);
                let invalid = from
                    .metrics()
                    .await?
                    .value(EXCHANGES, r#"set="sdk",outcome="invalid_client""#);
                let ok =
                    p.failed() == 0 && p.hung == 0 && picked_up && invalid == 0.0 && f.issued >= 2;
                Ok(say(
                    ok,
                    "secret-rotation",
                    &format!(
                        "{}; new version re-read: {picked_up}; tokens issued for the new secrets \
                         after revoking the old: {}; invalid_client answers: {}; tokens seen by callers: {}",
                        p.counts(),
                        f.issued,
                        number(invalid),
                        p.tokens_seen
                    ),
                ))
            }
            Drill::SecretsManagerRestart {
                from,
                errors_during,
            } => {
                let p = from.summary().await?;
                let unchanged = from
                    .metrics()
                    .await?
                    .value("atv_credential_reloads_total", r#"outcome="unchanged""#);
                // The outage must have been seen by the reload loop, or the drill proved nothing.
                let ok = p.failed() == 0 && p.hung == 0 && errors_during > 0;
                Ok(say(
                    ok,
                    "secrets-manager-restart",
                    &format!(
                        "{}; {errors_during} failed credential reads while moto was down, \
                         {} unchanged reads in all; max latency {:.1} ms",
                        p.counts(),
                        number(unchanged),
                        p.latency_ms.max
                    ),
                ))
            }
            Drill::SigtermDrain {
                phase,
                from,
                exit_code,
                exit_ms,
            } => {
                let p = from.summary().await?;
                let m = p.mark("sigterm")?;
                let ok =
                    m.failed_sent_before == 0 && m.sent_before > 0 && p.hung == 0 && exit_code == 0;
                Ok(say(
                    ok,
                    &format!("sigterm-drain-{phase}"),
                    &format!(
                        "{} sent before SIGTERM, {} of them failed; {} sent in all, {} x 200, \
                         statuses {:?}, refused/reset after SIGTERM {}, {} hung; exit code {exit_code} after {exit_ms} ms",
                        m.sent_before,
                        m.failed_sent_before,
                        p.sent,
                        p.count("200"),
                        p.statuses,
                        p.transport_errors(),
                        p.hung
                    ),
                ))
            }
        }
    }
}

fn fault(
    name: &str,
    expect: &str,
    p: &Summary,
    metrics: &Metrics,
    recovery_ms: u64,
    requests_during: &str,
) -> anyhow::Result<bool> {
    let (ok200, s503) = (p.count("200"), p.count("503"));
    let other = p.answered - ok200 - s503;
    let errors = p.transport_errors();
    let lost = p.sent as i64 - p.answered as i64 - errors as i64;
    let max_ms = p.latency_ms.max;
    let exchanges: Vec<(String, f64)> = metrics
        .samples(EXCHANGES)
        .filter_map(|(labels, n)| {
            let outcome = labels.strip_prefix(r#"set="sdk",outcome=""#)?;
            Some((outcome.trim_end_matches('"').to_owned(), n))
        })
        .collect();
    let failed_exchanges: f64 = exchanges
        .iter()
        .filter(|(o, _)| o != "ok")
        .map(|(_, n)| n)
        .sum();
    let by_outcome = exchanges
        .iter()
        .map(|(o, n)| format!("{o}={}", number(*n)))
        .collect::<Vec<_>>()
        .join(" ");
    // Which kinds (connect, timeout, other): a FAIL line's post-mortem starts here.
    let kinds = if errors == 0 {
        String::new()
    } else {
        format!(" {:?}", p.errors)
    };
    let counts = format!(
        "{} sent, {} answered ({ok200} x 200, {s503} x 503, {other} other), {errors} transport \
         errors{kinds}, {} hung, {lost} lost; max latency {max_ms:.1} ms",
        p.sent, p.answered, p.hung
    );
    let (ok, detail) = if expect == "valid" {
        // The outage must have hit at least one refresh, or the drill proved nothing.
        let ok = p.failed() == 0 && p.hung == 0 && lost == 0 && failed_exchanges > 0.0;
        (
            ok,
            format!("{counts}; upstream exchanges by outcome: {by_outcome}"),
        )
    } else {
        let before_valid = p.mark("valid_until")?.failed_sent_before;
        let recovery = p.mark("endpoint_back")?.first_ok_after_ms;
        let ok = p.hung == 0
            && lost == 0
            && errors == 0
            && other == 0
            && s503 > 0
            && p.status_503_without_retry_after == 0
            && max_ms <= 3100.0
            && before_valid == 0
            && recovery.is_some_and(|r| r <= recovery_ms);
        let recovery = recovery.map_or("none".to_owned(), |r| r.to_string());
        let detail = format!(
            "{counts}; {} x 503 without Retry-After; {before_valid} failed while the token was valid; \
             recovery {recovery} ms after the endpoint returned (limit {recovery_ms}); upstream requests \
             during the fault: {requests_during}; vendor exchanges by outcome: {by_outcome}",
            p.status_503_without_retry_after
        );
        (ok, detail)
    };
    Ok(say(ok, name, &detail))
}
