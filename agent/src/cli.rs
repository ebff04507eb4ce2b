//! Command-line interface of `picket-agent`: what the user typed, parsed by clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Run the agent daemon.
    Run(RunArgs),
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
}
