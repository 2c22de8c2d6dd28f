//! `atv-bench run`: runs drills and benchmarks by name, each `--repeat` times,
//! collects every PASS/FAIL/SKIP line their scripts print, keeps each one's
//! pass count in `bench/results/` and rewrites `bench/RESULTS.md`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::catalog::{self, Entry, Kind};
use crate::record::{self, Outcome, Store};

#[derive(clap::Args)]
pub struct Args {
    /// Names from `atv-bench list`, `drills` (every drill) or `all`.
    #[arg(required = true)]
    names: Vec<String>,
    /// Runs each one this many times; the results give passes over repeats.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// The catalog's short settings: shorter faults, fewer users.
    #[arg(long)]
    short: bool,
    /// Reuses the release binaries already built (as BENCH_NO_BUILD=1).
    #[arg(long)]
    no_build: bool,
}

/// What one repeat printed and how it ended.
struct Repeat {
    passed: bool,
    skipped: bool,
    lines: Vec<String>,
    failures: Vec<String>,
}

fn resolve(names: &[String]) -> anyhow::Result<Vec<&'static Entry>> {
    let mut picked: Vec<&'static Entry> = Vec::new();
    for name in names {
        let more: Vec<&'static Entry> = match name.as_str() {
            "all" => catalog::ENTRIES.iter().collect(),
            "drills" => catalog::ENTRIES
                .iter()
                .filter(|e| e.kind == Kind::Drill)
                .collect(),
            _ => vec![catalog::find(name)?],
        };
        for e in more {
            if !picked.iter().any(|p| p.name == e.name) {
                picked.push(e);
            }
        }
    }
    Ok(picked)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.repeat > 0, "--repeat must be at least 1");
    let root = catalog::repo_root()?;
    let entries = resolve(&args.names)?;
    if !args.no_build && std::env::var("BENCH_NO_BUILD").as_deref() != Ok("1") {
        build(&root)?;
    }
    let work = root.join("target/atv-bench");
    std::fs::create_dir_all(&work)?;
    let (when, commit) = (record::now_utc(), record::commit(&root));
    let mut failed = Vec::new();
    for entry in entries {
        let mut outcome = Outcome {
            kind: entry.kind.label().to_owned(),
            mode: if args.short { "short" } else { "full" }.to_owned(),
            when: when.clone(),
            commit: commit.clone(),
            repeats: args.repeat,
            passes: 0,
            skips: 0,
            failures: Vec::new(),
            lines: Vec::new(),
        };
        for i in 1..=args.repeat {
            eprintln!("== {} ({i}/{})", entry.name, args.repeat);
            let r = run_once(&root, &work, entry, i, args.short)?;
            outcome.passes += u32::from(r.passed);
            outcome.skips += u32::from(r.skipped);
            outcome.failures.extend(r.failures);
            outcome.lines = r.lines;
        }
        keep_timeline(&root, &work, entry.name)?;
        println!(
            "{}: {}/{} passed",
            entry.name, outcome.passes, outcome.repeats
        );
        if outcome.passes + outcome.skips < outcome.repeats {
            failed.push(entry.name);
        }
        // Saved after each one: a long `run all` that is stopped keeps what ran.
        let mut store = Store::load(&root)?;
        store.runs.insert(entry.name.to_owned(), outcome);
        store.save(&root)?;
    }
    crate::report::write(&root)?;
    anyhow::ensure!(
        failed.is_empty(),
        "not every repeat passed: {}",
        failed.join(", ")
    );
    Ok(())
}

/// The one release build every script uses (bench/lib.sh `build_release`).
fn build(root: &Path) -> anyhow::Result<()> {
    let status = Command::new("bash")
        .args(["-c", "source bench/lib.sh && build_release"])
        .current_dir(root)
        .status()
        .context("cannot start bash")?;
    anyhow::ensure!(status.success(), "the release build failed");
    Ok(())
}

fn scratch(work: &Path, name: &str, ext: &str) -> PathBuf {
    work.join(format!("{name}.{ext}"))
}

/// Runs one repeat. Its script's output and every process's log are kept
/// in `work/NAME.REPEAT/` when it fails, for the post-mortem.
fn run_once(
    root: &Path,
    work: &Path,
    entry: &Entry,
    repeat: u32,
    short: bool,
) -> anyhow::Result<Repeat> {
    let (timeline, marks) = (
        scratch(work, entry.name, "timeline.csv"),
        scratch(work, entry.name, "marks"),
    );
    let logs = work.join(format!("{}.{repeat}", entry.name));
    for stale in [&timeline, &marks] {
        let _ = std::fs::remove_file(stale);
    }
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let log = logs.join("script.log");
    let mut cmd = Command::new("bash");
    cmd.arg(entry.script)
        .current_dir(root)
        .env("BENCH_NO_BUILD", "1")
        .env(crate::timeline::ENV, &timeline)
        .env("ATV_BENCH_MARKS", &marks)
        .env("BENCH_KEEP_LOGS", &logs)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?);
    if short {
        cmd.envs(entry.short_env.iter().copied());
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", entry.script))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if ["PASS ", "FAIL ", "SKIP ", "CONTRAST "]
            .iter()
            .any(|p| line.starts_with(p))
        {
            lines.push(line);
        }
    }
    let status = child.wait()?;
    let repeat = judge(entry, status.success(), lines, &log);
    if repeat.passed || repeat.skipped {
        std::fs::remove_dir_all(&logs)?;
    }
    Ok(repeat)
}

/// A repeat passes when its script exits 0, prints no FAIL and (for a drill)
/// at least one PASS; SKIP alone (a peer missing) is neither.
fn judge(entry: &Entry, ok: bool, lines: Vec<String>, log: &Path) -> Repeat {
    let count = |p: &str| lines.iter().filter(|l| l.starts_with(p)).count();
    let (passes, fails, skips) = (count("PASS "), count("FAIL "), count("SKIP "));
    let skipped = ok && fails == 0 && passes == 0 && skips > 0;
    let passed = ok && fails == 0 && !skipped && (passes > 0 || entry.kind == Kind::Bench);
    let mut failures: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("FAIL "))
        .cloned()
        .collect();
    if !passed && !skipped && failures.is_empty() {
        let line = format!(
            "FAIL {}: no verdict, script failed (see {} and the logs beside it)",
            entry.name,
            log.display()
        );
        println!("{line}");
        failures.push(line);
    }
    Repeat {
        passed,
        skipped,
        lines,
        failures,
    }
}

/// The last repeat's timeline and fault marks, kept for the charts.
fn keep_timeline(root: &Path, work: &Path, name: &str) -> anyhow::Result<()> {
    let dir = record::results_dir(root).join("timelines");
    std::fs::create_dir_all(&dir)?;
    for ext in ["timeline.csv", "marks"] {
        let from = scratch(work, name, ext);
        let to = dir.join(format!("{name}.{ext}"));
        if from.exists() {
            std::fs::copy(&from, &to)?;
        } else if to.exists() {
            // A stale file from an earlier run would be charted as this one's.
            std::fs::remove_file(&to)?;
        }
    }
    Ok(())
}
