//! `atv-bench astra out-of-band`: the proxy drill of issue 21. The fake Astra
//! replaces every user's access token behind the service's back (as another
//! client of the same Astra app refreshing would); then every user's
//! `GET /v1/user` goes through the proxy of every replica at once.
//!
//! PASS: no caller sees a `401` (nor anything but `200`), every answer is
//! the upstream's (the fake's user, the same one for a user on every
//! replica, never another user's), and Astra counts exactly one refresh per
//! user however many replicas met the dead token together.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use super::{DrillArgs, client, fake_stats};
use crate::probe::load::Latency;

/// One proxied call and what came back.
struct Proxied {
    user: usize,
    status: Option<u16>,
    /// The fake's user id in the answer: whose authority the call carried.
    astra_user: Option<String>,
    latency_us: u64,
}

pub async fn out_of_band(args: DrillArgs) -> anyhow::Result<bool> {
    let http = client(Duration::from_millis(args.timeout_ms))?;
    let fleet = &args.fleet;
    let before = fake_stats(&http, &fleet.fake).await?.refreshes_by_user;
    http.post(fleet.fake.join("_control")?)
        .json(&json!({ "replace_access_tokens": true }))
        .send()
        .await?
        .error_for_status()?;

    let started = Instant::now();
    let answers = burst(&http, &args).await?;
    let elapsed = started.elapsed();
    let after = fake_stats(&http, &fleet.fake).await?.refreshes_by_user;
    let refreshed: Vec<u64> = after
        .iter()
        .map(|(user, n)| n - before.get(user).copied().unwrap_or(0))
        .collect();
    let once = refreshed.iter().filter(|n| **n == 1).count();
    let more = refreshed.iter().filter(|n| **n > 1).count();

    let mut not_ok: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen: HashMap<usize, HashSet<String>> = HashMap::new();
    for a in &answers {
        match (a.status, &a.astra_user) {
            (Some(200), Some(id)) => {
                seen.entry(a.user).or_default().insert(id.clone());
            }
            (status, _) => {
                let key = status.map_or("transport".to_owned(), |s| s.to_string());
                *not_ok.entry(key).or_default() += 1;
            }
        }
    }
    let ok = answers.len() - not_ok.values().sum::<usize>();
    let split = seen.values().filter(|ids| ids.len() > 1).count();
    let distinct: HashSet<&String> = seen.values().flatten().collect();
    let mixed = seen.len() - distinct.len().min(seen.len());
    let pass = ok == answers.len() && once == fleet.users && more == 0 && split == 0 && mixed == 0;

    let mut latencies: Vec<u64> = answers.iter().map(|a| a.latency_us).collect();
    latencies.sort_unstable();
    let latency = Latency::of(&latencies);
    println!(
        "{} {}: {} users x {} replicas through the proxy after Astra replaced every access token, \
         {ok}/{} answers 200{}; refreshes at Astra: users refreshed once {once}, more than once {more}; \
         users answered as several Astra users {split}, answers carrying another user's authority {mixed}; \
         {} ms, latency p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
        if pass { "PASS" } else { "FAIL" },
        args.name,
        fleet.users,
        fleet.targets.len(),
        answers.len(),
        if not_ok.is_empty() {
            String::new()
        } else {
            format!(" (others {})", serde_json::to_string(&not_ok)?)
        },
        elapsed.as_millis(),
        latency.p50,
        latency.p99,
        latency.max,
    );
    Ok(pass)
}

/// Every user's `GET /v1/user` through every target's proxy, shuffled, with
/// `concurrency` in flight.
async fn burst(http: &reqwest::Client, args: &DrillArgs) -> anyhow::Result<Vec<Proxied>> {
    let fleet = &args.fleet;
    let mut calls = Vec::with_capacity(fleet.users * fleet.targets.len());
    for user in 0..fleet.users {
        for target in &fleet.targets {
            let name = format!("{}{user}", fleet.prefix);
            calls.push((
                user,
                target.join(&format!("astra/users/{name}/api/v1/user"))?,
            ));
        }
    }
    fastrand::shuffle(&mut calls);
    Ok(futures::stream::iter(calls)
        .map(|(user, url)| async move {
            let started = Instant::now();
            let mut answer = Proxied {
                user,
                status: None,
                astra_user: None,
                latency_us: 0,
            };
            match http.get(url).send().await {
                Ok(response) => {
                    answer.status = Some(response.status().as_u16());
                    let body = response.text().await.unwrap_or_default();
                    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    answer.astra_user = json["id"].as_str().map(str::to_owned);
                    if answer.status != Some(200) {
                        eprintln!("user {user} answered {:?}: {body}", answer.status);
                    }
                }
                Err(e) => eprintln!("transport error for user {user}: {e:#}"),
            }
            answer.latency_us = started.elapsed().as_micros() as u64;
            answer
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await)
}
