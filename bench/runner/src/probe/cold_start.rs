//! `atv-bench cold-start`, for `bench/run.sh`: as soon as the service accepts
//! connections, fires N concurrent first requests (each on its own
//! connection) and reports how they were answered and how long after the
//! process start the first token arrived. The upstream exchange count comes
//! from the fake upstream's `/_control` counters, read by the script.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::sync::Barrier;

use crate::probe::load::{Latency, unix_ms};

#[derive(clap::Args)]
pub struct Args {
    /// The token URL to GET.
    #[arg(long)]
    url: String,
    /// Host:port to poll until the service accepts connections.
    #[arg(long)]
    addr: SocketAddr,
    /// Concurrent first requests.
    #[arg(short, default_value_t = 10_000)]
    n: usize,
    /// When the service process was started (unix ms), for time to first token.
    #[arg(long)]
    t0_unix_ms: Option<u64>,
    /// Per-request limit; an answer later than this counts as hung.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let t0 = args.t0_unix_ms.unwrap_or_else(unix_ms);
    // Bounded wait for the listener: 10 s at 2 ms steps.
    let mut listening = false;
    for _ in 0..5000 {
        if tokio::net::TcpStream::connect(args.addr).await.is_ok() {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    anyhow::ensure!(listening, "{} never accepted a connection", args.addr);
    let listening_ms = unix_ms() - t0;

    // No pooling: every request is a first request on its own connection.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .context("cannot build the HTTP client")?;
    let barrier = Arc::new(Barrier::new(args.n));
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.n)
        .map(|_| {
            let client = client.clone();
            let url = args.url.clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                let began = Instant::now();
                let outcome = match client.get(&url).send().await {
                    Ok(answer) => {
                        let status = answer.status().as_u16();
                        match answer.bytes().await {
                            Ok(_) => Ok(status),
                            Err(e) => Err(if e.is_timeout() { "timeout" } else { "body" }),
                        }
                    }
                    Err(e) if e.is_timeout() => Err("timeout"),
                    Err(e) if e.is_connect() => Err("connect"),
                    Err(_) => Err("other"),
                };
                (outcome, unix_ms(), began.elapsed())
            })
        })
        .collect();
    let results = futures::future::join_all(tasks).await;

    let mut statuses = BTreeMap::<String, u64>::new();
    let mut errors = BTreeMap::<&str, u64>::new();
    let mut first_ok: Option<u64> = None;
    let mut latencies = Vec::with_capacity(results.len());
    for result in results {
        let (outcome, done, latency) = result.context("request task panicked")?;
        latencies.push(latency.as_micros() as u64);
        match outcome {
            Ok(status) => {
                *statuses.entry(status.to_string()).or_default() += 1;
                if status == 200 {
                    first_ok = Some(first_ok.map_or(done, |f| f.min(done)));
                }
            }
            Err(kind) => *errors.entry(kind).or_default() += 1,
        }
    }
    latencies.sort_unstable();
    let answered: u64 = statuses.values().sum();
    println!(
        "{}",
        json!({
            "n": args.n,
            "answered": answered,
            "statuses": statuses,
            "errors": errors,
            "listening_after_ms": listening_ms,
            "first_token_after_ms": first_ok.map(|f| f - t0),
            "burst_duration_ms": started.elapsed().as_secs_f64() * 1000.0,
            "latency_ms": Latency::of(&latencies),
        })
    );
    Ok(())
}
