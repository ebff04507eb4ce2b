//! `picket-agent run`: opens the agent's state, starts the live sensor (or, with no interface to
//! capture on, the host-stats reporter) and the transport, and stops them together on shutdown.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tracing::info;

use crate::config::Settings;
use crate::health::Health;
use crate::outbox::{Outbox, OutboxError};
use crate::pipeline::PipelineConfig;
use crate::records_sink::RecordSink;
use crate::sensor::{Sensor, interfaces_to_capture};
use crate::tls::{TlsError, client_config};
use crate::transport::Transport;

/// The sled database folder inside an agent's data folder.
pub fn state_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("state")
}

/// Opens the agent's sled database, saying where and why when it cannot.
///
/// # Errors
/// [`RunError::DataDir`] naming the folder and sled's reason (e.g. another agent holds it).
pub fn open_state(data_dir: &std::path::Path) -> Result<sled::Db, RunError> {
    let path = state_path(data_dir);
    sled::open(&path).map_err(|e| RunError::DataDir {
        path,
        reason: e.to_string(),
    })
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Occurs when the TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Occurs when the state folder or its sled database cannot be opened.
    #[error("agent.data_dir = {path}: {reason}")]
    DataDir {
        /// The folder.
        path: std::path::PathBuf,
        /// What failed.
        reason: String,
    },
    /// Occurs when the outbox cannot be opened.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Occurs when live capture cannot start on a configured interface.
    #[error(transparent)]
    Capture(#[from] crate::capture::LiveCaptureError),
    /// Occurs when the intel cache cannot be opened.
    #[error(transparent)]
    Intel(#[from] crate::intel_cache::IntelCacheError),
    /// Occurs when `metrics.listen` cannot be bound.
    #[error(transparent)]
    Metrics(#[from] picket_telemetry::EndpointError),
}

/// Runs the agent until `shutdown` resolves.
///
/// # Errors
/// [`RunError`] when start-up checks fail; once running, failures are logged and retried.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let tls = client_config(
        &settings.ca,
        &settings.cert,
        &settings.key,
        &settings.server_name,
    )?;
    let dir_err = |reason: String| RunError::DataDir {
        path: settings.data_dir.clone(),
        reason,
    };
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| dir_err(e.to_string()))?;
    let db = open_state(&settings.data_dir)?;
    let outbox = Outbox::open(
        &db,
        state_path(&settings.data_dir),
        settings.outbox_max_bytes,
    )?;
    let new_batches = Arc::new(Notify::new());
    let health = Arc::new(Health::default());
    let sink = RecordSink::new(
        outbox.clone(),
        Arc::clone(&new_batches),
        Arc::clone(&health),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    // EC2 interfaces rarely hold the public address (the VPC NATs it): instance metadata is
    // asked for it at start and every few minutes, and `HostStats` carry it.
    let (sink, public_ip) = match &settings.public_ip_imds {
        Some((endpoint, timeout)) => match crate::imds::ImdsClient::new(endpoint, *timeout) {
            Ok(client) => {
                let cell = Arc::new(crate::imds::PublicIpv4::default());
                let task = tokio::spawn(crate::imds::refresh_public_ipv4(
                    client,
                    Arc::clone(&cell),
                    crate::imds::PUBLIC_IP_REFRESH,
                    stop_rx.clone(),
                ));
                (sink.with_public_ipv4(cell), Some(task))
            }
            Err(e) => {
                tracing::warn!(error = %e, "public IPv4 not read from instance metadata");
                (sink, None)
            }
        },
        None => (sink, None),
    };

    info!(agent = %settings.identity, aggregator = %settings.aggregator_url, "agent starting");
    // Shared by the sensor (which counts its threads), `status.json` and the metrics.
    let capture = crate::sensor::CaptureThreads::default();
    let status = tokio::spawn(crate::status::write_every_second(
        settings.data_dir.clone(),
        settings.identity.to_string(),
        settings.aggregator_url.clone(),
        outbox.clone(),
        Arc::clone(&health),
        capture.clone(),
        stop_rx.clone(),
    ));
    let intel = crate::intel_cache::IntelCache::open(&db)?;
    // Bound before capture starts, so a taken port fails start-up rather than later.
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => Some(picket_telemetry::bind(addr).await?),
        None => None,
    };
    let interfaces = interfaces_to_capture(
        settings.sensor_interfaces.as_deref(),
        &settings.sensor_exclude,
    );
    // With a sensor, its pipelines send `HostStats` (with the outbox's drops added on the
    // way); without one, the reporter keeps the agent visible.
    let (sensor, reporter) = if interfaces.current().is_empty() {
        info!("no interfaces to capture on; reporting host stats only");
        let reporter = tokio::spawn(crate::host_stats::report_every(
            settings.summary_interval,
            sink,
            stop_rx.clone(),
        ));
        (None, Some(reporter))
    } else {
        // The interfaces about to be captured on; start-up fails if one cannot be.
        let captured = interfaces.current();
        let config = PipelineConfig {
            summary_interval: settings.summary_interval,
            local: crate::capture::live::local_nets(|name| captured.iter().any(|c| c == name)),
            ..PipelineConfig::default()
        };
        match Sensor::start(
            &interfaces,
            &config,
            sink.clone(),
            Arc::clone(&intel),
            capture.clone(),
            settings.sensor_rings,
        ) {
            Ok(sensor) => (Some(sensor), None),
            // Interfaces named in the config must work; the default (every interface) may
            // simply lack the privilege, and the agent is still useful as a reporter.
            Err(e) if settings.sensor_interfaces.is_none() => {
                tracing::warn!(
                    error = %e,
                    "live capture unavailable (needs root or CAP_NET_RAW); reporting host stats only"
                );
                let reporter = tokio::spawn(crate::host_stats::report_every(
                    settings.summary_interval,
                    sink,
                    stop_rx.clone(),
                ));
                (None, Some(reporter))
            }
            Err(e) => return Err(e.into()),
        }
    };
    let _metrics = match metrics_listener {
        Some(listener) => {
            let sources = crate::metrics::Sources {
                health: Arc::clone(&health),
                outbox: outbox.clone(),
                intel: Arc::clone(&intel),
                capture: sensor.as_ref().map(Sensor::threads),
            };
            Some(picket_telemetry::MetricsEndpoint::spawn(
                listener,
                crate::metrics::registry(sources.clone()),
                crate::metrics::health_check(sources),
            )?)
        }
        None => None,
    };
    let renewal = tokio::spawn(crate::renewal::run(settings.clone(), stop_rx.clone()));
    let transport = Transport::new(settings, tls, outbox, new_batches, health, intel);
    let transport = tokio::spawn(transport.run(stop_rx));

    shutdown.await;
    info!("agent stopping");
    // The sensor's last summaries reach the outbox before the transport stops.
    if let Some(sensor) = sensor {
        sensor.stop().await;
    }
    let _ = stop_tx.send(true);
    for task in [
        Some(status),
        reporter,
        Some(transport),
        Some(renewal),
        public_ip,
    ]
    .into_iter()
    .flatten()
    {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "agent task failed");
        }
    }
    if let Err(e) = db.flush_async().await {
        tracing::error!(error = %e, "final flush of agent state failed");
    }
    Ok(())
}
