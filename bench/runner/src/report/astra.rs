//! The per-user token section from `bench/astra-bench.sh`'s results
//! (`bench/results/astra-bench.jsonl`): the wrk rows (cache warm, cold,
//! off, the SDK token for scale, many users) as a table and two bar charts,
//! and the start-up and memory measures.

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use super::bench::{f, ms, rps};
use super::{Charts, json_lines, thousands};
use crate::chart::Bars;

pub fn section(results: &Path, charts: &Charts) -> anyhow::Result<String> {
    let rows = json_lines(&results.join("astra-bench.jsonl"))?;
    if rows.is_empty() {
        return Ok("## Per-user tokens (`atv-bench run astra-bench`)\n\n\
                   Not run through the runner yet: see the hand-written Astra sections below."
            .to_owned());
    }
    let wrk: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "wrk").collect();
    let label = |r: &Value| r["label"].as_str().unwrap_or_default().to_owned();
    let mut out = String::from(
        "## Per-user tokens (`atv-bench run astra-bench`, `bench/astra-bench.sh`)\n\n\
         One replica (1 worker, pinned), wrk `-t1` on the other core; per-user requests pick a \
         random user of all stored (`bench/astra-users.lua`). Warm: right after a pass reading \
         every user once. Cold: the replica was just restarted. Off: `ATV_ASTRA__CACHE_CAPACITY=0`.\n\n",
    );
    let bars = |value: &dyn Fn(&Value) -> f64| -> Vec<(String, f64)> {
        wrk.iter().map(|r| (label(r), value(r))).collect()
    };
    let a = charts.put(
        "astra-token-rps",
        "per-user token requests per second",
        &Bars {
            title: "Per-user tokens: requests/s".to_owned(),
            unit: "req/s".to_owned(),
            bars: bars(&rps),
        }
        .svg(),
    )?;
    let b = charts.put(
        "astra-token-p99",
        "per-user token p99 latency",
        &Bars {
            title: "Per-user tokens: p99 latency".to_owned(),
            unit: "ms".to_owned(),
            bars: bars(&|r| f(r, "p99_us") / 1000.0),
        }
        .svg(),
    )?;
    let _ = write!(out, "{a}\n{b}\n\n");
    let (conns, secs) = wrk
        .first()
        .map_or((0.0, 0.0), |r| (f(r, "conns"), f(r, "duration_us") / 1e6));
    let _ = write!(
        out,
        "| GET, {conns} connections, {secs:.0} s | req/s | p50 ms | p99 ms | max ms | non-2xx | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in &wrk {
        let errors = f(r, "connect_errors") + f(r, "read_errors") + f(r, "timeouts");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {errors} |",
            label(r),
            thousands(rps(r)),
            ms(f(r, "p50_us")),
            ms(f(r, "p99_us")),
            ms(f(r, "max_us")),
            f(r, "non_2xx")
        );
    }
    out.push_str("\n| measure | value |\n|---|---|\n");
    for m in rows.iter().filter(|r| r["kind"] == "measure") {
        let _ = writeln!(
            out,
            "| {} | {} |",
            label(m),
            m["value"].as_str().unwrap_or_default()
        );
    }
    Ok(out)
}
