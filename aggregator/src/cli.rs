//! Command-line interface of `picket-aggregator`: what the user typed, parsed by clap.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Picket's central aggregator: ingests agent summaries over mTLS gRPC, turns them into
/// GuardDuty-shaped findings and manages certificates.
#[derive(Debug, Parser)]
#[command(name = "picket-aggregator", version, about)]
pub struct Cli {
    /// Log line format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PICKET_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the aggregator service.
    Serve(ServeArgs),
    /// Make a CA and issue certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Inspect the agents of a running aggregator (needs an administrator certificate).
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Run every detector and the finding engine over files, offline; print findings as JSON lines.
    Analyze(AnalyzeArgs),
    /// Work with findings.
    #[command(subcommand)]
    Findings(FindingsCommand),
    /// Check values against threat intelligence, count what is loaded, reload a running server.
    #[command(subcommand)]
    Intel(IntelCommand),
}

/// `intel` subcommands.
#[derive(Debug, Subcommand)]
pub enum IntelCommand {
    /// Say for each address or name what matches and why: list, entry, category and the
    /// finding type it leads to, or trusted, or no match.
    Check(IntelCheckArgs),
    /// Count indicators per list, category and kind, and print the lines each list rejected.
    Stats(IntelListArgs),
    /// Rebuild a running aggregator's snapshot from its configured lists now (needs an
    /// administrator certificate).
    Reload(IntelReloadArgs),
}

/// Which lists `intel check` and `intel stats` load: the list flags if any, else the config
/// file's `[intel]` sources, else the built-in canary list.
#[derive(Debug, Args)]
pub struct IntelListArgs {
    /// Aggregator config file whose `[intel]` section names the lists.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A threat list file (format detected); repeat for several. Replaces the configured lists.
    #[arg(long = "threat-list", value_name = "FILE")]
    pub threat_lists: Vec<PathBuf>,
    /// A trusted list file (format detected); repeat for several. Replaces the configured lists.
    #[arg(long = "trusted-list", value_name = "FILE")]
    pub trusted_lists: Vec<PathBuf>,
}

/// `intel check` flags.
#[derive(Debug, Args)]
pub struct IntelCheckArgs {
    /// Which lists.
    #[command(flatten)]
    pub lists: IntelListArgs,
    /// IP addresses and domain names to check.
    #[arg(required = true, value_name = "VALUE")]
    pub values: Vec<String>,
}

/// `intel reload` flags.
#[derive(Debug, Args)]
pub struct IntelReloadArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `agents` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// List every agent: identity, connected, last acked sequence, records received by kind,
    /// duplicates discarded and drops the agent reported.
    List(AgentsListArgs),
}

/// Output formats for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table for people.
    Table,
    /// One JSON document.
    Json,
}

/// How to reach a running aggregator as an administrator.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Aggregator URL, https://HOST:PORT.
    #[arg(long)]
    pub aggregator: String,
    /// CA certificate the aggregator must chain to.
    #[arg(long)]
    pub ca: PathBuf,
    /// Administrator certificate (`certs issue --admin`).
    #[arg(long)]
    pub cert: PathBuf,
    /// Administrator key.
    #[arg(long)]
    pub key: PathBuf,
}

/// `agents list` flags.
#[derive(Debug, Args)]
pub struct AgentsListArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Only agents of this account.
    #[arg(long)]
    pub account_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `analyze` flags.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// JSON-lines file of agent records (bare `Record`s or `{account_id, instance_id, region, record}`).
    #[arg(long = "agent-records", value_name = "FILE.jsonl")]
    pub agent_records: Vec<PathBuf>,
    /// CloudTrail log files or folders (read recursively): `{"Records":[…]}` as delivered to S3,
    /// JSON arrays or one event per line, gzip or plain; digest files are skipped.
    #[arg(long, value_name = "PATH")]
    pub cloudtrail: Vec<PathBuf>,
    /// Threat list checked against CloudTrail callers (agent records carry the agent's own hits).
    #[arg(long = "threat-list", value_name = "FILE")]
    pub threat_list: Vec<PathBuf>,
    /// Trusted list: CloudTrail callers on it never raise intel findings.
    #[arg(long = "trusted-list", value_name = "FILE")]
    pub trusted_list: Vec<PathBuf>,
    /// Aggregator config file; its `[findings]` (suppression rules, bounds) and `[detectors]`
    /// (thresholds) sections apply.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Account of bare records.
    #[arg(long, default_value = "000000000000")]
    pub account_id: String,
    /// Instance of bare records.
    #[arg(long, default_value = "i-00000000")]
    pub instance_id: String,
    /// Region of bare records.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

/// `findings` subcommands.
#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// Print one archived [SAMPLE] finding per finding type, as JSON lines.
    Samples {
        /// Account the samples name.
        #[arg(long, default_value = "000000000000")]
        account_id: String,
        /// Region the samples name.
        #[arg(long, default_value = "us-east-1")]
        region: String,
    },
    /// Write every stored finding to a file in an export format, oldest update first. Reads
    /// the store directly, so the server must be stopped (it holds the store's lock).
    Export(FindingsExportArgs),
}

/// `findings export` flags.
#[derive(Debug, Args)]
pub struct FindingsExportArgs {
    /// The aggregator's state folder (`server.data_dir`).
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    /// guardduty, eventbridge, asff or ocsf.
    #[arg(long, default_value = "guardduty")]
    pub format: String,
    /// The output file; `-` writes to standard output.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// eventbridge: the events' source.
    #[arg(long)]
    pub source: Option<String>,
    /// asff: the ProductArn.
    #[arg(long)]
    pub product_arn: Option<String>,
    /// Leave out findings below this severity.
    #[arg(long, default_value_t = 0.0)]
    pub min_severity: f64,
    /// Also write archived findings.
    #[arg(long)]
    pub include_archived: bool,
}

/// `serve` flags; each overrides the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 0.0.0.0:7443).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// State folder (default /var/lib/picket-aggregator).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// CA certificate agents must chain to.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Server certificate (PEM).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

/// `certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a new CA (ca.pem, ca.key) in DIR.
    Init {
        /// Folder for the CA.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a leaf certificate signed by the CA in DIR (writes PREFIX.pem and PREFIX.key).
    Issue(IssueArgs),
}

/// `certs issue` flags.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("kind").required(true).args(["agent", "server", "admin"]))]
pub struct IssueArgs {
    /// Folder holding ca.pem and ca.key.
    #[arg(long)]
    pub dir: PathBuf,
    /// Issue an agent certificate (needs --account-id and --instance-id).
    #[arg(long, requires_all = ["account_id", "instance_id"])]
    pub agent: bool,
    /// Issue a server certificate (needs --name).
    #[arg(long, requires = "name")]
    pub server: bool,
    /// Issue an administrator certificate (needs --name).
    #[arg(long, requires = "name")]
    pub admin: bool,
    /// 12-digit AWS account id of the agent.
    #[arg(long)]
    pub account_id: Option<String>,
    /// Instance id of the agent.
    #[arg(long)]
    pub instance_id: Option<String>,
    /// DNS name or IP address (server), or administrator name (admin).
    #[arg(long)]
    pub name: Option<String>,
    /// Output path prefix: writes PREFIX.pem and PREFIX.key.
    #[arg(long)]
    pub out: PathBuf,
}
