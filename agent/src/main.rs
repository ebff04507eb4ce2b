//! `picket-agent`: the binary's edge. Parses flags, sets up logging, runs a subcommand and maps
//! failures to a one-line message and a non-zero exit.

mod cli;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use picket_agent::config::{ConfigFile, Overrides, Settings};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat, RunArgs, StatusArgs, StatusFormat, UploadArgs};

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
        Command::Status(args) => status(args),
        Command::Upload(args) => upload(args),
    }
}

fn settings(args: RunArgs) -> Result<Settings> {
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
    Settings::resolve(file, flags).with_context(|| match &args.config {
        Some(p) => format!("config {}", p.display()),
        None => "flags".to_owned(),
    })
}

fn run_daemon(args: RunArgs) -> Result<()> {
    let settings = settings(args)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(picket_agent::run::run(settings, shutdown_signal()))?;
    Ok(())
}

fn upload(args: UploadArgs) -> Result<()> {
    let settings = settings(args.run)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let timeout = args.timeout_secs.map(std::time::Duration::from_secs);
    let report = runtime.block_on(picket_agent::upload::upload(
        settings,
        &args.records,
        timeout,
        shutdown_signal(),
    ))?;
    for e in &report.errors {
        eprintln!("picket-agent: skipped {e}");
    }
    println!(
        "uploaded {} records, all acked ({} malformed lines skipped, {} non-record lines, {} lines uploaded by an earlier run)",
        report.records,
        report.malformed_lines,
        report.non_record_lines,
        report.already_uploaded_lines
    );
    Ok(())
}

fn status(args: StatusArgs) -> Result<()> {
    use picket_agent::status::{AgentStatus, read_status};
    let data_dir = match (args.data_dir, &args.config) {
        (Some(d), _) => d,
        (None, Some(path)) => ConfigFile::load(path)?
            .agent
            .data_dir
            .unwrap_or_else(|| picket_agent::config::DEFAULT_DATA_DIR.into()),
        (None, None) => picket_agent::config::DEFAULT_DATA_DIR.into(),
    };
    let written = read_status(&data_dir);
    let fresh = written.as_ref().is_ok_and(|s| {
        picket_agent::transport::now_ms().saturating_sub(s.updated_at_ms) < 5_000
            && std::path::Path::new(&format!("/proc/{}", s.pid)).exists()
    });
    let (status, running) = if fresh {
        (written.map_err(anyhow::Error::msg)?, true)
    } else {
        // No live agent: read the outbox itself (sled refuses if a wedged agent holds it).
        let db = picket_agent::run::open_state(&data_dir)
            .context("no fresh status.json and the state cannot be opened")?;
        let outbox = picket_agent::outbox::Outbox::open(
            &db,
            picket_agent::run::state_path(&data_dir),
            written.as_ref().map_or(0, |s| s.max_bytes),
        )?;
        let stats = outbox.stats()?;
        let (agent, aggregator) = written
            .as_ref()
            .map(|s| (s.agent.clone(), s.aggregator.clone()))
            .unwrap_or_default();
        (AgentStatus::new(agent, aggregator, &stats, None), false)
    };
    match args.format {
        StatusFormat::Text => print!("{}", status.render(running)),
        StatusFormat::Json => {
            let mut v = serde_json::to_value(&status)?;
            v["running"] = serde_json::Value::Bool(running);
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
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
