//! What the runner keeps of each drill's and benchmark's last run, in
//! `bench/results/runs.json` (committed, so that RESULTS.md can be rebuilt
//! from it): the pass count over the repeats, every failure line, and the
//! last repeat's verdict lines. A run replaces the entries it ran.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone)]
pub struct Outcome {
    pub kind: String,
    /// `full` or `short` (the catalog's short settings).
    pub mode: String,
    /// When the run started (UTC) and the commit it ran on.
    pub when: String,
    pub commit: String,
    pub repeats: u32,
    pub passes: u32,
    pub skips: u32,
    /// Every FAIL line (or exit without a verdict) over all repeats: one
    /// passing repeat must not hide the others.
    pub failures: Vec<String>,
    /// The last repeat's verdict lines.
    pub lines: Vec<String>,
}

#[derive(Serialize, Deserialize, Default)]
pub struct Store {
    pub runs: BTreeMap<String, Outcome>,
}

pub fn results_dir(root: &Path) -> PathBuf {
    root.join("bench/results")
}

fn store_path(root: &Path) -> PathBuf {
    results_dir(root).join("runs.json")
}

impl Store {
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let path = store_path(root);
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path)?;
        serde_json::from_str(&text).with_context(|| format!("cannot read {}", path.display()))
    }

    pub fn save(&self, root: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(results_dir(root))?;
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(store_path(root), text)?;
        Ok(())
    }
}

/// The commit checked out, with `+` when the tree has changes.
pub fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let rev = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{rev}+") } else { rev }
}

/// Now, UTC, to the minute (`date` keeps this crate free of a time library).
pub fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%MZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
