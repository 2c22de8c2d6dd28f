//! `atv-bench report`: rewrites the generated sections of bench/RESULTS.md
//! (between `<!-- atv-bench:NAME -->` and `<!-- /atv-bench:NAME -->`) and the
//! SVG charts in bench/charts/ from what the runs left in bench/results/.
//! Everything outside the markers is hand-written and kept as it is.

mod astra;
mod bench;
mod drills;

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where charts go, and how RESULTS.md links to them.
pub struct Charts {
    dir: PathBuf,
}

impl Charts {
    /// Writes `NAME.svg` and returns the Markdown image linking it.
    pub fn put(&self, name: &str, alt: &str, svg: &str) -> anyhow::Result<String> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.dir.join(format!("{name}.svg")), svg)?;
        Ok(format!("![{alt}](charts/{name}.svg)"))
    }
}

pub fn write(root: &Path) -> anyhow::Result<()> {
    let charts = Charts {
        dir: root.join("bench/charts"),
    };
    let store = crate::record::Store::load(root)?;
    let results = crate::record::results_dir(root);
    let sections = [
        ("drills", drills::section(&results, &store, &charts)?),
        ("bench", bench::section(&results, &charts)?),
        ("astra-bench", astra::section(&results, &charts)?),
        ("proxy", proxy_section(&results)?),
    ];
    let path = root.join("bench/RESULTS.md");
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Results\n".to_owned());
    for (name, body) in &sections {
        text = splice(&text, name, body);
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {} and {}", path.display(), charts.dir.display());
    Ok(())
}

/// The proxy's table, as `bench/proxy.sh` wrote it.
fn proxy_section(results: &Path) -> anyhow::Result<String> {
    let heading = "## Proxy (`atv-bench run proxy`, `bench/proxy.sh`)\n\n";
    let path = results.join("proxy.md");
    if !path.exists() {
        return Ok(format!("{heading}Not run through the runner yet."));
    }
    let table = std::fs::read_to_string(&path)?;
    Ok(format!(
        "{heading}The upstream is the bare actix-web ceiling on the load core with wrk; the \
         proxy under test (nginx with one worker and upstream keep-alive, injecting a static \
         `Authorization`, or this service's `/astrada/api/…` with its cached API token) runs \
         alone on the server core. Added latency is over `direct`.\n\n{table}"
    ))
}

/// Replaces one generated section; a missing one goes before the first
/// second-level heading (or at the end).
fn splice(text: &str, name: &str, body: &str) -> String {
    let (open, close) = (
        format!("<!-- atv-bench:{name} -->"),
        format!("<!-- /atv-bench:{name} -->"),
    );
    let block = format!("{open}\n{}\n{close}", body.trim_end());
    if let (Some(a), Some(z)) = (text.find(&open), text.find(&close))
        && a < z
    {
        return format!("{}{block}{}", &text[..a], &text[z + close.len()..]);
    }
    let at = text.find("\n## ").map_or(text.len(), |i| i + 1);
    format!("{}{block}\n\n{}", &text[..at], &text[at..])
}

/// JSON lines of a results file; none when the file is missing.
pub fn json_lines(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad line in {}", path.display())))
        .collect()
}

/// A number with thousands separators (`12,147`).
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_between_markers_and_keeps_the_rest() {
        let text =
            "# R\n\nintro\n<!-- atv-bench:x -->\nold\n<!-- /atv-bench:x -->\n\n## Hand\nkept\n";
        let out = splice(text, "x", "new\n");
        assert_eq!(
            out,
            "# R\n\nintro\n<!-- atv-bench:x -->\nnew\n<!-- /atv-bench:x -->\n\n## Hand\nkept\n"
        );
        let added = splice("# R\n\n## Hand\n", "y", "body");
        assert_eq!(
            added,
            "# R\n\n<!-- atv-bench:y -->\nbody\n<!-- /atv-bench:y -->\n\n## Hand\n"
        );
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(195042.4), "195,042");
        assert_eq!(thousands(12.0), "12");
    }
}
