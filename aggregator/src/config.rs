//! The aggregator's configuration: a TOML file (`--config`), unknown keys rejected, with the
//! essential settings also available as flags. Relative paths in the file are relative to the
//! file's own folder, so a config and its certificates can move together.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};

use picket_telemetry::config_file::{self, ConfigFileError};
use serde::Deserialize;

use crate::detectors::DetectorsConfig;
use crate::findings::suppression::{Filter, FilterError, SuppressionRule, SuppressionRules};
use crate::intel::sources::{IntelSettings, SourceSpec};
use crate::tls::TlsPaths;

/// Default gRPC listen address (all interfaces, Picket's port).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7443";
/// Default state folder.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/picket-aggregator";

/// Why a configuration could not be loaded; every message names the file and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Occurs when the file cannot be read, or its TOML is malformed or has an unknown or
    /// mistyped key.
    #[error(transparent)]
    File(#[from] ConfigFileError),
    /// Occurs when a required setting is given neither in the file nor as a flag.
    #[error("{key} is not set (give {flag} or set it in the config file)")]
    Missing {
        /// The full key, e.g. `tls.ca`.
        key: &'static str,
        /// The flag that also sets it.
        flag: &'static str,
    },
    /// Occurs when a suppression rule's filter is rejected.
    #[error("findings.suppression[{index}] ({name:?}).filter: {source}")]
    BadFilter {
        /// Position of the rule in the file (0-based).
        index: usize,
        /// The rule's name.
        name: String,
        /// Why the filter was rejected.
        source: FilterError,
    },
    /// Occurs when `[detectors]` thresholds are out of range; lists every problem.
    #[error("{}", problems.join("; "))]
    Detectors {
        /// One message per bad value, each naming its full key and the value given.
        problems: Vec<String>,
    },
    /// Occurs when one or more `[intel]` settings are wrong; each problem names its full key
    /// (e.g. `intel.sources[2].kind`) and the value given.
    #[error("{}", .problems.join("; "))]
    Intel {
        /// Every problem found, one per key.
        problems: Vec<String>,
    },
    /// Occurs when one or more `[[exports]]` settings are wrong; each problem names its full
    /// key (e.g. `exports[1].url`) and the value given.
    #[error("{}", .problems.join("; "))]
    Exports {
        /// Every problem found, one per key.
        problems: Vec<String>,
    },
    /// Occurs when `[cloudtrail]` settings are wrong; each problem names its full key.
    #[error("{}", .problems.join("; "))]
    CloudTrail {
        /// Every problem found.
        problems: Vec<String>,
    },
    /// Occurs when a value is out of range.
    #[error("{key} {why}, got {value}")]
    Invalid {
        /// The full key.
        key: &'static str,
        /// The constraint.
        why: &'static str,
        /// The value given.
        value: String,
    },
}

/// `[server]`: where to listen and keep state.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address the gRPC endpoint listens on.
    pub listen: Option<SocketAddr>,
    /// Folder for the sled store.
    pub data_dir: Option<PathBuf>,
    /// Days received batches are kept once detection has observed them (default 7).
    pub batch_retention_days: Option<NonZeroU32>,
}

/// Days received batches are kept when `server.batch_retention_days` is not set.
pub const DEFAULT_BATCH_RETENTION_DAYS: u32 = 7;

/// `[tls]`: the aggregator's certificate, key and the CA agents must chain to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// CA certificate (PEM).
    pub ca: Option<PathBuf>,
    /// Server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub key: Option<PathBuf>,
}

/// `[enroll]`: agent enrollment and certificate renewal (see `docs/architecture.md`,
/// "Enrollment").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollSection {
    /// Address of the enrollment listener (server-authenticated TLS, no client certificate).
    /// Absent: no enrollment listener.
    pub listen: Option<SocketAddr>,
    /// The CA private key that signs agent certificates (enrollment and renewal); the CA
    /// certificate is `tls.ca`. Absent: agents cannot enroll or renew.
    pub ca_key: Option<PathBuf>,
    /// Lifetime of issued agent certificates, in seconds. Default 86400 (24 h).
    pub cert_lifetime_secs: Option<u64>,
    /// AWS's public certificate for instance identity document signatures. When set, agents
    /// must send a document that verifies and names their own account and instance.
    pub aws_identity_certificate: Option<PathBuf>,
}

/// Default lifetime of issued agent certificates.
pub const DEFAULT_CERT_LIFETIME_SECS: u64 = 86_400;

/// Resolved `[enroll]` settings.
#[derive(Debug, Clone)]
pub struct EnrollSettings {
    /// Enrollment listener, when enabled.
    pub listen: Option<SocketAddr>,
    /// CA key.
    pub ca_key: PathBuf,
    /// Lifetime of issued certificates.
    pub cert_lifetime: std::time::Duration,
    /// AWS identity certificate, when documents are required.
    pub aws_identity_certificate: Option<PathBuf>,
}

/// `[api]`: the findings HTTP/JSON API (issue 7). The gRPC `Findings` service is always on
/// the main listener; the HTTP listener is off unless `http_listen` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Address of the HTTPS listener (TLS with client certificates from the same CA).
    pub http_listen: Option<SocketAddr>,
}

/// `[limits]`: bounds that keep one peer from exhausting the aggregator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest gRPC message accepted or sent, in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: NonZeroUsize,
    /// Concurrent sessions allowed per agent identity.
    #[serde(default = "default_max_sessions_per_agent")]
    pub max_sessions_per_agent: NonZeroUsize,
    /// Seconds a client has to finish the TLS handshake.
    #[serde(default = "default_handshake_timeout_secs")]
    pub handshake_timeout_secs: u64,
    /// Seconds an agent has to send `Hello` after opening a session.
    #[serde(default = "default_hello_timeout_secs")]
    pub hello_timeout_secs: u64,
    /// Largest `IntelUpdate` frame sent to an agent, in bytes. Separate from
    /// `max_message_bytes` because a compiled snapshot of millions of indicators is far larger
    /// than any agent frame; a snapshot past it is logged and not sent.
    #[serde(default = "default_max_intel_update_bytes")]
    pub max_intel_update_bytes: NonZeroUsize,
    /// Most records one agent batch may hold; a batch over it ends the session unstored.
    #[serde(default = "default_max_batch_records")]
    pub max_batch_records: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_message_bytes: default_max_message_bytes(),
            max_sessions_per_agent: default_max_sessions_per_agent(),
            handshake_timeout_secs: default_handshake_timeout_secs(),
            hello_timeout_secs: default_hello_timeout_secs(),
            max_intel_update_bytes: default_max_intel_update_bytes(),
            max_batch_records: default_max_batch_records(),
        }
    }
}

fn default_max_message_bytes() -> NonZeroUsize {
    NonZeroUsize::new(4 * 1024 * 1024).unwrap_or(NonZeroUsize::MIN)
}
fn default_max_intel_update_bytes() -> NonZeroUsize {
    // 256 MiB: about five million indicators at the matcher's ~48 bytes each.
    NonZeroUsize::new(256 * 1024 * 1024).unwrap_or(NonZeroUsize::MIN)
}
fn default_max_batch_records() -> usize {
    crate::ingest::service::DEFAULT_MAX_BATCH_RECORDS
}
fn default_max_sessions_per_agent() -> NonZeroUsize {
    // Two, not one: a reconnecting agent's new session may arrive before the server has
    // noticed that the old one died.
    NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN)
}
fn default_handshake_timeout_secs() -> u64 {
    10
}
fn default_hello_timeout_secs() -> u64 {
    10
}

/// One `[[findings.suppression]]` rule: a name and a GuardDuty filter
/// (`filter = { criterion = { type = { eq = ["Recon:EC2/Portscan"] } } }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionRuleConfig {
    /// The rule's name.
    pub name: String,
    /// The filter, in GuardDuty's criterion form.
    pub filter: serde_json::Value,
}

/// `[findings]`: aggregation bounds, retention and suppression rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsSection {
    /// Days a finding is kept after its last update.
    #[serde(default = "default_retention_days")]
    pub retention_days: NonZeroU32,
    /// Findings the engine aggregates in memory before handing them on.
    #[serde(default = "default_max_open_findings")]
    pub max_open_findings: NonZeroUsize,
    /// Rules that archive matching findings on arrival.
    #[serde(default)]
    pub suppression: Vec<SuppressionRuleConfig>,
}

impl Default for FindingsSection {
    fn default() -> Self {
        Self {
            retention_days: default_retention_days(),
            max_open_findings: default_max_open_findings(),
            suppression: Vec::new(),
        }
    }
}

/// `[intel]`: the threat and trusted lists compiled into the snapshot agents receive.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntelSection {
    /// Whether the built-in canary list (the GuardDuty tester's domains) is loaded.
    #[serde(default = "default_canaries")]
    pub canaries: bool,
    /// The list files and folders, as `[[intel.sources]]` tables.
    #[serde(default)]
    pub sources: Vec<SourceSection>,
}

impl Default for IntelSection {
    fn default() -> Self {
        Self {
            canaries: default_canaries(),
            sources: Vec::new(),
        }
    }
}

impl FindingsSection {
    /// The suppression rules, parsed and checked.
    ///
    /// # Errors
    /// [`ConfigError::BadFilter`] naming the rule and the field.
    pub fn suppression_rules(&self) -> Result<SuppressionRules, ConfigError> {
        let rules = self
            .suppression
            .iter()
            .enumerate()
            .map(|(index, r)| {
                Filter::parse(&r.filter)
                    .map(|filter| SuppressionRule {
                        name: r.name.clone(),
                        filter,
                    })
                    .map_err(|source| ConfigError::BadFilter {
                        index,
                        name: r.name.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SuppressionRules::new(rules))
    }
}

fn default_retention_days() -> NonZeroU32 {
    // GuardDuty keeps findings for 90 days.
    NonZeroU32::new(90).unwrap_or(NonZeroU32::MIN)
}
fn default_max_open_findings() -> NonZeroUsize {
    NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN)
}

fn default_canaries() -> bool {
    true
}

/// One `[[intel.sources]]` table: a list file, or a folder whose every file is a list.
///
/// Names are kept as text here and checked by [`IntelSection::resolve`], so a mistake is
/// reported with its full key (`intel.sources[1].kind`) together with every other mistake.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// The file or folder.
    pub path: PathBuf,
    /// `threat` or `trusted`.
    pub kind: String,
    /// The format (`plain`, `stix`, `otx`, …); detected from the content when absent.
    pub format: Option<String>,
    /// The list name findings show; the file name when absent (for a folder: `NAME/FILE`).
    pub name: Option<String>,
    /// Category for entries whose line names none (`c2`, `crypto`, …); `custom` when absent.
    pub category: Option<String>,
}

impl IntelSection {
    /// Checks every source's names and returns the resolved settings; files are read later,
    /// when the snapshot is built.
    ///
    /// # Errors
    /// [`ConfigError::Intel`] listing every problem with its full key and value.
    pub fn resolve(self) -> Result<IntelSettings, ConfigError> {
        let mut problems = Vec::new();
        let mut sources = Vec::new();
        for (i, s) in self.sources.into_iter().enumerate() {
            let key = |field: &str| format!("intel.sources[{i}].{field}");
            if s.path.as_os_str().is_empty() {
                problems.push(format!("{} must not be empty", key("path")));
            }
            let kind = s.kind.parse::<picket_intel::ListKind>().map_err(|_| {
                problems.push(format!(
                    "{} must be threat or trusted, got {:?}",
                    key("kind"),
                    s.kind
                ))
            });
            let format = match &s.format {
                None => Ok(None),
                Some(f) => f
                    .parse::<picket_intel::ListFormat>()
                    .map(Some)
                    .map_err(|_| {
                        problems.push(format!(
                            "{} must be one of {}, got {f:?}",
                            key("format"),
                            format_names()
                        ))
                    }),
            };
            let category = match &s.category {
                None => Ok(picket_intel::Category::Custom),
                Some(c) => c.parse::<picket_intel::Category>().map_err(|_| {
                    problems.push(format!(
                        "{} must be one of {}, got {c:?}",
                        key("category"),
                        category_names()
                    ))
                }),
            };
            if let Some(name) = &s.name
                && (name.trim().is_empty() || name.chars().any(char::is_control))
            {
                problems.push(format!(
                    "{} must be non-empty printable text, got {name:?}",
                    key("name")
                ));
            }
            if let (Ok(kind), Ok(format), Ok(category)) = (kind, format, category) {
                sources.push(SourceSpec {
                    path: s.path,
                    kind,
                    format,
                    name: s.name,
                    category,
                });
            }
        }
        if problems.is_empty() {
            Ok(IntelSettings {
                canaries: self.canaries,
                sources,
            })
        } else {
            Err(ConfigError::Intel { problems })
        }
    }
}

fn format_names() -> String {
    use strum::IntoEnumIterator;
    let names: Vec<&'static str> = picket_intel::ListFormat::iter().map(Into::into).collect();
    names.join(", ")
}

fn category_names() -> String {
    use strum::IntoEnumIterator;
    let names: Vec<&'static str> = picket_intel::Category::iter().map(Into::into).collect();
    names.join(", ")
}

/// `[cloudtrail]`: CloudTrail log files `serve` reads (ct-reader).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudTrailSection {
    /// Files and folders (watched recursively), e.g. an S3 sync of `AWSLogs/`.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Quiet time after a change before new files are read, in ms (10-60000).
    #[serde(default = "default_cloudtrail_debounce_ms")]
    pub debounce_ms: u64,
    /// Seconds between full rescans, for file systems whose change events are missed (1-86400).
    #[serde(default = "default_cloudtrail_rescan_secs")]
    pub rescan_secs: u64,
}

fn default_cloudtrail_debounce_ms() -> u64 {
    1000
}
fn default_cloudtrail_rescan_secs() -> u64 {
    300
}

impl Default for CloudTrailSection {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            debounce_ms: default_cloudtrail_debounce_ms(),
            rescan_secs: default_cloudtrail_rescan_secs(),
        }
    }
}

impl CloudTrailSection {
    /// Every bad value, each naming its full key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (i, path) in self.paths.iter().enumerate() {
            if path.as_os_str().is_empty() {
                p.push(format!("cloudtrail.paths[{i}] must not be empty"));
            }
        }
        if !(10..=60_000).contains(&self.debounce_ms) {
            p.push(format!(
                "cloudtrail.debounce_ms must be between 10 and 60000, got {}",
                self.debounce_ms
            ));
        }
        if !(1..=86_400).contains(&self.rescan_secs) {
            p.push(format!(
                "cloudtrail.rescan_secs must be between 1 and 86400, got {}",
                self.rescan_secs
            ));
        }
        p
    }
}

/// The aggregator's config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerSection,
    /// `[tls]`.
    #[serde(default)]
    pub tls: TlsSection,
    /// `[limits]`.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[findings]`.
    #[serde(default)]
    pub findings: FindingsSection,
    /// `[detectors]`: one sub-section per detector with its thresholds.
    #[serde(default)]
    pub detectors: DetectorsConfig,
    /// `[intel]`.
    #[serde(default)]
    pub intel: IntelSection,
    /// `[api]`.
    #[serde(default)]
    pub api: ApiSection,
    /// `[accounts]`: the administrator and member accounts Picket serves (copied into
    /// `detectors.accounts` on load so every pipeline sees it).
    #[serde(default)]
    pub accounts: crate::detectors::accounts::AccountsConfig,
    /// `[enroll]`.
    #[serde(default)]
    pub enroll: EnrollSection,
    /// `[[exports]]`: where findings are delivered.
    #[serde(default)]
    pub exports: Vec<crate::exports::ExportConfig>,
    /// `[cloudtrail]`.
    #[serde(default)]
    pub cloudtrail: CloudTrailSection,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: MetricsSection,
}

/// `[metrics]`: the Prometheus and health endpoint (off unless `listen` is set).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address for plain-HTTP `GET /metrics` and `GET /healthz`, e.g. `127.0.0.1:9465`.
    pub listen: Option<SocketAddr>,
}

impl ConfigFile {
    /// Reads and parses a config file, resolving relative paths against its folder.
    ///
    /// # Errors
    /// [`ConfigError::File`] naming the file, line and key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut file: ConfigFile = config_file::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut Option<PathBuf>| config_file::rebase_optional(p, base);
        fix(&mut file.server.data_dir);
        fix(&mut file.tls.ca);
        fix(&mut file.tls.cert);
        fix(&mut file.tls.key);
        fix(&mut file.enroll.ca_key);
        fix(&mut file.enroll.aws_identity_certificate);
        for export in &mut file.exports {
            export.rebase(base);
        }
        for p in &mut file.cloudtrail.paths {
            config_file::rebase(p, base);
        }
        for source in &mut file.intel.sources {
            config_file::rebase(&mut source.path, base);
        }
        fix(&mut file.detectors.instance_credentials.aws_ip_ranges);
        file.detectors.accounts = file.accounts.clone();
        Ok(file)
    }
}

/// Flags that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--ca`.
    pub ca: Option<PathBuf>,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `--http-listen` (`api.http_listen`).
    pub http_listen: Option<SocketAddr>,
}

/// Resolved, validated settings for `serve`.
#[derive(Debug)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// State folder.
    pub data_dir: PathBuf,
    /// `server.batch_retention_days`: how long observed batches stay in the batch store.
    pub batch_retention_days: NonZeroU32,
    /// TLS files.
    pub tls: TlsPaths,
    /// Limits.
    pub limits: LimitsSection,
    /// Findings settings.
    pub findings: FindingsSection,
    /// Detector thresholds.
    pub detectors: DetectorsConfig,
    /// Intel sources.
    pub intel: IntelSettings,
    /// Enrollment and renewal, when `enroll.ca_key` is set.
    pub enroll: Option<EnrollSettings>,
    /// Exporters, checked.
    pub exports: Vec<crate::exports::ExportSpec>,
    /// CloudTrail input.
    pub cloudtrail: CloudTrailSection,
    /// `metrics.listen`: where to serve `/metrics` and `/healthz`; `None` serves nothing.
    pub metrics_listen: Option<SocketAddr>,
    /// The findings HTTP API.
    pub api: ApiSection,
}

impl Settings {
    /// Merges the file (if any) with flags (flags win) and checks what can be checked
    /// without touching the files.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] or [`ConfigError::Invalid`] naming the key.
    pub fn resolve(file: ConfigFile, flags: Overrides) -> Result<Self, ConfigError> {
        let listen = match flags.listen.or(file.server.listen) {
            Some(a) => a,
            None => DEFAULT_LISTEN.parse().map_err(|_| ConfigError::Invalid {
                key: "server.listen",
                why: "must be an address:port",
                value: DEFAULT_LISTEN.into(),
            })?,
        };
        let data_dir = flags
            .data_dir
            .or(file.server.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let batch_retention_days = file
            .server
            .batch_retention_days
            .unwrap_or(NonZeroU32::new(DEFAULT_BATCH_RETENTION_DAYS).unwrap_or(NonZeroU32::MIN));
        let tls = TlsPaths {
            ca: flags.ca.or(file.tls.ca).ok_or(ConfigError::Missing {
                key: "tls.ca",
                flag: "--ca",
            })?,
            cert: flags.cert.or(file.tls.cert).ok_or(ConfigError::Missing {
                key: "tls.cert",
                flag: "--cert",
            })?,
            key: flags.key.or(file.tls.key).ok_or(ConfigError::Missing {
                key: "tls.key",
                flag: "--key",
            })?,
        };
        let intel = file.intel.resolve()?;
        let exports = crate::exports::config::resolve(&file.exports)
            .map_err(|problems| ConfigError::Exports { problems })?;
        let limits = file.limits;
        if limits.max_message_bytes.get() < 1024 {
            return Err(ConfigError::Invalid {
                key: "limits.max_message_bytes",
                why: "must be at least 1024",
                value: limits.max_message_bytes.to_string(),
            });
        }
        if limits.max_batch_records < picket_proto::AGENT_BATCH_RECORDS {
            return Err(ConfigError::Invalid {
                key: "limits.max_batch_records",
                why: "must be at least 1000, the records an agent puts in one batch",
                value: limits.max_batch_records.to_string(),
            });
        }
        for (key, v) in [
            (
                "limits.handshake_timeout_secs",
                limits.handshake_timeout_secs,
            ),
            ("limits.hello_timeout_secs", limits.hello_timeout_secs),
        ] {
            if !(1..=3600).contains(&v) {
                return Err(ConfigError::Invalid {
                    key,
                    why: "must be between 1 and 3600",
                    value: v.to_string(),
                });
            }
        }
        // Parsed here too so a bad rule stops startup rather than the first finding.
        file.findings.suppression_rules()?;
        check_detectors(&file.detectors)?;
        let cloudtrail_problems = file.cloudtrail.problems();
        if !cloudtrail_problems.is_empty() {
            return Err(ConfigError::CloudTrail {
                problems: cloudtrail_problems,
            });
        }
        if limits.max_intel_update_bytes < limits.max_message_bytes {
            return Err(ConfigError::Invalid {
                key: "limits.max_intel_update_bytes",
                why: "must be at least limits.max_message_bytes",
                value: limits.max_intel_update_bytes.to_string(),
            });
        }
        let enroll = file.enroll.resolve()?;
        Ok(Self {
            metrics_listen: flags.metrics_listen.or(file.metrics.listen),
            listen,
            data_dir,
            batch_retention_days,
            tls,
            limits,
            findings: file.findings,
            detectors: file.detectors,
            intel,
            enroll,
            exports,
            cloudtrail: file.cloudtrail,
            api: ApiSection {
                http_listen: flags.http_listen.or(file.api.http_listen),
            },
        })
    }
}

impl EnrollSection {
    /// Checks the section; `None` when enrollment is off (no `ca_key`).
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when `listen` is set without `ca_key`, [`ConfigError::Invalid`]
    /// for a lifetime outside 10 s to 31 days.
    pub fn resolve(self) -> Result<Option<EnrollSettings>, ConfigError> {
        let secs = self
            .cert_lifetime_secs
            .unwrap_or(DEFAULT_CERT_LIFETIME_SECS);
        if !(10..=31 * 86_400).contains(&secs) {
            return Err(ConfigError::Invalid {
                key: "enroll.cert_lifetime_secs",
                why: "must be between 10 and 2678400 (31 days)",
                value: secs.to_string(),
            });
        }
        let Some(ca_key) = self.ca_key else {
            if self.listen.is_some() || self.aws_identity_certificate.is_some() {
                return Err(ConfigError::Invalid {
                    key: "enroll.ca_key",
                    why: "must be set when enroll.listen or enroll.aws_identity_certificate is",
                    value: "nothing".into(),
                });
            }
            return Ok(None);
        };
        Ok(Some(EnrollSettings {
            listen: self.listen,
            ca_key,
            cert_lifetime: std::time::Duration::from_secs(secs),
            aws_identity_certificate: self.aws_identity_certificate,
        }))
    }
}

/// Checks `[detectors]`, returning every out-of-range value at once.
///
/// # Errors
/// [`ConfigError::Detectors`] listing each bad key and value.
pub fn check_detectors(detectors: &DetectorsConfig) -> Result<(), ConfigError> {
    let problems = detectors.problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Detectors { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aggregator.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn unknown_key_is_named_with_file_and_line() {
        let (_d, path) = write("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n");
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("aggregator.toml:3:"), "{err}");
        assert!(err.contains("listen_port"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let (d, path) = write("[tls]\nca = \"certs/ca.pem\"\n");
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(file.tls.ca.unwrap(), d.path().join("certs/ca.pem"));
    }

    #[test]
    fn flags_override_the_file_and_missing_tls_is_named() {
        let (_d, path) = write("[server]\nlisten = \"127.0.0.1:1\"\n");
        let file = ConfigFile::load(&path).unwrap();
        let err = Settings::resolve(file, Overrides::default()).unwrap_err();
        assert!(err.to_string().starts_with("tls.ca is not set"), "{err}");
        let file = ConfigFile::load(&path).unwrap();
        let s = Settings::resolve(
            file,
            Overrides {
                listen: Some("127.0.0.1:2".parse().unwrap()),
                ca: Some("a".into()),
                cert: Some("b".into()),
                key: Some("c".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(s.listen.port(), 2);
    }

    #[test]
    fn intel_sources_resolve_with_their_defaults_and_relative_paths() {
        let (d, path) = write(
            "[intel]\ncanaries = false\n[[intel.sources]]\npath = \"lists/threat\"\nkind = \"threat\"\n\n[[intel.sources]]\npath = \"/x/trusted.txt\"\nkind = \"Trusted\"\nformat = \"plain\"\nname = \"office\"\ncategory = \"c2\"\n",
        );
        let intel = ConfigFile::load(&path).unwrap().intel.resolve().unwrap();
        assert!(!intel.canaries);
        assert_eq!(intel.sources.len(), 2);
        assert_eq!(intel.sources[0].path, d.path().join("lists/threat"));
        assert_eq!(intel.sources[0].kind, picket_intel::ListKind::Threat);
        assert_eq!(intel.sources[0].category, picket_intel::Category::Custom);
        assert_eq!(intel.sources[0].format, None);
        assert_eq!(intel.sources[1].kind, picket_intel::ListKind::Trusted);
        assert_eq!(
            intel.sources[1].format,
            Some(picket_intel::ListFormat::Plain)
        );
        assert_eq!(intel.sources[1].name.as_deref(), Some("office"));
        assert_eq!(intel.sources[1].category, picket_intel::Category::C2);
    }

    #[test]
    fn intel_defaults_to_the_canaries_and_no_sources() {
        let (_d, path) = write("[server]\n");
        let intel = ConfigFile::load(&path).unwrap().intel.resolve().unwrap();
        assert!(intel.canaries);
        assert!(intel.sources.is_empty());
    }

    #[test]
    fn every_bad_intel_source_key_is_named_with_its_index_and_value() {
        let (_d, path) = write(
            "[[intel.sources]]\npath = \"a\"\nkind = \"threat\"\n\n[[intel.sources]]\npath = \"b\"\nkind = \"evil\"\nformat = \"pdf\"\ncategory = \"ransom\"\nname = \" \"\n",
        );
        let err = ConfigFile::load(&path)
            .unwrap()
            .intel
            .resolve()
            .unwrap_err()
            .to_string();
        for needle in [
            "intel.sources[1].kind must be threat or trusted, got \"evil\"",
            "intel.sources[1].format must be one of plain",
            "got \"pdf\"",
            "intel.sources[1].category must be one of c2",
            "got \"ransom\"",
            "intel.sources[1].name must be non-empty",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
        assert!(!err.contains("sources[0]"), "{err}");
    }

    #[test]
    fn an_unknown_intel_source_key_is_refused_with_its_line() {
        let (_d, path) =
            write("[[intel.sources]]\npath = \"a\"\nkind = \"threat\"\nfromat = \"plain\"\n");
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("aggregator.toml:4:"), "{err}");
        assert!(err.contains("fromat"), "{err}");
    }

    /// The error `Settings::resolve` gives for `text` with the TLS flags given.
    fn resolve_error(text: &str) -> String {
        let (_d, path) = write(text);
        let file = ConfigFile::load(&path).unwrap();
        let flags = Overrides {
            ca: Some("a".into()),
            cert: Some("b".into()),
            key: Some("c".into()),
            ..Overrides::default()
        };
        Settings::resolve(file, flags).unwrap_err().to_string()
    }

    #[test]
    fn an_intel_update_limit_below_the_message_limit_is_rejected() {
        let err = resolve_error("[limits]\nmax_intel_update_bytes = 2048\n");
        assert!(err.contains("limits.max_intel_update_bytes"), "{err}");
    }

    #[test]
    fn tiny_message_limit_is_rejected() {
        let err = resolve_error("[limits]\nmax_message_bytes = 10\n");
        assert!(err.contains("limits.max_message_bytes"), "{err}");
    }

    #[test]
    fn a_batch_record_cap_below_what_agents_send_is_rejected() {
        let err = resolve_error("[limits]\nmax_batch_records = 999\n");
        assert!(err.contains("limits.max_batch_records"), "{err}");
        assert!(err.contains("999"), "{err}");
    }
}

#[cfg(test)]
mod enroll_tests {
    use super::*;

    #[test]
    fn an_enrollment_listener_without_a_ca_key_is_rejected_by_key() {
        let file: ConfigFile = toml::from_str("[enroll]\nlisten = \"127.0.0.1:7444\"\n").unwrap();
        let err = file.enroll.resolve().unwrap_err().to_string();
        assert!(err.starts_with("enroll.ca_key must be set"), "{err}");
    }

    #[test]
    fn certificate_lifetimes_are_bounded() {
        for (secs, ok) in [
            (9, false),
            (10, true),
            (2_678_400, true),
            (2_678_401, false),
        ] {
            let file: ConfigFile = toml::from_str(&format!(
                "[enroll]\nca_key = \"ca.key\"\ncert_lifetime_secs = {secs}\n"
            ))
            .unwrap();
            assert_eq!(file.enroll.resolve().is_ok(), ok, "{secs}");
        }
        let none: ConfigFile = toml::from_str("").unwrap();
        assert!(none.enroll.resolve().unwrap().is_none());
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_accounts_section_reaches_the_detectors_and_bad_ids_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[accounts]\nadministrator = \"111111111111\"\nmembers = [\"222222222222\", \"12\"]\n\
             [detectors.instance_credentials]\naws_ip_ranges = \"missing.json\"\n",
        )
        .unwrap();
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(
            file.detectors.accounts.administrator.as_deref(),
            Some("111111111111")
        );
        assert_eq!(
            file.detectors.instance_credentials.aws_ip_ranges,
            Some(dir.path().join("missing.json"))
        );
        let err = check_detectors(&file.detectors).unwrap_err().to_string();
        assert!(err.contains("accounts.members[1]"), "{err}");
        assert!(
            err.contains("detectors.instance_credentials.aws_ip_ranges")
                && err.contains("missing.json"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/aggregator.example.toml");
        let file = ConfigFile::load(&path).unwrap();
        let s = Settings::resolve(file, Overrides::default()).unwrap();
        assert_eq!(s.listen.port(), 7443);
        assert_eq!(s.limits.max_message_bytes.get(), 4 * 1024 * 1024);
        let rules = s.findings.suppression_rules().unwrap();
        assert_eq!(rules.rules().len(), 1);
        assert_eq!(s.findings.retention_days.get(), 90);
        let enroll = s.enroll.as_ref().unwrap();
        assert_eq!(enroll.listen.map(|a| a.port()), Some(7444));
        assert_eq!(enroll.cert_lifetime.as_secs(), DEFAULT_CERT_LIFETIME_SECS);
        // The example spells out every detector default; keep the two in step.
        let d = &s.detectors;
        let defaults = DetectorsConfig::default();
        assert_eq!(d.port_scan.min_ports, defaults.port_scan.min_ports);
        assert_eq!(d.port_sweep.min_hosts, defaults.port_sweep.min_hosts);
        assert_eq!(
            d.brute_force.min_short_connections,
            defaults.brute_force.min_short_connections
        );
        assert_eq!(
            d.dns_exfiltration.min_mean_entropy,
            defaults.dns_exfiltration.min_mean_entropy
        );
        assert_eq!(d.dga.min_entropy, defaults.dga.min_entropy);
        assert_eq!(
            d.metadata_dns_rebind.allowed_suffixes,
            defaults.metadata_dns_rebind.allowed_suffixes
        );
        assert_eq!(d.crypto_mining.p2p_ports, defaults.crypto_mining.p2p_ports);
        assert_eq!(
            d.denial_of_service.min_packets,
            defaults.denial_of_service.min_packets
        );
        assert_eq!(
            d.denial_of_service.window_secs,
            defaults.denial_of_service.window_secs
        );
        assert_eq!(
            d.api_baseline.learning_events,
            defaults.api_baseline.learning_events
        );
        assert_eq!(
            d.api_baseline.learning_days,
            defaults.api_baseline.learning_days
        );
        assert_eq!(
            d.api_baseline.min_new_dimensions,
            defaults.api_baseline.min_new_dimensions
        );
        assert_eq!(
            d.api_baseline.max_principals,
            defaults.api_baseline.max_principals
        );
        assert_eq!(
            d.iam_persistence.new_user_window_secs,
            defaults.iam_persistence.new_user_window_secs
        );
        assert_eq!(
            d.iam_persistence.admin_policies,
            defaults.iam_persistence.admin_policies
        );
        assert_eq!(
            d.cross_account.min_accounts,
            defaults.cross_account.min_accounts
        );
        assert_eq!(
            d.attack_sequence.window_secs,
            defaults.attack_sequence.window_secs
        );
        assert_eq!(
            d.instance_credentials.max_instances,
            defaults.instance_credentials.max_instances
        );
        assert_eq!(d.accounts, Default::default());
        assert_eq!(
            d.network_port_unusual.learning_secs,
            defaults.network_port_unusual.learning_secs
        );
        assert_eq!(
            d.network_port_unusual.ephemeral_port_floor,
            defaults.network_port_unusual.ephemeral_port_floor
        );
        assert_eq!(
            d.traffic_volume_unusual.min_bytes,
            defaults.traffic_volume_unusual.min_bytes
        );
        assert_eq!(d.spambot.min_remotes, defaults.spambot.min_remotes);
        assert_eq!(
            d.unusual_dns_resolver.max_resolvers,
            defaults.unusual_dns_resolver.max_resolvers
        );
        assert_eq!(d.tor.web_ports, defaults.tor.web_ports);
        assert_eq!(d.beaconing.min_score, defaults.beaconing.min_score);
        assert_eq!(d.beaconing.ignore_ports, defaults.beaconing.ignore_ports);
        assert_eq!(s.limits.max_intel_update_bytes.get(), 256 * 1024 * 1024);
        assert!(s.intel.canaries);
        assert_eq!(s.intel.sources.len(), 2);
    }

    #[test]
    fn detector_thresholds_are_read_and_bad_ones_are_all_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[detectors.port_scan]\nmin_ports = 7\n[detectors.dga]\nmin_entropy = 9.0\n\
             [detectors.denial_of_service]\nmax_reply_ratio = 2.0\n",
        )
        .unwrap();
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(file.detectors.port_scan.min_ports.get(), 7);
        let err = check_detectors(&file.detectors).unwrap_err().to_string();
        assert!(
            err.contains("detectors.dga.min_entropy") && err.contains("9"),
            "{err}"
        );
        assert!(
            err.contains("detectors.denial_of_service.max_reply_ratio") && err.contains("2"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_detector_key_is_rejected_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "[detectors.port_scan]\nmin_port = 7\n").unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("a.toml:2:") && err.contains("min_port"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_suppression_filter_is_rejected_naming_rule_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[[findings.suppression]]\nname = \"x\"\nfilter = { criterion = { severty = { gte = 7 } } }\n",
        )
        .unwrap();
        let file = ConfigFile::load(&path).unwrap();
        let err = file.findings.suppression_rules().unwrap_err().to_string();
        assert!(
            err.contains("findings.suppression[0]") && err.contains("severty"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod cloudtrail_section_tests {
    use super::*;

    #[test]
    fn cloudtrail_paths_are_relative_to_the_config_and_bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n[cloudtrail]\npaths = [\"logs\"]\ndebounce_ms = 5\nrescan_secs = 0\n",
        )
        .unwrap();
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(file.cloudtrail.paths, vec![dir.path().join("logs")]);
        let err = Settings::resolve(file, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cloudtrail.debounce_ms") && err.contains("got 5"),
            "{err}"
        );
        assert!(err.contains("cloudtrail.rescan_secs"), "{err}");
        std::fs::write(&path, "[cloudtrail]\npath = [\"x\"]\n").unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("path"), "{err}");
    }

    #[test]
    fn the_example_config_documents_the_cloudtrail_section() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/aggregator.example.toml");
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(file.cloudtrail.paths.len(), 1);
        assert_eq!(
            file.cloudtrail.debounce_ms,
            CloudTrailSection::default().debounce_ms
        );
        assert_eq!(
            file.cloudtrail.rescan_secs,
            CloudTrailSection::default().rescan_secs
        );
        let d = file.detectors.console_login;
        let defaults =
            crate::detectors::cloudtrail_rules::console_login::ConsoleLoginConfig::default();
        assert_eq!(d.success_min_networks, defaults.success_min_networks);
        assert_eq!(d.failure_min, defaults.failure_min);
    }
}
