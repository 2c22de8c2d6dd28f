//! The performance section from `bench/run.sh`'s results
//! (`bench/results/bench.jsonl`, one JSON object per measurement, and
//! `machine.json`): the cached SDK token against the ceiling and the peers,
//! the targets, cold start, memory and start-up, the soak; and the
//! throughput and p99 charts against connections.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use super::{Charts, json_lines, thousands};
use crate::chart::{Lines, Series};

mod tables;

/// Display names, in table order.
const SERVERS: &[(&str, &str)] = &[
    ("ceiling", "bare actix-web, constant body (ceiling)"),
    ("vendor", "vendor, caller auth off"),
    (
        "vendor-auth",
        "vendor, every layer on (jwt, allowed Origin, rate limit)",
    ),
    ("vendor-before", "vendor before, every layer on"),
    ("node", "Node.js node:http, module-level cache (no auth)"),
    ("naive", "naive peer (exchange per request)"),
];

pub fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

pub fn rps(r: &Value) -> f64 {
    f(r, "requests") / (f(r, "duration_us") / 1e6).max(1e-9)
}

pub fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

/// The results of one run.sh, by kind.
pub struct Run {
    pub machine: Value,
    pub rows: Vec<Value>,
    /// wrk rows by (target, connections).
    pub wrk: BTreeMap<(String, u64), Value>,
    pub conns: Vec<u64>,
}

impl Run {
    pub fn of(&self, kind: &str) -> Vec<&Value> {
        self.rows.iter().filter(|r| r["kind"] == kind).collect()
    }
    pub fn one(&self, kind: &str) -> Option<&Value> {
        self.of(kind).into_iter().next()
    }
    pub fn row(&self, target: &str, conns: u64) -> Option<&Value> {
        self.wrk.get(&(target.to_owned(), conns))
    }
}

fn load(results: &Path) -> anyhow::Result<Option<Run>> {
    let rows = json_lines(&results.join("bench.jsonl"))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let machine = std::fs::read_to_string(results.join("machine.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let mut wrk = BTreeMap::new();
    for r in rows.iter().filter(|r| r["kind"] == "wrk") {
        let target = r["target"].as_str().unwrap_or_default().to_owned();
        wrk.insert((target, r["conns"].as_u64().unwrap_or(0)), r.clone());
    }
    let mut conns: Vec<u64> = wrk.keys().map(|k| k.1).collect();
    conns.sort_unstable();
    conns.dedup();
    Ok(Some(Run {
        machine,
        rows,
        wrk,
        conns,
    }))
}

pub fn section(results: &Path, charts: &Charts) -> anyhow::Result<String> {
    let Some(run) = load(results)? else {
        return Ok("## Performance (`atv-bench run bench`)\n\n\
                   Not run through the runner yet: see the hand-written sections below."
            .to_owned());
    };
    let mut out = String::from("## Performance (`atv-bench run bench`, `bench/run.sh`)\n\n");
    out.push_str(&tables::machine(&run));
    out.push_str(&throughput_charts(&run, charts)?);
    out.push_str(&tables::sdk_token(&run));
    out.push_str(&tables::targets(&run));
    out.push_str(&tables::soak(&run));
    out.push_str(&tables::cold_start(&run));
    out.push_str(&tables::memory(&run));
    Ok(out)
}

fn throughput_charts(run: &Run, charts: &Charts) -> anyhow::Result<String> {
    let series = |value: &dyn Fn(&Value) -> f64| -> Vec<Series> {
        SERVERS
            .iter()
            .filter_map(|(key, name)| {
                let points: Vec<(f64, f64)> = run
                    .conns
                    .iter()
                    .filter_map(|&c| run.row(key, c).map(|r| (c as f64, value(r))))
                    .collect();
                (!points.is_empty()).then(|| Series {
                    name: short_name(key, name),
                    points,
                })
            })
            .collect()
    };
    let chart = |title: &str, y: &str, s: Vec<Series>| Lines {
        title: title.to_owned(),
        x_label: "connections (log scale)".to_owned(),
        y_label: y.to_owned(),
        log_x: true,
        series: s,
        bands: Vec::new(),
    };
    let a = charts.put(
        "throughput",
        "requests per second against connections, per server",
        &chart(
            "Cached SDK token: requests/s",
            "requests per second",
            series(&rps),
        )
        .svg(),
    )?;
    let b = charts.put(
        "p99",
        "p99 latency against connections, per server",
        &chart(
            "Cached SDK token: p99 latency",
            "p99 ms",
            series(&|r| f(r, "p99_us") / 1000.0),
        )
        .svg(),
    )?;
    let mut out = String::new();
    let _ = write!(out, "{a}\n{b}\n\n");
    Ok(out)
}

fn short_name(key: &str, name: &str) -> String {
    match key {
        "vendor-auth" => "vendor, every layer on".to_owned(),
        "ceiling" => "ceiling".to_owned(),
        "node" => "Node.js peer".to_owned(),
        "naive" => "naive peer".to_owned(),
        _ => {
            name.split(',').next().unwrap_or(name).to_owned()
                + if key == "vendor" { ", auth off" } else { "" }
        }
    }
}

pub fn count(v: f64) -> String {
    thousands(v)
}
