#!/usr/bin/env python3
"""Writes deploy/components/monitoring/prometheusrule.yaml from alerts.yaml.

alerts.yaml (Prometheus rule-file format) is the one source: promtool tests
it, and the PrometheusRule's spec is that file, indented, comments included.
With --check, writes nothing and exits 1 when the committed PrometheusRule
differs from what this would write.
"""
import sys
from pathlib import Path

COMPONENT = Path(__file__).resolve().parents[2] / "deploy/components/monitoring"
HEADER = """\
# GENERATED from alerts.yaml by .ci/monitoring/prometheusrule.py: edit
# alerts.yaml and run that script (.ci/check-monitoring.sh fails on drift).
#
# The Prometheus Operator loads it when the Prometheus resource's
# ruleSelector and ruleNamespaceSelector match (docs/operations/monitoring.md).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: astrada-token-vendor
  labels:
    app.kubernetes.io/name: astrada-token-vendor
spec:
"""


def render() -> str:
    rules = (COMPONENT / "alerts.yaml").read_text(encoding="utf-8")
    body = [f"  {line}" if line.strip() else "" for line in rules.splitlines()]
    return HEADER + "\n".join(body) + "\n"


def main() -> int:
    target = COMPONENT / "prometheusrule.yaml"
    wanted = render()
    if "--check" in sys.argv[1:]:
        if not target.exists() or target.read_text(encoding="utf-8") != wanted:
            print(
                f"{target} is not generated from alerts.yaml: "
                "run python3 .ci/monitoring/prometheusrule.py",
                file=sys.stderr,
            )
            return 1
        print("prometheusrule.yaml matches alerts.yaml")
        return 0
    target.write_text(wanted, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
