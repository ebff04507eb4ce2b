//! Command-line interface of `picket-agent`: what the user typed, parsed by clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use picket_telemetry::LogFormat;

/// Picket's host agent: watches this host's network metadata and streams summaries to the
/// aggregator over mTLS gRPC.
#[derive(Debug, Parser)]
#[command(name = "picket-agent", version, about)]
pub struct Cli {
    /// Log line format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PICKET_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent daemon.
    Run(RunArgs),
    /// Show the local agent's state: buffered batches, bytes, oldest age, drops, connection.
    Status(StatusArgs),
    /// Send records from JSON-lines files (as `replay --out` writes them) to the aggregator
    /// through the outbox; exits 0 only once every record is acked.
    Upload(UploadArgs),
    /// Replay pcap/pcapng files (or gzip-compressed ones) through the sensor and write the records `run` would stream,
    /// one JSON object per line, then a `{"stats": {...}}` line; with `--aggregator` (and TLS
    /// files) send them instead, exiting 0 only once every record is acked.
    ///
    /// Damage part-way through a file is reported on standard error with its byte offset, and
    /// the packets before it still count. Exit status 1 when some file gave no packet at all
    /// (unreadable, not a capture, damaged before its first packet). Ctrl-C (or SIGTERM)
    /// stops reading and writes the records of what was read, with `"interrupted": true` in
    /// the stats line, exit status 130; a second one ends at once.
    Replay(ReplayArgs),
    /// Get this agent's certificate from the aggregator's enrollment listener: generate a key
    /// locally (it never leaves the host), send a CSR with this host's identity (config, else
    /// EC2 instance metadata) and an enrollment token, and write key (0600), certificate and CA
    /// to the config's [tls] paths (default <data_dir>/tls/). Exits 0 once they are written.
    Enroll(EnrollArgs),
}

/// `enroll` flags.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The aggregator's enrollment listener, https://HOST:PORT (its `enroll.listen`).
    #[arg(long)]
    pub aggregator: String,
    /// Enrollment token from `picket-aggregator enroll-token create`.
    #[arg(long, env = "PICKET_ENROLL_TOKEN", hide_env_values = true)]
    pub token: String,
    /// SHA-256 fingerprint of the Picket CA (`picket-aggregator certs fingerprint`); the
    /// aggregator is trusted only if its chain holds this CA.
    #[arg(long)]
    pub ca_fingerprint: String,
    /// Agent config file: [identity], [imds] and where [tls] files go.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `replay` flags.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture files (pcap or pcapng, either possibly gzip-compressed, told apart by their
    /// magic bytes), replayed in order; `-` reads one from standard input (not with
    /// `--aggregator`, whose upload resumes by reading its inputs again).
    #[arg(long = "pcap", required = true, num_args = 1..)]
    pub pcap: Vec<PathBuf>,
    /// An address of the capturing host, for flow direction (repeatable).
    #[arg(long = "local-ip")]
    pub local_ip: Vec<std::net::IpAddr>,
    /// A network of the capturing host, as CIDR (repeatable). With neither flag, private
    /// ranges count as local.
    #[arg(long = "local-net")]
    pub local_net: Vec<picket_agent::flow_table::Cidr>,
    /// Write the JSON lines here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seconds per summary interval (default: the config's agent.summary_interval_secs, 60).
    #[arg(long)]
    pub summary_interval_secs: Option<std::num::NonZeroU64>,
    /// With --aggregator: give up (exit 1, records stay buffered) after this many seconds.
    #[arg(long)]
    pub timeout_secs: Option<u64>,
    /// A threat list (any supported format, detected) checked with the built-in canary list;
    /// matches become IntelHit records (repeatable).
    #[arg(long = "threat-list", value_name = "FILE")]
    pub threat_lists: Vec<PathBuf>,
    /// A trusted list: its addresses and names never produce a hit (repeatable).
    #[arg(long = "trusted-list", value_name = "FILE")]
    pub trusted_lists: Vec<PathBuf>,
    /// Identity, and with --aggregator the connection and state settings, as for `run`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// TOML config file (for its agent.data_dir).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// State folder (default: the config's, else /var/lib/picket-agent).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
}

/// `status` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// Lines for people.
    Text,
    /// One JSON object.
    Json,
}

/// `upload` flags.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// JSON-lines files of records.
    #[arg(long = "records", required = true, num_args = 1..)]
    pub records: Vec<PathBuf>,
    /// Give up (exit 1, records stay buffered) after this many seconds without full acks.
    #[arg(long)]
    pub timeout_secs: Option<u64>,
    /// Connection, identity and state settings, as for `run`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `run` flags; each overrides the config file.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Aggregator URL, https://HOST:PORT.
    #[arg(long)]
    pub aggregator: Option<String>,
    /// CA certificate the aggregator must chain to.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// This agent's certificate (PEM).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// This agent's private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// State folder (default /var/lib/picket-agent).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// 12-digit AWS account id this host belongs to.
    #[arg(long)]
    pub account_id: Option<String>,
    /// This host's instance id.
    #[arg(long)]
    pub instance_id: Option<String>,
    /// AWS region.
    #[arg(long)]
    pub region: Option<String>,
    /// Serve Prometheus `/metrics` and `/healthz` over plain HTTP on this address
    /// (config: metrics.listen).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}
