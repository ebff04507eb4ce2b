//! The agent's side of the `Ingest` session: connects over mTLS, sends `Hello`, streams the
//! outbox's batches with a bounded window of unacked ones, sends heartbeats, applies acks, and
//! reconnects with jittered exponential backoff, logging why each connection failed.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use picket_proto::v1::{AgentIdentity, AggregatorFrame, Heartbeat, Hello, Lane, aggregator_frame};
use picket_proto::{RawAgentFrame, RawFrameKind};
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{ClientTlsConfig, Endpoint};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::config::Settings;
use crate::health::Health;
use crate::intel_cache::IntelCache;
use crate::outbox::{Outbox, OutboxError};

/// Batches sent but not yet acked, at most. Bounds what a slow aggregator makes the agent
/// hold in flight; the rest waits on disk in the outbox. Deep enough that the aggregator's
/// group commit always finds a group waiting while the previous flush runs.
pub const WINDOW: usize = 64;
/// Largest message accepted from the aggregator: intel snapshots are the big ones, and this
/// matches the aggregator's default `limits.max_intel_update_bytes`.
const MAX_INBOUND_MESSAGE: usize = 256 * 1024 * 1024;

/// Opens `Ingest/Session` on `channel` sending [`RawAgentFrame`]s (what the generated client does,
/// with the agent's own frame type).
async fn open_session(
    channel: tonic::transport::Channel,
    frames: ReceiverStream<RawAgentFrame>,
) -> Result<tonic::Streaming<AggregatorFrame>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_INBOUND_MESSAGE);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))?;
    let path = http::uri::PathAndQuery::from_static("/picket.v1.Ingest/Session");
    let codec = tonic_prost::ProstCodec::<RawAgentFrame, AggregatorFrame>::default();
    let response = grpc
        .streaming(tonic::Request::new(frames), path, codec)
        .await?;
    Ok(response.into_inner())
}

/// Why a session ended badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Occurs when the TCP/TLS/HTTP2 connection cannot be made.
    #[error("connect: {}", chain(.0))]
    Connect(#[source] tonic::transport::Error),
    /// Occurs when the aggregator refuses or ends the session with a gRPC status.
    #[error("aggregator said {code:?}: {message}")]
    Status {
        /// The gRPC code (e.g. `PermissionDenied`).
        code: tonic::Code,
        /// The aggregator's message.
        message: String,
    },
    /// Occurs when the local outbox fails.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// Occurs when the outbound frame queue closed unexpectedly.
    #[error("outbound stream closed")]
    StreamClosed,
}

impl From<tonic::Status> for SessionError {
    fn from(s: tonic::Status) -> Self {
        // tonic folds transport failures into a Status whose source holds the real cause.
        let mut message = s.message().to_owned();
        if let Some(src) = s.source() {
            message = format!("{message}: {}", chain(src));
        }
        SessionError::Status {
            code: s.code(),
            message,
        }
    }
}

/// The error and its causes on one line, outermost first.
fn chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

/// How a session ended without error.
enum SessionEnd {
    /// The agent is shutting down.
    Shutdown,
    /// The aggregator closed the stream.
    Closed,
}

/// The long-lived connection to the aggregator.
pub struct Transport {
    settings: Settings,
    tls: ClientTlsConfig,
    outbox: Outbox,
    new_batches: Arc<Notify>,
    health: Arc<Health>,
    intel: Arc<IntelCache>,
}

impl Transport {
    /// A transport streaming `outbox`; `new_batches` is notified whenever a batch is pushed.
    /// Intel updates from the aggregator are applied to `intel`.
    pub fn new(
        settings: Settings,
        tls: ClientTlsConfig,
        outbox: Outbox,
        new_batches: Arc<Notify>,
        health: Arc<Health>,
        intel: Arc<IntelCache>,
    ) -> Self {
        Self {
            settings,
            tls,
            outbox,
            new_batches,
            health,
            intel,
        }
    }

    /// Connects, streams and reconnects until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(self.settings.reconnect_min, self.settings.reconnect_max)
            .unwrap_or_else(|e| {
                // Settings::resolve already rejects this; keep going with safe bounds.
                warn!(error = %e, "invalid reconnect bounds; using the defaults");
                Backoff::default()
            });
        let mut sessions = 0u64;
        loop {
            let mut established = false;
            let result = self.session(&mut shutdown, &mut established).await;
            self.health.connected.store(0, Ordering::Relaxed);
            if established {
                sessions += 1;
                if sessions > 1 {
                    self.health.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                backoff.reset();
            }
            match result {
                Ok(SessionEnd::Shutdown) => return,
                Ok(SessionEnd::Closed) => info!("aggregator closed the session"),
                Err(e) => {
                    warn!(aggregator = %self.settings.aggregator_url, error = %e, "connection to aggregator failed")
                }
            }
            let delay = backoff.next_delay();
            info!(
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "reconnecting"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn hello(&self, first_unacked_seq: u64, first_unacked_priority_seq: u64) -> RawAgentFrame {
        let id = &self.settings.identity;
        RawAgentFrame {
            frame: Some(RawFrameKind::Hello(Hello {
                identity: Some(AgentIdentity {
                    account_id: id.account_id().to_owned(),
                    instance_id: id.instance_id().to_owned(),
                    region: self.settings.region.clone(),
                    addresses: self.settings.addresses.clone(),
                    vpc_id: self.settings.vpc_id.clone(),
                }),
                agent_version: env!("CARGO_PKG_VERSION").to_owned(),
                intel_version: self.intel.version(),
                first_unacked_seq,
                first_unacked_priority_seq,
            })),
        }
    }

    fn heartbeat(&self) -> Result<RawAgentFrame, OutboxError> {
        let stats = self.outbox.stats()?;
        let now = now_ms();
        Ok(RawAgentFrame {
            frame: Some(RawFrameKind::Heartbeat(Heartbeat {
                sent_at_ms: now,
                health: Some(picket_proto::v1::AgentHealth {
                    intel_version: self.intel.version(),
                    ..self.health.snapshot(&stats, now)
                }),
            })),
        })
    }

    async fn session(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        established: &mut bool,
    ) -> Result<SessionEnd, SessionError> {
        // Read the files at every connection, so a renewed certificate is used without a
        // restart; when they are unusable (mid-replacement by hand), the last good ones serve.
        let s = &self.settings;
        let tls = match crate::tls::client_config(&s.ca, &s.cert, &s.key, &s.server_name) {
            Ok(tls) => tls,
            Err(e) => {
                warn!(error = %e, "TLS files unusable; connecting with the ones read at start");
                self.tls.clone()
            }
        };
        let endpoint = Endpoint::from_shared(self.settings.aggregator_url.clone())
            .map_err(SessionError::Connect)?
            .tls_config(tls)
            .map_err(SessionError::Connect)?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        let channel = tokio::select! {
            c = endpoint.connect() => c.map_err(SessionError::Connect)?,
            _ = shutdown.changed() => return Ok(SessionEnd::Shutdown),
        };
        let stats = self.outbox.stats()?;
        let (tx, rx) = mpsc::channel::<RawAgentFrame>(WINDOW + 4);
        tx.send(self.hello(
            stats.first_seq.unwrap_or(0),
            stats.first_priority_seq.unwrap_or(0),
        ))
        .await
        .map_err(|_| SessionError::StreamClosed)?;
        let mut inbound = tokio::select! {
            r = open_session(channel, ReceiverStream::new(rx)) => r?,
            _ = shutdown.changed() => return Ok(SessionEnd::Shutdown),
        };
        *established = true;
        self.health.connected.store(1, Ordering::Relaxed);
        info!(aggregator = %self.settings.aggregator_url, agent = %self.settings.identity, "connected");

        let mut heartbeat = tokio::time::interval(self.settings.heartbeat_interval);
        let mut window = Window::default();
        loop {
            // Fill the window, priority lane first; everything else waits on disk.
            for lane in [Lane::Priority, Lane::Bulk] {
                while window.len() < WINDOW {
                    let from = window.next(lane);
                    let batches =
                        self.outbox
                            .pending_encoded_from(lane, from, WINDOW - window.len())?;
                    if batches.is_empty() {
                        break;
                    }
                    for batch in batches {
                        window.sent(lane, batch.seq);
                        let frame = RawAgentFrame {
                            frame: Some(RawFrameKind::Batch(batch.bytes)),
                        };
                        tx.send(frame)
                            .await
                            .map_err(|_| SessionError::StreamClosed)?;
                        self.health.batches_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            tokio::select! {
                msg = inbound.message() => match msg? {
                    None => return Ok(SessionEnd::Closed),
                    Some(frame) => match frame.frame {
                        Some(aggregator_frame::Frame::Ack(ack)) => {
                            let lane = Lane::try_from(ack.lane).unwrap_or(Lane::Bulk);
                            let removed = self.outbox.ack(lane, ack.seq)?;
                            window.acked(lane, ack.seq);
                            self.health.batches_acked.fetch_add(removed, Ordering::Relaxed);
                            info!(seq = ack.seq, lane = lane.as_str_name(), removed, "acked");
                        }
                        Some(aggregator_frame::Frame::IntelUpdate(update)) => {
                            let version = update.version;
                            debug!(version, bytes = update.payload.len(), "intel update received");
                            // A bad update is the aggregator's problem, not the session's:
                            // keep filtering with what we hold and keep delivering batches.
                            if let Err(e) = self.intel.apply(update).await {
                                warn!(version, error = %e, "intel update not applied; the previous snapshot stays in force");
                            }
                        }
                        None => debug!("empty frame from aggregator ignored"),
                    },
                },
                _ = heartbeat.tick() => {
                    tx.send(self.heartbeat()?).await.map_err(|_| SessionError::StreamClosed)?;
                    debug!("heartbeat sent");
                }
                _ = self.new_batches.notified() => {}
                _ = shutdown.changed() => return Ok(SessionEnd::Shutdown),
            }
        }
    }
}

/// Batches in flight on one session, per lane, and where each lane's sending resumes.
#[derive(Default)]
struct Window {
    bulk: VecDeque<u64>,
    priority: VecDeque<u64>,
    next_bulk: u64,
    next_priority: u64,
}

impl Window {
    fn lane(&mut self, lane: Lane) -> (&mut VecDeque<u64>, &mut u64) {
        match lane {
            Lane::Bulk => (&mut self.bulk, &mut self.next_bulk),
            Lane::Priority => (&mut self.priority, &mut self.next_priority),
        }
    }

    fn len(&self) -> usize {
        self.bulk.len() + self.priority.len()
    }

    /// First seq of `lane` not yet sent on this session.
    fn next(&mut self, lane: Lane) -> u64 {
        (*self.lane(lane).1).max(1)
    }

    fn sent(&mut self, lane: Lane, seq: u64) {
        let (q, next) = self.lane(lane);
        q.push_back(seq);
        *next = seq.saturating_add(1);
    }

    fn acked(&mut self, lane: Lane, seq: u64) {
        let (q, next) = self.lane(lane);
        while q.front().is_some_and(|s| *s <= seq) {
            q.pop_front();
        }
        // After a reconnect the first ack may cover batches not yet resent.
        *next = (*next).max(seq.saturating_add(1));
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
