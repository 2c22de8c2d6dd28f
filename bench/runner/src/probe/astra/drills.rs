//! The Astra drills that need many users or a process killed under load
//! (`bench/drills/astra-*.sh`). The scripts start, stop and kill processes;
//! everything measured and judged is here, against the fake Astra's own
//! counters and the rows in PostgreSQL:
//!
//! * `catch-up`: seeds users whose refresh tokens are due and times the
//!   replicas' schedulers refreshing them all under the global cap;
//! * `replica-kill`: token requests on every replica while the script
//!   `kill -9`s one holding leases, then proves every user still refreshes;
//! * `scheduled-faults`: judges a scheduler run through 5xx and timeouts;
//! * `rolling-restart`: a load-balancing client while replicas restart.
//!
//! Every drill that reads counters absolutely expects a fake Astra started
//! for it and a database holding only the drill's users.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::seed::{SeedDirectArgs, seed_direct};
use super::{Answer, Call, Fleet, client, current_tokens, fake_control, fake_stats, fire};
use crate::probe::load::{Latency, unix_ms};
use crate::probe::lookup::Metrics;

/// Astra's refresh tokens live 10 days.
const REFRESH_LIFETIME_SECS: i64 = 10 * 86_400;

async fn pool(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .context("cannot connect to the store")
}

async fn count(pool: &PgPool, sql: &'static str) -> anyhow::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(sql)
        .fetch_one(pool)
        .await
        .with_context(|| format!("query failed: {sql}"))?;
    Ok(n)
}

/// [`count`] with one bound number, `$1`.
async fn count_with(pool: &PgPool, sql: &'static str, value: i64) -> anyhow::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(sql)
        .bind(value)
        .fetch_one(pool)
        .await
        .with_context(|| format!("query failed: {sql}"))?;
    Ok(n)
}

fn write_report(path: Option<&Path>, report: &impl Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn word(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// Database-wide activity, from `pg_stat_database` (cumulative counters).
#[derive(Serialize, Default, Clone, Copy, sqlx::FromRow)]
struct DbActivity {
    xact_commit: i64,
    xact_rollback: i64,
    tup_returned: i64,
    tup_fetched: i64,
    tup_inserted: i64,
    tup_updated: i64,
    tup_deleted: i64,
    blks_read: i64,
    blks_hit: i64,
}

impl DbActivity {
    async fn read(pool: &PgPool) -> anyhow::Result<Self> {
        Ok(sqlx::query_as(
            "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, \
             tup_updated, tup_deleted, blks_read, blks_hit \
             FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await?)
    }

    fn since(self, before: Self) -> Self {
        Self {
            xact_commit: self.xact_commit - before.xact_commit,
            xact_rollback: self.xact_rollback - before.xact_rollback,
            tup_returned: self.tup_returned - before.tup_returned,
            tup_fetched: self.tup_fetched - before.tup_fetched,
            tup_inserted: self.tup_inserted - before.tup_inserted,
            tup_updated: self.tup_updated - before.tup_updated,
            tup_deleted: self.tup_deleted - before.tup_deleted,
            blks_read: self.blks_read - before.blks_read,
            blks_hit: self.blks_hit - before.blks_hit,
        }
    }
}

/// How many of users `PREFIX{first}..` the fake refreshed 0, 1, 2, … times
/// between two snapshots of `refreshes_by_user`.
fn refresh_histogram(
    prefix: &str,
    users: std::ops::Range<u64>,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<u64, u64> {
    let mut histogram = BTreeMap::new();
    for i in users {
        let name = format!("{prefix}{i}");
        let delta =
            after.get(&name).copied().unwrap_or(0) - before.get(&name).copied().unwrap_or(0);
        *histogram.entry(delta).or_default() += 1;
    }
    histogram
}

fn histogram_text(h: &BTreeMap<u64, u64>) -> String {
    let parts: Vec<String> = h
        .iter()
        .map(|(times, users)| format!("{times}x: {users}"))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

// ------------------------------------------------------------- catch-up

#[derive(clap::Args)]
pub struct CatchUpArgs {
    /// Drill name for the verdict line.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    seed: SeedDirectArgs,
    /// The replicas' internal base URLs (their `/metrics`), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<url::Url>,
    /// Token-endpoint calls per second the whole fleet may make.
    #[arg(long)]
    cap: u64,
    /// Calls above the cap tolerated in one second (pacing is not exact).
    #[arg(long, default_value_t = 2)]
    cap_tolerance: u64,
    /// The cap to extrapolate the catch-up time to (the shipped default).
    #[arg(long, default_value_t = 20)]
    default_cap: u64,
    /// Give up (FAIL) when not all users are refreshed by then.
    #[arg(long, default_value_t = 3600)]
    deadline_secs: u64,
    /// Wait after the last refresh, to see any user refreshed twice and to
    /// let PostgreSQL flush its statistics (it does so within 10 s of idle).
    #[arg(long, default_value_t = 11)]
    settle_secs: u64,
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Serialize)]
struct CatchUp {
    users: u64,
    seed_ms: u64,
    refreshed_all_secs: Option<f64>,
    achieved_per_sec: Option<f64>,
    histogram: BTreeMap<u64, u64>,
    peak_per_1s: u64,
    cap: u64,
    token_requests: u64,
    per_replica_scheduled_ok: Vec<f64>,
    not_active: i64,
    rows_with_old_refresh_token: i64,
    refresh_left_at_seed_secs: i64,
    at_default_cap_secs: f64,
    db: DbActivity,
}

pub async fn catch_up(args: CatchUpArgs) -> anyhow::Result<bool> {
    let http = client(Duration::from_secs(30))?;
    let fake = &args.seed.fake;
    let db = pool(&args.seed.store_url).await?;
    let before = fake_stats(&http, fake).await?;
    let seeded = seed_direct(&args.seed).await?;
    let since = Instant::now();
    let db_before = DbActivity::read(&db).await?;
    eprintln!(
        "seeded {} users in {} ms (fake {} ms); waiting for the schedulers",
        seeded.seeded,
        seeded.fake_ms + seeded.rows_ms,
        seeded.fake_ms
    );
    let users = args.seed.users;
    let deadline = Duration::from_secs(args.deadline_secs);
    let mut done = None;
    let mut last_log = Instant::now();
    while since.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = fake_control(&http, fake, false).await?;
        let refreshed = now.refreshes - before.refreshes;
        if refreshed >= users {
            done = Some(since.elapsed());
            break;
        }
        if last_log.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "{:.0} s: {refreshed} of {users} refreshed",
                since.elapsed().as_secs_f64()
            );
            last_log = Instant::now();
        }
    }
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let after = fake_stats(&http, fake).await?;
    let db_after = DbActivity::read(&db).await?;
    let first = args.seed.first;
    let histogram = refresh_histogram(
        &args.seed.prefix,
        first..first + users,
        &before.refreshes_by_user,
        &after.refreshes_by_user,
    );
    let mut per_replica = Vec::new();
    for target in &args.targets {
        let metrics = Metrics::scrape(target.join("metrics")?.as_str()).await?;
        per_replica.push(metrics.value(
            "atv_astra_refreshes_total",
            r#"trigger="scheduled",outcome="ok""#,
        ));
    }
    let not_active = count(
        &db,
        "SELECT count(*) FROM astra_users WHERE status <> 'active'",
    )
    .await?;
    let old = count_with(
        &db,
        "SELECT count(*) FROM astra_users WHERE refresh_issued_at <= $1",
        seeded.now_secs - args.seed.refresh_issued_ago_secs,
    )
    .await?;
    let c = CatchUp {
        users,
        seed_ms: seeded.fake_ms + seeded.rows_ms,
        refreshed_all_secs: done.map(|d| d.as_secs_f64()),
        achieved_per_sec: done.map(|d| users as f64 / d.as_secs_f64()),
        peak_per_1s: after.token_requests_peak_1s,
        cap: args.cap,
        token_requests: after.token_requests - before.token_requests,
        per_replica_scheduled_ok: per_replica,
        not_active,
        rows_with_old_refresh_token: old,
        refresh_left_at_seed_secs: REFRESH_LIFETIME_SECS - args.seed.refresh_issued_ago_secs,
        at_default_cap_secs: users as f64 / args.default_cap.max(1) as f64,
        db: db_after.since(db_before),
        histogram,
    };
    let once = c.histogram.get(&1).copied().unwrap_or(0);
    let never = c.histogram.get(&0).copied().unwrap_or(0);
    let more = users - once - never;
    let left = c.refresh_left_at_seed_secs as f64;
    let pass = done.is_some()
        && once == users
        && c.not_active == 0
        && c.rows_with_old_refresh_token == 0
        && c.peak_per_1s <= args.cap + args.cap_tolerance
        && c.refreshed_all_secs.is_some_and(|s| s < left)
        && c.at_default_cap_secs < left;
    let shares: Vec<String> = c
        .per_replica_scheduled_ok
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect();
    println!(
        "{} {}: {users} users due (refresh tokens {:.1} d old, {:.1} d left), refreshed in {} \
         at cap {}/s ({} achieved); refreshed once {once}, more than once {more}, never {never}; \
         token requests {}; peak at Astra {} per 1 s (cap {} + {}); per replica (scheduled ok) [{}]; \
         status changes {}; rows still on the old refresh token {}; at the default cap {}/s: {:.0} s \
         ({:.1} h) vs {:.1} d left; db: {} commits, {} tuples updated, {} fetched, {} blocks read, {} hit",
        word(pass),
        args.name,
        args.seed.refresh_issued_ago_secs as f64 / 86_400.0,
        left / 86_400.0,
        c.refreshed_all_secs
            .map_or("NOT FINISHED".to_owned(), |s| format!("{s:.1} s")),
        args.cap,
        c.achieved_per_sec
            .map_or("-".to_owned(), |r| format!("{r:.0}/s")),
        c.token_requests,
        c.peak_per_1s,
        args.cap,
        args.cap_tolerance,
        shares.join(", "),
        c.not_active,
        c.rows_with_old_refresh_token,
        args.default_cap,
        c.at_default_cap_secs,
        c.at_default_cap_secs / 3600.0,
        left / 86_400.0,
        c.db.xact_commit,
        c.db.tup_updated,
        c.db.tup_fetched,
        c.db.blks_read,
        c.db.blks_hit,
    );
    write_report(args.report.as_deref(), &c)?;
    Ok(pass)
}

// --------------------------------------------------------- replica kill

#[derive(clap::Args)]
pub struct ReplicaKillArgs {
    #[arg(long)]
    name: String,
    #[command(flatten)]
    fleet: Fleet,
    /// Indices (0-based) into `--targets` of the replicas that are not killed.
    #[arg(long, value_delimiter = ',', required = true)]
    survivors: Vec<usize>,
    #[arg(long)]
    store_url: String,
    /// The script's `kill UNIX_MS LEASES_HELD` line is read from here at the end.
    #[arg(long)]
    marks: PathBuf,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Longest a lease lasts (`astra.lease_secs`); orphaned ones are waited out.
    #[arg(long)]
    lease_secs: u64,
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Serialize, Default)]
struct ReplicaKill {
    users: usize,
    leases_held_at_kill: Option<u64>,
    load_requests: usize,
    survivor_answers: BTreeMap<String, usize>,
    victim_answers: BTreeMap<String, usize>,
    load_latency_ms: Option<Latency>,
    orphaned_leases_after_load: i64,
    check: RefreshCheck,
    not_active: i64,
    histogram_load: BTreeMap<u64, u64>,
    histogram_all: BTreeMap<u64, u64>,
}

fn status_key(a: &Answer) -> String {
    a.status.map_or("transport".to_owned(), |s| s.to_string())
}

/// The `kill` line the script wrote: the leases the victim held then.
fn leases_at_kill(marks: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(marks).ok()?;
    text.lines()
        .filter_map(|l| l.strip_prefix("kill "))
        .find_map(|rest| rest.split_whitespace().nth(1)?.parse().ok())
}

pub async fn replica_kill(args: ReplicaKillArgs) -> anyhow::Result<bool> {
    let http = client(Duration::from_millis(args.timeout_ms))?;
    let db = pool(&args.store_url).await?;
    let fleet = &args.fleet;
    anyhow::ensure!(
        !args.survivors.is_empty() && args.survivors.iter().all(|&s| s < fleet.targets.len()),
        "--survivors must index --targets"
    );
    let survivors: HashSet<usize> = args.survivors.iter().copied().collect();
    let before = fake_stats(&http, &fleet.fake).await?;
    let mut c = ReplicaKill {
        users: fleet.users,
        ..ReplicaKill::default()
    };

    let answers = fire(
        &http,
        fleet,
        args.concurrency,
        super::every_user_on_every_target(fleet, |_| Call::Token),
    )
    .await?;
    c.load_requests = answers.len();
    for a in &answers {
        let side = if survivors.contains(&a.target) {
            &mut c.survivor_answers
        } else {
            &mut c.victim_answers
        };
        *side.entry(status_key(a)).or_default() += 1;
    }
    let mut latencies: Vec<u64> = answers.iter().map(|a| a.latency_us).collect();
    latencies.sort_unstable();
    c.load_latency_ms = (!latencies.is_empty()).then(|| Latency::of(&latencies));
    c.leases_held_at_kill = leases_at_kill(&args.marks);
    let after_load = fake_stats(&http, &fleet.fake).await?;
    let users = 0..fleet.users as u64;
    c.histogram_load = refresh_histogram(
        &fleet.prefix,
        users.clone(),
        &before.refreshes_by_user,
        &after_load.refreshes_by_user,
    );
    c.orphaned_leases_after_load = count(
        &db,
        "SELECT count(*) FROM astra_users WHERE lease_holder IS NOT NULL",
    )
    .await?;
    // A dead holder's leases only end by expiring; requests before that wait.
    tokio::time::sleep(Duration::from_secs(args.lease_secs + 1)).await;

    c.check = refresh_everyone(&http, fleet, &args.survivors, args.concurrency).await?;
    c.not_active = count(
        &db,
        "SELECT count(*) FROM astra_users WHERE status <> 'active'",
    )
    .await?;
    let end = fake_stats(&http, &fleet.fake).await?;
    c.histogram_all = refresh_histogram(
        &fleet.prefix,
        users,
        &before.refreshes_by_user,
        &end.refreshes_by_user,
    );

    let survivor_bad: usize = c
        .survivor_answers
        .iter()
        .filter(|(k, _)| k.as_str() != "200" && k.as_str() != "503")
        .map(|(_, n)| n)
        .sum();
    let pass = c.leases_held_at_kill.is_some_and(|n| n > 0)
        && c.not_active == 0
        && survivor_bad == 0
        && c.check.all_moved_on(fleet.users);
    println!(
        "{} {}: {} users x {} replicas, one kill -9'd holding {} leases; load answers from \
         survivors {:?}, from the killed replica {:?}; leases left by the load {}; afterwards \
         through the survivors: {}; users not active {}; refreshes per user during the load {}, \
         whole drill {}; load latency {}",
        word(pass),
        args.name,
        fleet.users,
        fleet.targets.len(),
        c.leases_held_at_kill
            .map_or("UNKNOWN".to_owned(), |n| n.to_string()),
        c.survivor_answers,
        c.victim_answers,
        c.orphaned_leases_after_load,
        c.check.text(fleet.users),
        c.not_active,
        histogram_text(&c.histogram_load),
        histogram_text(&c.histogram_all),
        c.load_latency_ms
            .as_ref()
            .map_or(String::new(), |l| format!(
                "p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
                l.p50, l.p99, l.max
            )),
    );
    write_report(args.report.as_deref(), &c)?;
    Ok(pass)
}

/// Whether every user can still be refreshed: through `via` (indices into
/// the fleet's targets), each user's current token, then a stale-generation
/// refresh of it, which must move the user on to a token the fake holds.
#[derive(Serialize, Default)]
pub(super) struct RefreshCheck {
    token_ok: usize,
    refresh_ok: usize,
    moved_on: usize,
    current_at_astra: usize,
}

impl RefreshCheck {
    pub(super) fn all_moved_on(&self, users: usize) -> bool {
        self.token_ok == users
            && self.refresh_ok == users
            && self.moved_on == users
            && self.current_at_astra == users
    }

    pub(super) fn text(&self, users: usize) -> String {
        format!(
            "{}/{users} tokens 200, {}/{users} stale-generation refreshes 200, {} moved on, \
             {} current at Astra",
            self.token_ok, self.refresh_ok, self.moved_on, self.current_at_astra
        )
    }
}

pub(super) async fn refresh_everyone(
    http: &reqwest::Client,
    fleet: &Fleet,
    via: &[usize],
    concurrency: usize,
) -> anyhow::Result<RefreshCheck> {
    anyhow::ensure!(!via.is_empty(), "no target to check through");
    let pick = |u: usize, shift: usize| via[(u + shift) % via.len()];
    let mut c = RefreshCheck::default();
    let tokens = fire(
        http,
        fleet,
        concurrency,
        (0..fleet.users)
            .map(|u| (u, pick(u, 0), Call::Token))
            .collect(),
    )
    .await?;
    let mut generation = vec![None; fleet.users];
    for a in &tokens {
        if a.status == Some(200) {
            c.token_ok += 1;
            generation[a.user] = a.generation;
        }
    }
    let stale = fire(
        http,
        fleet,
        concurrency,
        (0..fleet.users)
            .filter_map(|u| generation[u].map(|g| (u, pick(u, 1), Call::Stale(g))))
            .collect(),
    )
    .await?;
    let mut handed = HashSet::new();
    for a in &stale {
        if a.status == Some(200) {
            c.refresh_ok += 1;
            // Distinct tokens only: one handed to two users would count once.
            let fresh = a.token.as_ref().is_some_and(|t| handed.insert(t.clone()));
            if fresh && a.generation > generation[a.user] {
                c.moved_on += 1;
            }
        }
    }
    c.current_at_astra = current_tokens(http, &fleet.fake, handed).await?.len();
    Ok(c)
}

// ----------------------------------------------------- scheduled faults

#[derive(clap::Args)]
pub struct ScheduledFaultsArgs {
    #[arg(long)]
    name: String,
    #[arg(long)]
    fake: url::Url,
    #[arg(long)]
    store_url: String,
    #[arg(long)]
    users: u64,
    #[arg(long, default_value = "u")]
    prefix: String,
    /// Token-endpoint calls per second the whole fleet may make.
    #[arg(long)]
    cap: u64,
    #[arg(long, default_value_t = 2)]
    cap_tolerance: u64,
    /// The least back-off accepted after a failed refresh.
    #[arg(long, default_value_t = 60)]
    min_backoff_secs: i64,
    /// Calls that may have been in flight when the faults stopped (and so
    /// end neither as a failure nor as a refresh on the row).
    #[arg(long, default_value_t = 48)]
    in_flight: u64,
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Serialize)]
struct ScheduledFaults {
    users: u64,
    token_requests: u64,
    refreshes: u64,
    peak_per_1s: u64,
    failed_users: i64,
    errors: BTreeMap<String, i64>,
    refreshed_users: i64,
    not_attempted_still_due: i64,
    not_backed_off: i64,
    min_backoff_secs: Option<i64>,
    not_active: i64,
    users_refreshed_twice: u64,
}

pub async fn scheduled_faults(args: ScheduledFaultsArgs) -> anyhow::Result<bool> {
    let http = client(Duration::from_secs(30))?;
    let db = pool(&args.store_url).await?;
    let fake = fake_stats(&http, &args.fake).await?;
    let errors: Vec<(String, i64)> = sqlx::query_as(
        "SELECT last_error, count(*) FROM astra_users WHERE last_error IS NOT NULL GROUP BY 1",
    )
    .fetch_all(&db)
    .await?;
    let (min_backoff,): (Option<i64>,) = sqlx::query_as(
        "SELECT min(next_refresh_at - updated_at) FROM astra_users WHERE last_error IS NOT NULL",
    )
    .fetch_one(&db)
    .await?;
    let histogram = refresh_histogram(
        &args.prefix,
        0..args.users,
        &BTreeMap::new(),
        &fake.refreshes_by_user,
    );
    let c = ScheduledFaults {
        users: args.users,
        token_requests: fake.token_requests,
        refreshes: fake.refreshes,
        peak_per_1s: fake.token_requests_peak_1s,
        failed_users: errors.iter().map(|(_, n)| n).sum(),
        errors: errors.into_iter().collect(),
        refreshed_users: count(&db, "SELECT count(*) FROM astra_users WHERE generation > 1")
            .await?,
        not_attempted_still_due: count(
            &db,
            "SELECT count(*) FROM astra_users WHERE generation = 1 AND last_error IS NULL \
             AND next_refresh_at <= CAST(floor(EXTRACT(EPOCH FROM now())) AS BIGINT)",
        )
        .await?,
        not_backed_off: count_with(
            &db,
            "SELECT count(*) FROM astra_users WHERE last_error IS NOT NULL \
             AND next_refresh_at - updated_at < $1",
            args.min_backoff_secs,
        )
        .await?,
        min_backoff_secs: min_backoff,
        not_active: count(
            &db,
            "SELECT count(*) FROM astra_users WHERE status <> 'active'",
        )
        .await?,
        users_refreshed_twice: histogram
            .iter()
            .filter(|(times, _)| **times > 1)
            .map(|(_, n)| n)
            .sum(),
    };
    let attempted = u64::try_from(c.failed_users + c.refreshed_users).unwrap_or(0);
    let pass = c.failed_users > 0
        && c.not_active == 0
        && c.not_backed_off == 0
        && c.users_refreshed_twice == 0
        && c.token_requests <= attempted + args.in_flight
        && c.peak_per_1s <= args.cap + args.cap_tolerance;
    println!(
        "{} {}: {} users due; {} failed refreshes recorded {:?}, each backed off >= {} s \
         (least {}, {} not backed off); {} refreshed after the faults, {} not yet tried; \
         token requests at Astra {} for {} users tried (allowance {} in flight); users refreshed \
         twice {}; peak at Astra {} per 1 s (cap {} + {}); status changes {}",
        word(pass),
        args.name,
        c.users,
        c.failed_users,
        c.errors,
        args.min_backoff_secs,
        c.min_backoff_secs
            .map_or("-".to_owned(), |s| format!("{s} s")),
        c.not_backed_off,
        c.refreshed_users,
        c.not_attempted_still_due,
        c.token_requests,
        attempted,
        args.in_flight,
        c.users_refreshed_twice,
        c.peak_per_1s,
        args.cap,
        args.cap_tolerance,
        c.not_active,
    );
    write_report(args.report.as_deref(), &c)?;
    Ok(pass)
}

// ----------------------------------------------------- rolling restart

#[derive(clap::Args)]
pub struct RollingArgs {
    #[arg(long)]
    name: String,
    /// The replicas' internal base URLs, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<url::Url>,
    #[arg(long)]
    users: usize,
    #[arg(long, default_value = "u")]
    prefix: String,
    /// Concurrent clients (one request at a time each).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Requests per second over all clients.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Load stops once this file exists (the script's last restart is done).
    #[arg(long)]
    stop_file: PathBuf,
    #[arg(long, default_value_t = 300)]
    max_secs: u64,
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    /// `restart …` lines from the script, counted for the verdict line.
    #[arg(long)]
    marks: Option<PathBuf>,
    #[arg(long)]
    report: Option<PathBuf>,
}

/// How one request through the load balancer ended.
enum Routed {
    Answered {
        status: u16,
        latency_us: u64,
    },
    /// A replica accepted it and then failed to answer (reset, timeout).
    Dropped(&'static str),
    /// Every replica refused the connection.
    NoReplica,
}

#[derive(Serialize, Default)]
struct Rolling {
    sent: u64,
    ok: u64,
    not_ok_by_status: BTreeMap<u16, u64>,
    dropped_by_kind: BTreeMap<&'static str, u64>,
    no_replica: u64,
    rerouted: u64,
    retried: u64,
    restarts: usize,
    duration_ms: u64,
    latency_ms: Option<Latency>,
}

/// Sends one GET like a load balancer that knows only which replicas
/// accept connections: start at `first`, move on while connections are
/// refused (counted in `rerouted`). A connection closed before any answer
/// (a keep-alive connection the stopping replica closed as the request went
/// out) is retried once on the next replica, as proxies and browsers retry
/// an idempotent request (RFC 9110 §9.2.2); counted in `retried`.
async fn through_balancer(
    http: &reqwest::Client,
    urls: &[url::Url],
    first: usize,
    rerouted: &mut u64,
    retried: &mut u64,
) -> Routed {
    match through_replicas(http, urls, first, rerouted).await {
        Routed::Dropped("closed") => {
            *retried += 1;
            through_replicas(http, urls, first + 1, rerouted).await
        }
        other => other,
    }
}

async fn through_replicas(
    http: &reqwest::Client,
    urls: &[url::Url],
    first: usize,
    rerouted: &mut u64,
) -> Routed {
    for step in 0..urls.len() {
        let url = urls[(first + step) % urls.len()].clone();
        let started = Instant::now();
        match http.get(url).send().await {
            Ok(answer) => {
                let status = answer.status().as_u16();
                return match answer.bytes().await {
                    Ok(_) => Routed::Answered {
                        status,
                        latency_us: started.elapsed().as_micros() as u64,
                    },
                    Err(e) if e.is_timeout() => Routed::Dropped("body timeout"),
                    Err(_) => Routed::Dropped("body cut"),
                };
            }
            Err(e) if e.is_connect() => *rerouted += 1,
            Err(e) if e.is_timeout() => return Routed::Dropped("timeout"),
            Err(_) => return Routed::Dropped("closed"),
        }
    }
    Routed::NoReplica
}

pub async fn rolling_restart(args: RollingArgs) -> anyhow::Result<bool> {
    let http = client(Duration::from_millis(args.timeout_ms))?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let per_client = Duration::from_secs_f64(args.connections as f64 / args.rate.max(0.1));
    let mut tasks = Vec::new();
    for client_no in 0..args.connections {
        let (http, stop, targets) = (http.clone(), Arc::clone(&stop), args.targets.clone());
        let (users, prefix) = (args.users, args.prefix.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Rolling::default();
            let (mut latencies, mut outcomes) = (Vec::new(), Vec::new());
            let mut tick = tokio::time::interval(per_client);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut turn = client_no;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let user = format!("{prefix}{}", fastrand::usize(..users.max(1)));
                let urls: Vec<url::Url> = targets
                    .iter()
                    .filter_map(|t| super::user_url(t, &user, "token").ok())
                    .collect();
                turn += 1;
                tally.sent += 1;
                let routed =
                    through_balancer(&http, &urls, turn, &mut tally.rerouted, &mut tally.retried)
                        .await;
                let status = match routed {
                    Routed::Answered { status, .. } => Some(status),
                    Routed::Dropped(_) | Routed::NoReplica => None,
                };
                outcomes.push((unix_ms(), crate::timeline::outcome(status)));
                match routed {
                    Routed::Answered {
                        status: 200,
                        latency_us,
                    } => {
                        tally.ok += 1;
                        latencies.push(latency_us);
                    }
                    Routed::Answered { status, latency_us } => {
                        *tally.not_ok_by_status.entry(status).or_default() += 1;
                        latencies.push(latency_us);
                    }
                    Routed::Dropped(kind) => *tally.dropped_by_kind.entry(kind).or_default() += 1,
                    Routed::NoReplica => tally.no_replica += 1,
                }
            }
            (tally, latencies, outcomes)
        }));
    }
    let limit = Duration::from_secs(args.max_secs);
    while !args.stop_file.exists() && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped_by_script = args.stop_file.exists();
    stop.store(true, Ordering::Relaxed);
    let mut c = Rolling::default();
    let (mut latencies, mut outcomes) = (Vec::new(), Vec::new());
    for task in tasks {
        let (tally, mut l, mut o) = task.await.context("a load client panicked")?;
        outcomes.append(&mut o);
        c.sent += tally.sent;
        c.ok += tally.ok;
        c.rerouted += tally.rerouted;
        c.retried += tally.retried;
        c.no_replica += tally.no_replica;
        for (k, v) in tally.not_ok_by_status {
            *c.not_ok_by_status.entry(k).or_default() += v;
        }
        for (k, v) in tally.dropped_by_kind {
            *c.dropped_by_kind.entry(k).or_default() += v;
        }
        latencies.append(&mut l);
    }
    crate::timeline::append(outcomes.into_iter())?;
    latencies.sort_unstable();
    c.latency_ms = (!latencies.is_empty()).then(|| Latency::of(&latencies));
    c.duration_ms = started.elapsed().as_millis() as u64;
    c.restarts = args
        .marks
        .as_deref()
        .and_then(|m| std::fs::read_to_string(m).ok())
        .map_or(0, |t| {
            t.lines().filter(|l| l.starts_with("restart ")).count()
        });
    let failed = c.not_ok_by_status.values().sum::<u64>()
        + c.dropped_by_kind.values().sum::<u64>()
        + c.no_replica;
    let pass = stopped_by_script && failed == 0 && c.ok == c.sent && c.restarts > 0;
    println!(
        "{} {}: {} replicas restarted one at a time under load; {} sent over {} users, {} x 200, \
         non-200 answers {:?}, accepted then dropped {:?}, no replica accepting {}; moved to \
         another replica on a refused connection {} times, retried after a closed connection {} \
         times; {} ms{}{}",
        word(pass),
        args.name,
        c.restarts,
        c.sent,
        args.users,
        c.ok,
        c.not_ok_by_status,
        c.dropped_by_kind,
        c.no_replica,
        c.rerouted,
        c.retried,
        c.duration_ms,
        c.latency_ms.as_ref().map_or(String::new(), |l| format!(
            ", latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
            l.p50, l.p99, l.max
        )),
        if stopped_by_script {
            ""
        } else {
            " (the script never signalled the end: timed out)"
        },
    );
    write_report(args.report.as_deref(), &c)?;
    Ok(pass)
}
