//! `[[exports]]` in the aggregator config: one table per exporter, checked at start so every
//! mistake is reported with its full key (`exports[1].url`) and the value given.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::formats::{FORMAT_NAMES, Format, eventbridge};

/// One `[[exports]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Unique name; keys the persisted position and names S3-layout objects.
    pub name: String,
    /// `jsonl`, `s3_layout` or `webhook`.
    pub kind: String,
    /// `guardduty`, `eventbridge`, `asff` or `ocsf`.
    #[serde(default = "default_format")]
    pub format: String,
    /// `jsonl`: the file; `s3_layout`: the folder that holds `AWSLogs/`.
    pub path: Option<PathBuf>,
    /// `webhook`: the `http://` or `https://` endpoint.
    pub url: Option<String>,
    /// `webhook`: extra request headers (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `webhook`: a PEM CA bundle to trust instead of the public web roots.
    pub ca: Option<PathBuf>,
    /// `webhook`: `batch` (one POST of a JSON array) or `single` (one POST per finding).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// `webhook`: seconds a request may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// `eventbridge`: the events' `source`.
    pub source: Option<String>,
    /// `asff`: the `ProductArn`.
    pub product_arn: Option<String>,
    /// Findings below this severity are not exported.
    #[serde(default)]
    pub min_severity: f64,
    /// Whether archived findings are exported (GuardDuty does not export suppressed ones).
    #[serde(default)]
    pub include_archived: bool,
    /// Findings per batch (one file append, one object, one POST).
    #[serde(default = "default_batch_size")]
    pub batch_size: NonZeroUsize,
    /// Seconds between looks for new findings when caught up.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u64,
    /// Seconds a finding's update must be old before it is exported (see the module doc of
    /// `exports`: detection writes findings up to its flush interval after their `updatedAt`).
    #[serde(default = "default_settle_secs")]
    pub settle_secs: u64,
    /// `jsonl`: rotate the file when it reaches this many bytes.
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    /// `jsonl`: rotate the file when it is this many seconds old (0: never by age).
    #[serde(default = "default_rotate_secs")]
    pub rotate_secs: u64,
    /// Retry settings.
    #[serde(default)]
    pub retry: RetryConfig,
}

/// `[exports.retry]`: exponential backoff with jitter; delivery is retried until it succeeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First wait, in ms.
    #[serde(default = "default_initial_ms")]
    pub initial_ms: u64,
    /// Longest wait, in ms.
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_ms: default_initial_ms(),
            max_ms: default_max_ms(),
        }
    }
}

fn default_format() -> String {
    "guardduty".into()
}
fn default_mode() -> String {
    "batch".into()
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_batch_size() -> NonZeroUsize {
    NonZeroUsize::new(100).unwrap_or(NonZeroUsize::MIN)
}
fn default_poll_secs() -> u64 {
    5
}
fn default_settle_secs() -> u64 {
    // Detection flushes every 10 s; 5 s more covers a slow flush.
    15
}
fn default_rotate_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_rotate_secs() -> u64 {
    3600
}
fn default_initial_ms() -> u64 {
    500
}
fn default_max_ms() -> u64 {
    60_000
}

/// Where an exporter delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// A JSON-lines file, rotated by size and age.
    Jsonl {
        /// The file.
        path: PathBuf,
        /// Rotate at this size.
        rotate_bytes: u64,
        /// Rotate at this age (`None`: never by age).
        rotate_after: Option<Duration>,
    },
    /// GuardDuty's S3 export layout under a folder.
    S3Layout {
        /// The folder holding `AWSLogs/`.
        root: PathBuf,
    },
    /// HTTP POSTs.
    Webhook {
        /// The endpoint.
        url: hyper::Uri,
        /// Extra headers.
        headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
        /// A CA bundle to trust instead of the web roots.
        ca: Option<PathBuf>,
        /// One finding per request instead of a JSON array.
        single: bool,
        /// Per-request timeout.
        timeout: Duration,
    },
}

/// A checked exporter.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// Its name.
    pub name: String,
    /// What it writes.
    pub format: Format,
    /// Where.
    pub sink: SinkSpec,
    /// Lowest severity exported.
    pub min_severity: f64,
    /// Whether archived findings are exported.
    pub include_archived: bool,
    /// Findings per batch.
    pub batch_size: NonZeroUsize,
    /// Idle poll interval.
    pub poll: Duration,
    /// Age an update must reach before export.
    pub settle: Duration,
    /// First retry wait.
    pub retry_initial: Duration,
    /// Longest retry wait.
    pub retry_max: Duration,
}

impl ExportConfig {
    /// Resolves a relative `path`/`ca` against the config file's folder.
    pub fn rebase(&mut self, base: &std::path::Path) {
        for p in [&mut self.path, &mut self.ca].into_iter().flatten() {
            picket_telemetry::config_file::rebase(p, base);
        }
    }
}

/// Checks every `[[exports]]` table; returns the exporters, or every problem found, each naming
/// its full key and the value given.
///
/// # Errors
/// The list of problems.
pub fn resolve(exports: &[ExportConfig]) -> Result<Vec<ExportSpec>, Vec<String>> {
    let mut problems = Vec::new();
    let mut specs = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (i, e) in exports.iter().enumerate() {
        let key = |field: &str| format!("exports[{i}].{field}");
        let before = problems.len();
        let mut bad = |msg: String| problems.push(msg);
        if e.name.is_empty()
            || e.name.len() > 64
            || !e
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bad(format!(
                "{} must be 1-64 letters, digits, '-' or '_', got {:?}",
                key("name"),
                e.name
            ));
        } else if !names.insert(e.name.clone()) {
            bad(format!("{} {:?} is used twice", key("name"), e.name));
        }
        let format = match e.format.as_str() {
            "guardduty" => Some(Format::GuardDuty),
            "eventbridge" => Some(Format::EventBridge {
                source: e
                    .source
                    .clone()
                    .unwrap_or_else(|| eventbridge::DEFAULT_SOURCE.into()),
            }),
            "asff" => Some(Format::Asff {
                product_arn: e.product_arn.clone(),
            }),
            "ocsf" => Some(Format::Ocsf),
            other => {
                bad(format!(
                    "{} must be one of {}, got {other:?}",
                    key("format"),
                    FORMAT_NAMES.join(", ")
                ));
                None
            }
        };
        if e.source.is_some() && e.format != "eventbridge" {
            bad(format!(
                "{} is only for format = \"eventbridge\"",
                key("source")
            ));
        }
        if e.source.as_deref().is_some_and(str::is_empty) {
            bad(format!("{} must not be empty", key("source")));
        }
        if let Some(arn) = &e.product_arn {
            if e.format != "asff" {
                bad(format!(
                    "{} is only for format = \"asff\"",
                    key("product_arn")
                ));
            } else if !arn.starts_with("arn:") || !arn.contains(":securityhub:") {
                bad(format!(
                    "{} must be a Security Hub product ARN (arn:<partition>:securityhub:…), got {arn:?}",
                    key("product_arn")
                ));
            }
        }
        if !(0.0..=10.0).contains(&e.min_severity) {
            bad(format!(
                "{} must be between 0 and 10, got {}",
                key("min_severity"),
                e.min_severity
            ));
        }
        if e.batch_size.get() > 10_000 {
            bad(format!(
                "{} must be at most 10000, got {}",
                key("batch_size"),
                e.batch_size
            ));
        }
        if !(1..=3600).contains(&e.poll_secs) {
            bad(format!(
                "{} must be between 1 and 3600, got {}",
                key("poll_secs"),
                e.poll_secs
            ));
        }
        if e.settle_secs > 3600 {
            bad(format!(
                "{} must be at most 3600, got {}",
                key("settle_secs"),
                e.settle_secs
            ));
        }
        if e.retry.initial_ms == 0 || e.retry.initial_ms > e.retry.max_ms {
            bad(format!(
                "{} must be at least 1 and at most retry.max_ms ({}), got {}",
                key("retry.initial_ms"),
                e.retry.max_ms,
                e.retry.initial_ms
            ));
        }
        if e.retry.max_ms > 3_600_000 {
            bad(format!(
                "{} must be at most 3600000, got {}",
                key("retry.max_ms"),
                e.retry.max_ms
            ));
        }
        let webhook_only: [(&str, bool); 4] = [
            ("url", e.url.is_some()),
            ("headers", !e.headers.is_empty()),
            ("ca", e.ca.is_some()),
            ("mode", e.mode != "batch"),
        ];
        let sink = match e.kind.as_str() {
            "jsonl" | "s3_layout" => {
                for (field, set) in webhook_only {
                    if set {
                        bad(format!("{} is only for kind = \"webhook\"", key(field)));
                    }
                }
                match &e.path {
                    None => {
                        bad(format!(
                            "{} is required for kind = {:?}",
                            key("path"),
                            e.kind
                        ));
                        None
                    }
                    Some(p) if p.as_os_str().is_empty() => {
                        bad(format!("{} must not be empty", key("path")));
                        None
                    }
                    Some(p) if e.kind == "jsonl" => {
                        if e.rotate_bytes < 4096 {
                            bad(format!(
                                "{} must be at least 4096, got {}",
                                key("rotate_bytes"),
                                e.rotate_bytes
                            ));
                        }
                        Some(SinkSpec::Jsonl {
                            path: p.clone(),
                            rotate_bytes: e.rotate_bytes,
                            rotate_after: (e.rotate_secs > 0)
                                .then(|| Duration::from_secs(e.rotate_secs)),
                        })
                    }
                    Some(p) => Some(SinkSpec::S3Layout { root: p.clone() }),
                }
            }
            "webhook" => {
                if e.path.is_some() {
                    bad(format!(
                        "{} is not used by kind = \"webhook\" (give url)",
                        key("path")
                    ));
                }
                let url = match &e.url {
                    None => {
                        bad(format!("{} is required for kind = \"webhook\"", key("url")));
                        None
                    }
                    Some(u) => match u.parse::<hyper::Uri>() {
                        Ok(uri)
                            if matches!(uri.scheme_str(), Some("http" | "https"))
                                && uri.host().is_some() =>
                        {
                            Some(uri)
                        }
                        _ => {
                            bad(format!(
                                "{} must be an http:// or https:// URL, got {u:?}",
                                key("url")
                            ));
                            None
                        }
                    },
                };
                if e.ca.is_some()
                    && url
                        .as_ref()
                        .is_some_and(|u| u.scheme_str() != Some("https"))
                {
                    bad(format!("{} is only used with an https:// url", key("ca")));
                }
                let mut headers = Vec::new();
                for (name, value) in &e.headers {
                    let n = hyper::header::HeaderName::from_bytes(name.as_bytes());
                    let v = hyper::header::HeaderValue::from_str(value);
                    match (n, v) {
                        (Ok(n), Ok(mut v)) => {
                            // Keep tokens out of debug logs.
                            v.set_sensitive(true);
                            headers.push((n, v));
                        }
                        (Err(_), _) => bad(format!(
                            "{} is not a valid header name",
                            key(&format!("headers.{name:?}"))
                        )),
                        (_, Err(_)) => bad(format!(
                            "{} has characters a header value cannot hold",
                            key(&format!("headers.{name:?}"))
                        )),
                    }
                }
                let single = match e.mode.as_str() {
                    "batch" => false,
                    "single" => true,
                    other => {
                        bad(format!(
                            "{} must be batch or single, got {other:?}",
                            key("mode")
                        ));
                        false
                    }
                };
                if !(1..=600).contains(&e.timeout_secs) {
                    bad(format!(
                        "{} must be between 1 and 600, got {}",
                        key("timeout_secs"),
                        e.timeout_secs
                    ));
                }
                url.map(|url| SinkSpec::Webhook {
                    url,
                    headers,
                    ca: e.ca.clone(),
                    single,
                    timeout: Duration::from_secs(e.timeout_secs),
                })
            }
            other => {
                bad(format!(
                    "{} must be jsonl, s3_layout or webhook, got {other:?}",
                    key("kind")
                ));
                None
            }
        };
        if problems.len() == before
            && let (Some(format), Some(sink)) = (format, sink)
        {
            specs.push(ExportSpec {
                name: e.name.clone(),
                format,
                sink,
                min_severity: e.min_severity,
                include_archived: e.include_archived,
                batch_size: e.batch_size,
                poll: Duration::from_secs(e.poll_secs),
                settle: Duration::from_secs(e.settle_secs),
                retry_initial: Duration::from_millis(e.retry.initial_ms),
                retry_max: Duration::from_millis(e.retry.max_ms),
            });
        }
    }
    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<ExportConfig> {
        #[derive(Deserialize)]
        struct Doc {
            exports: Vec<ExportConfig>,
        }
        toml::from_str::<Doc>(text).expect("toml").exports
    }

    #[test]
    fn good_exporters_resolve_with_their_defaults() {
        let specs = resolve(&parse(
            r#"
            [[exports]]
            name = "file"
            kind = "jsonl"
            path = "/tmp/f.jsonl"
            [[exports]]
            name = "hook"
            kind = "webhook"
            format = "eventbridge"
            source = "picket.findings"
            url = "https://example.com/in"
            headers = { Authorization = "Bearer x" }
            mode = "single"
            "#,
        ))
        .expect("valid");
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].format, Format::GuardDuty);
        assert_eq!(specs[0].settle, Duration::from_secs(15));
        assert!(matches!(
            &specs[1].sink,
            SinkSpec::Webhook { single: true, headers, .. } if headers.len() == 1
        ));
        assert_eq!(
            specs[1].format,
            Format::EventBridge {
                source: "picket.findings".into()
            }
        );
    }

    #[test]
    fn the_shipped_example_documents_exporters_that_resolve_with_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/config/aggregator.example.toml");
        let file = crate::config::ConfigFile::load(&path).expect("example parses");
        let specs = resolve(&file.exports).expect("example exporters are valid");
        let kinds: Vec<_> = specs
            .iter()
            .map(|s| match &s.sink {
                SinkSpec::Jsonl { .. } => "jsonl",
                SinkSpec::S3Layout { .. } => "s3_layout",
                SinkSpec::Webhook { .. } => "webhook",
            })
            .collect();
        assert_eq!(kinds, ["jsonl", "s3_layout", "webhook"]);
        // The first table spells out every default; keep the two in step.
        let e = &file.exports[0];
        assert_eq!(e.batch_size, default_batch_size());
        assert_eq!(e.poll_secs, default_poll_secs());
        assert_eq!(e.settle_secs, default_settle_secs());
        assert_eq!(e.rotate_bytes, default_rotate_bytes());
        assert_eq!(e.rotate_secs, default_rotate_secs());
        assert_eq!(e.retry.initial_ms, default_initial_ms());
        assert_eq!(e.retry.max_ms, default_max_ms());
        assert_eq!(file.exports[2].timeout_secs, default_timeout_secs());
    }

    #[test]
    fn serve_refuses_to_start_with_a_bad_exporter_naming_the_key() {
        let file: crate::config::ConfigFile =
            toml::from_str("[[exports]]\nname = \"x\"\nkind = \"webhook\"\n").expect("toml");
        let flags = crate::config::Overrides {
            ca: Some("a".into()),
            cert: Some("b".into()),
            key: Some("c".into()),
            ..Default::default()
        };
        let err = crate::config::Settings::resolve(file, flags)
            .expect_err("invalid")
            .to_string();
        assert_eq!(err, "exports[0].url is required for kind = \"webhook\"");
    }

    #[test]
    fn every_bad_key_is_named_with_its_index_and_value() {
        let problems = resolve(&parse(
            r#"
            [[exports]]
            name = "a"
            kind = "ftp"
            format = "cef"
            min_severity = 11.0
            [[exports]]
            name = "a"
            kind = "webhook"
            url = "ftp://x"
            headers = { "bad header" = "v" }
            [[exports]]
            name = "c"
            kind = "jsonl"
            url = "http://x"
            retry = { initial_ms = 0 }
            "#,
        ))
        .expect_err("invalid");
        let all = problems.join("\n");
        for expected in [
            "exports[0].kind must be jsonl, s3_layout or webhook, got \"ftp\"",
            "exports[0].format must be one of guardduty, eventbridge, asff, ocsf, got \"cef\"",
            "exports[0].min_severity must be between 0 and 10, got 11",
            "exports[1].name \"a\" is used twice",
            "exports[1].url must be an http:// or https:// URL, got \"ftp://x\"",
            "exports[1].headers.\"bad header\" is not a valid header name",
            "exports[2].url is only for kind = \"webhook\"",
            "exports[2].path is required for kind = \"jsonl\"",
            "exports[2].retry.initial_ms must be at least 1",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
    }
}
