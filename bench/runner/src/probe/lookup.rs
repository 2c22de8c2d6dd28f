//! Reading what the services report: JSON documents (the fake upstream's
//! `/_control`, the probe's own output) and Prometheus samples (`/metrics`).

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Fetches a document: `http…` is a GET, `-` is stdin, anything else a file.
pub async fn fetch_text(source: &str) -> anyhow::Result<String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let answer = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?
            .get(source)
            .send()
            .await
            .and_then(|a| a.error_for_status())
            .with_context(|| format!("GET {source}"))?;
        Ok(answer.text().await?)
    } else if source == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(source).with_context(|| format!("cannot read {source}"))
    }
}

pub async fn fetch_json<T: DeserializeOwned>(source: &str) -> anyhow::Result<T> {
    let text = fetch_text(source).await?;
    serde_json::from_str(&text).with_context(|| format!("{source} is not the JSON expected"))
}

/// The fake upstream's counters (`GET /_control`).
#[derive(Deserialize)]
pub struct FakeStats {
    pub requests: u64,
    pub issued: u64,
    #[serde(default)]
    pub issued_by_client: BTreeMap<String, u64>,
}

impl FakeStats {
    pub fn issued_to(&self, client_id: &str) -> u64 {
        self.issued_by_client.get(client_id).copied().unwrap_or(0)
    }
}

/// One scrape of a `/metrics` page.
pub struct Metrics(String);

impl Metrics {
    pub async fn scrape(url: &str) -> anyhow::Result<Self> {
        Ok(Self(fetch_text(url).await?))
    }

    /// Every sample of `name` as (the labels inside `{}`, value).
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.0.lines().filter_map(move |line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            Some((labels, value.trim().parse().ok()?))
        })
    }

    /// The sample of `name` with exactly `labels`, 0 when absent.
    pub fn value(&self, name: &str, labels: &str) -> f64 {
        self.samples(name)
            .find(|(l, _)| *l == labels)
            .map_or(0.0, |(_, v)| v)
    }
}

/// Whole numbers print without a fraction, so shell arithmetic can use them.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

#[derive(clap::Args)]
pub struct GetArgs {
    /// URL, file, or `-` for stdin.
    source: String,
    /// JSON pointer, e.g. `/issued_by_client/bench-sdk`; empty for the whole document.
    pointer: String,
    /// Printed when the pointer matches nothing (else that is an error).
    #[arg(long)]
    default: Option<String>,
}

pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    let doc: Value = fetch_json(&args.source).await?;
    match (doc.pointer(&args.pointer), args.default) {
        (Some(Value::String(s)), _) => println!("{s}"),
        (Some(v), _) => println!("{v}"),
        (None, Some(default)) => println!("{default}"),
        (None, None) => anyhow::bail!("{} has nothing at {}", args.source, args.pointer),
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct MetricArgs {
    /// The `/metrics` URL.
    url: String,
    /// Metric name, e.g. `atv_token_exchanges_total`.
    name: String,
    /// The labels exactly as exposed, e.g. `set="sdk",outcome="ok"`.
    labels: String,
}

pub async fn metric(args: MetricArgs) -> anyhow::Result<()> {
    let metrics = Metrics::scrape(&args.url).await?;
    println!("{}", number(metrics.value(&args.name, &args.labels)));
    Ok(())
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// A JSON object.
    object: String,
    /// `key=string value` or `key:=JSON value`.
    fields: Vec<String>,
}

pub fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let mut object: serde_json::Map<String, Value> =
        serde_json::from_str(&args.object).context("the first argument is not a JSON object")?;
    for field in &args.fields {
        let (key, value) = match field.split_once('=') {
            Some((key, raw)) if key.ends_with(':') => (
                &key[..key.len() - 1],
                serde_json::from_str(raw).with_context(|| format!("{field}: not JSON"))?,
            ),
            Some((key, text)) => (key, Value::String(text.to_owned())),
            None => anyhow::bail!("{field}: expected key=value or key:=json"),
        };
        object.insert(key.to_owned(), value);
    }
    println!("{}", Value::Object(object));
    Ok(())
}
