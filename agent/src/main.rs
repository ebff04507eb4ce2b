//! `picket-agent`: the binary's edge. Parses flags, sets up logging, runs a subcommand and maps
//! failures to a one-line message and a non-zero exit.

mod cli;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use picket_agent::config::{ConfigFile, Overrides, Settings};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat, RunArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("picket-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run_daemon(args),
    }
}

fn run_daemon(args: RunArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let flags = Overrides {
        aggregator: args.aggregator,
        ca: args.ca,
        cert: args.cert,
        key: args.key,
        data_dir: args.data_dir,
        account_id: args.account_id,
        instance_id: args.instance_id,
        region: args.region,
    };
    let settings = Settings::resolve(file, flags).with_context(|| match &args.config {
        Some(p) => format!("config {}", p.display()),
        None => "flags".to_owned(),
    })?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(picket_agent::run::run(settings, shutdown_signal()))?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let ctrl_c = tokio::signal::ctrl_c();
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "SIGTERM handler not installed; only Ctrl-C stops the agent");
            let _ = ctrl_c.await;
        }
    }
}
