//! Command-line interface of `picket-aggregator`: what the user typed, parsed by clap.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use picket_telemetry::LogFormat;

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
    /// Create enrollment tokens for `picket-agent enroll` (works while `serve` runs).
    #[command(subcommand)]
    EnrollToken(EnrollTokenCommand),
}

/// `enroll-token` subcommands.
#[derive(Debug, Subcommand)]
pub enum EnrollTokenCommand {
    /// Print a new token that lets instances of one account enroll.
    Create(EnrollTokenCreateArgs),
}

/// `enroll-token create` flags.
#[derive(Debug, Args)]
pub struct EnrollTokenCreateArgs {
    /// The 12-digit AWS account whose instances may enroll with the token.
    #[arg(long)]
    pub account_id: String,
    /// How long the token is valid: a number with unit s, m, h or d.
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    /// How many enrollments the token allows.
    #[arg(long, default_value_t = 1)]
    pub uses: u32,
    /// Aggregator config file (for server.data_dir, where the token secret lives).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// State folder, overriding the config's (default /var/lib/picket-aggregator).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
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
    /// Revoke an agent: its sessions, renewals and enrollments are refused from now on and an
    /// open session is closed.
    Revoke(AgentsRevokeArgs),
    /// List revoked agents.
    Revoked(AgentsRevokedArgs),
}

/// `agents revoke` flags.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("who").required(true).args(["agent", "account_id"]))]
pub struct AgentsRevokeArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// The agent's SPIFFE ID, spiffe://picket/account/<account>/instance/<instance>.
    #[arg(long)]
    pub agent: Option<String>,
    /// The agent's account (with --instance-id).
    #[arg(long, requires = "instance_id")]
    pub account_id: Option<String>,
    /// The agent's instance id (with --account-id).
    #[arg(long, requires = "account_id")]
    pub instance_id: Option<String>,
    /// Why, kept with the revocation.
    #[arg(long, default_value = "")]
    pub reason: String,
}

/// `agents revoked` flags.
#[derive(Debug, Args)]
pub struct AgentsRevokedArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub remote: RemoteArgs,
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
    /// JSON-lines file of agent records (bare `Record`s or `{account_id, instance_id, region, record}`);
    /// `-` reads standard input, so `picket-agent replay --pcap F | picket-aggregator analyze
    /// --agent-records -` works.
    #[arg(long = "agent-records", value_name = "FILE.jsonl")]
    pub agent_records: Vec<PathBuf>,
    /// CloudTrail log files or folders (read recursively): `{"Records":[…]}` as delivered to S3,
    /// `aws cloudtrail lookup-events` output, JSON arrays or one event per line (EventBridge
    /// events from CloudTrail too), gzip or plain; digest files are skipped. `-` reads one file
    /// from standard input.
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
    /// Account of bare records [default: the one `picket-agent replay --account-id` wrote in the
    /// file's closing stats line, else 000000000000].
    #[arg(long)]
    pub account_id: Option<String>,
    /// Instance of bare records [default: the one `picket-agent replay --instance-id` wrote in
    /// the file's closing stats line, else i-00000000].
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Region of bare records.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Print progress (records/s, files done) to standard error at most once a second; on by
    /// default when standard error is a terminal.
    #[arg(long)]
    pub progress: bool,
}

/// `findings` subcommands.
#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// List a running aggregator's findings, newest first, one page at a time (needs an
    /// administrator or member user certificate; members see only their account).
    List(FindingsListArgs),
    /// Show findings by id.
    Get(FindingsIdsArgs),
    /// Archive findings by id.
    Archive(FindingsIdsArgs),
    /// Unarchive findings by id.
    Unarchive(FindingsIdsArgs),
    /// Count findings by severity band and by type.
    Stats(FindingsStatsArgs),
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

/// Which findings: short conditions and/or a GuardDuty criterion file; all must hold.
#[derive(Debug, Args)]
pub struct FindingsFilterArgs {
    /// A condition FIELD OP VALUE (OP: = != > >= < <=; lists with commas), e.g.
    /// `severity>=7`, `type=Recon:EC2/Portscan`, `updatedAt>=2026-01-01T00:00:00Z`. Repeat to
    /// combine.
    #[arg(long = "filter", value_name = "CONDITION")]
    pub conditions: Vec<String>,
    /// A JSON file holding GuardDuty FindingCriteria: {"criterion": {FIELD: {OP: VALUE}}}.
    #[arg(long, value_name = "FILE.json")]
    pub criteria: Option<PathBuf>,
}

/// `findings list` flags.
#[derive(Debug, Args)]
pub struct FindingsListArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Which findings.
    #[command(flatten)]
    pub filter: FindingsFilterArgs,
    /// Sort by `updatedAt` (default) or `severity`.
    #[arg(long)]
    pub sort: Option<String>,
    /// `DESC` (default) or `ASC`.
    #[arg(long)]
    pub order: Option<String>,
    /// Findings per page (1-1000, default 50).
    #[arg(long)]
    pub max_results: Option<u32>,
    /// Continue after a previous page (its token is printed on standard error).
    #[arg(long)]
    pub next_token: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `findings get|archive|unarchive` flags.
#[derive(Debug, Args)]
pub struct FindingsIdsArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Finding ids (32 hex digits).
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `findings stats` flags.
#[derive(Debug, Args)]
pub struct FindingsStatsArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Which findings.
    #[command(flatten)]
    pub filter: FindingsFilterArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
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
    /// Serve Prometheus `/metrics` and `/healthz` over plain HTTP on this address
    /// (config: metrics.listen).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Address of the findings HTTPS API (`api.http_listen`; off when neither is set).
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
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
    /// Print the SHA-256 fingerprint of the CA certificate, for `picket-agent enroll
    /// --ca-fingerprint`.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["dir", "ca"]))]
    Fingerprint {
        /// Folder holding ca.pem.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The CA certificate file.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
}

/// `certs issue` flags.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("kind").required(true).args(["agent", "server", "admin", "member_user"]))]
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
    /// Issue a member-account user certificate for user NAME (needs --account-id): it can
    /// query and change only that account's findings.
    #[arg(long, value_name = "NAME", requires = "account_id")]
    pub member_user: Option<String>,
    /// 12-digit AWS account id of the agent or member user.
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
