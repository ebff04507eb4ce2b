//! `picket-agent`: the binary's edge. Parses flags, sets up logging, runs a subcommand and maps
//! failures to a one-line message and a non-zero exit.

mod cli;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use picket_agent::config::{ConfigFile, Overrides, Settings};

use crate::cli::{
    Cli, Command, EnrollArgs, ReplayArgs, RunArgs, StatusArgs, StatusFormat, UploadArgs,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    picket_telemetry::logging::init(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<AlreadyReported>() => ExitCode::FAILURE,
        Err(e) if e.is::<Interrupted>() => ExitCode::from(130),
        Err(e) => {
            eprintln!(
                "picket-agent: {}",
                picket_telemetry::logging::error_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run_daemon(args),
        Command::Status(args) => status(args),
        Command::Upload(args) => upload(args),
        Command::Replay(args) => replay(args),
        Command::Enroll(args) => enroll(args),
    }
}

/// Fills the identity from instance metadata where the config and flags leave it out.
fn identity_from_imds(
    file: &mut ConfigFile,
    flags: &Overrides,
) -> Result<Option<picket_agent::imds::InstanceMetadata>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(picket_agent::identity::fill_from_imds(file, flags))?)
}

fn enroll(args: EnrollArgs) -> Result<()> {
    use picket_agent::config::TlsFiles;
    use picket_agent::enroll::{EnrollOptions, parse_fingerprint};
    let ca_fingerprint = parse_fingerprint(&args.ca_fingerprint)?;
    let mut file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let flags = Overrides::default();
    let metadata = identity_from_imds(&mut file, &flags)?;
    let id = &file.identity;
    let (Some(account), Some(instance)) = (&id.account_id, &id.instance_id) else {
        anyhow::bail!(
            "identity.account_id and identity.instance_id must be set in the config when instance metadata is not used"
        );
    };
    let identity = picket_proto::AgentId::new(account, instance).context("[identity]")?;
    let opts = EnrollOptions {
        url: args.aggregator,
        token: args.token,
        ca_fingerprint,
        identity,
        region: id.region.clone().unwrap_or_default(),
        metadata,
        files: TlsFiles::resolve(&file, &flags),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let enrolled = runtime.block_on(picket_agent::enroll::enroll(&opts))?;
    tracing::info!(
        spiffe_id = %enrolled.spiffe_id,
        not_after_ms = enrolled.not_after_ms,
        cert = %opts.files.cert.display(),
        key = %opts.files.key.display(),
        ca = %opts.files.ca.display(),
        "enrolled"
    );
    println!(
        "enrolled as {}; certificate {}, key {}, CA {}",
        enrolled.spiffe_id,
        opts.files.cert.display(),
        opts.files.key.display(),
        opts.files.ca.display()
    );
    Ok(())
}

fn settings(args: RunArgs) -> Result<Settings> {
    let mut file = match &args.config {
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
        metrics_listen: args.metrics_listen,
    };
    let metadata = identity_from_imds(&mut file, &flags)?;
    let mut settings = Settings::resolve(file, flags).with_context(|| match &args.config {
        Some(p) => format!("config {}", p.display()),
        None => "flags".to_owned(),
    })?;
    if let Some(md) = &metadata {
        picket_agent::identity::apply_metadata(&mut settings, md);
    }
    Ok(settings)
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

/// The built-in canary list plus the given lists, compiled for `replay`; bad lines are
/// reported as `file:line: why` and the rest still loads.
fn replay_snapshot(
    threat: &[std::path::PathBuf],
    trusted: &[std::path::PathBuf],
) -> Result<picket_intel::Snapshot> {
    use picket_intel::{ListKind, ListOptions, SnapshotBuilder, canary_list, parse_list};
    let mut builder = SnapshotBuilder::new();
    builder.add_list(canary_list());
    for (paths, kind) in [(threat, ListKind::Threat), (trusted, ListKind::Trusted)] {
        for path in paths {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let name = path.display().to_string();
            let parsed = parse_list(&name, &bytes, &ListOptions::new(name.clone(), kind))?;
            for issue in parsed.rejected.iter().take(20) {
                eprintln!("picket-agent: {issue}");
            }
            builder.add_list(parsed);
        }
    }
    Ok(builder.build(0)?)
}

fn replay(args: ReplayArgs) -> Result<()> {
    use std::io::Write;

    use picket_agent::flow_table::{Cidr, LocalNets};
    use picket_agent::pipeline::PipelineConfig;

    let file = match &args.run.config {
        Some(path) => Some(ConfigFile::load(path)?),
        None => None,
    };
    let interval_secs = args.summary_interval_secs.map_or_else(
        || {
            file.as_ref()
                .map_or(60, |f| f.agent.summary_interval_secs.get())
        },
        std::num::NonZeroU64::get,
    );
    let mut nets = args.local_net.clone();
    for ip in &args.local_ip {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        nets.push(Cidr::new(*ip, bits)?);
    }
    let config = PipelineConfig {
        summary_interval: std::time::Duration::from_secs(interval_secs),
        local: LocalNets::new(nets),
        ..PipelineConfig::default()
    };

    let streaming = args.run.aggregator.is_some();
    let from_stdin = args
        .pcap
        .iter()
        .filter(|p| picket_agent::replay::is_stdin(p))
        .count();
    if from_stdin > 1 {
        anyhow::bail!("--pcap -: standard input can be read only once");
    }
    if from_stdin == 1 && streaming {
        // The resumable upload names its staging file after the inputs and reads them again
        // on a re-run; a pipe can be neither named nor read again.
        anyhow::bail!(
            "--pcap - cannot be uploaded with --aggregator: write the capture to a file first, or replay with --out and send that file with `picket-agent upload`"
        );
    }
    let staging = if streaming {
        // Staged in a file named for the inputs, so a re-run after a crash resumes the upload
        // where the outbox says it stopped (see picket_agent::replay_upload).
        let data_dir = args
            .run
            .data_dir
            .clone()
            .or_else(|| file.as_ref().and_then(|f| f.agent.data_dir.clone()))
            .unwrap_or_else(|| picket_agent::config::DEFAULT_DATA_DIR.into());
        let inputs: Vec<std::path::PathBuf> = args
            .pcap
            .iter()
            .chain(&args.threat_lists)
            .chain(&args.trusted_lists)
            .cloned()
            .collect();
        let described = format!(
            "interval={interval_secs} local={:?} pcaps={} threat={} trusted={}",
            config.local,
            args.pcap.len(),
            args.threat_lists.len(),
            args.trusted_lists.len()
        );
        Some(picket_agent::replay_upload::Staging::prepare(
            &data_dir, &inputs, &described,
        )?)
    } else {
        None
    };
    let mut out: Box<dyn Write> = match &staging {
        Some(s) if s.resume => {
            eprintln!(
                "picket-agent: resuming the upload of records staged by an earlier run in {} (the capture is read again only for its report)",
                s.path.display()
            );
            Box::new(std::io::sink())
        }
        Some(s) => Box::new(std::io::BufWriter::new(s.create_partial()?)),
        None => match &args.out {
            Some(path) => {
                let f = std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                Box::new(std::io::BufWriter::new(f))
            }
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        },
    };
    let mut write_error: Option<std::io::Error> = None;
    let mut line = Vec::with_capacity(512);
    let snapshot = replay_snapshot(&args.threat_lists, &args.trusted_lists)?;
    let observer = picket_agent::intel_observer::IntelObserver::new(
        picket_agent::intel_observer::SnapshotSource::Fixed(std::sync::Arc::new(snapshot)),
    );
    let pipeline = picket_agent::pipeline::Pipeline::with_observer(config, observer);
    let stop = stop_on_interrupt()?;
    let report = picket_agent::replay::replay_until(
        &args.pcap,
        pipeline,
        &mut |record| {
            if write_error.is_some() {
                return;
            }
            line.clear();
            let written = picket_agent::record_json::write_record(&mut line, &record)
                .map_err(std::io::Error::from)
                .and_then(|()| {
                    line.push(b'\n');
                    out.write_all(&line)
                });
            if let Err(e) = written {
                write_error = Some(e);
            }
        },
        &stop,
    );
    for e in &report.errors {
        // Only damage part-way has packets before it; a file that never opened has none to say.
        match (e.source.offset(), e.packets_before) {
            (None, _) => eprintln!("picket-agent: {e}"),
            (Some(_), 0) => eprintln!("picket-agent: {e} (no packets before it)"),
            (Some(_), n) => eprintln!("picket-agent: {e} ({n} packets before it were used)"),
        }
    }
    let stats = report.stats_line(
        args.run.account_id.as_deref(),
        args.run.instance_id.as_deref(),
    );
    if write_error.is_none() {
        let written = serde_json::to_writer(&mut out, &stats)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            write_error = Some(e);
        }
    }
    drop(out);
    match write_error {
        // A closed pipe (`replay ... | head`) is the reader's choice, not a failure.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Some(e) => return Err(e).context("writing records"),
        None => {}
    }
    if report.interrupted {
        // A staged upload must hold the whole capture: a part would be taken for all of it.
        if let Some(staging) = &staging {
            if !staging.resume {
                if let Err(e) = std::fs::remove_file(&staging.partial) {
                    tracing::warn!(error = %e, "partial staging file not removed");
                }
            }
            eprintln!(
                "picket-agent: interrupted: nothing uploaded (run the same command again to replay and upload)"
            );
        } else {
            eprintln!(
                "picket-agent: interrupted: the records cover the {} packets read",
                report.totals.packets
            );
        }
        return Err(Interrupted.into());
    }
    if let Some(staging) = staging {
        if !staging.resume {
            staging.commit()?;
        }
        let path = staging.path.clone();
        let timeout = args.timeout_secs;
        let settings = settings(args.run)?;
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        let uploaded = runtime.block_on(picket_agent::upload::upload(
            settings,
            std::slice::from_ref(&path),
            timeout.map(std::time::Duration::from_secs),
            shutdown_signal(),
        ))?;
        // Every record is acked: the staging file has done its job (its cursor stays in the
        // outbox, so the same inputs replayed again are not uploaded twice).
        if let Err(e) = staging.remove() {
            tracing::warn!(error = %e, "staging file not removed");
        }
        eprintln!(
            "picket-agent: replayed and uploaded {} records, all acked",
            uploaded.records
        );
    }
    if !report.all_read() {
        // One file's failure was said above; a tally only helps when there were several.
        if args.pcap.len() == 1 {
            return Err(AlreadyReported.into());
        }
        anyhow::bail!(
            "{} of {} capture files gave no packets",
            report
                .errors
                .iter()
                .filter(|e| e.packets_before == 0)
                .count(),
            args.pcap.len()
        );
    }
    Ok(())
}

/// A failure already explained on standard error: the command exits 1 without another line.
#[derive(Debug, thiserror::Error)]
#[error("failed (reported above)")]
struct AlreadyReported;

/// Stopped by SIGINT or SIGTERM after writing what was read: exit status 130, as shells
/// report an interrupted command.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Interrupted;

/// A flag SIGINT and SIGTERM set instead of ending the process, so `replay` can stop reading
/// and still write the summaries of what it read; a second signal ends it at once.
fn stop_on_interrupt() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal set it.
        flag::register_conditional_shutdown(signal, 130, std::sync::Arc::clone(&stop))
            .context("installing the signal handler")?;
        flag::register(signal, std::sync::Arc::clone(&stop))
            .context("installing the signal handler")?;
    }
    Ok(stop)
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
        // Opening would create an empty state where none is, and report it as a healthy
        // idle agent: a mistyped --data-dir must say so instead.
        if !picket_agent::run::state_path(&data_dir).exists() {
            anyhow::bail!(
                "{}: no agent state here (no agent has run with this data folder; give --data-dir or --config)",
                data_dir.display()
            );
        }
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
        (
            AgentStatus::new(agent, aggregator, &stats, None, Vec::new()),
            false,
        )
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
