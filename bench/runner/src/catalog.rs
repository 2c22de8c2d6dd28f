//! Every drill and benchmark, as data: what `list` prints and what `run`
//! runs. The scripts under `bench/` start and stop the processes; this table
//! says which script a name means, what fault it injects, and the settings
//! of the short mode.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Drill,
    Bench,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Drill => "drill",
            Kind::Bench => "bench",
        }
    }
}

pub struct Entry {
    pub name: &'static str,
    pub kind: Kind,
    /// The script, relative to the repository root.
    pub script: &'static str,
    pub fault: &'static str,
    /// Settings of `--short`: shorter faults and fewer users, each fault
    /// still hit (an outage that must outlast a token gets a shorter token).
    pub short_env: &'static [(&'static str, &'static str)],
}

// The upstream drills that must see the token expire during the fault: a
// 12 s fault over 8 s tokens (handed out for ≈ 5 s) still outlasts them.
const EXPIRE_SHORT: &[(&str, &str)] = &[("LIFETIME", "8"), ("FAULT_SECS", "12")];

const fn drill(
    name: &'static str,
    script: &'static str,
    fault: &'static str,
    short_env: &'static [(&'static str, &'static str)],
) -> Entry {
    Entry {
        name,
        kind: Kind::Drill,
        script,
        fault,
        short_env,
    }
}

pub const ENTRIES: &[Entry] = &[
    drill(
        "upstream-down-valid",
        "bench/drills/upstream-down-valid.sh",
        "token endpoint process stopped across a refresh, token still valid",
        &[("DOWN_SECS", "10")],
    ),
    drill(
        "upstream-down-expiry",
        "bench/drills/upstream-down-expiry.sh",
        "token endpoint process stopped past the token's expiry",
        &[("LIFETIME", "8"), ("DOWN_SECS", "12")],
    ),
    drill(
        "upstream-slow",
        "bench/drills/upstream-slow.sh",
        "token endpoint answering after 4 s (past the exchange timeout)",
        EXPIRE_SHORT,
    ),
    drill(
        "upstream-garbage",
        "bench/drills/upstream-garbage.sh",
        "token endpoint answering 200 with a non-JSON body",
        EXPIRE_SHORT,
    ),
    drill(
        "upstream-invalid-client",
        "bench/drills/upstream-invalid-client.sh",
        "token endpoint refusing every exchange with invalid_client",
        EXPIRE_SHORT,
    ),
    drill(
        "upstream-5xx",
        "bench/drills/upstream-5xx.sh",
        "token endpoint answering 503",
        EXPIRE_SHORT,
    ),
    drill(
        "secrets-manager-restart",
        "bench/drills/secrets-manager-restart.sh",
        "Secrets Manager (moto) stopped and restarted",
        &[("MOTO_DOWN_SECS", "8")],
    ),
    drill(
        "secret-rotation",
        "bench/drills/secret-rotation.sh",
        "new secret version, old secret revoked upstream",
        &[],
    ),
    drill(
        "sigterm-drain",
        "bench/drills/sigterm-drain.sh",
        "SIGTERM under load and while callers wait on an exchange",
        &[],
    ),
    drill(
        "astra-stampede",
        "bench/drills/astra-stampede.sh",
        "every user's access token expired, asked of 3 replicas at once",
        &[("USERS", "1000"), ("NAIVE", "0")],
    ),
    drill(
        "astra-out-of-band",
        "bench/drills/astra-out-of-band.sh",
        "Astra replaces every access token behind the service's back",
        &[("USERS", "300")],
    ),
    drill(
        "astra-replica-kill",
        "bench/drills/astra-replica-kill.sh",
        "one replica kill -9'd while holding refresh leases",
        &[("USERS", "300")],
    ),
    drill(
        "astra-store-outage",
        "bench/drills/astra-store-outage.sh",
        "PostgreSQL stopped under load",
        &[("USERS", "4000"), ("WARM", "400"), ("OUTAGE_SECS", "10")],
    ),
    drill(
        "astra-scheduled-faults",
        "bench/drills/astra-scheduled-faults.sh",
        "Astra 5xx, then timeouts, during a scheduled refresh run",
        &[("USERS", "500"), ("FAULT_SECS", "10")],
    ),
    drill(
        "astra-catch-up",
        "bench/drills/astra-catch-up.sh",
        "a backlog of users whose refresh tokens are 8 days old",
        &[("USERS", "6000"), ("CAP", "600")],
    ),
    drill(
        "astra-rolling-restart",
        "bench/drills/astra-rolling-restart.sh",
        "every replica SIGTERM'd and restarted in turn under load",
        &[("USERS", "500")],
    ),
    Entry {
        name: "bench",
        kind: Kind::Bench,
        script: "bench/run.sh",
        fault: "none: throughput and latency against the ceiling and peers, cold start, memory",
        short_env: &[("BENCH_SECS", "3"), ("SOAK_SECS", "0"), ("COLD_N", "2000")],
    },
    Entry {
        name: "proxy",
        kind: Kind::Bench,
        script: "bench/proxy.sh",
        fault: "none: the API proxy against the upstream called directly and nginx injecting a header",
        short_env: &[("BENCH_SECS", "3")],
    },
    Entry {
        name: "soak",
        kind: Kind::Bench,
        script: "bench/soak.sh",
        fault: "none: 20 s tokens rotating under steady load",
        short_env: &[("SOAK_SECS", "60")],
    },
    Entry {
        name: "astra-bench",
        kind: Kind::Bench,
        script: "bench/astra-bench.sh",
        fault: "none: per-user tokens warm, cold and cache off; a scheduler pass",
        short_env: &[
            ("USERS", "10000"),
            ("BIG", "100000"),
            ("DUE", "10000"),
            ("BENCH_SECS", "3"),
        ],
    },
];

pub fn find(name: &str) -> anyhow::Result<&'static Entry> {
    ENTRIES
        .iter()
        .find(|e| e.name == name)
        .with_context(|| format!("no drill or benchmark named `{name}` (see `atv-bench list`)"))
}

/// The repository root: the runner is always started from inside it.
pub fn repo_root() -> anyhow::Result<PathBuf> {
    let here = std::env::current_dir()?;
    here.ancestors()
        .find(|dir| dir.join("bench/lib.sh").is_file())
        .map(PathBuf::from)
        .context("run atv-bench from inside the astrada-token-vendor repository")
}

fn env_text(env: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(" ")
}

pub fn print() {
    let [name, kind, script] = ["name", "kind", "script"];
    println!("{name:<24} {kind:<5} {script:<42} fault | short mode");
    for e in ENTRIES {
        println!(
            "{:<24} {:<5} {:<42} {} | {}",
            e.name,
            e.kind.label(),
            e.script,
            e.fault,
            env_text(e.short_env)
        );
    }
}

pub fn short_text(e: &Entry) -> String {
    env_text(e.short_env)
}
