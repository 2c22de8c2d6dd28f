//! Per-second request outcomes of a drill's load, for the outcome-over-time
//! charts. The runner names a file in `ATV_BENCH_TIMELINE`; each load the
//! probe runs appends `unix_second,outcome,count` lines to it (a drill may
//! run several loads, e.g. the two phases of sigterm-drain). Without the
//! variable nothing is written: the drills judge from their own records.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;

pub const ENV: &str = "ATV_BENCH_TIMELINE";

/// Outcome labels the charts know, in drawing order.
pub const OUTCOMES: &[&str] = &["200", "503", "other status", "no answer"];

/// The label of an answer's status (`None`: transport error or hung).
pub fn outcome(status: Option<u16>) -> &'static str {
    match status {
        Some(200) => OUTCOMES[0],
        Some(503) => OUTCOMES[1],
        Some(_) => OUTCOMES[2],
        None => OUTCOMES[3],
    }
}

/// Appends one load's answers, `(unix_ms when answered, outcome)`.
pub fn append(answers: impl Iterator<Item = (u64, &'static str)>) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os(ENV) else {
        return Ok(());
    };
    let mut counts = BTreeMap::<(u64, &str), u64>::new();
    for (ms, label) in answers {
        *counts.entry((ms / 1000, label)).or_default() += 1;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.to_string_lossy()))?;
    let mut text = String::new();
    for ((second, label), n) in counts {
        text.push_str(&format!("{second},{label},{n}\n"));
    }
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// A timeline file read back: per second, per outcome.
pub struct Timeline {
    pub counts: BTreeMap<u64, BTreeMap<String, u64>>,
}

impl Timeline {
    pub fn parse(text: &str) -> Self {
        let mut counts = BTreeMap::<u64, BTreeMap<String, u64>>::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ',');
            let (Some(s), Some(label), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if let (Ok(s), Ok(n)) = (s.parse(), n.parse::<u64>()) {
                *counts
                    .entry(s)
                    .or_default()
                    .entry(label.to_owned())
                    .or_default() += n;
            }
        }
        Self { counts }
    }
}
