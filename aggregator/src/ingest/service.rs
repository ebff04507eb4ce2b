//! The `Ingest` gRPC service: authenticates each session by its client certificate, checks
//! that `Hello` claims the same identity, then writes batches to the store, acks them, and hands
//! newly stored batches on as [`StoredBatch`]es (to detection) when an output is attached.
//!
//! The ack path never builds a batch's records: the batch arrives as bytes ([`RawAgentFrame`]),
//! a [`BatchHeader`] view gives its seq, lane and record kinds, and those bytes are what the
//! store writes. After the ack the same bytes go on to detection ([`StoredBatch`]), which
//! decodes the records only when it takes the batch.
//!
//! Intel travels the other way on the same stream: when the agent's `Hello.intel_version`
//! differs from the published snapshot, and again after every reload, the session sends the
//! whole snapshot as one `IntelUpdate` (no deltas yet: `base_version` is always 0).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use picket_proto::AgentId;
use picket_proto::v1::{
    Ack, AggregatorFrame, Batch, Hello, IntelUpdate, Lane, Record, aggregator_frame,
};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use super::sessions::{SessionLimiter, SessionSlot};
use super::store::{AppendOutcome, BatchStore, EncodedBatch, now_ms};
use picket_proto::{RawAgentFrame, RawFrameKind};

use super::wire::BatchHeader;
use crate::enroll::Revocations;
use crate::enroll::revocation::RevocationWatch;
use crate::intel::{IntelManager, Published};
use crate::metrics::IngestErrorCause;

/// Counts a refused or failed session or frame (see [`crate::metrics`]).
fn count(cause: IngestErrorCause) {
    crate::metrics::counters().ingest_error(cause);
}
use crate::peer::{Peer, peer_of};

/// Frames queued towards one agent before the session stops reading. Acks are tiny and the
/// agent's own window bounds how many it waits for, so this only absorbs bursts.
const OUTBOUND_QUEUE: usize = 64;

/// A batch that was new and is now durable: ingest's output, consumed by detection.
///
/// It carries the batch still encoded, as stored: detection decodes it when it takes it, so a
/// batch waiting in detection's queue holds its wire bytes (≈ 90 B per flow summary) instead
/// of its decoded records (several times that, in many allocations), and the records are
/// built just before the detectors read them, while still in cache.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    /// The agent, as its certificate says.
    pub agent: AgentId,
    /// The region the agent's `Hello` gave.
    pub region: String,
    /// The encoded `picket.v1.Batch`, as the agent sent it.
    pub bytes: Bytes,
    /// How many records it holds (from its header), to size the decode.
    pub records: usize,
    /// Its sequence number in its lane; 0 for a batch that is not in the batch store.
    pub seq: u64,
    /// The lane it came in.
    pub lane: Lane,
}

impl StoredBatch {
    /// A batch of `records` (encoded here), for callers that hold records, not bytes.
    pub fn from_records(agent: AgentId, region: String, records: Vec<Record>) -> Self {
        let count = records.len();
        let bytes = Batch {
            records,
            ..Batch::default()
        }
        .encode_to_vec();
        Self {
            agent,
            region,
            bytes: Bytes::from(bytes),
            records: count,
            seq: 0,
            lane: Lane::Bulk,
        }
    }

    /// The batch's records, decoded into `buf` (cleared first, its capacity reused).
    ///
    /// # Errors
    /// [`prost::DecodeError`] when a record inside is damaged (the batch's framing was checked
    /// before it was stored).
    pub fn decode_into(&self, mut buf: Vec<Record>) -> Result<Vec<Record>, prost::DecodeError> {
        buf.clear();
        buf.reserve(self.records);
        let mut batch = Batch {
            records: buf,
            ..Batch::default()
        };
        batch.merge(self.bytes.as_ref())?;
        Ok(batch.records)
    }
}

/// The gRPC service behind `picket.v1.Ingest`.
#[derive(Clone)]
pub struct IngestService {
    store: BatchStore,
    limiter: Arc<SessionLimiter>,
    hello_timeout: Duration,
    output: Option<mpsc::Sender<StoredBatch>>,
    intel: Arc<IntelManager>,
    max_intel_update_bytes: usize,
    revocations: Option<Arc<Revocations>>,
    max_batch_records: usize,
}

/// Records a batch may hold unless configured otherwise: ten times what an agent sends.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 10_000;

impl IngestService {
    /// A service writing to `store`, allowing `limiter`'s sessions per agent, and sending
    /// `intel`'s snapshots in frames of at most `max_intel_update_bytes`.
    pub fn new(
        store: BatchStore,
        limiter: Arc<SessionLimiter>,
        hello_timeout: Duration,
        intel: Arc<IntelManager>,
        max_intel_update_bytes: usize,
    ) -> Self {
        Self {
            store,
            limiter,
            hello_timeout,
            output: None,
            intel,
            max_intel_update_bytes,
            revocations: None,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
        }
    }

    /// Refuses batches of more than `max` records. A batch of `max_message_bytes` can hold
    /// millions of tiny records, each of which detection would decode into a full `Record`.
    pub fn with_max_batch_records(mut self, max: usize) -> Self {
        self.max_batch_records = max;
        self
    }

    /// Refuses revoked agents' sessions and closes a session when its agent is revoked.
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Also sends every newly stored batch to `output` (waiting while it is full, so a slow
    /// consumer slows ingest instead of growing memory).
    pub fn with_output(mut self, output: mpsc::Sender<StoredBatch>) -> Self {
        self.output = Some(output);
        self
    }
}

/// Checks the identity in `Hello` against the certificate's.
fn check_hello(cert_id: &AgentId, hello: &Hello) -> Result<(), Status> {
    let claimed = hello.identity.as_ref();
    let account = claimed.map_or("", |i| i.account_id.as_str());
    let instance = claimed.map_or("", |i| i.instance_id.as_str());
    if account == cert_id.account_id() && instance == cert_id.instance_id() {
        return Ok(());
    }
    count(IngestErrorCause::IdentityMismatch);
    warn!(
        certificate = %cert_id,
        hello = %format_args!("{account}/{instance}"),
        "refusing session: Hello identity differs from the certificate's"
    );
    Err(Status::permission_denied(format!(
        "Hello claims {account}/{instance} but the certificate is {cert_id}"
    )))
}

/// The stream of frames a session sends the agent.
pub type SessionStream = ReceiverStream<Result<AggregatorFrame, Status>>;

impl IngestService {
    /// `Ingest/Session`: authenticates the agent, then spawns the session's loop.
    ///
    /// # Errors
    /// A gRPC status when the session is refused (identity, revocation, limits, no Hello).
    pub async fn session(
        &self,
        request: Request<Streaming<RawAgentFrame>>,
    ) -> Result<Response<SessionStream>, Status> {
        let remote = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let agent = match peer_of(&request) {
            Ok(Peer::Agent(id)) => id,
            Ok(Peer::Admin(name)) => {
                count(IngestErrorCause::AdminCertificate);
                warn!(admin = %name, "refusing ingest session from an administrator certificate");
                return Err(Status::permission_denied(
                    "administrator certificates cannot open ingest sessions",
                ));
            }
            Err(status) => {
                count(IngestErrorCause::Unauthenticated);
                warn!(%remote, reason = status.message(), "refusing session");
                return Err(status);
            }
        };
        if let Some(revocations) = &self.revocations {
            match revocations.is_revoked(&agent) {
                Ok(false) => {}
                Ok(true) => {
                    warn!(%agent, spiffe_id = %agent.spiffe_uri(), %remote, "refusing session: agent is revoked");
                    return Err(Status::permission_denied(format!(
                        "{} is revoked",
                        agent.spiffe_uri()
                    )));
                }
                Err(e) => {
                    warn!(%agent, error = %e, "refusing session: revocation store unreadable");
                    return Err(Status::unavailable(e.to_string()));
                }
            }
        }
        let slot = self.limiter.acquire(&agent).ok_or_else(|| {
            count(IngestErrorCause::SessionLimit);
            warn!(%agent, "refusing session: too many concurrent sessions for this agent");
            Status::resource_exhausted(format!("too many concurrent sessions for {agent}"))
        })?;
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(self.hello_timeout, inbound.message())
            .await
            .map_err(|_| {
                count(IngestErrorCause::NoHello);
                Status::deadline_exceeded("no Hello in time")
            })??;
        let hello = match first.and_then(|f| f.frame) {
            Some(RawFrameKind::Hello(h)) => h,
            _ => {
                count(IngestErrorCause::BadFrame);
                return Err(Status::invalid_argument("the first frame must be Hello"));
            }
        };
        check_hello(&agent, &hello)?;
        let ledger = self
            .store
            .ledger(&agent)
            .map_err(|e| Status::internal(e.to_string()))?
            .unwrap_or_default();
        let region = hello.identity.as_ref().map(|i| i.region.as_str());
        if let Err(e) =
            self.store
                .note_agent(&agent, region, Some(&hello.agent_version), None, now_ms())
        {
            warn!(%agent, error = %e, "Hello not recorded");
        }
        info!(
            %agent,
            %remote,
            agent_version = %hello.agent_version,
            intel_version = hello.intel_version,
            first_unacked_seq = hello.first_unacked_seq,
            first_unacked_priority_seq = hello.first_unacked_priority_seq,
            hwm = ledger.last_acked_seq,
            priority_hwm = ledger.last_acked_priority_seq,
            "agent session opened"
        );
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        // Tell the agent at once what is already durable, so it can drop replays without
        // resending them.
        for (lane, hwm) in [
            (Lane::Bulk, ledger.last_acked_seq),
            (Lane::Priority, ledger.last_acked_priority_seq),
        ] {
            if hwm > 0 && tx.try_send(Ok(ack(hwm, lane))).is_err() {
                // Unreachable on a fresh channel of capacity OUTBOUND_QUEUE; the agent gets
                // the same ack after its next batch anyway.
                debug!(%agent, "initial ack not queued");
            }
        }
        let region = hello
            .identity
            .as_ref()
            .map(|i| i.region.clone())
            .unwrap_or_default();
        let output = self.output.clone().map(|tx| (tx, region));
        let intel = IntelFeed {
            rx: self.intel.subscribe(),
            max_bytes: self.max_intel_update_bytes,
            live: true,
        };
        let revoked = self.revocations.as_ref().map(|r| r.watch(agent.clone()));
        tokio::spawn(run_session(
            self.store.clone(),
            agent,
            inbound,
            tx,
            output,
            slot,
            intel,
            hello.intel_version,
            revoked,
            self.max_batch_records,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// `picket.v1.Ingest` as served: what tonic's generated `IngestServer` does, except that agent
/// frames decode as [`RawAgentFrame`] (a batch stays bytes) instead of `AgentFrame`.
#[derive(Clone)]
pub struct IngestRoute {
    service: Arc<IngestService>,
    max_decoding_message_size: usize,
    max_encoding_message_size: usize,
}

impl IngestRoute {
    /// Serves `service`, refusing agent frames over `max_decoding` bytes and never sending a
    /// frame over `max_encoding` bytes.
    pub fn new(service: IngestService, max_decoding: usize, max_encoding: usize) -> Self {
        Self {
            service: Arc::new(service),
            max_decoding_message_size: max_decoding,
            max_encoding_message_size: max_encoding,
        }
    }
}

impl tonic::server::NamedService for IngestRoute {
    const NAME: &'static str = "picket.v1.Ingest";
}

/// The `Session` method, as tonic's server machinery calls it.
struct SessionMethod(Arc<IngestService>);

impl tonic::server::StreamingService<RawAgentFrame> for SessionMethod {
    type Response = AggregatorFrame;
    type ResponseStream = SessionStream;
    type Future = tonic::codegen::BoxFuture<Response<SessionStream>, Status>;

    fn call(&mut self, request: Request<Streaming<RawAgentFrame>>) -> Self::Future {
        let service = Arc::clone(&self.0);
        Box::pin(async move { service.session(request).await })
    }
}

impl<B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for IngestRoute
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        if req.uri().path() != "/picket.v1.Ingest/Session" {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let method = SessionMethod(Arc::clone(&self.service));
        let limits = (
            Some(self.max_decoding_message_size),
            Some(self.max_encoding_message_size),
        );
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<AggregatorFrame, RawAgentFrame>::default();
            let mut grpc =
                tonic::server::Grpc::new(codec).apply_max_message_size_config(limits.0, limits.1);
            Ok(grpc.streaming(method, req).await)
        })
    }
}

fn ack(seq: u64, lane: Lane) -> AggregatorFrame {
    AggregatorFrame {
        frame: Some(aggregator_frame::Frame::Ack(Ack {
            seq,
            lane: lane as i32,
        })),
    }
}

/// One session's view of the published intel snapshot.
struct IntelFeed {
    rx: watch::Receiver<Arc<Published>>,
    max_bytes: usize,
    // False once the manager is gone (server shutting down): stop selecting on it.
    live: bool,
}

/// Bytes an `IntelUpdate` frame adds around its payload (field tags, lengths, version, hash),
/// rounded up generously.
const INTEL_FRAME_OVERHEAD: usize = 128;

/// What sending one snapshot did.
enum IntelSend {
    Sent,
    Skipped,
    SessionGone,
}

/// Sends `published` to the agent unless its frame would exceed `max_bytes`, which would end
/// the stream with an error; a skipped snapshot is logged and the agent keeps what it holds.
async fn send_intel(
    agent: &AgentId,
    published: &Published,
    max_bytes: usize,
    tx: &mpsc::Sender<Result<AggregatorFrame, Status>>,
) -> IntelSend {
    let bytes = published.encoded.len();
    if bytes.saturating_add(INTEL_FRAME_OVERHEAD) > max_bytes {
        warn!(
            %agent,
            version = published.version(),
            bytes,
            limit = max_bytes,
            "intel update not sent: snapshot exceeds limits.max_intel_update_bytes"
        );
        return IntelSend::Skipped;
    }
    let frame = AggregatorFrame {
        frame: Some(aggregator_frame::Frame::IntelUpdate(IntelUpdate {
            version: published.version(),
            content_hash: published.snapshot.content_hash().to_vec(),
            base_version: 0,
            payload: published.encoded.clone(),
        })),
    };
    if tx.send(Ok(frame)).await.is_err() {
        return IntelSend::SessionGone;
    }
    info!(%agent, version = published.version(), bytes, "intel update sent");
    IntelSend::Sent
}

/// Frames applied before one flush covers them all: under load, many batches share one fsync.
const MAX_GROUP: usize = 64;

/// Acks owed after the next flush, per lane.
#[derive(Default)]
struct PendingAcks {
    bulk: Option<u64>,
    priority: Option<u64>,
}

impl PendingAcks {
    fn note(&mut self, lane: Lane, hwm: u64) {
        let slot = match lane {
            Lane::Bulk => &mut self.bulk,
            Lane::Priority => &mut self.priority,
        };
        *slot = Some(slot.map_or(hwm, |s| s.max(hwm)));
    }

    fn frames(&mut self) -> impl Iterator<Item = AggregatorFrame> {
        let p = self.priority.take().map(|s| ack(s, Lane::Priority));
        let b = self.bulk.take().map(|s| ack(s, Lane::Bulk));
        p.into_iter().chain(b)
    }
}

/// A batch stored by this session and not yet handed to detection.
struct Applied {
    bytes: Bytes,
    records: usize,
    seq: u64,
    lane: Lane,
}

/// What one frame asks of the session loop.
enum Step {
    Continue,
    End(Result<(), Status>),
}

/// Applies one frame (without flushing) and notes the ack it earns; a newly stored batch's
/// batch goes to `applied`, to be handed to detection once acked.
fn apply_frame(
    store: &BatchStore,
    agent: &AgentId,
    frame: RawAgentFrame,
    max_records: usize,
    acks: &mut PendingAcks,
    applied: &mut Vec<Applied>,
) -> Step {
    match frame.frame {
        Some(RawFrameKind::Batch(bytes)) => {
            let header = match BatchHeader::decode(bytes.as_ref()) {
                Ok(h) => h,
                Err(e) => {
                    // What tonic reported before batches stayed encoded: a frame that does
                    // not decode ends the stream.
                    count(IngestErrorCause::StreamError);
                    return Step::End(Err(Status::internal(format!("batch does not decode: {e}"))));
                }
            };
            let seq = header.seq;
            if header.records.len() > max_records {
                count(IngestErrorCause::BadFrame);
                return Step::End(Err(Status::invalid_argument(format!(
                    "batch {seq} holds {} records; limits.max_batch_records is {max_records}",
                    header.records.len()
                ))));
            }
            let lane = Lane::try_from(header.lane).unwrap_or(Lane::Bulk);
            let kinds = header.kind_counts();
            let encoded = EncodedBatch {
                seq,
                lane: header.lane,
                kinds: &kinds,
                bytes: bytes.as_ref(),
            };
            match store.apply_encoded(agent, encoded, now_ms()) {
                Ok(outcome) => {
                    match outcome {
                        AppendOutcome::Applied { .. } => {
                            debug!(%agent, seq, lane = lane.as_str_name(), records = header.records.len(), "batch stored")
                        }
                        AppendOutcome::Duplicate { hwm } => {
                            debug!(%agent, seq, hwm, lane = lane.as_str_name(), "replayed batch recognised, not applied")
                        }
                    }
                    acks.note(lane, outcome.hwm());
                    if matches!(outcome, AppendOutcome::Applied { .. }) {
                        applied.push(Applied {
                            bytes,
                            records: header.records.len(),
                            seq,
                            lane,
                        });
                    }
                    Step::Continue
                }
                Err(e) => {
                    count(IngestErrorCause::StoreWrite);
                    warn!(%agent, seq, error = %e, "batch not stored; not acked");
                    Step::End(Err(Status::unavailable(format!(
                        "batch {seq} not stored: {e}"
                    ))))
                }
            }
        }
        Some(RawFrameKind::Heartbeat(hb)) => {
            debug!(%agent, health = ?hb.health, "heartbeat");
            if let Err(e) = store.note_agent(agent, None, None, hb.health.as_ref(), now_ms()) {
                warn!(%agent, error = %e, "heartbeat not recorded");
            }
            Step::Continue
        }
        Some(RawFrameKind::Hello(_)) => {
            count(IngestErrorCause::BadFrame);
            Step::End(Err(Status::invalid_argument(
                "Hello may only be the first frame",
            )))
        }
        None => {
            count(IngestErrorCause::BadFrame);
            Step::End(Err(Status::invalid_argument("empty frame")))
        }
    }
}

/// Reads one agent's frames until the stream ends; the slot is held for the session's life.
// Ten parts of one session, each owned by it for its life; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
async fn run_session(
    store: BatchStore,
    agent: AgentId,
    mut inbound: Streaming<RawAgentFrame>,
    tx: mpsc::Sender<Result<AggregatorFrame, Status>>,
    mut output: Option<(mpsc::Sender<StoredBatch>, String)>,
    _slot: SessionSlot,
    mut intel: IntelFeed,
    agent_intel_version: u64,
    mut revoked: Option<RevocationWatch>,
    max_batch_records: usize,
) {
    let current = Arc::clone(&intel.rx.borrow_and_update());
    if current.version() != agent_intel_version {
        debug!(%agent, held = agent_intel_version, current = current.version(), "agent's intel is stale");
        if let IntelSend::SessionGone = send_intel(&agent, &current, intel.max_bytes, &tx).await {
            info!(%agent, "agent session closed");
            return;
        }
    }
    drop(current);
    let mut acks = PendingAcks::default();
    let mut applied: Vec<Applied> = Vec::new();
    let end: Result<(), Status> = 'session: loop {
        // `Streaming::message` is cancel-safe, so a snapshot published while waiting for the
        // agent loses no frame.
        let first = tokio::select! {
            m = inbound.message() => match m {
                Ok(Some(f)) => f,
                Ok(None) => break Ok(()),
                Err(status) => {
                    count(IngestErrorCause::StreamError);
                    break Err(status);
                }
            },
            changed = intel.rx.changed(), if intel.live => {
                if changed.is_err() {
                    intel.live = false;
                    continue;
                }
                let published = Arc::clone(&intel.rx.borrow_and_update());
                match send_intel(&agent, &published, intel.max_bytes, &tx).await {
                    IntelSend::SessionGone => break Ok(()),
                    IntelSend::Sent | IntelSend::Skipped => continue,
                }
            }
            () = async { match revoked.as_mut() {
                Some(w) => w.revoked().await,
                None => std::future::pending().await,
            } } => {
                warn!(%agent, spiffe_id = %agent.spiffe_uri(), "closing session: agent was revoked");
                break Err(Status::permission_denied(format!("{} is revoked", agent.spiffe_uri())));
            }
        };
        let mut step = apply_frame(
            &store,
            &agent,
            first,
            max_batch_records,
            &mut acks,
            &mut applied,
        );
        // Take whatever else has already arrived, so one flush covers a group of batches.
        let mut grouped = 1;
        while matches!(step, Step::Continue) && grouped < MAX_GROUP {
            match inbound.message().now_or_never() {
                Some(Ok(Some(f))) => {
                    step = apply_frame(
                        &store,
                        &agent,
                        f,
                        max_batch_records,
                        &mut acks,
                        &mut applied,
                    );
                    grouped += 1;
                }
                Some(Ok(None)) => {
                    step = Step::End(Ok(()));
                }
                Some(Err(status)) => {
                    count(IngestErrorCause::StreamError);
                    step = Step::End(Err(status));
                }
                None => break,
            }
        }
        // Whatever was applied is flushed and acked, even when the stream is ending.
        if acks.bulk.is_some() || acks.priority.is_some() {
            if let Err(e) = store.flush().await {
                count(IngestErrorCause::StoreFlush);
                warn!(%agent, error = %e, "flush failed; nothing acked");
                break Err(Status::unavailable(format!("store flush failed: {e}")));
            }
            for frame in acks.frames() {
                if tx.send(Ok(frame)).await.is_err() {
                    break 'session Ok(());
                }
            }
        }
        // Only durable batches go on to detection (waiting while it is busy: backpressure).
        for a in applied.drain(..) {
            if let Some((out, region)) = &output {
                let stored = StoredBatch {
                    agent: agent.clone(),
                    region: region.clone(),
                    bytes: a.bytes,
                    records: a.records,
                    seq: a.seq,
                    lane: a.lane,
                };
                if out.send(stored).await.is_err() {
                    // Detection has stopped (shutdown); the batches stay stored.
                    warn!(%agent, "detection is not running; batch not observed");
                    output = None;
                }
            }
        }
        if let Step::End(result) = step {
            break result;
        }
    };
    match end {
        Ok(()) => info!(%agent, "agent session closed"),
        Err(status) => {
            warn!(%agent, code = ?status.code(), reason = status.message(), "agent session ended with an error");
            let _ = tx.send(Err(status)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_proto::v1::AgentIdentity;

    fn hello(account: &str, instance: &str) -> Hello {
        Hello {
            identity: Some(AgentIdentity {
                account_id: account.into(),
                instance_id: instance.into(),
                ..AgentIdentity::default()
            }),
            ..Hello::default()
        }
    }

    fn canary_published() -> Published {
        let mut b = picket_intel::SnapshotBuilder::new();
        b.add_list(picket_intel::canary_list());
        Published::new(b.build(9).unwrap())
    }

    #[tokio::test]
    async fn a_snapshot_over_the_limit_is_skipped_without_ending_the_session() {
        let id = AgentId::new("111111111111", "i-1").unwrap();
        let published = canary_published();
        let (tx, mut rx) = mpsc::channel(4);
        let small = published.encoded.len();
        assert!(matches!(
            send_intel(&id, &published, small, &tx).await,
            IntelSend::Skipped
        ));
        assert!(rx.try_recv().is_err());
        assert!(!tx.is_closed());
    }

    #[tokio::test]
    async fn a_snapshot_within_the_limit_is_sent_whole_and_its_frame_fits_the_limit() {
        use prost::Message;
        let id = AgentId::new("111111111111", "i-1").unwrap();
        let published = canary_published();
        let limit = published.encoded.len() + INTEL_FRAME_OVERHEAD;
        let (tx, mut rx) = mpsc::channel(4);
        assert!(matches!(
            send_intel(&id, &published, limit, &tx).await,
            IntelSend::Sent
        ));
        let frame = rx.try_recv().unwrap().unwrap();
        assert!(frame.encoded_len() <= limit);
        let Some(aggregator_frame::Frame::IntelUpdate(update)) = frame.frame else {
            panic!("expected an IntelUpdate");
        };
        assert_eq!(update.version, 9);
        assert_eq!(update.base_version, 0);
        // Every session's frame shares the one encoding rather than copying it.
        assert_eq!(update.payload.as_ptr(), published.encoded.as_ptr());
        assert_eq!(
            update.content_hash,
            published.snapshot.content_hash().to_vec()
        );
        let decoded = picket_intel::Snapshot::from_bytes(&update.payload).unwrap();
        assert_eq!(decoded.version(), 9);
        drop(rx);
        assert!(matches!(
            send_intel(&id, &published, limit, &tx).await,
            IntelSend::SessionGone
        ));
    }

    #[test]
    fn a_stored_batch_decodes_into_a_reused_buffer_and_refuses_a_damaged_record() {
        use picket_proto::v1::{HostStats, record};
        let id = AgentId::new("111111111111", "i-1").unwrap();
        let records: Vec<Record> = (1..=3)
            .map(|packets| Record {
                record: Some(record::Record::HostStats(HostStats {
                    packets,
                    ..HostStats::default()
                })),
            })
            .collect();
        let batch = StoredBatch::from_records(id.clone(), "eu-west-1".into(), records.clone());
        assert_eq!(batch.records, 3);
        let mut buf = Vec::with_capacity(16);
        buf.push(Record::default());
        let ptr = buf.as_ptr();
        let decoded = batch.decode_into(buf).unwrap();
        assert_eq!(decoded, records, "the buffer's old contents are cleared");
        assert_eq!(decoded.as_ptr(), ptr, "the buffer's allocation is reused");
        // A record whose HostStats field claims more bytes than it holds.
        let damaged = StoredBatch {
            agent: id,
            region: String::new(),
            bytes: Bytes::from_static(&[0x12, 0x03, 0x22, 0x05, 0x08]),
            records: 1,
            seq: 0,
            lane: Lane::Bulk,
        };
        assert!(damaged.decode_into(Vec::new()).is_err());
    }

    #[test]
    fn a_batch_over_the_record_cap_ends_the_session_unstored_and_one_at_the_cap_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = BatchStore::open(dir.path()).unwrap();
        let id = AgentId::new("111111111111", "i-1").unwrap();
        // Empty records are two bytes each: the cheapest way to pack a frame with records.
        let frame = |seq, records| RawAgentFrame {
            frame: Some(RawFrameKind::Batch(Bytes::from(
                Batch {
                    seq,
                    records: vec![Record::default(); records],
                    ..Batch::default()
                }
                .encode_to_vec(),
            ))),
        };
        let (mut acks, mut applied) = (PendingAcks::default(), Vec::new());
        let step = apply_frame(&store, &id, frame(1, 11), 10, &mut acks, &mut applied);
        let Step::End(Err(status)) = step else {
            panic!("an over-cap batch must end the session");
        };
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("11 records") && status.message().contains("is 10"),
            "{}",
            status.message()
        );
        assert!(applied.is_empty() && acks.bulk.is_none());
        assert_eq!(store.high_water_mark(&id, Lane::Bulk).unwrap(), 0);

        let step = apply_frame(&store, &id, frame(1, 10), 10, &mut acks, &mut applied);
        assert!(matches!(step, Step::Continue));
        assert_eq!(applied.len(), 1);
        assert_eq!(acks.bulk, Some(1));
    }

    #[test]
    fn hello_matching_the_certificate_is_accepted() {
        let id = AgentId::new("111111111111", "i-1").unwrap();
        assert!(check_hello(&id, &hello("111111111111", "i-1")).is_ok());
    }

    #[test]
    fn hello_claiming_another_account_or_instance_is_denied() {
        let id = AgentId::new("111111111111", "i-1").unwrap();
        for h in [
            hello("222222222222", "i-1"),
            hello("111111111111", "i-2"),
            Hello::default(),
        ] {
            let status = check_hello(&id, &h).unwrap_err();
            assert_eq!(status.code(), tonic::Code::PermissionDenied);
            assert!(status.message().contains("111111111111/i-1"));
        }
    }
}
