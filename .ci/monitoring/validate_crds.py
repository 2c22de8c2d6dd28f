#!/usr/bin/env python3
"""Splits rendered manifests for validation: the Prometheus Operator kinds
(ServiceMonitor, PrometheusRule) are validated here against
crd_schemas.json, and every other document is written unchanged to OUT for
kubernetes-validate, which has schemas for built-in kinds only.

  validate_crds.py RENDERED.yaml OUT.yaml

Exit 0: the operator kinds are valid (or there are none); 1: a finding.
Runs in .ci/check-manifests.sh's venv (pyyaml, and jsonschema, which
kubernetes-validate depends on).
"""
import json
import re
import sys
from pathlib import Path

import jsonschema
import yaml

SCHEMAS = json.loads((Path(__file__).parent / "crd_schemas.json").read_text(encoding="utf-8"))


def main(rendered: str, out: str) -> int:
    chunks = re.split(r"^---\n", Path(rendered).read_text(encoding="utf-8"), flags=re.M)
    kept, findings, checked = [], [], 0
    for chunk in chunks:
        doc = yaml.safe_load(chunk)
        if not doc:
            continue
        kind = doc.get("kind")
        schema = SCHEMAS["kinds"].get(kind)
        if schema is None:
            kept.append(chunk)
            continue
        checked += 1
        schema = {**schema, "definitions": SCHEMAS["definitions"]}
        validator = jsonschema.Draft7Validator(schema)
        name = doc.get("metadata", {}).get("name")
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
            path = "/".join(str(p) for p in error.path)
            findings.append(f"{kind}/{name}: {path}: {error.message}")
    Path(out).write_text("---\n".join(kept), encoding="utf-8")
    if findings:
        print("\n".join(findings), file=sys.stderr)
        return 1
    if checked:
        print(f"{checked} Prometheus Operator objects valid against crd_schemas.json")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
