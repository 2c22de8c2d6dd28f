//! Load probe for the fault drills and the soak in `bench/`: sends requests
//! at a fixed rate over a fixed number of connections for a bounded time and
//! accounts for every one of them — sent, answered (by status), failed (by
//! kind), still unanswered at the end (hung) — plus latency, `Retry-After`
//! on 503s, token rotations seen, and how the service behaved around the
//! moments listed in a marks file (outage start, endpoint back, SIGTERM).
//!
//! Prints one JSON object ([`Summary`]) on stdout; `atv-bench verdict` judges it.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(clap::Args)]
pub struct Args {
    /// The URL to GET.
    #[arg(long)]
    url: String,
    /// Concurrent connections (one sending task each).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Total requests per second across all connections; 0 = as fast as possible.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// How long to send.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// A request unanswered after this long counts as hung.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// File of `label unix_ms` lines written while the probe runs (read at the end).
    #[arg(long)]
    marks: Option<PathBuf>,
}

#[derive(Clone, Copy)]
enum Outcome {
    Status {
        code: u16,
        retry_after: bool,
        token: Option<u64>,
    },
    Connect,
    Timeout,
    Other,
}

#[derive(Clone, Copy)]
struct Record {
    sent_ms: u64,
    done_ms: u64,
    latency_us: u64,
    outcome: Outcome,
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn token_hash(body: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let token = value.get("access_token")?.as_str()?;
    let mut h = DefaultHasher::new();
    token.hash(&mut h);
    Some(h.finish())
}

async fn one(client: &reqwest::Client, url: &str) -> Outcome {
    match client.get(url).send().await {
        Ok(answer) => {
            let code = answer.status().as_u16();
            let retry_after = answer.headers().contains_key("retry-after");
            match answer.bytes().await {
                Ok(body) => Outcome::Status {
                    code,
                    retry_after,
                    token: if code == 200 { token_hash(&body) } else { None },
                },
                Err(e) if e.is_timeout() => Outcome::Timeout,
                Err(_) => Outcome::Other,
            }
        }
        Err(e) if e.is_timeout() => Outcome::Timeout,
        Err(e) if e.is_connect() => Outcome::Connect,
        Err(_) => Outcome::Other,
    }
}

/// The `p` quantile of sorted microseconds, in milliseconds.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

/// What one probe run saw; `atv-bench verdict` reads it back.
#[derive(Serialize, Deserialize)]
pub struct Summary {
    pub url: String,
    pub connections: usize,
    pub target_rate: f64,
    pub duration_secs: f64,
    pub sent: u64,
    pub answered: u64,
    pub statuses: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub hung: u64,
    pub all_tasks_finished: bool,
    pub rate: f64,
    pub latency_ms: Latency,
    pub max_ok_ms: f64,
    pub max_non_ok_ms: f64,
    pub status_503_without_retry_after: u64,
    pub tokens_seen: usize,
    pub rotations: usize,
    pub rotation_window_max_ms: f64,
    pub marks: Vec<Mark>,
}

#[derive(Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(sorted_us: &[u64]) -> Self {
        Self {
            p50: percentile(sorted_us, 0.50),
            p99: percentile(sorted_us, 0.99),
            max: percentile(sorted_us, 1.0),
        }
    }
}

/// How the service behaved around one moment of the marks file.
#[derive(Serialize, Deserialize)]
pub struct Mark {
    pub label: String,
    pub unix_ms: u64,
    pub first_ok_after_ms: Option<u64>,
    pub sent_before: usize,
    pub failed_sent_before: usize,
}

impl Summary {
    pub fn count(&self, status: &str) -> u64 {
        self.statuses.get(status).copied().unwrap_or(0)
    }

    /// Requests sent that did not get a 200.
    pub fn failed(&self) -> u64 {
        self.sent - self.count("200")
    }

    pub fn transport_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn mark(&self, label: &str) -> anyhow::Result<&Mark> {
        self.marks
            .iter()
            .find(|m| m.label == label)
            .with_context(|| format!("the probe saw no `{label}` mark"))
    }

    /// The counts every drill line starts with.
    pub fn counts(&self) -> String {
        format!(
            "{} sent, {} answered, {} failed, {} hung",
            self.sent,
            self.answered,
            self.failed(),
            self.hung
        )
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut headers = reqwest::header::HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .context("--header must be `Name: value`")?;
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            reqwest::header::HeaderValue::from_str(value.trim())?,
        );
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_millis(args.timeout_ms))
        .connect_timeout(Duration::from_millis(args.timeout_ms))
        .pool_max_idle_per_host(args.connections)
        .build()
        .context("cannot build the HTTP client")?;

    let records = Arc::new(Mutex::new(Vec::<Record>::new()));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let stop_at = start + Duration::from_secs(args.duration_secs);
    let period =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(args.connections as f64 / args.rate));
    let mut tasks = Vec::new();
    let connections = args.connections;
    for i in 0..connections {
        let client = client.clone();
        let url = args.url.clone();
        let records = Arc::clone(&records);
        let sent = Arc::clone(&sent);
        tasks.push(tokio::spawn(async move {
            let mut ticker = period.map(|p| {
                // Stagger the connections across one period so the rate is smooth.
                let first = tokio::time::Instant::now() + p.mul_f64(i as f64 / connections as f64);
                let mut t = tokio::time::interval_at(first, p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                if Instant::now() >= stop_at {
                    break;
                }
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let sent_ms = unix_ms();
                let began = Instant::now();
                let outcome = one(&client, &url).await;
                records
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Record {
                        sent_ms,
                        done_ms: unix_ms(),
                        latency_us: began.elapsed().as_micros() as u64,
                        outcome,
                    });
            }
        }));
    }
    // Every task ends by itself: sending stops at `stop_at`, and each request
    // is bounded by the client timeout. The extra second is slack, not a wait.
    let deadline = stop_at + Duration::from_millis(args.timeout_ms) + Duration::from_secs(1);
    let finished = tokio::time::timeout_at(deadline.into(), futures::future::join_all(tasks)).await;
    let mut records = std::mem::take(&mut *records.lock().unwrap_or_else(|e| e.into_inner()));
    records.sort_by_key(|r| r.done_ms);
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    crate::timeline::append(records.iter().map(|r| {
        let status = match r.outcome {
            Outcome::Status { code, .. } => Some(code),
            _ => None,
        };
        (r.done_ms, crate::timeline::outcome(status))
    }))?;
    // Unanswered at the end, or answered only by the client's own timeout.
    let unfinished = sent - records.len() as u64;

    let mut statuses = BTreeMap::<String, u64>::new();
    let (mut connect, mut timeout, mut other, mut no_retry_after) = (0u64, 0u64, 0u64, 0u64);
    let mut lat: Vec<u64> = Vec::with_capacity(records.len());
    let (mut max_ok_us, mut max_non_ok_us) = (0u64, 0u64);
    for r in &records {
        match r.outcome {
            Outcome::Status {
                code, retry_after, ..
            } => {
                *statuses.entry(code.to_string()).or_default() += 1;
                lat.push(r.latency_us);
                if code == 200 {
                    max_ok_us = max_ok_us.max(r.latency_us);
                } else {
                    max_non_ok_us = max_non_ok_us.max(r.latency_us);
                    if code == 503 && !retry_after {
                        no_retry_after += 1;
                    }
                }
            }
            Outcome::Connect => connect += 1,
            Outcome::Timeout => timeout += 1,
            Outcome::Other => other += 1,
        }
    }
    lat.sort_unstable();

    // Token rotations: the first answer carrying a token not seen before
    // (answers racing a swap may interleave old and new; that is no
    // rotation), and the slowest answer within a second either side of each.
    let mut rotations = Vec::new();
    let mut distinct = std::collections::HashSet::new();
    for r in &records {
        if let Outcome::Status { token: Some(t), .. } = r.outcome
            && distinct.insert(t)
            && distinct.len() > 1
        {
            rotations.push(r.done_ms);
        }
    }
    let rotation_max_us = rotations
        .iter()
        .flat_map(|&at| {
            records
                .iter()
                .filter(move |r| r.done_ms + 1000 >= at && r.done_ms <= at + 1000)
                .map(|r| r.latency_us)
        })
        .max()
        .unwrap_or(0);

    let marks: Vec<Mark> = match &args.marks {
        Some(path) => std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (label, at) = line.split_once(' ')?;
                let at: u64 = at.trim().parse().ok()?;
                let ok = |r: &&Record| matches!(r.outcome, Outcome::Status { code: 200, .. });
                let first_ok_after_ms = records
                    .iter()
                    .filter(|r| r.sent_ms >= at)
                    .filter(ok)
                    .map(|r| r.done_ms - at)
                    .min();
                let before: Vec<&Record> = records.iter().filter(|r| r.sent_ms < at).collect();
                let failed_sent_before = before.iter().filter(|r| !ok(r)).count();
                Some(Mark {
                    label: label.to_owned(),
                    unix_ms: at,
                    first_ok_after_ms,
                    sent_before: before.len(),
                    failed_sent_before,
                })
            })
            .collect(),
        None => Vec::new(),
    };

    let elapsed = start.elapsed().as_secs_f64();
    let summary = Summary {
        url: args.url,
        connections: args.connections,
        target_rate: args.rate,
        duration_secs: elapsed,
        sent,
        answered: lat.len() as u64,
        statuses,
        errors: BTreeMap::from([
            ("connect".to_owned(), connect),
            ("timeout".to_owned(), timeout),
            ("other".to_owned(), other),
        ]),
        hung: unfinished + timeout,
        all_tasks_finished: finished.is_ok(),
        rate: records.len() as f64 / elapsed,
        latency_ms: Latency::of(&lat),
        max_ok_ms: max_ok_us as f64 / 1000.0,
        max_non_ok_ms: max_non_ok_us as f64 / 1000.0,
        status_503_without_retry_after: no_retry_after,
        tokens_seen: distinct.len(),
        rotations: rotations.len(),
        rotation_window_max_ms: rotation_max_us as f64 / 1000.0,
        marks,
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
