//! `serve`: binds the listener, terminates TLS (rustls, TLS 1.3, client certificates
//! required), runs the gRPC services on the verified connections, and runs detection
//! ([`crate::detection`]) over what they store.
//!
//! Handshakes run in their own tasks with a timeout and a cap on how many may be pending, so a
//! client that sends garbage or stalls costs one task for a few seconds and never blocks other
//! agents. Only completed handshakes reach tonic.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use picket_proto::v1::admin_server::AdminServer;
use picket_proto::v1::findings_server::FindingsServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use crate::admin::AdminService;
use crate::config::{ConfigError, Settings};
use crate::findings::store::{FindingStore, StoreError as FindingStoreError};
use crate::findings::suppression::SuppressionRules;
use crate::ingest::{BatchStore, IngestService, SessionLimiter, StoreError};
use crate::intel::{IntelManager, ReloadError, watcher};
use crate::metrics::IngestErrorCause;
use crate::tls::{TlsError, enroll_server_config, server_config};

/// TLS handshakes allowed in flight at once; more connections wait in the kernel backlog.
const MAX_PENDING_HANDSHAKES: usize = 1024;
/// Verified connections queued for tonic.
const ACCEPTED_QUEUE: usize = 128;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Occurs when the TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Occurs when the store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Occurs when the findings store cannot be opened or its rules read.
    #[error(transparent)]
    Findings(#[from] FindingStoreError),
    /// Occurs when the configuration's suppression rules are rejected.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Occurs when the listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Occurs when the configured intel lists cannot be loaded at start.
    #[error("intel: {0}")]
    Intel(#[from] ReloadError),
    /// Occurs when the intel lists cannot be watched for changes.
    #[error(transparent)]
    IntelWatch(#[from] watcher::WatchError),
    /// Occurs when the CA key or certificate for signing agent certificates is unusable.
    #[error("enroll.ca_key: {0}")]
    Ca(#[from] crate::certs::CertError),
    /// Occurs when the enrollment token secret cannot be read or created.
    #[error(transparent)]
    Token(#[from] crate::enroll::token::TokenError),
    /// Occurs when the AWS identity certificate is unusable.
    #[error(transparent)]
    AwsIdentity(#[from] crate::enroll::aws_identity::AwsIdentityError),
    /// Occurs when an exporter cannot start (damaged position, unreadable CA file).
    #[error("exports: {0}")]
    Exports(#[from] crate::exports::ExportError),
    /// Occurs when the detection cursor cannot be read or the batch store walked at start.
    #[error("detection catch-up: {0}")]
    Cursor(#[from] crate::detection_cursor::CursorError),
    /// Occurs when the configured CloudTrail paths cannot be watched.
    #[error(transparent)]
    CloudTrail(#[from] crate::cloudtrail::watcher::FeedError),
    /// Occurs when `metrics.listen` cannot be bound.
    #[error(transparent)]
    Metrics(#[from] picket_telemetry::EndpointError),
    /// Occurs when the gRPC server fails.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How long a stop waits for open agent streams to end before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs the aggregator until `shutdown` resolves.
///
/// # Errors
/// [`ServeError`] when start-up checks fail or the server stops abnormally.
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let tls = server_config(&settings.tls)?;
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| StoreError::Sled {
        path: settings.data_dir.clone(),
        source: sled::Error::Io(source),
    })?;
    let store = BatchStore::open(&settings.data_dir)?;
    let intel_tree = store.tree("intel")?;
    let intel_settings = settings.intel.clone();
    let intel =
        tokio::task::spawn_blocking(move || IntelManager::start(intel_settings, intel_tree))
            .await
            .map_err(|e| ReloadError::Task(e.to_string()))??;
    let _intel_watcher = watcher::spawn(Arc::clone(&intel), watcher::DEFAULT_DEBOUNCE)?;
    let findings = FindingStore::open(&settings.data_dir)?;
    // Rules from the config file first, then those saved in the store.
    let mut rules = settings.findings.suppression_rules()?.rules().to_vec();
    rules.extend(findings.rules()?.rules().iter().cloned());
    let exports = crate::exports::Exports::start(&findings, settings.exports.clone())?;
    let findings_api = crate::api::FindingsApi::new(findings.clone());
    let cursor_store = findings.clone();
    let (detection_tx, cloudtrail_tx, detection) = crate::detection::spawn_with_cloudtrail(
        findings,
        &settings.findings,
        SuppressionRules::new(rules),
        &settings.detectors,
        &crate::detectors::DetectorContext {
            intel: Some(intel.subscribe()),
        },
    );
    // Before any agent connects: what was stored and acked but never observed (a crash).
    crate::detection_cursor::catch_up(&store, &cursor_store, &detection_tx).await?;
    // CloudTrail files (ct-reader): read what is there, then what arrives.
    let cloudtrail_feed = if settings.cloudtrail.paths.is_empty() {
        None
    } else {
        let seen = crate::cloudtrail::seen::SeenFiles::new(store.tree("cloudtrail_files")?);
        let feed = crate::cloudtrail::watcher::spawn(
            crate::cloudtrail::watcher::FeedSettings {
                paths: settings.cloudtrail.paths.clone(),
                debounce: Duration::from_millis(settings.cloudtrail.debounce_ms),
                rescan: Duration::from_secs(settings.cloudtrail.rescan_secs),
            },
            seen,
            cloudtrail_tx,
        )?;
        info!(
            paths = settings.cloudtrail.paths.len(),
            "reading CloudTrail files"
        );
        Some(feed)
    };
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: settings.listen,
        source,
    })?;
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => Some(picket_telemetry::bind(addr).await?),
        None => None,
    };
    info!(%local_addr, data_dir = %settings.data_dir.display(), "listening");
    let http_api = match settings.api.http_listen {
        None => None,
        Some(addr) => Some(
            spawn_http_api(
                addr,
                &tls,
                findings_api.clone(),
                Duration::from_secs(settings.limits.handshake_timeout_secs),
            )
            .await?,
        ),
    };

    let limits = &settings.limits;
    let limiter = SessionLimiter::new(limits.max_sessions_per_agent.get());
    let revocations = crate::enroll::Revocations::new(store.tree("revoked")?);
    let revocation = picket_proto::v1::revocation_server::RevocationServer::new(
        crate::enroll::RevocationService::new(Arc::clone(&revocations), Arc::clone(&limiter)),
    );
    // Enrollment stops with the main server.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let mut renewal = None;
    let mut enroll_task = None;
    if let Some(enroll) = &settings.enroll {
        let signer = Arc::new(crate::certs::AgentSigner::load(
            &settings.tls.ca,
            &enroll.ca_key,
            enroll.cert_lifetime,
        )?);
        renewal = Some(picket_proto::v1::renewal_server::RenewalServer::new(
            crate::enroll::RenewalService::new(Arc::clone(&signer), Arc::clone(&revocations)),
        ));
        if let Some(addr) = enroll.listen {
            let aws = enroll
                .aws_identity_certificate
                .as_deref()
                .map(crate::enroll::aws_identity::AwsIdentityVerifier::load)
                .transpose()?;
            let service = crate::enroll::EnrollService::new(
                crate::enroll::token::TokenKey::load_or_create(&settings.data_dir)?,
                crate::enroll::token::TokenLedger::new(store.tree("enroll_tokens")?),
                signer,
                Arc::clone(&revocations),
                aws,
            );
            let enroll_listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            let enroll_addr = enroll_listener
                .local_addr()
                .map_err(|source| ServeError::Bind { addr, source })?;
            info!(local_addr = %enroll_addr, aws_identity_required = enroll.aws_identity_certificate.is_some(), "enrollment listening");
            let (etx, erx) = mpsc::channel(ACCEPTED_QUEUE);
            let accept = tokio::spawn(accept_loop(
                enroll_listener,
                TlsAcceptor::from(enroll_server_config(&settings.tls)?),
                Duration::from_secs(limits.handshake_timeout_secs),
                etx,
            ));
            let mut stop = stop_rx.clone();
            let server = tonic::transport::Server::builder()
                .add_service(picket_proto::v1::enroll_server::EnrollServer::new(service))
                .serve_with_incoming_shutdown(
                    ReceiverStream::new(erx).map(Ok::<_, std::io::Error>),
                    async move {
                        let _ = stop.wait_for(|s| *s).await;
                    },
                );
            enroll_task = Some(tokio::spawn(async move {
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "enrollment server failed");
                }
                accept.abort();
            }));
        }
    }
    let admin = AdminServer::new(AdminService::new(
        store.clone(),
        Arc::clone(&limiter),
        Arc::clone(&intel),
    ));
    let _metrics = match metrics_listener {
        Some(listener) => {
            let sources = crate::metrics::Sources {
                store: store.clone(),
                limiter: Arc::clone(&limiter),
                intel: intel.subscribe(),
                detection: detection_tx.clone(),
                exports: exports.stats().to_vec(),
            };
            Some(picket_telemetry::MetricsEndpoint::spawn(
                listener,
                crate::metrics::registry(sources.clone()),
                crate::metrics::health_check(sources),
            )?)
        }
        None => None,
    };
    // Past every fallible step of the start, so an early error leaves no task behind.
    let retention =
        crate::ingest::retention::spawn(store.clone(), cursor_store, settings.batch_retention_days);
    let max_message = limits.max_message_bytes.get();
    let max_intel = limits.max_intel_update_bytes.get();
    let service = IngestService::new(
        store,
        limiter,
        Duration::from_secs(limits.hello_timeout_secs),
        intel,
        max_intel,
    )
    .with_output(detection_tx)
    .with_revocations(revocations)
    .with_max_batch_records(limits.max_batch_records);
    // Agent frames stay under max_message_bytes; outgoing frames may be as large as an intel
    // snapshot. The session checks a snapshot's size itself before sending, because a frame
    // over this limit would end the whole stream with an error.
    let ingest = crate::ingest::IngestRoute::new(service, max_message, max_intel);

    let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
    let accept = tokio::spawn(accept_loop(
        listener,
        TlsAcceptor::from(tls),
        Duration::from_secs(limits.handshake_timeout_secs),
        tx,
    ));
    let incoming = ReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
    let mut stopping = stop_rx.clone();
    let server = tonic::transport::Server::builder()
        // Notice dead agents (pulled cables, frozen hosts) so their sessions and slots free up.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(ingest)
        .add_service(admin)
        .add_service(revocation)
        .add_service(FindingsServer::new(crate::api::grpc::FindingsService::new(
            findings_api,
        )))
        .add_optional_service(renewal)
        .serve_with_incoming_shutdown(incoming, shutdown);
    // A graceful stop waits for every open stream, and an agent's session stream stays open
    // as long as the agent runs: without a deadline a stop (systemd, Ctrl-C) hangs. Cutting
    // the streams after the grace loses nothing: every ack was sent after its batch was
    // durable, and agents resend what was not acked.
    let result = tokio::select! {
        result = server => result,
        () = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            info!(grace_secs = SHUTDOWN_GRACE.as_secs(), "open agent streams cut at shutdown");
            Ok(())
        }
    };
    accept.abort();
    retention.abort();
    drop(cloudtrail_feed);
    if let Some(http) = http_api {
        http.abort();
    }
    if let Some(task) = enroll_task {
        let _ = task.await;
    }
    detection.stop().await;
    // After detection's last drain, so exporters see it on a later start.
    exports.stop().await;
    info!("stopped");
    Ok(result?)
}

/// Binds the findings HTTP API's listener and starts serving it (same TLS, same CA, but
/// offering HTTP/1.1 too, for curl).
async fn spawn_http_api(
    addr: SocketAddr,
    tls: &Arc<rustls::ServerConfig>,
    api: crate::api::FindingsApi,
    handshake_timeout: Duration,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    let bind_err = |source| ServeError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
    let local_addr = listener.local_addr().map_err(bind_err)?;
    let mut config = (**tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    info!(%local_addr, "findings HTTP API listening");
    Ok(crate::api::http::spawn(
        listener,
        Arc::new(config),
        crate::api::http::router(api),
        handshake_timeout,
    ))
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    tx: mpsc::Sender<TlsStream<TcpStream>>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&pending).acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(%peer, error = %e, "TCP_NODELAY not set");
        }
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    if tx.send(tls).await.is_err() {
                        debug!(%peer, "server shutting down; connection dropped");
                    }
                }
                Ok(Err(e)) => {
                    crate::metrics::counters().ingest_error(IngestErrorCause::TlsHandshake);
                    info!(%peer, error = %e, "TLS handshake refused");
                }
                Err(_) => {
                    crate::metrics::counters().ingest_error(IngestErrorCause::TlsTimeout);
                    info!(%peer, "TLS handshake timed out");
                }
            }
        });
    }
}
