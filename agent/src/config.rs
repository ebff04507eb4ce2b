//! The agent's configuration: a TOML file (`--config`), unknown keys rejected, with the
//! essential settings also available as flags. Relative paths in the file are relative to the
//! file's own folder.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use picket_proto::AgentId;
use picket_telemetry::config_file::{self, ConfigFileError};
use serde::Deserialize;

/// Default state folder.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/picket-agent";

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
        /// The full key.
        key: &'static str,
        /// The flag that also sets it.
        flag: &'static str,
    },
    /// Occurs when a value is out of range or malformed.
    #[error("{key} {why}, got {value:?}")]
    Invalid {
        /// The full key.
        key: &'static str,
        /// The constraint.
        why: String,
        /// The value given.
        value: String,
    },
}

/// `[aggregator]`: where to send.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorSection {
    /// `https://host:port` of the aggregator.
    pub url: Option<String>,
    /// Name to verify in the aggregator's certificate, when it differs from the URL's host.
    pub server_name: Option<String>,
}

/// `[tls]`: the agent's certificate and the CA the aggregator must chain to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// CA certificate (PEM).
    pub ca: Option<PathBuf>,
    /// Agent certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Agent private key (PEM).
    pub key: Option<PathBuf>,
}

/// Where the agent's identity comes from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentitySource {
    /// Ask instance metadata only when the config and flags leave out the account or the
    /// instance (then it also fills the region).
    #[default]
    Auto,
    /// Always ask instance metadata (needed for the identity document at enrollment); fail when
    /// it does not answer. Configured values still win.
    Imds,
    /// Never ask instance metadata.
    Config,
}

/// `[imds]`: how to reach the EC2 instance metadata service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImdsSection {
    /// Base URL, `http://HOST[:PORT]`. Default `http://169.254.169.254`.
    #[serde(default = "default_imds_endpoint")]
    pub endpoint: String,
    /// Deadline per request (connect, send, read), in milliseconds. Default 1000.
    #[serde(default = "default_imds_timeout_ms")]
    pub timeout_ms: NonZeroU64,
}

impl Default for ImdsSection {
    fn default() -> Self {
        Self {
            endpoint: default_imds_endpoint(),
            timeout_ms: default_imds_timeout_ms(),
        }
    }
}

fn default_imds_endpoint() -> String {
    crate::imds::DEFAULT_ENDPOINT.to_owned()
}
fn default_imds_timeout_ms() -> NonZeroU64 {
    nz(1000)
}

/// `[identity]`: who this agent speaks for; what is left out comes from instance metadata.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    /// Where the identity comes from: `auto` (default), `imds` or `config`.
    #[serde(default)]
    pub source: IdentitySource,
    /// 12-digit AWS account id.
    pub account_id: Option<String>,
    /// Instance id.
    pub instance_id: Option<String>,
    /// AWS region.
    pub region: Option<String>,
}

/// `[agent]`: local state and timing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// State folder (outbox, intel cache).
    pub data_dir: Option<PathBuf>,
    /// Seconds between heartbeats.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_interval_secs: NonZeroU64,
    /// Seconds per summary interval.
    #[serde(default = "default_interval_secs")]
    pub summary_interval_secs: NonZeroU64,
    /// First reconnect delay in milliseconds.
    #[serde(default = "default_backoff_min_ms")]
    pub reconnect_min_ms: NonZeroU64,
    /// Largest reconnect delay in milliseconds.
    #[serde(default = "default_backoff_max_ms")]
    pub reconnect_max_ms: NonZeroU64,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            data_dir: None,
            heartbeat_interval_secs: default_heartbeat_secs(),
            summary_interval_secs: default_interval_secs(),
            reconnect_min_ms: default_backoff_min_ms(),
            reconnect_max_ms: default_backoff_max_ms(),
        }
    }
}

fn nz(v: u64) -> NonZeroU64 {
    NonZeroU64::new(v).unwrap_or(NonZeroU64::MIN)
}
fn default_heartbeat_secs() -> NonZeroU64 {
    nz(30)
}
fn default_interval_secs() -> NonZeroU64 {
    nz(60)
}
fn default_backoff_min_ms() -> NonZeroU64 {
    nz(500)
}
fn default_backoff_max_ms() -> NonZeroU64 {
    nz(30_000)
}

/// `[outbox]`: the on-disk buffer for batches awaiting acks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSection {
    /// Most bytes of encoded batches held; past it the oldest summaries are dropped (counted).
    #[serde(default = "default_outbox_max_bytes")]
    pub max_bytes: NonZeroU64,
}

impl Default for OutboxSection {
    fn default() -> Self {
        Self {
            max_bytes: default_outbox_max_bytes(),
        }
    }
}

fn default_outbox_max_bytes() -> NonZeroU64 {
    // 256 MiB: at a few hundred bytes per summary, hours of a busy host's summaries.
    nz(256 * 1024 * 1024)
}

/// Smallest accepted `outbox.max_bytes`.
pub const MIN_OUTBOX_BYTES: u64 = 64 * 1024;

/// The agent's config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[aggregator]`.
    #[serde(default)]
    pub aggregator: AggregatorSection,
    /// `[tls]`.
    #[serde(default)]
    pub tls: TlsSection,
    /// `[identity]`.
    #[serde(default)]
    pub identity: IdentitySection,
    /// `[agent]`.
    #[serde(default)]
    pub agent: AgentSection,
    /// `[outbox]`.
    #[serde(default)]
    pub outbox: OutboxSection,
    /// `[sensor]`.
    #[serde(default)]
    pub sensor: SensorSection,
    /// `[imds]`.
    #[serde(default)]
    pub imds: ImdsSection,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: MetricsSection,
}

/// `[metrics]`: the Prometheus and health endpoint (off unless `listen` is set).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address for plain-HTTP `GET /metrics` and `GET /healthz`, e.g. `127.0.0.1:9464`.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[sensor]`: live capture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorSection {
    /// Interfaces to capture on. Absent: every interface that is up, loopback excluded.
    /// Empty (`[]`): no capture; the agent then only reports its own `HostStats`.
    pub interfaces: Option<Vec<String>>,
    /// With `interfaces` absent: shell-style patterns (`veth*`) of interfaces not to capture
    /// on, such as container links whose packets the host's uplink also carries.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// MiB of kernel memory per interface for packets waiting to be read (the capture
    /// ring). Allocated in full while capturing, on every interface; a busy host that reports
    /// kernel drops wants more.
    #[serde(default = "default_buffer_mib")]
    pub buffer_mib: u32,
    /// As `buffer_mib`, for a container's link (a veth without an address of its own):
    /// it carries one container's traffic, and a node can have a hundred of them.
    #[serde(default = "default_container_buffer_mib")]
    pub container_buffer_mib: u32,
}

impl Default for SensorSection {
    fn default() -> Self {
        Self {
            interfaces: None,
            exclude: Vec::new(),
            buffer_mib: default_buffer_mib(),
            container_buffer_mib: default_container_buffer_mib(),
        }
    }
}

fn default_buffer_mib() -> u32 {
    u32::try_from(crate::capture::live::SOCKET_BUFFER_BYTES >> 20).unwrap_or(8)
}

fn default_container_buffer_mib() -> u32 {
    1
}

/// Most `sensor.buffer_mib`: the ring is kernel memory that cannot be swapped.
const MAX_BUFFER_MIB: u32 = 1024;

impl ConfigFile {
    /// Reads and parses a config file, resolving relative paths against its folder.
    ///
    /// # Errors
    /// [`ConfigError::File`] naming the file, line and key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut file: ConfigFile = config_file::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut file.agent.data_dir,
            &mut file.tls.ca,
            &mut file.tls.cert,
            &mut file.tls.key,
        ] {
            config_file::rebase_optional(p, base);
        }
        Ok(file)
    }
}

/// Flags that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--aggregator`.
    pub aggregator: Option<String>,
    /// `--ca`.
    pub ca: Option<PathBuf>,
    /// `--cert`.
    pub cert: Option<PathBuf>,
    /// `--key`.
    pub key: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--account-id`.
    pub account_id: Option<String>,
    /// `--instance-id`.
    pub instance_id: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Resolved, validated settings for `run`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Aggregator URL (`https://host:port`).
    pub aggregator_url: String,
    /// Name verified in the aggregator's certificate.
    pub server_name: String,
    /// CA certificate.
    pub ca: PathBuf,
    /// Agent certificate.
    pub cert: PathBuf,
    /// Agent key.
    pub key: PathBuf,
    /// State folder.
    pub data_dir: PathBuf,
    /// Who this agent speaks for.
    pub identity: AgentId,
    /// AWS region (may be empty until instance metadata exists).
    pub region: String,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Summary interval.
    pub summary_interval: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// The outbox's byte bound.
    pub outbox_max_bytes: u64,
    /// `sensor.interfaces` as configured (see [`SensorSection::interfaces`]).
    pub sensor_interfaces: Option<Vec<String>>,
    /// `sensor.exclude`, compiled (see [`SensorSection::exclude`]).
    pub sensor_exclude: Vec<glob::Pattern>,
    /// `sensor.buffer_mib` and `sensor.container_buffer_mib` in bytes: kernel memory per
    /// interface captured on.
    pub sensor_rings: crate::sensor::RingSizes,
    /// `metrics.listen`: where to serve `/metrics` and `/healthz`; `None` serves nothing.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// VPC of the instance, from instance metadata; empty when unknown.
    pub vpc_id: String,
    /// The instance's addresses from instance metadata (private, then public).
    pub addresses: Vec<String>,
    /// Where `run` asks instance metadata for the public IPv4 (`[imds]` endpoint and
    /// timeout); `None` when `identity.source = "config"` (never ask).
    pub public_ip_imds: Option<(String, std::time::Duration)>,
}

/// Where the agent's TLS files are: `[tls]` and flags, else `<data_dir>/tls/` (where
/// `picket-agent enroll` writes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate.
    pub ca: PathBuf,
    /// Agent certificate.
    pub cert: PathBuf,
    /// Agent private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files named by flags, then the file, then the defaults under the data folder.
    pub fn resolve(file: &ConfigFile, flags: &Overrides) -> Self {
        let dir = flags
            .data_dir
            .clone()
            .or_else(|| file.agent.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
            .join("tls");
        let pick = |flag: &Option<PathBuf>, conf: &Option<PathBuf>, name: &str| {
            flag.clone()
                .or_else(|| conf.clone())
                .unwrap_or_else(|| dir.join(name))
        };
        Self {
            ca: pick(&flags.ca, &file.tls.ca, "ca.pem"),
            cert: pick(&flags.cert, &file.tls.cert, "agent.pem"),
            key: pick(&flags.key, &file.tls.key, "agent.key"),
        }
    }
}

impl Settings {
    /// Merges the file with flags (flags win) and validates every value.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] or [`ConfigError::Invalid`] naming the key.
    pub fn resolve(file: ConfigFile, flags: Overrides) -> Result<Self, ConfigError> {
        let tls_files = TlsFiles::resolve(&file, &flags);
        let public_ip_imds = (file.identity.source != IdentitySource::Config).then(|| {
            (
                file.imds.endpoint.clone(),
                std::time::Duration::from_millis(file.imds.timeout_ms.get()),
            )
        });
        let url = flags
            .aggregator
            .or(file.aggregator.url)
            .ok_or(ConfigError::Missing {
                key: "aggregator.url",
                flag: "--aggregator",
            })?;
        let host = url_host(&url).ok_or_else(|| ConfigError::Invalid {
            key: "aggregator.url",
            why: "must be https://HOST:PORT".into(),
            value: url.clone(),
        })?;
        let server_name = file.aggregator.server_name.unwrap_or(host);
        let missing = |key, flag| ConfigError::Missing { key, flag };
        let TlsFiles { ca, cert, key } = tls_files;
        let account = flags
            .account_id
            .or(file.identity.account_id)
            .ok_or(missing("identity.account_id", "--account-id"))?;
        let instance = flags
            .instance_id
            .or(file.identity.instance_id)
            .ok_or(missing("identity.instance_id", "--instance-id"))?;
        let identity = AgentId::new(&account, &instance).map_err(|e| ConfigError::Invalid {
            key: if e.to_string().starts_with("account") {
                "identity.account_id"
            } else {
                "identity.instance_id"
            },
            why: e.to_string(),
            value: format!("{account}/{instance}"),
        })?;
        if let Some(bad) = file
            .sensor
            .interfaces
            .iter()
            .flatten()
            .find(|name| name.is_empty() || name.len() > 15 || name.contains('/'))
        {
            return Err(ConfigError::Invalid {
                key: "sensor.interfaces",
                why: "each must be an interface name (1 to 15 characters, no '/')".into(),
                value: bad.clone(),
            });
        }
        if !file.sensor.exclude.is_empty() && file.sensor.interfaces.is_some() {
            return Err(ConfigError::Invalid {
                key: "sensor.exclude",
                why: "applies only when sensor.interfaces is absent (every interface that is up); \
                      list the interfaces or drop the exclusions"
                    .into(),
                value: file.sensor.exclude.join(", "),
            });
        }
        let sensor_exclude = file
            .sensor
            .exclude
            .iter()
            .map(|p| {
                let bad = |why: String| ConfigError::Invalid {
                    key: "sensor.exclude",
                    why,
                    value: p.clone(),
                };
                if p.is_empty() || p.contains('/') {
                    return Err(bad(
                        "each must be a pattern of interface names, such as veth*".into(),
                    ));
                }
                glob::Pattern::new(p).map_err(|e| bad(format!("not a pattern: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ring_bytes = |key: &'static str, mib: u32| {
            if (1..=MAX_BUFFER_MIB).contains(&mib) {
                Ok(usize::try_from(mib).unwrap_or(usize::MAX) << 20)
            } else {
                Err(ConfigError::Invalid {
                    key,
                    why: format!("must be 1 to {MAX_BUFFER_MIB} (MiB per interface)"),
                    value: mib.to_string(),
                })
            }
        };
        let sensor_rings = crate::sensor::RingSizes {
            interface: ring_bytes("sensor.buffer_mib", file.sensor.buffer_mib)?,
            container_link: ring_bytes(
                "sensor.container_buffer_mib",
                file.sensor.container_buffer_mib,
            )?,
        };
        let sensor_interfaces = file.sensor.interfaces;
        let agent = file.agent;
        if agent.reconnect_min_ms > agent.reconnect_max_ms {
            return Err(ConfigError::Invalid {
                key: "agent.reconnect_min_ms",
                why: format!(
                    "must not exceed agent.reconnect_max_ms ({})",
                    agent.reconnect_max_ms
                ),
                value: agent.reconnect_min_ms.to_string(),
            });
        }
        let outbox_max_bytes = file.outbox.max_bytes.get();
        if outbox_max_bytes < MIN_OUTBOX_BYTES {
            return Err(ConfigError::Invalid {
                key: "outbox.max_bytes",
                why: format!("must be at least {MIN_OUTBOX_BYTES}"),
                value: outbox_max_bytes.to_string(),
            });
        }
        Ok(Self {
            metrics_listen: flags.metrics_listen.or(file.metrics.listen),
            outbox_max_bytes,
            sensor_interfaces,
            sensor_exclude,
            sensor_rings,
            vpc_id: String::new(),
            addresses: Vec::new(),
            public_ip_imds,
            aggregator_url: url,
            server_name,
            ca,
            cert,
            key,
            data_dir: flags
                .data_dir
                .or(agent.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            identity,
            region: flags.region.or(file.identity.region).unwrap_or_default(),
            heartbeat_interval: Duration::from_secs(agent.heartbeat_interval_secs.get()),
            summary_interval: Duration::from_secs(agent.summary_interval_secs.get()),
            reconnect_min: Duration::from_millis(agent.reconnect_min_ms.get()),
            reconnect_max: Duration::from_millis(agent.reconnect_max_ms.get()),
        })
    }
}

/// The host of an `https://host:port[/]` URL (IPv6 in brackets), or `None` if not of that form.
fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?.trim_end_matches('/');
    if rest.contains('/') {
        return None;
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, p) = v6.split_once("]:")?;
        (h, p)
    } else {
        rest.rsplit_once(':')?
    };
    port.parse::<u16>().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_flags() -> Overrides {
        Overrides {
            aggregator: Some("https://127.0.0.1:7443".into()),
            ca: Some("ca.pem".into()),
            cert: Some("a.pem".into()),
            key: Some("a.key".into()),
            account_id: Some("123456789012".into()),
            instance_id: Some("i-1".into()),
            ..Overrides::default()
        }
    }

    #[test]
    fn unknown_key_is_named_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "[agent]\nheartbeat_interval_secs = 5\nhearbeat = 1\n",
        )
        .unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("agent.toml:3:") && err.contains("hearbeat"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn urls_must_be_https_with_a_port() {
        assert_eq!(
            url_host("https://10.0.0.1:7443").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(url_host("https://[::1]:7443/").as_deref(), Some("::1"));
        assert_eq!(
            url_host("https://agg.example:7443").as_deref(),
            Some("agg.example")
        );
        for bad in [
            "http://a:1",
            "https://a",
            "https://a:0",
            "https://a:1/x",
            "https://:1",
        ] {
            assert_eq!(url_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_identity_names_the_key() {
        let mut flags = full_flags();
        flags.account_id = Some("12".into());
        let err = Settings::resolve(ConfigFile::default(), flags)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("identity.account_id"), "{err}");
    }

    #[test]
    fn missing_aggregator_is_named() {
        let mut flags = full_flags();
        flags.aggregator = None;
        let err = Settings::resolve(ConfigFile::default(), flags)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("aggregator.url is not set"), "{err}");
    }

    #[test]
    fn sensor_exclusions_are_patterns_for_the_default_interfaces_only() {
        let file: ConfigFile =
            toml::from_str("[sensor]\nexclude = [\"veth*\", \"docker?\"]\n").unwrap();
        let s = Settings::resolve(file, full_flags()).unwrap();
        assert!(s.sensor_interfaces.is_none());
        let excluded = |name: &str| s.sensor_exclude.iter().any(|p| p.matches(name));
        assert!(excluded("veth1a2b") && excluded("docker0"));
        assert!(!excluded("ens5") && !excluded("docker10"));
        for (text, names) in [
            (
                "[sensor]\ninterfaces = [\"ens5\"]\nexclude = [\"veth*\"]\n",
                "applies only",
            ),
            ("[sensor]\nexclude = [\"[\"]\n", "not a pattern"),
            (
                "[sensor]\nexclude = [\"\"]\n",
                "a pattern of interface names",
            ),
        ] {
            let file: ConfigFile = toml::from_str(text).unwrap();
            let err = Settings::resolve(file, full_flags())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("sensor.exclude"), "{text}: {err}");
            assert!(err.contains(names), "{text}: {err}");
        }
    }

    #[test]
    fn the_capture_buffer_is_in_mib_per_interface_and_bounded() {
        let s = Settings::resolve(ConfigFile::default(), full_flags()).unwrap();
        assert_eq!(s.sensor_rings.interface, 8 << 20);
        assert_eq!(s.sensor_rings.container_link, 1 << 20);
        let text = "[sensor]\nbuffer_mib = 64\ncontainer_buffer_mib = 2\n";
        let file: ConfigFile = toml::from_str(text).unwrap();
        let s = Settings::resolve(file, full_flags()).unwrap();
        assert_eq!(s.sensor_rings.interface, 64 << 20);
        assert_eq!(s.sensor_rings.container_link, 2 << 20);
        for key in ["buffer_mib", "container_buffer_mib"] {
            for bad in ["0", "1025"] {
                let file: ConfigFile =
                    toml::from_str(&format!("[sensor]\n{key} = {bad}\n")).unwrap();
                let err = Settings::resolve(file, full_flags())
                    .unwrap_err()
                    .to_string();
                assert!(err.starts_with(&format!("sensor.{key}")), "{bad}: {err}");
                assert!(err.contains("1 to 1024"), "{bad}: {err}");
            }
        }
    }

    #[test]
    fn a_tiny_outbox_bound_is_rejected_with_its_key() {
        let file: ConfigFile = toml::from_str("[outbox]\nmax_bytes = 100\n").unwrap();
        let err = Settings::resolve(file, full_flags())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("outbox.max_bytes must be at least"),
            "{err}"
        );
    }

    #[test]
    fn flags_fill_everything() {
        let s = Settings::resolve(ConfigFile::default(), full_flags()).unwrap();
        assert_eq!(s.server_name, "127.0.0.1");
        assert_eq!(s.heartbeat_interval, Duration::from_secs(30));
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_shipped_example_config_parses() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/agent.example.toml");
        let file = ConfigFile::load(&path).unwrap();
        let s = Settings::resolve(file, Overrides::default()).unwrap();
        assert_eq!(s.identity.instance_id(), "i-0123456789abcdef0");
        assert_eq!(s.server_name, "aggregator.internal");
    }
}

#[cfg(test)]
mod enroll_config_tests {
    use super::*;

    #[test]
    fn tls_files_default_to_the_data_folder_where_enroll_writes_them() {
        let file: ConfigFile = toml::from_str("[agent]\ndata_dir = \"/srv/picket\"\n").unwrap();
        let files = TlsFiles::resolve(&file, &Overrides::default());
        assert_eq!(files.ca, Path::new("/srv/picket/tls/ca.pem"));
        assert_eq!(files.cert, Path::new("/srv/picket/tls/agent.pem"));
        assert_eq!(files.key, Path::new("/srv/picket/tls/agent.key"));
        let flags = Overrides {
            cert: Some("/x/a.pem".into()),
            ..Overrides::default()
        };
        assert_eq!(TlsFiles::resolve(&file, &flags).cert, Path::new("/x/a.pem"));
    }

    #[test]
    fn identity_source_and_imds_parse_and_bad_values_are_named() {
        let file: ConfigFile = toml::from_str(
            "[identity]\nsource = \"imds\"\n[imds]\nendpoint = \"http://127.0.0.1:9\"\ntimeout_ms = 250\n",
        )
        .unwrap();
        assert_eq!(file.identity.source, IdentitySource::Imds);
        assert_eq!(file.imds.timeout_ms.get(), 250);
        assert_eq!(ConfigFile::default().identity.source, IdentitySource::Auto);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "[identity]\nsource = \"magic\"\n").unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("agent.toml:2:") && err.contains("magic"),
            "{err}"
        );
        std::fs::write(&path, "[imds]\ntimeout_ms = 0\n").unwrap();
        assert!(ConfigFile::load(&path).is_err());
    }
}
