#!/usr/bin/env python3
"""The live half of .ci/check-monitoring.sh (Python 3 stdlib only).

  live_check.py load PUBLIC INTERNAL
      A short load on a dev-mode service that makes the Astrada and the
      Astra series appear: SDK and API tokens, one Astra authorization
      through the fake Astra's OAuth page, token reads, a refresh and calls
      through the proxy.

  live_check.py queries PROMETHEUS METRICS_FILE DASHBOARD
      Checks every panel query of the dashboard and every loaded alert rule
      against a real Prometheus that scraped the service:
        - the query parses and evaluates (/api/v1/query answers success);
        - every atv_* name it uses exists in the service's own /metrics
          exposition (a family's HELP/TYPE is there even at zero);
        - a panel query returns at least one series, except the targets in
          PARSE_ONLY below, whose series cannot appear in a dev run;
        - every alert rule is loaded, evaluates with health "ok" and is
          inactive (the run is healthy: nothing may fire on it).
"""
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# Panel targets whose series a dev run cannot produce, by (panel title,
# refId), each with why. They must still parse and name real metrics. A key
# that matches no target fails the check, so the list cannot go stale.
PARSE_ONLY = {
    ("Exchange failures", "A"): "dev mode's fake Astrada never fails an exchange",
    ("Astra refresh failures", "A"): "dev mode's fake Astra never fails a refresh",
    ("5xx answers by route", "A"): "a healthy dev run answers no 5xx",
    ("Proxy replays after 401", "A"): "no token is replaced behind the service's back in a dev run",
}

# Grafana's variables, as the dashboard's defaults would expand them.
TEMPLATE_VARS = {"$__rate_interval": "1m", "$namespace": ".*"}

USER = "monitoring-ci"


def http(method, url, body=None, headers=None, follow=True):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(
        *([] if follow else [NoRedirect()])
    )
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, ConnectionError) as e:
        # Not listening yet, or gone: status 0, which no check accepts.
        return 0, {}, str(e).encode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def expect(status, wanted, what):
    if status != wanted:
        raise SystemExit(f"load: {what} answered {status}, expected {wanted}")


def load(public, internal):
    deadline = time.monotonic() + 60
    while http("GET", f"{public}/readyz")[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit("load: /readyz never answered 200")
        time.sleep(0.2)
    # Within rate_limit.burst (10) of one client address.
    for _ in range(8):
        expect(http("GET", f"{public}/astrada-sdk-token")[0], 200, "SDK token")
    for _ in range(20):
        expect(http("GET", f"{internal}/astrada-api-token")[0], 200, "API token")
    # The Astra walkthrough of docs/getting-started.md "Astra per-user tokens in dev mode",
    # with the fake Astra's Authorize button pressed by a form POST.
    status, _, body = http("POST", f"{internal}/astra/users/{USER}/authorization")
    expect(status, 201, "start authorization")
    authorize_url = json.loads(body)["authorize_url"]
    base, query = authorize_url.split("?", 1)
    status, headers, _ = http(
        "POST", base, query.encode(),
        {"Content-Type": "application/x-www-form-urlencoded"}, follow=False,
    )
    expect(status, 302, "fake Astra authorize")
    status, _, body = http("GET", headers["Location"])
    expect(status, 200, "Astra callback")
    # The customer's backend confirms the handle for its logged-in user.
    status, _, _ = http(
        "POST", f"{internal}/astra/users/{USER}/authorization/confirm",
        json.dumps({"handle": json.loads(body)["handle"]}).encode(),
        {"Content-Type": "application/json"},
    )
    expect(status, 200, "confirm the authorization")
    token = f"{internal}/astra/users/{USER}/token"
    for _ in range(5):
        expect(http("GET", token)[0], 200, "Astra token")
    status, _, body = http(
        "POST", f"{token}/refresh", b'{"stale_generation":1}',
        {"Content-Type": "application/json"},
    )
    expect(status, 200, "Astra refresh of a stale generation")
    for _ in range(3):
        expect(http("GET", f"{internal}/astra/users/{USER}/api/v1/user")[0], 200, "proxied Astra call")
    expect(http("GET", f"{internal}/astra/users/{USER}")[0], 200, "Astra user summary")
    expect(http("GET", f"{internal}/astra/users?status=active&limit=10")[0], 200, "Astra users")
    # A web page driving the open internal listener: refused, and counted.
    status = http("GET", f"{internal}/astra/users/{USER}", headers={"Origin": "https://page.example"})[0]
    expect(status, 403, "a request with an Origin on the open internal listener")
    print("load: 8 SDK + 20 API tokens, 1 Astra authorization (confirmed), 5 token reads, 1 refresh, 3 proxied calls, 1 refusal")


def families(exposition):
    """{family: type} from the # TYPE lines."""
    out = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            out[name] = kind
    return out


SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def exposed(name, fams):
    return any(
        name == fam + suffix
        for fam, kind in fams.items()
        for suffix in SUFFIXES.get(kind, ("",))
    )


def metric_names(expr):
    return set(re.findall(r"\b(atv_[a-zA-Z0-9_]+)", expr))


def prom_query(prom, expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, _, body = http("GET", url)
    try:
        answer = json.loads(body)
    except ValueError:
        return None, f"HTTP {status}, not JSON"
    if answer.get("status") != "success":
        return None, f"{answer.get('errorType')}: {answer.get('error')}"
    return answer["data"]["result"], None


def panel_targets(dashboard):
    def walk(panels):
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    for panel in walk(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield panel["title"], target["refId"], target["expr"]


def expand(expr):
    for var, value in TEMPLATE_VARS.items():
        expr = expr.replace(var, value)
    return expr


def evaluated_rules(prom):
    """The loaded alert rules, once each has been evaluated (or after 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        status, _, body = http("GET", f"{prom}/api/v1/rules?type=alert")
        groups = json.loads(body)["data"]["groups"] if status == 200 else []
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(r.get("health") != "unknown" for r in rules):
            return rules
        if time.monotonic() > deadline:
            return rules
        time.sleep(0.5)


def queries(prom, metrics_file, dashboard_file):
    with open(metrics_file, encoding="utf-8") as f:
        fams = families(f.read())
    with open(dashboard_file, encoding="utf-8") as f:
        dashboard = json.load(f)
    failures = []
    seen = set()
    for title, ref, raw in panel_targets(dashboard):
        key = (title, ref)
        seen.add(key)
        expr = expand(raw)
        if "$" in expr:
            failures.append(f"panel {title!r} {ref}: unexpanded variable in {expr}")
            continue
        missing = [n for n in metric_names(expr) if not exposed(n, fams)]
        if missing:
            failures.append(f"panel {title!r} {ref}: not in /metrics: {', '.join(sorted(missing))}")
        result, error = prom_query(prom, expr)
        if error:
            failures.append(f"panel {title!r} {ref}: query failed: {error}")
            continue
        if key in PARSE_ONLY:
            verdict = f"parses, {len(result)} series (no data required: {PARSE_ONLY[key]})"
        elif not result:
            failures.append(f"panel {title!r} {ref}: no series for {expr}")
            continue
        else:
            verdict = f"{len(result)} series"
        print(f"ok   panel {title!r} {ref}: {verdict}")
    for key in PARSE_ONLY.keys() - seen:
        failures.append(f"PARSE_ONLY names no dashboard target: {key}")

    rules = evaluated_rules(prom)
    if not rules:
        failures.append("Prometheus loaded no alert rules")
    for rule in rules:
        name = rule["name"]
        missing = [n for n in metric_names(rule["query"]) if not exposed(n, fams)]
        if missing:
            failures.append(f"alert {name}: not in /metrics: {', '.join(sorted(missing))}")
        if rule.get("health") != "ok":
            failures.append(f"alert {name}: health {rule.get('health')}: {rule.get('lastError')}")
            continue
        # A healthy dev run is what no alert may fire on.
        if rule["state"] != "inactive":
            failures.append(f"alert {name}: {rule['state']} on a healthy dev run")
        print(f"ok   alert {name}: evaluates, state {rule['state']}")

    if failures:
        print("\n".join(f"FAIL {f}" for f in failures), file=sys.stderr)
        return 1
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "load":
        load(argv[2].rstrip("/"), argv[3].rstrip("/"))
        return 0
    if len(argv) == 5 and argv[1] == "queries":
        return queries(argv[2].rstrip("/"), argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
