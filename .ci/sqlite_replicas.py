"""Fails when a rendered overlay runs the Astra part on SQLite with more than
one replica (docs/concepts/astra-user-tokens.md: Storage and encryption, "serve refuses SQLite with more
than one replica where it can tell"). Replicas that each have their own
SQLite file cannot see each other at run time, so this is where that rule is
enforced: before anything is applied.

A Deployment uses SQLite for Astra when it runs `dev` (dev mode always does),
or when Astra is enabled (config.toml from its ConfigMap, then ATV_ASTRA__*
variables) and neither the store URL nor a store URL file points elsewhere.
Its most replicas are spec.replicas or an autoscaler's maxReplicas.

usage: python sqlite_replicas.py MANIFESTS.yaml
"""

import sys
import tomllib

import yaml


def env_of(container):
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def astra_on_sqlite(deployment, config_maps):
    pod = deployment["spec"]["template"]["spec"]
    for container in pod.get("containers", []):
        args = container.get("args", [])
        if args[:1] == ["dev"]:
            return True
        if args[:1] != ["serve"]:
            continue
        astra = {}
        for volume in pod.get("volumes", []):
            text = config_maps.get(volume.get("configMap", {}).get("name"), {}).get("config.toml")
            if text:
                astra = tomllib.loads(text).get("astra", {})
        env = env_of(container)
        enabled = env.get("ATV_ASTRA__ENABLED", str(astra.get("enabled", False))).lower() == "true"
        url = env.get("ATV_ASTRA__STORE_URL", astra.get("store_url", "sqlite:"))
        url_file = env.get("ATV_ASTRA__STORE_URL_FILE", astra.get("store_url_file", ""))
        if enabled and not url_file and url.startswith("sqlite:"):
            return True
    return False


def main(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    most = {}
    for d in docs:
        if d["kind"] == "Deployment":
            name = d["metadata"]["name"]
            most[name] = max(most.get(name, 0), d["spec"].get("replicas", 1))
        elif d["kind"] == "HorizontalPodAutoscaler":
            name = d["spec"]["scaleTargetRef"]["name"]
            most[name] = max(most.get(name, 0), d["spec"]["maxReplicas"])
    bad = [
        (d["metadata"]["name"], most[d["metadata"]["name"]])
        for d in docs
        if d["kind"] == "Deployment"
        and most[d["metadata"]["name"]] > 1
        and astra_on_sqlite(d, config_maps)
    ]
    for name, replicas in bad:
        print(
            f"Deployment {name}: Astra on SQLite with up to {replicas} replicas; "
            "use one replica, or a postgres:// store (deploy/components/astra-postgres)",
            file=sys.stderr,
        )
    if not bad:
        print("Astra on SQLite nowhere with more than one replica")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
