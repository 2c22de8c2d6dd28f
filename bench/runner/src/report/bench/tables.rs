//! The performance section's Markdown tables (what bench/report.py wrote).

use std::fmt::Write;

use serde_json::Value;

use super::{Run, SERVERS, count, f, ms, rps};

const MACHINE_KEYS: &[&str] = &[
    "date", "commit", "cpu", "nproc", "mem_gib", "kernel", "rustc", "wrk", "loadavg",
];

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(" "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn errors(r: &Value) -> f64 {
    [
        "connect_errors",
        "read_errors",
        "write_errors",
        "non_2xx",
        "timeouts",
    ]
    .iter()
    .map(|k| f(r, k))
    .sum()
}

pub fn machine(run: &Run) -> String {
    let mut out = String::from(
        "Numbers from one run on the machine below. Ratios to the ceiling are what \
         transfers to other machines, not the absolute numbers.\n\n| machine | |\n|---|---|\n",
    );
    for k in MACHINE_KEYS {
        let _ = writeln!(out, "| {k} | {} |", text(&run.machine[*k]));
    }
    let secs = run
        .wrk
        .values()
        .next()
        .map_or(0.0, |r| f(r, "duration_us") / 1e6);
    let latency = run
        .one("startup")
        .map_or("?".to_owned(), |s| text(&s["upstream_latency_ms"]));
    let _ = write!(
        out,
        "\nSet-up: every server is pinned to one core (`taskset`) with 1 worker; `wrk -t1` runs \
         on the other core, {secs:.0} s per row after a 2 s warm-up, all rows in the same run and \
         interleaved per connection count. The fake upstream answers after {latency} ms. Other \
         processes shared the machine (load average above).\n\n"
    );
    out
}

pub fn sdk_token(run: &Run) -> String {
    let mut out = String::from(
        "### Cached `/astrada-sdk-token` against the ceiling\n\n\
         | server | connections | req/s | % of ceiling | p50 ms | p99 ms | max ms | errors | upstream exchanges |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let naive: Vec<&Value> = run.of("naive_exchanges");
    let before_rev = run
        .one("before")
        .and_then(|b| b["rev"].as_str())
        .filter(|s| !s.is_empty());
    for &c in &run.conns {
        let ceiling = run.row("ceiling", c);
        for (key, name) in SERVERS {
            let Some(r) = run.row(key, c) else { continue };
            let name = match (key, before_rev) {
                (&"vendor-before", Some(rev)) => format!("vendor before ({rev}), every layer on"),
                _ => (*name).to_owned(),
            };
            let pct = ceiling.map_or(String::new(), |ce| {
                format!("{:.1} %", 100.0 * rps(r) / rps(ce))
            });
            let exchanges = match *key {
                "naive" => naive
                    .iter()
                    .find(|n| n["conns"].as_u64() == Some(c))
                    .map_or(String::new(), |n| text(&n["exchanges"])),
                k if k.starts_with("vendor") => "0".to_owned(),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {name} | {c} | {} | {pct} | {} | {} | {} | {} | {exchanges} |",
                count(rps(r)),
                ms(f(r, "p50_us")),
                ms(f(r, "p99_us")),
                ms(f(r, "max_us")),
                errors(r)
            );
        }
    }
    if let Some(auth) = run.one("auth").filter(|a| a["measured"] == false) {
        let _ = write!(
            out,
            "\nCaller auth on was not measured: {}\n",
            text(&auth["note"])
        );
    }
    if let Some(v) = run.one("vendor_exchanges") {
        let _ = write!(
            out,
            "\nThe vendor's own counters over all its rows: {:.0} cache hits, {:.0} misses, {:.0} \
             SDK token exchange(s) (the start-up one).\n",
            f(v, "hits"),
            f(v, "misses"),
            f(v, "sdk")
        );
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

pub fn targets(run: &Run) -> String {
    let mut out = String::from("\n### Targets\n\n| target | measured | verdict |\n|---|---|---|\n");
    for (key, floor, label) in [
        (
            "vendor",
            90.0,
            "auth off ≥ 90 % of the ceiling's throughput",
        ),
        (
            "vendor-auth",
            75.0,
            "auth on ≥ 75 % of the ceiling's throughput",
        ),
    ] {
        let vals: Vec<(u64, f64)> = run
            .conns
            .iter()
            .filter_map(|&c| {
                Some((
                    c,
                    100.0 * rps(run.row(key, c)?) / rps(run.row("ceiling", c)?),
                ))
            })
            .collect();
        let shown: Vec<String> = vals
            .iter()
            .map(|(c, v)| format!("{v:.1} % at {c}"))
            .collect();
        let met = !vals.is_empty() && vals.iter().all(|(_, v)| *v >= floor);
        let _ = writeln!(
            out,
            "| {label} | {} | {} |",
            shown.join(", "),
            if vals.is_empty() { "—" } else { verdict(met) }
        );
    }
    // The hot-path goal: every production layer on, against the ceiling.
    for (c, floor) in [(1, 95.0), (64, 85.0), (256, 85.0)] {
        let (Some(r), Some(ce)) = (run.row("vendor-auth", c), run.row("ceiling", c)) else {
            continue;
        };
        let pct = 100.0 * rps(r) / rps(ce);
        let _ = writeln!(
            out,
            "| every layer on ≥ {floor} % of the ceiling at {c} | {pct:.1} % | {} |",
            verdict(pct >= floor)
        );
        if c > 1 {
            let (a, b) = (f(r, "p99_us"), f(ce, "p99_us"));
            let _ = writeln!(
                out,
                "| every layer on: p99 ≤ 1.3× the ceiling's at {c} | {} ms vs {} ms | {} |",
                ms(a),
                ms(b),
                verdict(a <= 1.3 * b)
            );
        }
    }
    // The second hot-path pass's goals (issue 24), beside the older ones above.
    for (key, c, floor, label) in [
        ("vendor-auth", 64, 70.0, "every layer on"),
        ("vendor-auth", 256, 70.0, "every layer on"),
        ("vendor", 64, 85.0, "auth off"),
    ] {
        if let (Some(r), Some(ce)) = (run.row(key, c), run.row("ceiling", c)) {
            let pct = 100.0 * rps(r) / rps(ce);
            let _ = writeln!(
                out,
                "| {label} ≥ {floor} % of the ceiling at {c} (second pass) | {pct:.1} % | {} |",
                verdict(pct >= floor)
            );
        }
    }
    for (key, label) in [("vendor", "auth off"), ("vendor-auth", "auth on")] {
        if let Some(r) = run.row(key, 64) {
            let p99 = f(r, "p99_us");
            let _ = writeln!(
                out,
                "| p99 < 2 ms at 64 connections, {label} | {} ms | {} |",
                ms(p99),
                verdict(p99 < 2000.0)
            );
        }
    }
    for cs in run.of("cold_start") {
        let n = f(cs, "sdk_exchanges");
        let _ = writeln!(
            out,
            "| cold start ({} concurrent first requests, upstream {} ms): 1 exchange | {n} | {} |",
            count(f(cs, "n")),
            f(cs, "upstream_latency_ms"),
            verdict(n == 1.0)
        );
    }
    out
}

pub fn soak(run: &Run) -> String {
    let Some(s) = run.one("soak") else {
        return String::new();
    };
    let p = &s["probe"];
    let ok = p["statuses"]["200"].as_f64().unwrap_or(0.0);
    let mut out = format!(
        "\n### Refresh soak\n\nUpstream tokens live {} s (refreshed when half is left); the probe \
         sends {:.0} req/s over 16 connections and accounts for every request.\n\n\
         | duration | sent | 200 | failed | hung | sdk exchanges | api exchanges | expected | rotations seen \
         | cache misses | p50 ms | p99 ms | max ms | max ms within 1 s of a rotation |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        f(s, "lifetime_secs"),
        f(s, "rate")
    );
    let _ = writeln!(
        out,
        "| {:.0} s | {} | {} | {} | {} | {} | {} | {}..{} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
        f(p, "duration_secs"),
        count(f(p, "sent")),
        count(ok),
        f(p, "sent") - ok,
        f(p, "hung"),
        f(s, "sdk_exchanges"),
        f(s, "api_exchanges"),
        f(s, "min_windows"),
        f(s, "max_windows"),
        f(p, "rotations"),
        f(s, "misses"),
        f(&p["latency_ms"], "p50"),
        f(&p["latency_ms"], "p99"),
        f(&p["latency_ms"], "max"),
        f(p, "rotation_window_max_ms")
    );
    out
}

pub fn cold_start(run: &Run) -> String {
    let rows = run.of("cold_start");
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n### Cold start\n\nThe service is started and, as soon as it accepts connections, N \
         requests are fired at once, each on its own connection.\n\n\
         | upstream latency | requests | 200 | other answers | errors | upstream exchanges (sdk / api) \
         | callers that waited | listening after | first token after | p50 ms | p99 ms | max ms |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for cs in rows {
        let mut statuses = cs["statuses"].as_object().cloned().unwrap_or_default();
        let ok = statuses
            .remove("200")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        let other = if statuses.is_empty() {
            "0".to_owned()
        } else {
            Value::Object(statuses).to_string()
        };
        let errs: f64 = cs["errors"]
            .as_object()
            .map_or(0.0, |e| e.values().filter_map(Value::as_f64).sum());
        let lat = &cs["latency_ms"];
        let _ = writeln!(
            out,
            "| {} ms | {} | {} | {other} | {errs} | {} / {} | {:.0} | {} ms | {} ms | {:.1} | {:.1} | {:.1} |",
            f(cs, "upstream_latency_ms"),
            count(f(cs, "n")),
            count(ok),
            f(cs, "sdk_exchanges"),
            f(cs, "api_exchanges"),
            f(cs, "misses"),
            f(cs, "listening_after_ms"),
            f(cs, "first_token_after_ms"),
            f(lat, "p50"),
            f(lat, "p99"),
            f(lat, "max")
        );
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub fn memory(run: &Run) -> String {
    let mut out = String::from("\n### Memory, size, start-up\n\n| measure | value |\n|---|---|\n");
    const MIB: f64 = 1024.0;
    if let Some(st) = run.one("startup") {
        let runs: Vec<&Value> = st["runs"]
            .as_array()
            .map(|r| r.iter().collect())
            .unwrap_or_default();
        let at = |i: usize| median(runs.iter().filter_map(|r| r[i].as_f64()).collect());
        let bytes = f(st, "binary_bytes");
        let _ = writeln!(
            out,
            "| release binary | {:.1} MiB ({} bytes, not stripped) |",
            bytes / MIB / MIB,
            count(bytes)
        );
        let _ = writeln!(
            out,
            "| start-up to listening (median of {}) | {} ms |",
            runs.len(),
            at(0)
        );
        let _ = writeln!(
            out,
            "| start-up to ready, both tokens fetched (median of {}; upstream {} ms) | {} ms |",
            runs.len(),
            f(st, "upstream_latency_ms"),
            at(1)
        );
    }
    if let Some(mi) = run.one("memory_idle") {
        let _ = writeln!(
            out,
            "| RSS idle (ready, before load) | {:.1} MiB |",
            f(mi, "rss_kb") / MIB
        );
        if f(mi, "ceiling_rss_kb") > 0.0 {
            let _ = writeln!(
                out,
                "| ceiling's RSS idle, for scale | {:.1} MiB |",
                f(mi, "ceiling_rss_kb") / MIB
            );
        }
    }
    if let Some(ml) = run.one("memory_load") {
        let _ = writeln!(
            out,
            "| RSS after the load rows / peak | {:.1} MiB / {:.1} MiB |",
            f(ml, "rss_kb") / MIB,
            f(ml, "peak_kb") / MIB
        );
    }
    out
}
