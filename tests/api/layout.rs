//! The layer rule of `src/lib.rs`: `main → app → http → {caller_auth,
//! client_tokens, user_tokens} → observability → core`, the three features
//! not importing each other, and `config` importable by anyone while
//! importing nothing of the crate. Every `crate::X` path under `src/` (in
//! `use` lines, `use crate::{X, …}` groups and inline paths alike) and every
//! `super::…` that climbs out of its top-level module is checked against it.
//! Inside a top-level module, no two files may import each other, directly
//! or through others (a file naming its parent's re-exports is not an
//! import of the files behind them).

use std::path::Path;

/// The layers from the top down: each may import the layers of the tiers
/// below its own, and `config`; `core` (the bottom) imports nothing.
const TIERS: &[&[&str]] = &[
    &["app"],
    &["http"],
    &["caller_auth", "client_tokens", "user_tokens"],
    &["observability"],
    &["core"],
];

/// Importable by any layer but `core`, and importing nothing itself.
const CONFIG: &str = "config";

/// Whether `layer` may import `target` (both known layers).
fn allowed(layer: &str, target: &str) -> bool {
    let tier = |name: &str| TIERS.iter().position(|tier| tier.contains(&name));
    match (tier(layer), tier(target)) {
        _ if layer == target => true,
        _ if layer == CONFIG => false,
        (Some(l), _) if target == CONFIG => l + 1 < TIERS.len(),
        (Some(l), Some(t)) => t > l,
        _ => false,
    }
}

/// The crate root's files, which form the `main` layer: it may import anything.
const ROOT: &str = "main";

/// One source file: its path from the project root (`src/http/mod.rs`) and text.
struct Source {
    path: String,
    text: String,
}

/// Every violation of the layer rule in `files`, as `src/file.rs:LINE: layer X imports Y`.
fn violations(files: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        let modules = module_path(&file.path);
        let layer = modules.first().map_or(ROOT, String::as_str);
        if layer == ROOT {
            continue;
        }
        if layer != CONFIG && !TIERS.iter().any(|tier| tier.contains(&layer)) {
            found.push(format!(
                "{}:1: layer {layer} is not a layer of src/lib.rs",
                file.path
            ));
            continue;
        }
        for (line, target) in crate_imports(&file.text, &modules) {
            if !allowed(layer, &target) {
                found.push(format!(
                    "{}:{line}: layer {layer} imports {target}",
                    file.path
                ));
            }
        }
    }
    found
}

/// The module path of a file under `src/`: `src/http/routes/token.rs` is
/// `http::routes::token`, `src/http/mod.rs` is `http`, `src/lib.rs` is the root.
fn module_path(path: &str) -> Vec<String> {
    let inside = path.strip_prefix("src/").unwrap_or(path);
    let mut parts: Vec<String> = inside.split('/').map(str::to_owned).collect();
    if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_owned();
    }
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// A token of Rust code with its line: identifiers, `::` and single punctuation.
#[derive(Debug, PartialEq)]
struct Token<'a> {
    text: &'a str,
    line: usize,
}

/// The top-level modules `code` (the file of module `modules`) reaches into,
/// with the line of each path: `crate::X…`, `crate::{X, …}` and `super::…`
/// chains that climb to the crate root.
fn crate_imports(code: &str, modules: &[String]) -> Vec<(usize, String)> {
    let code = blank_comments_and_literals(code);
    let tokens = tokenize(&code);
    let mut found = Vec::new();
    // Inline `mod name { … }` blocks: their names and the brace depth they opened at.
    let mut inline: Vec<(&str, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let next = |n: usize| tokens.get(i + n).map(|t| t.text);
        let starts_path = i == 0 || tokens[i - 1].text != "::";
        match token.text {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if inline.last().is_some_and(|(_, opened)| *opened == depth) {
                    inline.pop();
                }
            }
            "mod" if next(2) == Some("{") => {
                inline.push((tokens[i + 1].text, depth));
            }
            "crate" if starts_path && next(1) == Some("::") => {
                found.extend(path_heads(&tokens[i + 2..]));
            }
            "super" if starts_path && next(1) == Some("::") => {
                let mut climbs = 0;
                while tokens.get(i + 2 * climbs).map(|t| t.text) == Some("super")
                    && tokens.get(i + 2 * climbs + 1).map(|t| t.text) == Some("::")
                {
                    climbs += 1;
                }
                // Only a climb to the crate root leaves the top-level module.
                if climbs == modules.len() + inline.len() {
                    found.extend(path_heads(&tokens[i + 2 * climbs..]));
                }
                i += 2 * climbs;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The first segment of the path at the start of `tokens`, or of each path
/// of a `{…}` group (`{a::b, c}` gives `a` and `c`; `self` is skipped), with
/// its line.
fn path_heads(tokens: &[Token]) -> Vec<(usize, String)> {
    match tokens.first().map(|t| t.text) {
        Some("{") => {
            let mut heads = Vec::new();
            let mut depth = 0;
            let mut item_start = true;
            for token in tokens {
                match token.text {
                    "{" => {
                        depth += 1;
                        item_start = depth == 1;
                        continue;
                    }
                    "}" => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    "," if depth == 1 => {
                        item_start = true;
                        continue;
                    }
                    text if item_start && depth == 1 && text != "self" => {
                        heads.push((token.line, text.to_owned()));
                    }
                    _ => {}
                }
                item_start = false;
            }
            heads
        }
        Some(_) => vec![(tokens[0].line, tokens[0].text.to_owned())],
        None => Vec::new(),
    }
}

/// Splits code into identifiers, `::` and single punctuation characters.
fn tokenize(code: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            let len = if c.is_alphanumeric() || c == '_' {
                rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len())
            } else if rest.starts_with("::") {
                2
            } else {
                c.len_utf8()
            };
            if !c.is_whitespace() {
                tokens.push(Token {
                    text: &rest[..len],
                    line: index + 1,
                });
            }
            rest = &rest[len..];
        }
    }
    tokens
}

/// `code` with comments, strings and character literals replaced by spaces
/// (line breaks kept, so that line numbers stay right).
fn blank_comments_and_literals(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < chars.len() {
        let at = |n: usize| chars.get(i + n).copied();
        if chars[i] == '/' && at(1) == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
                out.push(' ');
            }
        } else if chars[i] == '/' && at(1) == Some('*') {
            let mut nested = 0;
            while i < chars.len() {
                let next = chars.get(i + 1).copied();
                if chars[i] == '/' && next == Some('*') {
                    nested += 1;
                } else if chars[i] == '*' && next == Some('/') {
                    nested -= 1;
                    if nested == 0 {
                        out.push_str("  ");
                        i += 2;
                        break;
                    }
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if chars[i] == 'r'
            && !(i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
            && is_raw_string(&chars[i..])
        {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            let end: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            let opening = 2 + hashes;
            let body: String = chars[i + opening..].iter().collect();
            let length = body.find(&end).map_or(body.len(), |e| {
                body[..e].chars().count() + end.chars().count()
            });
            for c in &chars[i..i + opening + length] {
                blank(&mut out, *c);
            }
            i += opening + length;
        } else if chars[i] == '"' {
            blank(&mut out, '"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            if i < chars.len() {
                blank(&mut out, '"');
                i += 1;
            }
        } else if chars[i] == '\'' && (at(2) == Some('\'') || at(1) == Some('\\')) {
            // A character literal ('x', '\n', '\u{1F600}'), not a lifetime.
            let from = if at(1) == Some('\\') { i + 3 } else { i + 2 };
            let close = chars[from.min(chars.len())..]
                .iter()
                .position(|c| *c == '\'')
                .map_or(chars.len(), |p| from + p);
            for c in &chars[i..=close.min(chars.len() - 1)] {
                blank(&mut out, *c);
            }
            i = close + 1;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Whether `chars` (starting at `r`) opens a raw string: `r"`, `r#"`, `r##"`…
fn is_raw_string(chars: &[char]) -> bool {
    let hashes = chars[1..].iter().take_while(|c| **c == '#').count();
    chars.get(1 + hashes) == Some(&'"')
}

/// Every `.rs` file under `dir`, as `src/…` paths, sorted.
fn sources(dir: &Path) -> Vec<Source> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<Source>) {
        for entry in std::fs::read_dir(dir).expect("a readable directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(base).expect("under the base");
                out.push(Source {
                    path: format!("src/{}", relative.to_string_lossy().replace('\\', "/")),
                    text: std::fs::read_to_string(&path).expect("a readable file"),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Every full path in `tokens` that starts at index 0 (`a::b::{c, d::e}` gives
/// `a::b::c` and `a::b::d::e`), with the line where it starts.
fn full_paths(tokens: &[Token]) -> Vec<(usize, Vec<String>)> {
    fn walk(tokens: &[Token], prefix: &[String], out: &mut Vec<(usize, Vec<String>)>) -> usize {
        let mut path = prefix.to_vec();
        let mut i = 0;
        let line = tokens.first().map_or(0, |t| t.line);
        while let Some(token) = tokens.get(i) {
            match token.text {
                "{" => {
                    i += 1;
                    loop {
                        match tokens.get(i).map(|t| t.text) {
                            None => return i,
                            Some("}") => return i + 1,
                            Some(",") => i += 1,
                            Some(_) => i += walk(&tokens[i..], &path, out).max(1),
                        }
                    }
                }
                "self" => {}
                text if text.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                    path.push(text.to_owned());
                }
                _ => break,
            }
            if tokens.get(i + 1).map(|t| t.text) == Some("::") {
                i += 2;
            } else {
                i += 1;
                break;
            }
        }
        if path.len() > prefix.len() {
            out.push((line, path));
        }
        i
    }
    let mut out = Vec::new();
    walk(tokens, &[], &mut out);
    out
}

/// The modules `code` (the file of module `modules`) names inside its own
/// top-level module, as absolute module paths: `crate::feature::…`,
/// `super::…` and, from a module's root file, its children (`child::…`).
fn feature_imports(code: &str, modules: &[String]) -> Vec<(usize, Vec<String>)> {
    let code = blank_comments_and_literals(code);
    let tokens = tokenize(&code);
    let children: Vec<&str> = tokens
        .windows(3)
        .filter(|w| w[0].text == "mod" && w[2].text == ";")
        .map(|w| w[1].text)
        .collect();
    let mut found = Vec::new();
    for i in 0..tokens.len() {
        let starts_path = i == 0 || tokens[i - 1].text != "::";
        if !starts_path || tokens.get(i + 1).map(|t| t.text) != Some("::") {
            continue;
        }
        let text = tokens[i].text;
        let (base, from) = match text {
            "crate" => (Vec::new(), i + 2),
            "super" => {
                let mut climbs = 0;
                while tokens.get(i + 2 * climbs).map(|t| t.text) == Some("super") {
                    climbs += 1;
                }
                let Some(kept) = modules.len().checked_sub(climbs) else {
                    continue;
                };
                (modules[..kept].to_vec(), i + 2 * climbs)
            }
            child if children.contains(&child) => (modules.to_vec(), i),
            _ => continue,
        };
        for (line, tail) in full_paths(&tokens[from..]) {
            let mut path = base.clone();
            path.extend(tail);
            if path.first() == modules.first() {
                found.push((line, path));
            }
        }
    }
    found
}

/// Every circle of imports between files inside one top-level module, as
/// `a.rs -> b.rs -> a.rs`. A file naming an item of a module it lies inside
/// (its parent's re-exports) is not an edge: only siblings and children are.
fn circles(files: &[Source]) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let modules: BTreeMap<Vec<String>, &str> = files
        .iter()
        .map(|f| (module_path(&f.path), f.path.as_str()))
        .collect();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for file in files {
        let own = module_path(&file.path);
        if own.is_empty() {
            continue;
        }
        for (_, path) in feature_imports(&file.text, &own) {
            let target = (1..=path.len())
                .rev()
                .find_map(|n| modules.get(&path[..n]).map(|f| (n, *f)));
            let Some((n, target)) = target else { continue };
            let ancestor = own.len() >= n && own[..n] == path[..n];
            if !ancestor {
                edges.entry(file.path.as_str()).or_default().insert(target);
            }
        }
    }
    let mut found = BTreeSet::new();
    for start in edges.keys() {
        let mut stack = vec![vec![*start]];
        while let Some(trail) = stack.pop() {
            let last = trail[trail.len() - 1];
            for next in edges.get(last).into_iter().flatten() {
                if *next == *start {
                    let mut circle = trail.clone();
                    // The same circle from each of its files: report it once.
                    let turn = circle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, f)| **f)
                        .map_or(0, |(i, _)| i);
                    circle.rotate_left(turn);
                    let first = circle[0];
                    circle.push(first);
                    found.insert(circle.join(" -> "));
                } else if !trail.contains(next) && trail.len() < 12 {
                    let mut longer = trail.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
    }
    found.into_iter().collect()
}

#[test]
fn the_circle_checker_finds_a_circle_through_siblings_and_ignores_parent_re_exports() {
    let files = [
        source(
            "src/user_tokens/mod.rs",
            "mod refresh;\nmod service;\nmod webhook;\npub use service::UserTokens;\n",
        ),
        source(
            "src/user_tokens/service.rs",
            "use super::refresh::Trigger;\nuse super::UserRef;\n",
        ),
        source(
            "src/user_tokens/refresh.rs",
            "use super::{webhook::Webhook, store};\n",
        ),
        source(
            "src/user_tokens/webhook.rs",
            "use crate::user_tokens::service::now;\nuse crate::core::jittered;\n",
        ),
        source("src/http/mod.rs", "mod routes;\nuse routes::token;\n"),
        source(
            "src/http/routes/mod.rs",
            "use super::super::http::Services;\n",
        ),
    ];

    assert_eq!(
        circles(&files),
        [
            "src/user_tokens/refresh.rs -> src/user_tokens/webhook.rs -> \
             src/user_tokens/service.rs -> src/user_tokens/refresh.rs"
        ]
    );
}

fn assert_follows_the_rule(src: &Path) {
    let files = sources(src);
    assert!(!files.is_empty(), "no .rs files under {}", src.display());
    assert_none(
        "import(s) break the layer rule of src/lib.rs",
        violations(&files),
    );
    assert_none("import circle(s) between files", circles(&files));
}

fn assert_none(what: &str, found: Vec<String>) {
    assert!(
        found.is_empty(),
        "{} {what}:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn every_import_in_src_follows_the_layer_rule_and_no_files_import_each_other() {
    assert_follows_the_rule(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}

/// Checks another tree: `ATV_LAYOUT_SRC=/tmp/oldtree/src cargo test --test
/// layout -- --ignored`.
#[test]
#[ignore = "needs ATV_LAYOUT_SRC, a src/ directory to check"]
fn the_src_named_by_atv_layout_src_follows_the_layer_rule_and_has_no_circles() {
    let src = std::env::var("ATV_LAYOUT_SRC").expect("ATV_LAYOUT_SRC names a src/ directory");
    assert_follows_the_rule(Path::new(&src));
}

fn source(path: &str, text: &str) -> Source {
    Source {
        path: path.into(),
        text: text.into(),
    }
}

#[test]
fn the_checker_reports_each_import_that_breaks_the_rule() {
    let files = [
        source(
            "src/main.rs",
            "use crate::app::run;\nuse astrada_token_vendor::http;\n",
        ),
        source(
            "src/core/mod.rs",
            "//! Uses `crate::config` in prose only.\nmod clock;\nuse crate::config::Settings;\n\
             #[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
        source(
            "src/client_tokens/mod.rs",
            "use crate::{\n    core::PerSet,\n    caller_auth::Caller,\n    self,\n};\n\
             fn f() { let s = \"crate::http::x\"; crate::observability::Metrics::new(); }\n",
        ),
        source(
            "src/caller_auth/jwt.rs",
            "use super::Caller;\nuse super::super::user_tokens::Grant;\n\
             pub(crate) fn f<'a>(c: char) -> bool { c == '{' }\n",
        ),
        source(
            "src/http/routes/token.rs",
            "use super::super::problem::Problem;\nuse super::super::super::app::{dev, Parts};\n",
        ),
        source("src/startup.rs", "use crate::http;\n"),
    ];

    assert_eq!(
        violations(&files),
        [
            "src/core/mod.rs:3: layer core imports config",
            "src/client_tokens/mod.rs:3: layer client_tokens imports caller_auth",
            "src/caller_auth/jwt.rs:2: layer caller_auth imports user_tokens",
            "src/http/routes/token.rs:2: layer http imports app",
            "src/startup.rs:1: layer startup is not a layer of src/lib.rs",
        ]
    );
}

#[test]
fn the_checker_accepts_imports_that_follow_the_rule() {
    let files = [
        source(
            "src/app/mod.rs",
            "use crate::http::{self, Services};\nuse crate::{caller_auth, config::Settings};\n",
        ),
        source(
            "src/http/mod.rs",
            "use crate::client_tokens::ClientTokens;\n",
        ),
        source(
            "src/observability/metrics.rs",
            "use crate::core::CredentialSet;\nuse super::telemetry;\n",
        ),
        source(
            "src/config/mod.rs",
            "mod checks;\nuse checks::invalid;\nmod tests { use super::*; }\n",
        ),
    ];

    assert_eq!(violations(&files), Vec::<String>::new());
}
