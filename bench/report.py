"""Renders bench/run.sh's results (JSON lines) as bench/RESULTS.md."""

import json
import statistics
import sys

machine = json.load(open(sys.argv[1]))
rows = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
of = lambda kind: [r for r in rows if r["kind"] == kind]
one = lambda kind: (of(kind) or [None])[0]

wrk = {(r["target"], r["conns"]): r for r in of("wrk")}
naive_ex = {r["conns"]: r["exchanges"] for r in of("naive_exchanges")}
auth = one("auth") or {"measured": False, "note": "not attempted"}
conns = sorted({c for _, c in wrk})
out = []
w = out.append


def rps(r):
    return r["requests"] / (r["duration_us"] / 1e6)


def errors(r):
    return r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["non_2xx"] + r["timeouts"]


def ms(us):
    return f"{us / 1000:.2f}"


w("# Benchmark results\n")
w("Written by `bench/run.sh`; numbers from one run on the machine below. "
  "Ratios to the ceiling are what transfers to other machines, not the absolute numbers.\n")
w("| machine | |\n|---|---|")
for k in ["date", "commit", "cpu", "nproc", "mem_gib", "kernel", "rustc", "wrk", "loadavg"]:
    v = machine.get(k)
    w(f"| {k} | {' '.join(v) if isinstance(v, list) else v} |")
secs = round(next(iter(wrk.values()))["duration_us"] / 1e6) if wrk else 0
w(f"\nSet-up: every server is pinned to one core (`taskset`) with 1 worker; `wrk -t1` runs on the "
  f"other core, {secs} s per row after a 2 s warm-up, all rows in the same run and interleaved per "
  f"connection count. The fake upstream answers after "
  f"{(one('startup') or {}).get('upstream_latency_ms', '?')} ms. Other processes shared the machine "
  f"(load average above).\n")

w("## Cached `/astrada-sdk-token` against the ceiling\n")
w("| server | connections | req/s | % of ceiling | p50 ms | p99 ms | max ms | errors | upstream exchanges |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
names = {"ceiling": "bare actix-web, constant body (ceiling)", "vendor": "vendor, caller auth off",
         "vendor-auth": "vendor, every layer on (jwt, allowed Origin, rate limit)",
         "node": "Node.js node:http, module-level cache (no auth)",
         "naive": "naive peer (exchange per request)",
         "vendor-before": f"vendor before ({(one('before') or {}).get('rev') or 'older build'}), every layer on"}
for c in conns:
    ceiling = wrk.get(("ceiling", c))
    for t in ["ceiling", "vendor", "vendor-auth", "vendor-before", "node", "naive"]:
        r = wrk.get((t, c))
        if not r:
            if t == "vendor-auth":
                w(f"| {names[t]} | {c} | not measured | | | | | | |")
            continue
        pct = f"{100 * rps(r) / rps(ceiling):.1f} %" if ceiling else ""
        ex = naive_ex.get(c, "") if t == "naive" else ("0" if t.startswith("vendor") else "")
        w(f"| {names[t]} | {c} | {rps(r):,.0f} | {pct} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | "
          f"{ms(r['max_us'])} | {errors(r)} | {ex} |")
if not auth["measured"]:
    w(f"\nCaller auth on was not measured: {auth['note']}\n")
ve = one("vendor_exchanges")
if ve:
    w(f"\nThe vendor's own counters over all its rows: {ve['hits']:.0f} cache hits, {ve['misses']:.0f} misses, "
      f"{ve['sdk']:.0f} SDK token exchange(s) (the start-up one).\n")

w("### Targets\n")
w("| target | measured | verdict |\n|---|---|---|")
def ratio_row(t, floor, label):
    vals = [(c, 100 * rps(wrk[(t, c)]) / rps(wrk[("ceiling", c)])) for c in conns
            if (t, c) in wrk and ("ceiling", c) in wrk]
    if not vals:
        w(f"| {label} | not measured | — |")
        return
    txt = ", ".join(f"{v:.1f} % at {c}" for c, v in vals)
    w(f"| {label} | {txt} | {'met' if all(v >= floor for _, v in vals) else 'MISSED'} |")
ratio_row("vendor", 90, "auth off ≥ 90 % of the ceiling's throughput")
ratio_row("vendor-auth", 75, "auth on ≥ 75 % of the ceiling's throughput")
# The hot-path goal: every production layer on, against the ceiling.
for c, floor in [(1, 95), (64, 85), (256, 85)]:
    r, ce = wrk.get(("vendor-auth", c)), wrk.get(("ceiling", c))
    if r and ce:
        pct = 100 * rps(r) / rps(ce)
        w(f"| every layer on ≥ {floor} % of the ceiling at {c} | {pct:.1f} % | "
          f"{'met' if pct >= floor else 'MISSED'} |")
        if c > 1:
            w(f"| every layer on: p99 ≤ 1.3× the ceiling's at {c} | {ms(r['p99_us'])} ms vs "
              f"{ms(ce['p99_us'])} ms | {'met' if r['p99_us'] <= 1.3 * ce['p99_us'] else 'MISSED'} |")
for t, label in [("vendor", "auth off"), ("vendor-auth", "auth on")]:
    r = wrk.get((t, 64))
    if r:
        w(f"| p99 < 2 ms at 64 connections, {label} | {ms(r['p99_us'])} ms | "
          f"{'met' if r['p99_us'] < 2000 else 'MISSED'} |")
soak = one("soak")
if soak:
    w(f"| soak: one exchange per refresh window per set | sdk {soak['sdk_exchanges']}, api "
      f"{soak['api_exchanges']} (expected {soak['min_windows']}..{soak['max_windows']}), "
      f"{soak['misses']:.0f} cache misses | {'met' if soak['pass'] else 'see soak'} |")
    w(f"| soak: max latency across rotations < 5 ms | {soak['probe']['rotation_window_max_ms']:.2f} ms | "
      f"{'met' if soak['probe']['rotation_window_max_ms'] < 5 else 'MISSED'} |")
for cs in of("cold_start"):
    w(f"| cold start ({cs['n']:,} concurrent first requests, upstream {cs['upstream_latency_ms']} ms): "
      f"1 exchange | {cs['sdk_exchanges']} | {'met' if cs['sdk_exchanges'] == 1 else 'MISSED'} |")

if soak:
    p = soak["probe"]
    w("\n## Refresh soak\n")
    w(f"Upstream tokens live {soak['lifetime_secs']} s (refreshed when half is left); the probe sends "
      f"{soak['rate']:.0f} req/s over 16 connections and accounts for every request.\n")
    w("| duration | sent | 200 | failed | hung | sdk exchanges | api exchanges | expected | rotations seen "
      "| cache misses | p50 ms | p99 ms | max ms | max ms within 1 s of a rotation |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    w(f"| {p['duration_secs']:.0f} s | {p['sent']:,} | {p['statuses'].get('200', 0):,} | "
      f"{p['sent'] - p['statuses'].get('200', 0)} | {p['hung']} | {soak['sdk_exchanges']} | "
      f"{soak['api_exchanges']} | {soak['min_windows']}..{soak['max_windows']} | {p['rotations']} | "
      f"{soak['misses']:.0f} | {p['latency_ms']['p50']:.2f} | {p['latency_ms']['p99']:.2f} | "
      f"{p['latency_ms']['max']:.2f} | {p['rotation_window_max_ms']:.2f} |")

if of("cold_start"):
    w("\n## Cold start\n")
    w("The service is started and, as soon as it accepts connections, N requests are fired at once, "
      "each on its own connection.\n")
    w("| upstream latency | requests | 200 | other answers | errors | upstream exchanges (sdk / api) "
      "| callers that waited | listening after | first token after | p50 ms | p99 ms | max ms |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cs in of("cold_start"):
        st = dict(cs["statuses"])
        ok = st.pop("200", 0)
        w(f"| {cs['upstream_latency_ms']} ms | {cs['n']:,} | {ok:,} | {json.dumps(st) if st else 0} | "
          f"{sum(cs['errors'].values())} | {cs['sdk_exchanges']} / {cs['api_exchanges']} | "
          f"{cs['misses']:.0f} | {cs['listening_after_ms']} ms | {cs['first_token_after_ms']} ms | "
          f"{cs['latency_ms']['p50']:.1f} | {cs['latency_ms']['p99']:.1f} | {cs['latency_ms']['max']:.1f} |")

st, mi, ml = one("startup"), one("memory_idle"), one("memory_load")
w("\n## Memory, size, start-up\n")
w("| measure | value |\n|---|---|")
if st:
    w(f"| release binary | {st['binary_bytes'] / 1048576:.1f} MiB ({st['binary_bytes']:,} bytes, not stripped) |")
    lis = statistics.median(r[0] for r in st["runs"])
    rdy = statistics.median(r[1] for r in st["runs"])
    w(f"| start-up to listening (median of {len(st['runs'])}) | {lis} ms |")
    w(f"| start-up to ready, both tokens fetched (median of {len(st['runs'])}; upstream "
      f"{st['upstream_latency_ms']} ms) | {rdy} ms |")
if mi:
    w(f"| RSS idle (ready, before load) | {mi['rss_kb'] / 1024:.1f} MiB |")
if ml:
    w(f"| RSS after the load rows / peak | {ml['rss_kb'] / 1024:.1f} MiB / {ml['peak_kb'] / 1024:.1f} MiB |")
if mi and mi.get("ceiling_rss_kb"):
    w(f"| ceiling's RSS idle, for scale | {mi['ceiling_rss_kb'] / 1024:.1f} MiB |")
w("")
print("\n".join(out))
