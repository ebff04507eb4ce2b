//! `picket-aggregator`: the binary's edge. Parses flags, sets up logging, runs a subcommand and
//! maps failures to a one-line message and a non-zero exit.

mod cli;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use picket_aggregator::certs::{self, LeafKind};
use picket_aggregator::config::{ConfigFile, Overrides, Settings};
use picket_proto::AgentId;

use crate::cli::{
    AgentsCommand, AgentsListArgs, AgentsRevokeArgs, AgentsRevokedArgs, AnalyzeArgs, CertsCommand,
    Cli, Command, EnrollTokenCommand, EnrollTokenCreateArgs, FindingsCommand, FindingsFilterArgs,
    FindingsIdsArgs, FindingsListArgs, FindingsStatsArgs, IntelCommand, IntelListArgs,
    IntelReloadArgs, IssueArgs, OutputFormat, RemoteArgs, ServeArgs,
};

/// mimalloc instead of glibc's allocator: CloudTrail normalising and the detectors make many
/// small short-lived allocations, where glibc's `malloc_consolidate` showed high in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    picket_telemetry::logging::init(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `... | head`: the reader stopped reading, which is its choice, not a failure.
        Err(e) if e.chain().any(|c| c.is::<StdoutClosed>()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the whole cause chain, outermost first.
            eprintln!(
                "picket-aggregator: {}",
                picket_telemetry::logging::error_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Certs(CertsCommand::Init { dir }) => {
            let pair = certs::init_ca(&dir)?;
            println!("CA certificate: {}", pair.cert.display());
            println!("CA key:         {}", pair.key.display());
            println!(
                "CA fingerprint: {} (give agents --ca-fingerprint)",
                certs::ca_fingerprint(&pair.cert)?
            );
            Ok(())
        }
        Command::Certs(CertsCommand::Fingerprint { dir, ca }) => {
            let path = match (ca, dir) {
                (Some(ca), _) => ca,
                (None, Some(dir)) => dir.join(certs::CA_CERT_FILE),
                (None, None) => bail!("give --dir or --ca"),
            };
            println!("{}", certs::ca_fingerprint(&path)?);
            Ok(())
        }
        Command::Agents(AgentsCommand::Revoke(args)) => agents_revoke(args),
        Command::Agents(AgentsCommand::Revoked(args)) => agents_revoked(args),
        Command::EnrollToken(EnrollTokenCommand::Create(args)) => enroll_token_create(args),
        Command::Certs(CertsCommand::Issue(args)) => issue(args),
        Command::Agents(AgentsCommand::List(args)) => agents_list(args),
        Command::Analyze(args) => analyze(args),
        Command::Findings(FindingsCommand::Samples { account_id, region }) => {
            let now = picket_aggregator::findings::Timestamp::now();
            let samples = picket_aggregator::findings::samples::samples(&account_id, &region, now);
            print_json_lines(&samples)
        }
        Command::Findings(FindingsCommand::Export(args)) => findings_export(args),
        Command::Findings(FindingsCommand::List(args)) => findings_list(args),
        Command::Findings(FindingsCommand::Get(args)) => findings_get(args),
        Command::Findings(FindingsCommand::Archive(args)) => findings_archive(args, true),
        Command::Findings(FindingsCommand::Unarchive(args)) => findings_archive(args, false),
        Command::Findings(FindingsCommand::Stats(args)) => findings_stats(args),
        Command::Intel(command) => intel(command),
    }
}

/// `findings export`: the exporters' formats over the whole store, offline.
fn findings_export(args: cli::FindingsExportArgs) -> Result<()> {
    use picket_aggregator::exports::ExportError;
    use picket_aggregator::exports::config::{ExportConfig, resolve};
    use picket_aggregator::exports::offline::{OfflineFilter, export_all};
    // The same checks as an [[exports]] table, so flags and config agree on what is valid.
    let mut config: ExportConfig =
        toml::from_str("name = \"offline\"\nkind = \"jsonl\"\npath = \"-\"\n")
            .context("offline export settings")?;
    config.format = args.format.clone();
    config.source = args.source.clone();
    config.product_arn = args.product_arn.clone();
    config.min_severity = args.min_severity;
    let spec = resolve(&[config])
        .map_err(|problems| {
            // Name the flags, not the config keys they stand for.
            let text = problems.join("; ").replace("exports[0].", "--");
            anyhow::anyhow!(
                "{}",
                text.replace("min_severity", "min-severity")
                    .replace("product_arn", "product-arn")
            )
        })?
        .into_iter()
        .next()
        .context("offline export settings")?;
    if !args.data_dir.join("findings").is_dir() {
        bail!("no findings store in {}", args.data_dir.display());
    }
    let store = picket_aggregator::findings::store::FindingStore::open(&args.data_dir)
        .with_context(|| {
            format!(
                "opening the findings store in {} (stop the server first: it holds the store's lock)",
                args.data_dir.display()
            )
        })?;
    let filter = OfflineFilter {
        min_severity: args.min_severity,
        include_archived: args.include_archived,
    };
    let report = if args.out.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = std::io::BufWriter::new(stdout.lock());
        export_all(&store, &spec.format, &filter, &mut lock, &args.out).map_err(|e| match e {
            ExportError::Io { source, .. } => stdout_error(source),
            other => other.into(),
        })?
    } else {
        let file = std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let mut w = std::io::BufWriter::new(file);
        let r = export_all(&store, &spec.format, &filter, &mut w, &args.out)?;
        w.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("writing {}", args.out.display()))?;
        r
    };
    eprintln!(
        "findings export: {} written, {} left out by the filter, {} corrupt",
        report.written, report.skipped, report.corrupt
    );
    Ok(())
}

fn intel(command: IntelCommand) -> Result<()> {
    use picket_aggregator::intel::{report, sources};
    match command {
        IntelCommand::Check(args) => {
            let settings = intel_settings(&args.lists)?;
            let snapshot = sources::load_snapshot(&settings, 0)?;
            print_out(&report::check(&snapshot, &args.values))
        }
        IntelCommand::Stats(args) => {
            let settings = intel_settings(&args)?;
            let lists = sources::load_lists(&settings)?;
            let snapshot = sources::compile(lists.clone(), 0)?;
            print_out(&report::stats(&snapshot, &lists))
        }
        IntelCommand::Reload(args) => intel_reload(args),
    }
}

/// The lists `intel check`/`stats` load: list flags, else the config's sources, else canaries.
fn intel_settings(args: &IntelListArgs) -> Result<picket_aggregator::intel::IntelSettings> {
    if !args.threat_lists.is_empty() || !args.trusted_lists.is_empty() {
        return Ok(picket_aggregator::intel::IntelSettings::from_files(
            &args.threat_lists,
            &args.trusted_lists,
        ));
    }
    match &args.config {
        Some(path) => Ok(ConfigFile::load(path)?
            .intel
            .resolve()
            .with_context(|| format!("config {}", path.display()))?),
        None => Ok(picket_aggregator::intel::IntelSettings::default()),
    }
}

fn intel_reload(args: IntelReloadArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let r = runtime.block_on(async {
        let r = &args.remote;
        let channel =
            picket_aggregator::client::connect(&r.aggregator, &r.ca, &r.cert, &r.key).await?;
        let mut client = picket_proto::v1::admin_client::AdminClient::new(channel);
        let response = client
            .reload_intel(picket_proto::v1::ReloadIntelRequest {})
            .await
            .map_err(|s| anyhow::anyhow!("aggregator said {:?}: {}", s.code(), s.message()))?;
        anyhow::Ok(response.into_inner())
    })?;
    if r.changed {
        println!(
            "intel snapshot {} published ({} indicators)",
            r.version, r.indicators
        );
    } else {
        println!(
            "intel lists unchanged; snapshot {} stays ({} indicators)",
            r.version, r.indicators
        );
    }
    Ok(())
}

fn agents_list(args: AgentsListArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let agents = runtime.block_on(async {
        let r = &args.remote;
        let channel =
            picket_aggregator::client::connect(&r.aggregator, &r.ca, &r.cert, &r.key).await?;
        let mut client = picket_proto::v1::admin_client::AdminClient::new(channel);
        let response = client
            .list_agents(picket_proto::v1::ListAgentsRequest {
                account_id: args.account_id.clone().unwrap_or_default(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("aggregator said {:?}: {}", s.code(), s.message()))?;
        anyhow::Ok(response.into_inner().agents)
    })?;
    match args.format {
        OutputFormat::Table => print_out(&picket_aggregator::admin::agents_table(&agents)),
        OutputFormat::Json => print_out(&(serde_json::to_string_pretty(&agents)? + "\n")),
    }
}

type FindingsClient = picket_proto::v1::findings_client::FindingsClient<tonic::transport::Channel>;

/// Runs one call against the `Findings` service of the aggregator `remote` names.
fn with_findings<T>(
    remote: &RemoteArgs,
    call: impl AsyncFnOnce(&mut FindingsClient) -> Result<T, tonic::Status>,
) -> Result<T> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let channel = picket_aggregator::client::connect(
            &remote.aggregator,
            &remote.ca,
            &remote.cert,
            &remote.key,
        )
        .await?;
        let mut client = FindingsClient::new(channel);
        call(&mut client)
            .await
            .map_err(|s| anyhow::anyhow!("aggregator said {:?}: {}", s.code(), s.message()))
    })
}

fn finding_filter(args: &FindingsFilterArgs) -> Result<picket_proto::v1::FindingFilter> {
    let criteria_json = match &args.criteria {
        None => String::new(),
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--criteria {}", path.display()))?,
    };
    Ok(picket_proto::v1::FindingFilter {
        criteria_json,
        conditions: args.conditions.clone(),
    })
}

fn parse_findings(json: &[String]) -> Result<Vec<picket_aggregator::findings::Finding>> {
    json.iter()
        .map(|j| {
            serde_json::from_str(j).context("the aggregator sent a finding that does not parse")
        })
        .collect()
}

fn findings_list(args: FindingsListArgs) -> Result<()> {
    let request = picket_proto::v1::ListFindingsRequest {
        filter: Some(finding_filter(&args.filter)?),
        sort_criteria: Some(picket_proto::v1::SortCriteria {
            attribute_name: args.sort.clone().unwrap_or_default(),
            order_by: args.order.clone().unwrap_or_default(),
        }),
        max_results: args.max_results.unwrap_or(0),
        next_token: args.next_token.clone().unwrap_or_default(),
    };
    let page = with_findings(&args.remote, async |c| {
        c.list_findings(request)
            .await
            .map(tonic::Response::into_inner)
    })?;
    let findings = parse_findings(&page.findings_json)?;
    let next = Some(page.next_token).filter(|t| !t.is_empty());
    match args.format {
        OutputFormat::Table => {
            print_out(&picket_aggregator::api::table::findings_table(&findings))?;
            if let Some(t) = &next {
                eprintln!("more findings: --next-token {t}");
            }
        }
        OutputFormat::Json => print_out(
            &(serde_json::to_string_pretty(&serde_json::json!({
                "findings": findings,
                "nextToken": next,
            }))? + "\n"),
        )?,
    }
    for id in &page.corrupt_ids {
        eprintln!("picket-aggregator: stored finding {id} is corrupt and was skipped");
    }
    Ok(())
}

fn findings_get(args: FindingsIdsArgs) -> Result<()> {
    let request = picket_proto::v1::GetFindingsRequest {
        finding_ids: args.ids.clone(),
    };
    let found = with_findings(&args.remote, async |c| {
        c.get_findings(request)
            .await
            .map(tonic::Response::into_inner)
    })?;
    let findings = parse_findings(&found.findings_json)?;
    match args.format {
        OutputFormat::Table => print_out(&picket_aggregator::api::table::findings_table(&findings)),
        OutputFormat::Json => print_out(
            &(serde_json::to_string_pretty(&serde_json::json!({ "findings": findings }))? + "\n"),
        ),
    }
}

fn findings_archive(args: FindingsIdsArgs, archived: bool) -> Result<()> {
    let ids = args.ids.clone();
    let changed = with_findings(&args.remote, async |c| {
        if archived {
            let r = picket_proto::v1::ArchiveFindingsRequest { finding_ids: ids };
            c.archive_findings(r).await.map(|r| r.into_inner().changed)
        } else {
            let r = picket_proto::v1::UnarchiveFindingsRequest { finding_ids: ids };
            c.unarchive_findings(r)
                .await
                .map(|r| r.into_inner().changed)
        }
    })?;
    let verb = if archived { "archived" } else { "unarchived" };
    match args.format {
        OutputFormat::Table => println!(
            "{changed} of {} findings {verb} (the others already were)",
            args.ids.len()
        ),
        OutputFormat::Json => println!("{}", serde_json::json!({ "changed": changed })),
    }
    Ok(())
}

fn findings_stats(args: FindingsStatsArgs) -> Result<()> {
    let request = picket_proto::v1::GetFindingsStatisticsRequest {
        filter: Some(finding_filter(&args.filter)?),
    };
    let r = with_findings(&args.remote, async |c| {
        c.get_findings_statistics(request)
            .await
            .map(tonic::Response::into_inner)
    })?;
    let stats = picket_aggregator::api::Statistics {
        count_by_severity: r.count_by_severity.into_iter().collect(),
        count_by_type: r.count_by_type.into_iter().collect(),
        total: r.total,
        truncated: r.truncated,
    };
    match args.format {
        OutputFormat::Table => print_out(&picket_aggregator::api::table::statistics_table(&stats)),
        OutputFormat::Json => print_out(&(serde_json::to_string_pretty(&stats)? + "\n")),
    }
}

fn enroll_token_create(args: EnrollTokenCreateArgs) -> Result<()> {
    use picket_aggregator::enroll::token::{TokenKey, parse_ttl};
    AgentId::new(&args.account_id, "i-0").context("--account-id")?;
    let ttl = parse_ttl(&args.ttl).map_err(anyhow::Error::msg)?;
    if args.uses == 0 {
        bail!("--uses must be at least 1");
    }
    let file_dir = match &args.config {
        Some(path) => ConfigFile::load(path)?.server.data_dir,
        None => None,
    };
    let data_dir = args
        .data_dir
        .or(file_dir)
        .unwrap_or_else(|| std::path::PathBuf::from(picket_aggregator::config::DEFAULT_DATA_DIR));
    let key = TokenKey::load_or_create(&data_dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (claims, token) = key.create(&args.account_id, ttl, args.uses, now);
    eprintln!(
        "picket-aggregator: token {} for account {}: {} use(s), expires at unix {}",
        claims.id, claims.account, claims.uses, claims.exp
    );
    println!("{token}");
    Ok(())
}

fn agents_revoke(args: AgentsRevokeArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let r = runtime.block_on(async {
        let r = &args.remote;
        let channel =
            picket_aggregator::client::connect(&r.aggregator, &r.ca, &r.cert, &r.key).await?;
        let mut client = picket_proto::v1::revocation_client::RevocationClient::new(channel);
        let response = client
            .revoke_agent(picket_proto::v1::RevokeAgentRequest {
                spiffe_id: args.agent.clone().unwrap_or_default(),
                account_id: args.account_id.clone().unwrap_or_default(),
                instance_id: args.instance_id.clone().unwrap_or_default(),
                reason: args.reason.clone(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("aggregator said {:?}: {}", s.code(), s.message()))?;
        anyhow::Ok(response.into_inner())
    })?;
    if r.newly_revoked {
        println!(
            "revoked {} ({} open session(s) closed)",
            r.spiffe_id, r.sessions_closed
        );
    } else {
        println!("{} was already revoked", r.spiffe_id);
    }
    Ok(())
}

fn agents_revoked(args: AgentsRevokedArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let agents = runtime.block_on(async {
        let r = &args.remote;
        let channel =
            picket_aggregator::client::connect(&r.aggregator, &r.ca, &r.cert, &r.key).await?;
        let mut client = picket_proto::v1::revocation_client::RevocationClient::new(channel);
        let response = client
            .list_revoked(picket_proto::v1::ListRevokedRequest {})
            .await
            .map_err(|s| anyhow::anyhow!("aggregator said {:?}: {}", s.code(), s.message()))?;
        anyhow::Ok(response.into_inner().agents)
    })?;
    let lines: String = agents
        .iter()
        .map(|a| {
            format!(
                "{}\trevoked_at_ms={}\tby={}\treason={}\n",
                a.spiffe_id, a.revoked_at_ms, a.revoked_by, a.reason
            )
        })
        .collect();
    print_out(&lines)
}

/// Standard output was closed by whatever read it (`picket-aggregator analyze ... | head`).
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
struct StdoutClosed;

/// A failed write to standard output: [`StdoutClosed`] when the pipe was closed, else the
/// error with where it happened.
fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("writing to standard output")
    }
}

/// Writes `text` to standard output, which `print!` would panic on once the reader is gone.
fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

fn print_json_lines<T: serde::Serialize>(items: &[T]) -> Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for item in items {
        serde_json::to_writer(&mut out, item)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)
}

fn analyze(args: AnalyzeArgs) -> Result<()> {
    use picket_aggregator::analyze::{self, AnalyzeOptions};
    use picket_aggregator::detectors::AgentSource;
    use picket_aggregator::findings::engine::EngineConfig;

    if args.agent_records.is_empty() && args.cloudtrail.is_empty() {
        bail!("nothing to analyze: give at least one --agent-records FILE or --cloudtrail PATH");
    }
    if args
        .agent_records
        .iter()
        .chain(&args.cloudtrail)
        .filter(|p| p.as_os_str() == analyze::STDIN)
        .count()
        > 1
    {
        bail!("-: standard input can be read only once (one --agent-records - or --cloudtrail -)");
    }
    for path in &args.cloudtrail {
        if path.as_os_str() != analyze::STDIN && !path.exists() {
            bail!("--cloudtrail {}: no such file or folder", path.display());
        }
    }
    // Threat and trusted lists apply to CloudTrail callers; agent records carry the agent's
    // own intel hits already.
    let context = if args.threat_list.is_empty() && args.trusted_list.is_empty() {
        Default::default()
    } else {
        let settings = picket_aggregator::intel::IntelSettings::from_files(
            &args.threat_list,
            &args.trusted_list,
        );
        let snapshot = picket_aggregator::intel::sources::load_snapshot(&settings, 0)
            .context("--threat-list/--trusted-list")?;
        picket_aggregator::detectors::DetectorContext::with_fixed_intel(snapshot)
    };
    if let Some(a) = args
        .account_id
        .as_ref()
        .filter(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
    {
        bail!("--account-id must be 12 digits, got {a:?}");
    }
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let (findings, detectors) = (file.findings, file.detectors);
    picket_aggregator::config::check_detectors(&detectors).with_context(|| match &args.config {
        Some(p) => format!("config {}", p.display()),
        None => "config".to_owned(),
    })?;
    let rules = findings
        .suppression_rules()
        .with_context(|| match &args.config {
            Some(p) => format!("config {}", p.display()),
            None => "config".to_owned(),
        })?;
    let opts = AnalyzeOptions {
        agent_records: args.agent_records,
        identity_from_replay_stats: args.account_id.is_none() && args.instance_id.is_none(),
        default_source: AgentSource {
            account_id: args.account_id.unwrap_or_else(|| "000000000000".to_owned()),
            instance_id: args.instance_id.unwrap_or_else(|| "i-00000000".to_owned()),
            region: args.region,
        },
        engine: EngineConfig {
            max_open: findings.max_open_findings,
        },
        rules,
        detectors,
        context,
        cloudtrail: args.cloudtrail,
    };
    let mut progress = picket_aggregator::progress::Progress::stderr(
        args.progress,
        "records",
        opts.agent_records.len(),
    );
    let report = analyze::analyze_with_progress(&opts, &mut progress)?;
    for p in &report.problems {
        eprintln!("{p}");
    }
    for p in &report.cloudtrail_problems {
        eprintln!("{p}");
    }
    print_json_lines(&report.findings)?;
    for (detector, c) in &report.counters {
        if c.name != "intel_hits" && c.count > 0 {
            eprintln!(
                "picket-aggregator: detector {detector}: {} = {}",
                c.name, c.count
            );
        }
    }
    eprintln!(
        "picket-aggregator: analyzed {} records: {} findings ({} archived by suppression rules), {} lines skipped",
        report.records,
        report.findings.len(),
        report.engine.suppressed,
        report.problems.len()
    );
    let ct = &report.cloudtrail;
    if ct.files > 0 || ct.problems > 0 {
        eprintln!(
            "picket-aggregator: read {} CloudTrail events from {} files ({} digest files skipped, {} problems)",
            ct.events, ct.files, ct.digests, ct.problems
        );
    }
    Ok(())
}

fn serve(args: ServeArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let flags = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        ca: args.ca,
        cert: args.cert,
        key: args.key,
        metrics_listen: args.metrics_listen,
        http_listen: args.http_listen,
    };
    let settings = Settings::resolve(file, flags).with_context(|| match &args.config {
        Some(p) => format!("config {}", p.display()),
        None => "flags".to_owned(),
    })?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime
        .block_on(async { picket_aggregator::server::serve(settings, shutdown_signal()).await })?;
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
            tracing::warn!(error = %e, "SIGTERM handler not installed; only Ctrl-C stops the server");
            let _ = ctrl_c.await;
        }
    }
    tracing::info!("shutting down");
}

fn issue(args: IssueArgs) -> Result<()> {
    let kind = if args.agent {
        let (Some(account), Some(instance)) = (&args.account_id, &args.instance_id) else {
            bail!("--agent needs --account-id and --instance-id");
        };
        LeafKind::Agent(AgentId::new(account, instance)?)
    } else if let Some(user) = &args.member_user {
        let Some(account) = &args.account_id else {
            bail!("--member-user needs --account-id");
        };
        LeafKind::MemberUser(picket_proto::MemberUserId::new(account, user)?)
    } else if let Some(name) = args.name.clone() {
        if args.server {
            LeafKind::Server(name)
        } else {
            LeafKind::Admin(name)
        }
    } else {
        bail!("--server and --admin need --name");
    };
    let pair = certs::issue(&args.dir, &kind, &args.out)?;
    println!("certificate: {}", pair.cert.display());
    println!("key:         {}", pair.key.display());
    Ok(())
}
