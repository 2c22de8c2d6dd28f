-- wrk reporter: one JSON line (prefixed WRKJSON) with counts and latency,
-- so bench/run.sh can build its table without scraping wrk's text.
-- BENCH_AUTH_HEADER (e.g. "Bearer eyJ...") is sent as Authorization when set,
-- BENCH_ORIGIN as Origin.
local auth = os.getenv("BENCH_AUTH_HEADER")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
local origin = os.getenv("BENCH_ORIGIN")
if origin and origin ~= "" then
  wrk.headers["Origin"] = origin
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"non_2xx":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max,
    latency.mean))
end
