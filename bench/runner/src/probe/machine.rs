//! `atv-bench machine`: what `bench/RESULTS.md` says about the machine and build.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// The checkout whose commit is reported.
    root: PathBuf,
}

/// First line of a command's output ("" when it cannot run).
fn first_line(root: &PathBuf, program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(root)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The value after `key` in a `key: value` or `key value unit` /proc file.
fn proc_field(file: &str, key: &str) -> String {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let root = &args.root;
    let dirty = !first_line(
        root,
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
    )
    .is_empty();
    let commit = first_line(root, "git", &["rev-parse", "--short", "HEAD"]);
    let mem_kib: f64 = proc_field("/proc/meminfo", "MemTotal")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0.0);
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{}",
        json!({
            "date": first_line(root, "date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            "commit": if dirty { format!("{commit} (dirty)") } else { commit },
            "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "cpu": proc_field("/proc/cpuinfo", "model name"),
            "mem_gib": (mem_kib / 1_048_576.0 * 10.0).round() / 10.0,
            "kernel": first_line(root, "uname", &["-r"]),
            "rustc": first_line(root, "rustc", &["--version"]),
            "wrk": first_line(root, "wrk", &["-v"]),
            "loadavg": loadavg.split_whitespace().take(3).collect::<Vec<_>>(),
        })
    );
    Ok(())
}
