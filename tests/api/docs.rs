//! The documentation cannot drift from the service: the configuration
//! reference matches the defaults file key for key and default for default,
//! every relative link and anchor in the repository's Markdown resolves, and
//! the getting-started page's commands run against the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use astrada_token_vendor::config::DEFAULTS_TOML;
use figment::Figment;
use figment::providers::{Format, Toml};
use test_support::binary::{DevMode, first_ok};

const BIN: &str = env!("CARGO_BIN_EXE_astrada-token-vendor");
const CONFIGURATION: &str = include_str!("../../docs/configuration.md");
const GETTING_STARTED: &str = include_str!("../../docs/getting-started.md");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// The configuration reference

/// Every leaf of the defaults file with its value (arrays are leaves).
fn defaults() -> BTreeMap<String, serde_json::Value> {
    fn walk(
        prefix: &str,
        value: &serde_json::Value,
        out: &mut BTreeMap<String, serde_json::Value>,
    ) {
        match value.as_object() {
            Some(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            None => {
                out.insert(prefix.to_owned(), value.clone());
            }
        }
    }
    let all: serde_json::Value = Figment::from(Toml::string(DEFAULTS_TOML))
        .extract()
        .expect("the defaults parse");
    let mut out = BTreeMap::new();
    walk("", &all, &mut out);
    out
}

/// The one cell's content if it is exactly one code span: `` `x` `` -> `x`.
fn code_cell(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.is_empty() && !inner.contains('`')).then_some(inner)
}

/// A documented default, written as the TOML value the defaults file holds.
fn toml_value(text: &str) -> Result<serde_json::Value, String> {
    let parsed: serde_json::Value = Figment::from(Toml::string(&format!("v = {text}")))
        .extract()
        .map_err(|e| format!("not a TOML value: {e}"))?;
    Ok(parsed["v"].clone())
}

/// The rows of the `| key | default | meaning |` table, one per key
/// (`credentials.{api,sdk}.x` stands for both sets), each with its line.
fn documented(page: &str) -> Result<Vec<(usize, String, String)>, Vec<String>> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut in_table = false;
    for (i, line) in page.lines().enumerate() {
        let n = i + 1;
        if line == "| key | default | meaning |" {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let (Some(key), Some(default)) = (
            cells.first().and_then(|c| code_cell(c)),
            cells.get(1).and_then(|c| code_cell(c)),
        ) else {
            errors.push(format!(
                "line {n}: a row is | `section.key` | `default` | meaning |, got: {line}"
            ));
            continue;
        };
        if cells.len() < 3 || cells[2].is_empty() {
            errors.push(format!("line {n}: `{key}` has no meaning"));
        }
        let keys = if key.contains("{api,sdk}") {
            vec![
                key.replace("{api,sdk}", "api"),
                key.replace("{api,sdk}", "sdk"),
            ]
        } else {
            vec![key.to_owned()]
        };
        for k in keys {
            rows.push((n, k, default.to_owned()));
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// What is wrong with a reference page against the defaults: undocumented
/// keys, documented keys that do not exist, keys twice, wrong defaults.
fn reference_errors(page: &str) -> Vec<String> {
    let defaults = defaults();
    let rows = match documented(page) {
        Ok(rows) => rows,
        Err(errors) => return errors,
    };
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (line, key, default) in &rows {
        if !seen.insert(key.clone()) {
            errors.push(format!("line {line}: `{key}` is documented twice"));
        }
        let Some(real) = defaults.get(key) else {
            errors.push(format!(
                "line {line}: `{key}` is documented but is not a key of config/default.toml"
            ));
            continue;
        };
        match toml_value(default) {
            Ok(doc) if &doc == real => {}
            Ok(doc) => errors.push(format!(
                "line {line}: `{key}` is documented with default {doc}, config/default.toml has {real}"
            )),
            Err(e) => errors.push(format!("line {line}: `{key}`'s default `{default}` is {e}")),
        }
    }
    for key in defaults.keys().filter(|k| !seen.contains(*k)) {
        errors.push(format!(
            "`{key}` is in config/default.toml but not in docs/configuration.md"
        ));
    }
    errors
}

#[test]
fn the_configuration_reference_documents_every_key_with_its_real_default_and_no_other() {
    let errors = reference_errors(CONFIGURATION);
    assert!(
        errors.is_empty(),
        "docs/configuration.md:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_configuration_reference_check_refuses_a_wrong_default_an_unknown_key_and_a_gap() {
    let wrong = CONFIGURATION.replace(
        "| `cache.refresh_ahead_secs` | `120` |",
        "| `cache.refresh_ahead_secs` | `90` |",
    );
    let unknown = CONFIGURATION.replace(
        "| `cache.refresh_ahead_secs` |",
        "| `cache.refresh_ahead_seconds` |",
    );
    let malformed = CONFIGURATION.replace(
        "| `cache.refresh_ahead_secs` | `120` |",
        "| `cache.refresh_ahead_secs` | 120 |",
    );
    assert!(wrong != CONFIGURATION, "the row this test edits exists");
    let joined = |page: &str| reference_errors(page).join("\n");
    assert!(joined(&wrong).contains("default 90, config/default.toml has 120"));
    let unknown = joined(&unknown);
    assert!(unknown.contains("`cache.refresh_ahead_seconds` is documented but is not a key"));
    assert!(unknown.contains("`cache.refresh_ahead_secs` is in config/default.toml but not"));
    assert!(joined(&malformed).contains("a row is | `section.key` | `default` | meaning |"));
}

#[test]
fn audit_event_fields_are_documented() {
    let page = include_str!("../../docs/security/caller-auth.md");
    for field in [
        "token_issued",
        "token_refused",
        "token_sha256_prefix",
        "subject",
        "origin",
        "expires_in",
        "astra_token_issued",
        "astra_authorization",
        "internal_refused",
        "internal_refused_summary",
        "proxied",
        "user_ref",
        "permission",
        "outcome",
    ] {
        assert!(page.contains(field), "caller-auth.md documents `{field}`");
    }
}

// ---------------------------------------------------------------------------
// Links

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The page without fenced code blocks (line numbers kept) and without
/// inline code spans, which hold text that merely looks like links.
fn prose(page: &str) -> Vec<String> {
    let mut fenced = false;
    page.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return String::new();
            }
            if fenced {
                return String::new();
            }
            let mut out = String::new();
            let mut in_code = false;
            for c in line.chars() {
                if c == '`' {
                    in_code = !in_code;
                } else if !in_code {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to
/// hyphens; a repeated heading gets `-1`, `-2`, ….
fn anchors(page: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        let Some(text) = line.strip_prefix('#') else {
            continue;
        };
        let text = text.trim_start_matches('#');
        if !text.starts_with(' ') {
            continue;
        }
        // A link in a heading counts with its text only.
        let mut plain = String::new();
        let mut rest = text.trim();
        while let Some(open) = rest.find("](") {
            let close = rest[open..].find(')').map_or(rest.len(), |c| open + c + 1);
            plain.push_str(&rest[..open]);
            rest = &rest[close..];
        }
        plain.push_str(rest);
        let slug: String = plain
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    // Explicit anchors: <a id="…"> / name="…".
    for attr in ["id=\"", "name=\""] {
        for (i, _) in page.match_indices(attr) {
            let rest = &page[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.insert(rest[..end].to_owned());
            }
        }
    }
    out
}

/// Link targets on a line: `[text](target)`, `![alt](target)` and reference
/// definitions `[label]: target`.
fn targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[')
        && let Some(i) = trimmed.find("]: ")
    {
        out.push(
            trimmed[i + 3..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned(),
        );
    }
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let end = after.find(')').unwrap_or(after.len());
        // `[text](target "title")`
        out.push(
            after[..end]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned(),
        );
        rest = &after[end..];
    }
    out
}

/// Every relative link and anchor that does not resolve, as `file:line: why`.
fn broken_links(files: &[PathBuf], read: impl Fn(&Path) -> Option<String>) -> Vec<String> {
    let mut errors = Vec::new();
    for file in files {
        let page = read(file).expect("a readable page");
        let shown = file
            .strip_prefix(root())
            .unwrap_or(file)
            .display()
            .to_string();
        for (i, line) in prose(&page).iter().enumerate() {
            for target in targets(line) {
                let external = target.contains("://")
                    || target.starts_with("mailto:")
                    || target.starts_with("//");
                if target.is_empty() || external {
                    continue;
                }
                let (path, anchor) = match target.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (target.as_str(), None),
                };
                let resolved = if path.is_empty() {
                    file.clone()
                } else if let Some(from_root) = path.strip_prefix('/') {
                    root().join(from_root)
                } else {
                    file.parent().unwrap().join(path)
                };
                let at = format!("{shown}:{}", i + 1);
                if !resolved.exists() {
                    errors.push(format!("{at}: `{target}`: no such file"));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if resolved.extension().is_none_or(|e| e != "md") {
                    continue; // line anchors into code are GitHub's business
                }
                let known = anchors(&read(&resolved).unwrap_or_default());
                if !known.contains(anchor) {
                    errors.push(format!("{at}: `{target}`: no heading for #{anchor}"));
                }
            }
        }
    }
    errors
}

fn repository_markdown() -> Vec<PathBuf> {
    let mut files = Vec::new();
    markdown_files(root(), &mut files);
    files.sort();
    files
}

#[test]
fn every_relative_link_and_anchor_in_the_markdown_resolves() {
    let files = repository_markdown();
    assert!(files.len() > 10, "the walk found the docs: {files:?}");
    let errors = broken_links(&files, |p| std::fs::read_to_string(p).ok());
    assert!(errors.is_empty(), "broken links:\n{}", errors.join("\n"));
}

#[test]
fn the_link_check_refuses_a_missing_file_and_a_missing_anchor() {
    let index = root().join("docs/README.md");
    let broken = |edit: fn(String) -> String| {
        broken_links(std::slice::from_ref(&index), |p| {
            let text = std::fs::read_to_string(p).ok()?;
            Some(if p == index { edit(text) } else { text })
        })
        .join("\n")
    };
    let file = broken(|t| t.replace("(getting-started.md)", "(getting-startd.md)"));
    assert!(file.contains("`getting-startd.md`: no such file"), "{file}");
    let anchor = broken(|t| {
        t.replace(
            "#rotating-the-astra-encryption-keys",
            "#rotating-encryption-keys",
        )
    });
    assert!(
        anchor.contains("no heading for #rotating-encryption-keys"),
        "{anchor}"
    );
}

#[test]
fn heading_anchors_follow_githubs_rules() {
    let page = "# Astra `expires_in` and stale generations\n## A, B (c)\n## A, B (c)\n```\n# not a heading\n```\n";
    let got = anchors(page);
    let want: BTreeSet<String> = ["astra-expires_in-and-stale-generations", "a-b-c", "a-b-c-1"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------
// The getting-started page

/// Commands of the page that this file does not run, and what does.
const RUN_ELSEWHERE: &[(&str, &str)] = &[
    (
        "cargo run -- dev",
        "the built binary's `dev`, started by the walkthrough test below",
    ),
    ("./scripts/test.sh", ".ci/run's test step"),
    (
        "python3 -m http.server 8000 -d examples/browser",
        "tests/api/browser.rs serves examples/browser to headless Chromium",
    ),
    (
        "ATV_ASTRA__COMPLETION_URL=http://127.0.0.1:8000/astra.html cargo run -- dev",
        "tests/api/browser.rs, the_astra_example_page_completes_an_authorization_in_dev_mode",
    ),
];

/// A line of a `sh` block: the command and its trailing comment.
struct Line {
    command: String,
    comment: String,
}

fn sh_lines(page: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in page.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh" && !in_sh;
            continue;
        }
        if !in_sh || line.trim().is_empty() {
            continue;
        }
        let (command, comment) = match line.find(" # ").or(line.find("#").filter(|i| *i == 0)) {
            Some(i) => (&line[..i], line[i..].trim_start_matches([' ', '#'])),
            None => (line, ""),
        };
        out.push(Line {
            command: command.trim().to_owned(),
            comment: comment.trim().to_owned(),
        });
    }
    out
}

/// The fake Astra's "click Authorize": its page's hidden form, posted back.
async fn click_authorize(http: &reqwest::Client, authorize_url: &str) -> serde_json::Value {
    let page = http.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200, "the OAuth module's page");
    let html = page.text().await.unwrap();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for input in html.split("<input ").skip(1) {
        let attr = |name: &str| {
            let start = input.find(&format!("{name}=\""))? + name.len() + 2;
            let end = input[start..].find('"')?;
            Some(
                input[start..start + end]
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&"),
            )
        };
        form.append_pair(&attr("name").unwrap(), &attr("value").unwrap());
    }
    let action = url::Url::parse(authorize_url)
        .unwrap()
        .join("/login/oauth/authorize")
        .unwrap();
    // The answer redirects to the service's /astra/callback, which answers JSON.
    let callback = http
        .post(action)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.finish())
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 200, "the callback's answer");
    callback.json().await.unwrap()
}

/// Runs one curl line of the page against `dev` (the confirmation `handle`
/// the callback gave in place of `HANDLE`); checks the status and the fields
/// its comment promises (`# 201 {a, b}`, `# generation 2`).
async fn run_curl(line: &Line, dev: &DevMode, handle: &str) -> serde_json::Value {
    let command = line
        .command
        .replace("HANDLE", handle)
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", dev.public_port))
        .replace(
            "127.0.0.1:9090",
            &format!("127.0.0.1:{}", dev.internal_port),
        );
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} -w '\\n%{{http_code}}'"))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("curl runs");
    assert!(out.status.success(), "`{}` failed: {out:?}", line.command);
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    let status: u16 = status.parse().unwrap();
    let says = |what: &str| format!("`{}` answered {status} {body}: {what}", line.command);
    assert!((200..300).contains(&status), "{}", says("not a success"));
    if let Some(want) = line.comment.split_whitespace().next()
        && want.len() == 3
        && let Ok(want) = want.parse::<u16>()
    {
        assert_eq!(status, want, "{}", says("the page promises another status"));
    }
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    if let (Some(open), Some(close)) = (line.comment.find('{'), line.comment.find('}')) {
        for field in line.comment[open + 1..close].split(',').map(str::trim) {
            assert!(
                json.get(field).is_some(),
                "{}",
                says(&format!("no `{field}`"))
            );
        }
    }
    if let Some(rest) = line.comment.strip_prefix("generation ") {
        assert_eq!(
            json["generation"].to_string(),
            rest.trim(),
            "{}",
            says("generation")
        );
    }
    json
}

#[tokio::test]
async fn the_getting_started_commands_run_against_dev_mode() {
    let lines = sh_lines(GETTING_STARTED);
    let unknown: Vec<&str> = lines
        .iter()
        .map(|l| l.command.as_str())
        .filter(|c| !c.is_empty() && !c.starts_with("curl "))
        .filter(|c| !RUN_ELSEWHERE.iter().any(|(known, _)| known == c))
        .collect();
    assert!(
        unknown.is_empty(),
        "getting-started.md has commands nothing runs: {unknown:?}"
    );
    let curls = lines
        .iter()
        .filter(|l| l.command.starts_with("curl "))
        .count();
    assert!(
        curls >= 9,
        "the walkthrough's curl lines were found ({curls})"
    );

    let dev = DevMode::on_free_ports();
    let mut child = dev
        .command(BIN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dev mode starts");
    let readyz = format!("{}/readyz", dev.public_url());
    first_ok(&mut child, &readyz, Duration::from_secs(30), String::new).await;

    let http = reqwest::Client::new();
    let mut authorize_url = None;
    let mut handle = String::new();
    for line in &lines {
        if line.command.starts_with("curl ") {
            let answer = run_curl(line, &dev, &handle).await;
            if let Some(url) = answer["authorize_url"].as_str() {
                authorize_url = Some(url.to_owned());
            }
        } else if line.command.is_empty() && line.comment.starts_with("open authorize_url") {
            let url = authorize_url
                .as_deref()
                .expect("an authorization was started");
            let outcome = click_authorize(&http, url).await;
            assert_eq!(outcome["outcome"], "confirm", "{outcome}");
            handle = outcome["handle"].as_str().unwrap_or_default().to_owned();
            assert!(!handle.is_empty(), "{outcome}");
        }
    }
}
