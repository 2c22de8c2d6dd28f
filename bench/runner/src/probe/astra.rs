//! `atv-bench astra …`: the per-user Astra drills across replicas
//! (`bench/drills/astra-stampede.sh`). Seeding users through the fake
//! Astra's OAuth module page, the concurrent token requests, and the
//! verdicts, all judged against the fake's own view:
//!
//! * a handed-out token is *current* when the fake's `GET /v1/user` accepts
//!   it (the fake keeps exactly one valid access token per user); anything
//!   else is a replaced token handed out;
//! * refreshes per user are the difference of the fake's
//!   `refreshes_by_user` before and after the run (fake user ids; every user
//!   the fake knows was seeded by the drill).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::probe::load::{Latency, unix_ms};

mod drills;
mod out_of_band;
mod outage;
mod seed;

#[derive(clap::Subcommand)]
pub enum Astra {
    /// Authorizes users PREFIX0..PREFIX{N-1}: a code from the fake's OAuth
    /// module page, then `POST /astra/users/{u}/authorization-code` on the
    /// targets in turn. JSON on stdout.
    Seed(SeedArgs),
    /// Every user's token requested once per target, all at once in random
    /// order; then the one `PASS`/`FAIL astra-stampede` line.
    Stampede(DrillArgs),
    /// For every user, a stale-generation refresh on every target at once,
    /// then a token request on every target; one `PASS`/`FAIL` line.
    Coherence(DrillArgs),
    /// Creates users at the fake and writes their sealed rows straight into
    /// PostgreSQL (`COPY`); JSON on stdout.
    SeedDirect(seed::SeedDirectArgs),
    /// Seeds users whose refresh tokens are due, waits until the replicas'
    /// schedulers have refreshed them all; one `PASS`/`FAIL` line.
    CatchUp(drills::CatchUpArgs),
    /// Token requests on every replica while the script kills one; then a
    /// stale-generation refresh of every user through the survivors.
    ReplicaKill(drills::ReplicaKillArgs),
    /// Judges a scheduler run through Astra faults from the rows and the
    /// fake's counters.
    ScheduledFaults(drills::ScheduledFaultsArgs),
    /// Steady token load through a client that skips replicas refusing
    /// connections, until the script has restarted them all.
    RollingRestart(drills::RollingArgs),
    /// Token load over cached and uncached users while the script stops
    /// PostgreSQL and starts it again; then every user refreshed.
    StoreOutage(outage::StoreOutageArgs),
    /// The fake replaces every access token behind the service's back, then
    /// every user's `GET /v1/user` through every replica's proxy at once;
    /// one `PASS`/`FAIL` line.
    OutOfBand(DrillArgs),
}

impl Astra {
    /// True unless the drill failed.
    pub async fn run(self) -> anyhow::Result<bool> {
        match self {
            Astra::Seed(args) => seed(args).await.map(|()| true),
            Astra::Stampede(args) => stampede(args).await,
            Astra::Coherence(args) => coherence(args).await,
            Astra::SeedDirect(args) => seed::run(args).await.map(|()| true),
            Astra::CatchUp(args) => drills::catch_up(args).await,
            Astra::ReplicaKill(args) => drills::replica_kill(args).await,
            Astra::ScheduledFaults(args) => drills::scheduled_faults(args).await,
            Astra::RollingRestart(args) => drills::rolling_restart(args).await,
            Astra::StoreOutage(args) => outage::store_outage(args).await,
            Astra::OutOfBand(args) => out_of_band::out_of_band(args).await,
        }
    }
}

/// The fake Astra, the services in front of it, and the users `PREFIX0..N`.
#[derive(clap::Args)]
pub struct Fleet {
    /// The fake Astra's base URL.
    #[arg(long)]
    fake: url::Url,
    /// Base URLs of the services (replicas), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<url::Url>,
    #[arg(long)]
    users: usize,
    #[arg(long, default_value = "u")]
    prefix: String,
}

#[derive(clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    fleet: Fleet,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value = "bench-astra")]
    client_id: String,
    /// The redirect URI registered with the fake.
    #[arg(long)]
    redirect_uri: String,
}

#[derive(clap::Args)]
pub struct DrillArgs {
    /// Drill name for the verdict line.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    fleet: Fleet,
    /// Requests in flight at once, over all targets.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Contrast run (a peer expected to fail): print the line as `CONTRAST`
    /// and never exit 1.
    #[arg(long)]
    contrast: bool,
    /// Also write the counts as JSON here.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        // Below the service's 5 s keep-alive: a connection the server is
        // closing must not be picked for the next request ("transport" errors).
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .context("cannot build the HTTP client")
}

fn user_url(base: &url::Url, user: &str, rest: &str) -> anyhow::Result<url::Url> {
    base.join(&format!("astra/users/{user}/{rest}"))
        .context("bad target URL")
}

async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let http = client(Duration::from_secs(30))?;
    let authorize = args.fleet.fake.join("login/oauth/authorize")?;
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.fleet.users)
        .map(|i| {
            let (http, authorize, args) = (&http, &authorize, &args);
            async move {
                let user = format!("{}{i}", args.fleet.prefix);
                let answer = http
                    .post(authorize.clone())
                    .form(&[
                        ("client_id", args.client_id.as_str()),
                        ("redirect_uri", args.redirect_uri.as_str()),
                        ("response_type", "code"),
                        ("user_intent_id", user.as_str()),
                    ])
                    .send()
                    .await?;
                anyhow::ensure!(
                    answer.status() == 302,
                    "authorize page answered {}",
                    answer.status()
                );
                let location = answer
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .context("no Location")?;
                let code = url::Url::parse(location)?
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
                    .context("no code in Location")?;
                let target = &args.fleet.targets[i % args.fleet.targets.len()];
                let answer = http
                    .post(user_url(target, &user, "authorization-code")?)
                    .json(&json!({ "code": code }))
                    .send()
                    .await?;
                anyhow::ensure!(
                    answer.status() == 200,
                    "authorization-code for {user} answered {}: {}",
                    answer.status(),
                    answer.text().await.unwrap_or_default()
                );
                Ok(())
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(first) = failed.first() {
        anyhow::bail!(
            "{} of {} users not seeded; first: {first:#}",
            failed.len(),
            args.fleet.users
        );
    }
    println!(
        "{}",
        json!({ "seeded": args.fleet.users, "ms": started.elapsed().as_millis() as u64 })
    );
    Ok(())
}

/// One request of a drill and what came back.
#[derive(Clone)]
struct Answer {
    user: usize,
    target: usize,
    status: Option<u16>,
    token: Option<String>,
    generation: Option<i64>,
    latency_us: u64,
    /// When the answer (or the failure) came, Unix ms: the timeline's second.
    done_ms: u64,
}

#[derive(Clone, Copy)]
enum Call {
    Token,
    Stale(i64),
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    generation: Option<i64>,
}

/// Sends every `(user, target, call)` with at most `concurrency` in flight.
async fn fire(
    http: &reqwest::Client,
    fleet: &Fleet,
    concurrency: usize,
    jobs: Vec<(usize, usize, Call)>,
) -> anyhow::Result<Vec<Answer>> {
    let mut prepared = Vec::with_capacity(jobs.len());
    for (user, target, call) in jobs {
        let name = format!("{}{user}", fleet.prefix);
        let request = match call {
            Call::Token => http.get(user_url(&fleet.targets[target], &name, "token")?),
            Call::Stale(generation) => http
                .post(user_url(&fleet.targets[target], &name, "token/refresh")?)
                .json(&json!({ "stale_generation": generation })),
        };
        prepared.push((user, target, request));
    }
    let answers: Vec<Answer> = futures::stream::iter(prepared)
        .map(|(user, target, request)| async move {
            let started = Instant::now();
            let mut answer = Answer {
                user,
                target,
                status: None,
                token: None,
                generation: None,
                latency_us: 0,
                done_ms: 0,
            };
            match request.send().await {
                Ok(response) if response.status() != 200 => {
                    answer.status = Some(response.status().as_u16());
                    let body = response.text().await.unwrap_or_default();
                    eprintln!("user {user} answered {:?}: {body}", answer.status);
                }
                Ok(response) => {
                    answer.status = Some(200);
                    if let Ok(body) = response.json::<TokenBody>().await {
                        answer.token = Some(body.access_token);
                        answer.generation = body.generation;
                    }
                }
                // What the client met, for the post-mortem of a FAIL line.
                Err(e) => eprintln!("transport error for user {user}: {e:#}"),
            }
            answer.latency_us = started.elapsed().as_micros() as u64;
            answer.done_ms = unix_ms();
            answer
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    crate::timeline::append(
        answers
            .iter()
            .map(|a| (a.done_ms, crate::timeline::outcome(a.status))),
    )?;
    Ok(answers)
}

#[derive(Deserialize)]
struct FakeStats {
    latency_ms: u64,
    #[serde(default)]
    token_requests: u64,
    #[serde(default)]
    token_requests_peak_1s: u64,
    refreshes: u64,
    refreshes_by_user: BTreeMap<String, u64>,
}

async fn fake_stats(http: &reqwest::Client, fake: &url::Url) -> anyhow::Result<FakeStats> {
    fake_control(http, fake, true).await
}

/// The fake's counters; `by_user: false` leaves out the per-user map.
async fn fake_control(
    http: &reqwest::Client,
    fake: &url::Url,
    by_user: bool,
) -> anyhow::Result<FakeStats> {
    let mut url = fake.join("_control")?;
    url.set_query(Some(if by_user {
        "by_user=true"
    } else {
        "by_user=false"
    }));
    Ok(http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

async fn set_fake_latency(http: &reqwest::Client, fake: &url::Url, ms: u64) -> anyhow::Result<()> {
    http.post(fake.join("_control")?)
        .json(&json!({ "latency_ms": ms }))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// Which of these tokens the fake accepts now (`GET /v1/user`), asked with
/// the fake's latency at 0 and restored after.
async fn current_tokens(
    http: &reqwest::Client,
    fake: &url::Url,
    tokens: HashSet<String>,
) -> anyhow::Result<HashSet<String>> {
    let latency = fake_control(http, fake, false).await?.latency_ms;
    set_fake_latency(http, fake, 0).await?;
    let url = fake.join("v1/user")?;
    let checked: Vec<anyhow::Result<Option<String>>> = futures::stream::iter(tokens)
        .map(|token| {
            let url = url.clone();
            async move {
                let status = http.get(url).bearer_auth(&token).send().await?.status();
                anyhow::ensure!(
                    status == 200 || status == 401,
                    "fake /v1/user answered {status}"
                );
                Ok((status == 200).then_some(token))
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    set_fake_latency(http, fake, latency).await?;
    checked.into_iter().filter_map(Result::transpose).collect()
}

/// Counts one drill's answers against the fake.
#[derive(Serialize, Default)]
struct Counts {
    users: usize,
    targets: usize,
    requests: usize,
    ok: usize,
    not_ok_by_status: BTreeMap<String, usize>,
    /// 200 answers whose token the fake no longer accepts.
    replaced_handed_out: usize,
    /// Users handed more than one distinct token.
    users_with_several_tokens: usize,
    refreshes: u64,
    users_refreshed_once: usize,
    users_refreshed_more: usize,
    users_not_refreshed: usize,
    /// Refreshes beyond one per user.
    extra_refreshes: u64,
    duration_ms: u64,
    latency_ms: Option<Latency>,
}

async fn judge(
    http: &reqwest::Client,
    args: &DrillArgs,
    before: &FakeStats,
    answers: &[Answer],
    duration: Duration,
) -> anyhow::Result<Counts> {
    let after = fake_stats(http, &args.fleet.fake).await?;
    let mut c = Counts {
        users: args.fleet.users,
        targets: args.fleet.targets.len(),
        requests: answers.len(),
        duration_ms: duration.as_millis() as u64,
        refreshes: after.refreshes - before.refreshes,
        ..Counts::default()
    };
    for (user, count) in &after.refreshes_by_user {
        let delta = count - before.refreshes_by_user.get(user).copied().unwrap_or(0);
        match delta {
            0 => {}
            1 => c.users_refreshed_once += 1,
            n => {
                c.users_refreshed_more += 1;
                c.extra_refreshes += n - 1;
            }
        }
    }
    c.users_not_refreshed = args
        .fleet
        .users
        .saturating_sub(c.users_refreshed_once + c.users_refreshed_more);
    let mut tokens_by_user: HashMap<usize, HashSet<&str>> = HashMap::new();
    for a in answers {
        match (a.status, &a.token) {
            (Some(200), Some(token)) => {
                c.ok += 1;
                tokens_by_user.entry(a.user).or_default().insert(token);
            }
            (status, _) => {
                let key = status.map_or("transport".to_owned(), |s| s.to_string());
                *c.not_ok_by_status.entry(key).or_default() += 1;
            }
        }
    }
    c.users_with_several_tokens = tokens_by_user.values().filter(|t| t.len() > 1).count();
    let handed: HashSet<String> = answers.iter().filter_map(|a| a.token.clone()).collect();
    let current = current_tokens(http, &args.fleet.fake, handed).await?;
    c.replaced_handed_out = answers
        .iter()
        .filter(|a| a.status == Some(200))
        .filter(|a| a.token.as_ref().is_some_and(|t| !current.contains(t)))
        .count();
    let mut latencies: Vec<u64> = answers.iter().map(|a| a.latency_us).collect();
    latencies.sort_unstable();
    c.latency_ms = (!latencies.is_empty()).then(|| Latency::of(&latencies));
    Ok(c)
}

/// Prints the verdict line (and the report); true on PASS.
fn verdict(args: &DrillArgs, c: &Counts) -> anyhow::Result<bool> {
    let pass = c.ok == c.requests
        && c.users_refreshed_once == c.users
        && c.users_refreshed_more == 0
        && c.users_not_refreshed == 0
        && c.replaced_handed_out == 0
        && c.users_with_several_tokens == 0;
    let word = match (pass, args.contrast) {
        (true, _) => "PASS",
        (false, true) => "CONTRAST",
        (false, false) => "FAIL",
    };
    let latency = c.latency_ms.as_ref().map_or(String::new(), |l| {
        format!(
            ", latency p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
            l.p50, l.p99, l.max
        )
    });
    println!(
        "{word} {}: {} users x {} replicas, {}/{} answers 200{}; refreshes at Astra {} \
         (users refreshed once {}, more than once {}, never {}; extra refreshes {}); \
         replaced tokens handed out {}; users handed several tokens {}; {} ms{latency}",
        args.name,
        c.users,
        c.targets,
        c.ok,
        c.requests,
        if c.not_ok_by_status.is_empty() {
            String::new()
        } else {
            format!(" (others {:?})", c.not_ok_by_status)
        },
        c.refreshes,
        c.users_refreshed_once,
        c.users_refreshed_more,
        c.users_not_refreshed,
        c.extra_refreshes,
        c.replaced_handed_out,
        c.users_with_several_tokens,
        c.duration_ms,
    );
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(c)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(pass || args.contrast)
}

/// Every (user, target) once, shuffled.
fn every_user_on_every_target(
    fleet: &Fleet,
    call: impl Fn(usize) -> Call,
) -> Vec<(usize, usize, Call)> {
    let mut jobs: Vec<_> = (0..fleet.users)
        .flat_map(|u| (0..fleet.targets.len()).map(move |t| (u, t)))
        .map(|(u, t)| (u, t, call(u)))
        .collect();
    fastrand::shuffle(&mut jobs);
    jobs
}

async fn stampede(args: DrillArgs) -> anyhow::Result<bool> {
    let http = client(Duration::from_millis(args.timeout_ms))?;
    let before = fake_stats(&http, &args.fleet.fake).await?;
    let started = Instant::now();
    let answers = fire(
        &http,
        &args.fleet,
        args.concurrency,
        every_user_on_every_target(&args.fleet, |_| Call::Token),
    )
    .await?;
    let counts = judge(&http, &args, &before, &answers, started.elapsed()).await?;
    verdict(&args, &counts)
}

async fn coherence(args: DrillArgs) -> anyhow::Result<bool> {
    let http = client(Duration::from_millis(args.timeout_ms))?;
    // The generation every user is at now (fresh tokens: no refresh).
    let firsts = fire(
        &http,
        &args.fleet,
        args.concurrency,
        (0..args.fleet.users)
            .map(|u| (u, u % args.fleet.targets.len(), Call::Token))
            .collect(),
    )
    .await?;
    let mut generation = vec![None; args.fleet.users];
    for a in &firsts {
        generation[a.user] = a.generation.filter(|_| a.status == Some(200));
    }
    let missing = generation.iter().filter(|g| g.is_none()).count();
    anyhow::ensure!(
        missing == 0,
        "{missing} users had no current generation to report stale"
    );

    let before = fake_stats(&http, &args.fleet.fake).await?;
    let started = Instant::now();
    let mut answers = fire(
        &http,
        &args.fleet,
        args.concurrency,
        every_user_on_every_target(&args.fleet, |u| Call::Stale(generation[u].unwrap_or(0))),
    )
    .await?;
    // Right after: every replica hands out the token the fake holds.
    answers.extend(
        fire(
            &http,
            &args.fleet,
            args.concurrency,
            every_user_on_every_target(&args.fleet, |_| Call::Token),
        )
        .await?,
    );
    let counts = judge(&http, &args, &before, &answers, started.elapsed()).await?;
    verdict(&args, &counts)
}
