//! `atv-bench astra store-outage`: token load while the script stops PostgreSQL
//! and starts it again (`bench/drills/astra-store-outage.sh`).
//!
//! Users `0..warm` are requested on every replica before the load, so each
//! replica's read-through cache holds them; the load then asks for warm and
//! cold users in turn. The script writes `db_down UNIX_MS` and `db_up
//! UNIX_MS` to the marks file; requests are judged by when they were sent:
//!
//! * warm users get 200 throughout (their tokens are valid for hours);
//! * cold users get 200, or during the outage a 503 with `Retry-After`,
//!   never slower than `--max-503-ms`, never unanswered;
//! * a cold user gets a 200 within `--recovery-ms` of the database's return,
//!   and every request sent after that gets a 200;
//! * afterwards every user still refreshes and stays active.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::drills::{RefreshCheck, refresh_everyone};
use super::{Call, Fleet, client, fire};
use crate::probe::load::{Latency, unix_ms};

#[derive(clap::Args)]
pub struct StoreOutageArgs {
    #[arg(long)]
    name: String,
    #[command(flatten)]
    fleet: Fleet,
    #[arg(long)]
    store_url: String,
    /// Users `0..warm` are cached on every replica before the load.
    #[arg(long)]
    warm: usize,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Created once the cache is warm and the load runs: the script's cue.
    #[arg(long)]
    loading_file: PathBuf,
    /// Load stops once this file exists.
    #[arg(long)]
    stop_file: PathBuf,
    /// The script's `db_down UNIX_MS` and `db_up UNIX_MS` lines.
    #[arg(long)]
    marks: PathBuf,
    /// A request unanswered after this long is hung (the SDK gives up at 5 s).
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    #[arg(long, default_value_t = 1_500)]
    max_503_ms: u64,
    #[arg(long, default_value_t = 2_000)]
    recovery_ms: u64,
    #[arg(long, default_value_t = 300)]
    max_secs: u64,
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Clone, Copy)]
struct Sent {
    sent_ms: u64,
    warm: bool,
    latency_us: u64,
    /// The status, or `None` for no answer (transport error or hung).
    status: Option<u16>,
    retry_after: bool,
}

async fn one(http: &reqwest::Client, url: url::Url, warm: bool) -> Sent {
    let sent_ms = unix_ms();
    let started = Instant::now();
    let (status, retry_after) = match http.get(url).send().await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let retry_after = answer.headers().contains_key("retry-after");
            match answer.bytes().await {
                Ok(_) => (Some(status), retry_after),
                Err(_) => (None, false),
            }
        }
        Err(_) => (None, false),
    };
    Sent {
        sent_ms,
        warm,
        latency_us: started.elapsed().as_micros() as u64,
        status,
        retry_after,
    }
}

fn mark(text: &str, label: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(label)?.trim().parse().ok())
        .next()
}

#[derive(Serialize, Default)]
struct Phase {
    sent: u64,
    warm_ok: u64,
    warm_not_ok: u64,
    cold_ok: u64,
    cold_503_with_retry_after: u64,
    cold_503_without_retry_after: u64,
    other_status: BTreeMap<u16, u64>,
    no_answer: u64,
    max_503_ms: f64,
    max_ms: f64,
}

impl Phase {
    fn add(&mut self, s: &Sent) {
        self.sent += 1;
        let ms = s.latency_us as f64 / 1000.0;
        self.max_ms = self.max_ms.max(ms);
        match (s.status, s.warm) {
            (Some(200), true) => self.warm_ok += 1,
            (Some(_) | None, true) => self.warm_not_ok += 1,
            (Some(200), false) => self.cold_ok += 1,
            (Some(503), false) => {
                self.max_503_ms = self.max_503_ms.max(ms);
                if s.retry_after {
                    self.cold_503_with_retry_after += 1;
                } else {
                    self.cold_503_without_retry_after += 1;
                }
            }
            (Some(code), false) => *self.other_status.entry(code).or_default() += 1,
            (None, false) => self.no_answer += 1,
        }
        if s.status.is_none() && s.warm {
            self.no_answer += 1;
        }
    }

    fn all_ok(&self) -> bool {
        self.warm_ok + self.cold_ok == self.sent
    }
}

#[derive(Serialize, Default)]
struct StoreOutage {
    down_ms: u64,
    before: Phase,
    during: Phase,
    /// From the database's return until `recovery_ms` later.
    returning: Phase,
    after: Phase,
    recovery_ms: Option<u64>,
    latency_ms: Option<Latency>,
    check: RefreshCheck,
    not_active: i64,
}

pub async fn store_outage(args: StoreOutageArgs) -> anyhow::Result<bool> {
    let http = client(Duration::from_millis(args.timeout_ms))?;
    let fleet = &args.fleet;
    anyhow::ensure!(
        args.warm > 0 && args.warm < fleet.users,
        "--warm must leave cold users"
    );
    let targets = fleet.targets.len();
    let warmed = fire(
        &http,
        fleet,
        64,
        (0..args.warm)
            .flat_map(|u| (0..targets).map(move |t| (u, t, Call::Token)))
            .collect(),
    )
    .await?;
    let mut warm_failed: BTreeMap<String, usize> = BTreeMap::new();
    for answer in warmed.iter().filter(|a| a.status != Some(200)) {
        let status = answer.status.map_or("no answer".into(), |s| s.to_string());
        *warm_failed.entry(status).or_default() += 1;
    }
    if !warm_failed.is_empty() {
        // Before any fault: the service failed under ordinary load. The
        // answers' bodies are in the script's log (`fire`).
        let slowest = warmed.iter().map(|a| a.latency_us).max().unwrap_or(0) / 1000;
        println!(
            "FAIL {}: before any fault, warm-up requests without a 200 {warm_failed:?} of {} \
             ({} users x {targets} replicas, 64 at a time), slowest {slowest} ms",
            args.name,
            warmed.len(),
            args.warm,
        );
        return Ok(false);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let per_client = Duration::from_secs_f64(args.connections as f64 / args.rate.max(0.1));
    let mut tasks = Vec::new();
    for client_no in 0..args.connections {
        let (http, stop) = (http.clone(), Arc::clone(&stop));
        let (targets, prefix) = (fleet.targets.clone(), fleet.prefix.clone());
        let (users, warm) = (fleet.users, args.warm);
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut tick = tokio::time::interval(per_client);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut turn = client_no;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                turn += 1;
                let is_warm = turn % 2 == 0;
                let user = if is_warm {
                    fastrand::usize(..warm)
                } else {
                    fastrand::usize(warm..users)
                };
                let target = &targets[turn % targets.len()];
                if let Ok(url) = super::user_url(target, &format!("{prefix}{user}"), "token") {
                    sent.push(one(&http, url, is_warm).await);
                }
            }
            sent
        }));
    }
    std::fs::write(&args.loading_file, b"")
        .with_context(|| format!("cannot create {}", args.loading_file.display()))?;
    let started = Instant::now();
    while !args.stop_file.exists() && started.elapsed() < Duration::from_secs(args.max_secs) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for task in tasks {
        sent.append(&mut task.await.context("a load client panicked")?);
    }
    crate::timeline::append(sent.iter().map(|s| {
        let done_ms = s.sent_ms + s.latency_us / 1000;
        (done_ms, crate::timeline::outcome(s.status))
    }))?;
    let text = std::fs::read_to_string(&args.marks)
        .with_context(|| format!("cannot read {}", args.marks.display()))?;
    let down = mark(&text, "db_down").context("no db_down mark")?;
    let up = mark(&text, "db_up").context("no db_up mark")?;

    let mut c = StoreOutage {
        down_ms: up.saturating_sub(down),
        ..StoreOutage::default()
    };
    for s in &sent {
        let phase = if s.sent_ms < down {
            &mut c.before
        } else if s.sent_ms < up {
            &mut c.during
        } else if s.sent_ms < up + args.recovery_ms {
            &mut c.returning
        } else {
            &mut c.after
        };
        phase.add(s);
    }
    c.recovery_ms = sent
        .iter()
        .filter(|s| !s.warm && s.status == Some(200) && s.sent_ms >= up)
        .map(|s| s.sent_ms + s.latency_us / 1000 - up)
        .min();
    let mut latencies: Vec<u64> = sent.iter().map(|s| s.latency_us).collect();
    latencies.sort_unstable();
    c.latency_ms = (!latencies.is_empty()).then(|| Latency::of(&latencies));
    let all: Vec<usize> = (0..targets).collect();
    c.check = refresh_everyone(&http, fleet, &all, 64).await?;
    let db = sqlx::PgPool::connect(&args.store_url).await?;
    let (not_active,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM astra_users WHERE status <> 'active'")
            .fetch_one(&db)
            .await?;
    c.not_active = not_active;

    let d = &c.during;
    let pass = c.before.all_ok()
        && d.warm_not_ok == 0
        && d.cold_503_without_retry_after == 0
        && d.other_status.is_empty()
        && d.no_answer == 0
        && d.max_503_ms <= args.max_503_ms as f64
        && c.returning.warm_not_ok == 0
        && c.returning.no_answer == 0
        && c.returning.max_503_ms <= args.max_503_ms as f64
        && c.recovery_ms.is_some_and(|ms| ms <= args.recovery_ms)
        && c.after.all_ok()
        && c.after.sent > 0
        && c.check.all_moved_on(fleet.users)
        && c.not_active == 0;
    println!(
        "{} {}: database down {} ms under load over {} users ({} cached on every replica); \
         during the outage: cached {}/{} x 200, uncached {} x 200, {} x 503 with Retry-After, \
         {} x 503 without, other {:?}, no answer {}, slowest 503 {:.0} ms (limit {}), slowest \
         {:.0} ms; back {} after the database returned (limit {} ms); after that {}/{} x 200; \
         before {}/{} x 200; afterwards {}; users not active {}",
        if pass { "PASS" } else { "FAIL" },
        args.name,
        c.down_ms,
        fleet.users,
        args.warm,
        d.warm_ok,
        d.warm_ok + d.warm_not_ok,
        d.cold_ok,
        d.cold_503_with_retry_after,
        d.cold_503_without_retry_after,
        d.other_status,
        d.no_answer,
        d.max_503_ms,
        args.max_503_ms,
        d.max_ms,
        c.recovery_ms
            .map_or("NEVER".to_owned(), |ms| format!("{ms} ms")),
        args.recovery_ms,
        c.after.warm_ok + c.after.cold_ok,
        c.after.sent,
        c.before.warm_ok + c.before.cold_ok,
        c.before.sent,
        c.check.text(fleet.users),
        c.not_active,
    );
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&c)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(pass)
}
