//! Detection inside `serve`: one task that runs the [`Pipeline`] over every newly stored batch
//! and persists findings to the [`FindingStore`].
//!
//! Sessions hand batches over ([`StoredBatch`], ingest's output, still encoded: this task
//! decodes each as it takes it) on a bounded channel after storing and acking them, so a slow
//! detector slows ingest (back-pressure) instead of growing memory. The task drains the engine
//! into the store every [`FLUSH_EVERY`] and when it is full, ticks windowed detectors, applies
//! retention once a day, and drains once more on shutdown.
//!
//! New findings are not left waiting for the flush: when a batch creates an open finding, the
//! engine is drained within [`PERSIST_NEW_WITHIN`], and the findings this task has not written
//! before are stored at once (so the API returns them promptly); repeats of findings it
//! already wrote are held and stored with the next regular flush, so they still batch. Holding
//! is safe because the store merges (`Finding::absorb`): counts add and windows widen.
//!
//! The task notes each observed batch in a [`DetectionCursor`] and saves it after each regular
//! write of findings, so a restart can hand it the batches stored before a crash but never
//! observed ([`crate::detection_cursor::catch_up`]).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::cloudtrail::watcher::ApiBatch;
use crate::config::FindingsSection;
use crate::detection_cursor::DetectionCursor;
use crate::detectors::{AgentSource, DetectorContext, DetectorsConfig, Event};
use crate::findings::engine::EngineConfig;
use crate::findings::model::Timestamp;
use crate::findings::store::FindingStore;
use crate::findings::suppression::SuppressionRules;
use crate::ingest::StoredBatch;
use crate::pipeline::{Clock, Pipeline};

/// Batches queued for detection before sessions wait.
pub const QUEUE: usize = 256;
/// CloudTrail files (one batch each) queued for detection before the reader waits.
pub const API_QUEUE: usize = 4;
/// How often open findings are written to the store (and detectors ticked).
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// How soon a batch that creates a finding has it written to the store (issue 7's latency).
pub const PERSIST_NEW_WITHIN: Duration = Duration::from_millis(50);
const RETENTION_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How often detectors' learned state (baselines) is saved; also saved on stop.
pub const SAVE_STATE_EVERY: Duration = Duration::from_secs(60);

/// Stops the detection task after a final drain into the store.
#[derive(Debug)]
pub struct DetectionStop {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl DetectionStop {
    /// Asks the task to persist what it holds and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.done.await {
            warn!(error = %e, "detection task failed");
        }
    }
}

/// Starts the detection task; give the sender to the ingest service.
pub fn spawn(
    store: FindingStore,
    settings: &FindingsSection,
    rules: SuppressionRules,
    detectors: &DetectorsConfig,
    context: &DetectorContext,
) -> (mpsc::Sender<StoredBatch>, DetectionStop) {
    let (tx, _no_cloudtrail, stop) =
        spawn_with_cloudtrail(store, settings, rules, detectors, context);
    (tx, stop)
}

/// [`spawn`], plus a second input for CloudTrail files' events (ct-reader). Dropping the
/// CloudTrail sender only ends that input.
pub fn spawn_with_cloudtrail(
    store: FindingStore,
    settings: &FindingsSection,
    rules: SuppressionRules,
    detectors: &DetectorsConfig,
    context: &DetectorContext,
) -> (
    mpsc::Sender<StoredBatch>,
    mpsc::Sender<ApiBatch>,
    DetectionStop,
) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (api_tx, api_rx) = mpsc::channel(API_QUEUE);
    let (stop_tx, stop_rx) = oneshot::channel();
    let mut pipeline = Pipeline::new(
        EngineConfig {
            max_open: settings.max_open_findings,
        },
        rules,
        Clock::Wall,
        detectors,
        context,
    );
    restore_states(&store, &mut pipeline);
    let retention = settings.retention_days;
    let written = Written::new(settings.max_open_findings.get());
    let done = tokio::spawn(run(
        store,
        pipeline,
        rx,
        Some(api_rx),
        stop_rx,
        retention,
        written,
    ));
    (
        tx,
        api_tx,
        DetectionStop {
            stop: stop_tx,
            done,
        },
    )
}

/// Ids this task has written, so a prompt write can tell new findings from repeats. Bounded:
/// cleared when full, after which repeats are briefly written promptly too (harmless).
#[derive(Debug)]
struct Written {
    ids: std::collections::HashSet<String>,
    cap: usize,
    /// Repeats drained early and not yet written.
    held: Vec<crate::findings::Finding>,
}

impl Written {
    fn new(cap: usize) -> Self {
        Self {
            ids: std::collections::HashSet::new(),
            cap,
            held: Vec::new(),
        }
    }

    fn remember(&mut self, findings: &[crate::findings::Finding]) {
        for f in findings {
            if self.ids.len() >= self.cap {
                self.ids.clear();
            }
            self.ids.insert(f.id.clone());
        }
    }
}

/// Writes the new findings in the engine now and holds the repeats for the next flush.
async fn persist_new(store: &FindingStore, pipeline: &mut Pipeline, written: &mut Written) {
    let (new, repeats): (Vec<_>, Vec<_>) = pipeline
        .drain()
        .into_iter()
        .partition(|f| !written.ids.contains(&f.id));
    written.held.extend(repeats);
    if written.held.len() >= written.cap {
        let held = std::mem::take(&mut written.held);
        write(store, held).await;
    }
    written.remember(&new);
    write(store, new).await;
}

async fn persist_all(store: &FindingStore, pipeline: &mut Pipeline, written: &mut Written) {
    let mut findings = std::mem::take(&mut written.held);
    findings.extend(pipeline.drain());
    written.remember(&findings);
    write(store, findings).await;
}

async fn persist(store: &FindingStore, pipeline: &mut Pipeline) {
    write(store, pipeline.drain()).await;
}

async fn write(store: &FindingStore, findings: Vec<crate::findings::Finding>) {
    if findings.is_empty() {
        return;
    }
    let n = findings.len();
    let store = store.clone();
    // sled's flush blocks; keep it off the async workers.
    let stored = tokio::task::spawn_blocking(move || {
        let outcomes = store.upsert_all(&findings);
        (findings, outcomes)
    })
    .await
    .map(|(findings, outcomes)| outcomes.map(|o| (findings, o)));
    match stored {
        Ok(Ok((findings, outcomes))) => {
            crate::metrics::counters().findings_stored(&findings, &outcomes);
            debug!(findings = n, "findings stored");
        }
        Ok(Err(e)) => warn!(error = %e, findings = n, "findings not stored"),
        Err(e) => warn!(error = %e, findings = n, "findings store task failed"),
    }
}

fn restore_states(store: &FindingStore, pipeline: &mut Pipeline) {
    let refused = pipeline.restore_states(|name| match store.detector_state(name) {
        Ok(state) => state,
        Err(e) => {
            warn!(detector = name, error = %e, "saved detector state unreadable; relearning");
            None
        }
    });
    for (name, why) in refused {
        warn!(
            detector = name,
            store = %store.path().display(),
            why, "saved detector state refused; relearning"
        );
    }
}

async fn save_states(store: &FindingStore, states: Vec<(&'static str, Vec<u8>)>) {
    if states.is_empty() {
        return;
    }
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.save_detector_states(&states)).await {
        Ok(Ok(())) => debug!("detector state saved"),
        Ok(Err(e)) => warn!(error = %e, "detector state not saved"),
        Err(e) => warn!(error = %e, "detector state task failed"),
    }
}

async fn run(
    store: FindingStore,
    mut pipeline: Pipeline,
    mut rx: mpsc::Receiver<StoredBatch>,
    mut api_rx: Option<mpsc::Receiver<ApiBatch>>,
    mut stop: oneshot::Receiver<()>,
    retention_days: std::num::NonZeroU32,
    mut written: Written,
) {
    let mut cursor = match DetectionCursor::open(&store) {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(error = %e, "detection cursor unavailable; a restart will not replay unobserved batches");
            None
        }
    };
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    // When the findings a batch created must be written by.
    let mut due: Option<tokio::time::Instant> = None;
    let mut retention = tokio::time::interval(RETENTION_EVERY);
    let mut save_state = tokio::time::interval(SAVE_STATE_EVERY);
    // Every batch decodes into this one buffer, so its capacity is reused.
    let mut records = Vec::new();
    loop {
        tokio::select! {
            batch = rx.recv() => {
                let Some(batch) = batch else { break };
                if let Some(c) = cursor.as_mut() {
                    c.observed(&batch);
                }
                let created = pipeline.engine().stats().created;
                feed(&store, &mut pipeline, batch, &mut records).await;
                if due.is_none() && pipeline.engine().stats().created > created {
                    due = Some(tokio::time::Instant::now() + PERSIST_NEW_WITHIN);
                }
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                due = None;
                persist_new(&store, &mut pipeline, &mut written).await;
            }
            api = recv_api(&mut api_rx) => match api {
                Some(batch) => {
                    let created = pipeline.engine().stats().created;
                    feed_api(&store, &mut pipeline, batch).await;
                    if due.is_none() && pipeline.engine().stats().created > created {
                        due = Some(tokio::time::Instant::now() + PERSIST_NEW_WITHIN);
                    }
                }
                None => api_rx = None,
            },
            _ = flush.tick() => {
                pipeline.tick(Timestamp::now().0);
                persist_all(&store, &mut pipeline, &mut written).await;
                save_cursor(cursor.as_mut()).await;
                due = None;
            }
            _ = retention.tick() => {
                let store = store.clone();
                let purge = move || store.apply_retention(Timestamp::now(), retention_days);
                match tokio::task::spawn_blocking(purge).await {
                    Ok(Ok(n)) => info!(purged = n, days = retention_days.get(), "findings retention applied"),
                    Ok(Err(e)) => warn!(error = %e, "findings retention failed"),
                    Err(e) => warn!(error = %e, "findings retention task failed"),
                }
            }
            _ = save_state.tick() => save_states(&store, pipeline.save_states()).await,
            _ = &mut stop => break,
        }
    }
    // Whatever sessions queued before the stop still counts.
    rx.close();
    while let Some(batch) = rx.recv().await {
        if let Some(c) = cursor.as_mut() {
            c.observed(&batch);
        }
        feed(&store, &mut pipeline, batch, &mut records).await;
    }
    if let Some(mut api_rx) = api_rx {
        api_rx.close();
        while let Some(batch) = api_rx.recv().await {
            feed_api(&store, &mut pipeline, batch).await;
        }
    }
    persist_all(&store, &mut pipeline, &mut written).await;
    save_cursor(cursor.as_mut()).await;
    save_states(&store, pipeline.save_states()).await;
    info!(events = pipeline.events(), "detection stopped");
}

/// Saves the batches observed so far as observed; only after their findings were written.
async fn save_cursor(cursor: Option<&mut DetectionCursor>) {
    let Some(cursor) = cursor else { return };
    let pending = cursor.take_pending();
    match tokio::task::spawn_blocking(move || pending.write()).await {
        Ok(Ok(())) => {}
        Ok(Err(failed)) => {
            warn!(error = %failed.error, "detection cursor not saved; retrying with the next write");
            cursor.restore(failed.marks);
        }
        Err(e) => warn!(error = %e, "detection cursor task failed"),
    }
}

/// The next CloudTrail batch, or never when that input is closed.
async fn recv_api(rx: &mut Option<mpsc::Receiver<ApiBatch>>) -> Option<ApiBatch> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn feed_api(store: &FindingStore, pipeline: &mut Pipeline, batch: ApiBatch) {
    debug!(file = %batch.file.display(), events = batch.events.len(), "CloudTrail events");
    for event in batch.events {
        pipeline.feed(&Event::Api(Box::new(event)));
        if pipeline.is_full() {
            persist(store, pipeline).await;
        }
    }
}

/// Decodes `batch` into `buf` (its capacity kept for the next batch) and feeds its records.
async fn feed(
    store: &FindingStore,
    pipeline: &mut Pipeline,
    batch: StoredBatch,
    buf: &mut Vec<picket_proto::v1::Record>,
) {
    let mut decoded = match batch.decode_into(std::mem::take(buf)) {
        Ok(records) => records,
        Err(e) => {
            // The framing was checked before storing; this is damage inside a record. The
            // batch is stored and acked; detection cannot observe it.
            crate::metrics::counters().ingest_error(crate::metrics::IngestErrorCause::BadFrame);
            warn!(agent = %batch.agent, error = %e, "stored batch does not decode; not observed by detection");
            return;
        }
    };
    // One event per batch, its record swapped for each record in turn: the source (three
    // strings) is built once instead of cloned per record.
    let mut event = Event::Agent {
        source: AgentSource {
            account_id: batch.agent.account_id().to_owned(),
            instance_id: batch.agent.instance_id().to_owned(),
            region: batch.region,
        },
        record: picket_proto::v1::Record::default(),
    };
    let records = decoded.len();
    let host_stats = decoded
        .iter()
        .filter(|r| {
            matches!(
                r.record,
                Some(picket_proto::v1::record::Record::HostStats(_))
            )
        })
        .count();
    for record in decoded.drain(..) {
        if let Event::Agent { record: slot, .. } = &mut event {
            *slot = record;
        }
        pipeline.feed(&event);
        if pipeline.is_full() {
            persist(store, pipeline).await;
        }
    }
    *buf = decoded;
    // Lets tests (and operators at debug level) see that an agent's batch reached detection,
    // not only the store: the cross-source join depends on it.
    let Event::Agent { source, .. } = &event else {
        return;
    };
    debug!(
        account_id = %source.account_id,
        instance_id = %source.instance_id,
        records,
        host_stats,
        "agent records observed"
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use picket_proto::AgentId;
    use picket_proto::v1::record::Record as R;
    use picket_proto::v1::{IntelHit, MatchSite, Record};

    use super::*;
    use crate::findings::store::ListQuery;

    #[tokio::test]
    async fn cloudtrail_events_handed_to_detection_are_stored_findings_after_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FindingStore::open(dir.path()).expect("open");
        let (_tx, api_tx, stop) = spawn_with_cloudtrail(
            store.clone(),
            &FindingsSection::default(),
            SuppressionRules::default(),
            &DetectorsConfig::default(),
            &DetectorContext::default(),
        );
        let event = crate::cloudtrail::normalize::parse_event(
            r#"{"eventTime":"2024-05-01T10:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","recipientAccountId":"111122223333","sourceIPAddress":"81.2.69.142","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u","accountId":"111122223333","accessKeyId":"AKIAU"}}"#,
            Default::default(),
        )
        .expect("event");
        api_tx
            .send(ApiBatch {
                file: "t.json".into(),
                events: vec![event],
            })
            .await
            .expect("queued");
        stop.stop().await;
        let page = store.list(&ListQuery::default()).expect("list");
        assert_eq!(page.findings.len(), 1);
        assert_eq!(
            page.findings[0].finding_type.name(),
            "Stealth:IAMUser/CloudTrailLoggingDisabled"
        );
    }

    /// A detection task with default settings over a fresh store (kept while the folder lives).
    fn start() -> (
        tempfile::TempDir,
        FindingStore,
        mpsc::Sender<StoredBatch>,
        DetectionStop,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FindingStore::open(dir.path()).expect("open");
        let (tx, stop) = spawn(
            store.clone(),
            &FindingsSection::default(),
            SuppressionRules::default(),
            &DetectorsConfig::default(),
            &DetectorContext::default(),
        );
        (dir, store, tx, stop)
    }

    #[tokio::test]
    async fn a_submitted_intel_hit_is_a_stored_finding_after_stop() {
        let (_dir, store, tx, stop) = start();
        let hit = IntelHit {
            observed_at_ms: 1_700_000_000_000,
            matched_value: "198.51.100.7".into(),
            remote_addr: "198.51.100.7".into(),
            category: "c2".into(),
            site: MatchSite::RemoteAddr as i32,
            ..IntelHit::default()
        };
        let record = Record {
            record: Some(R::IntelHit(hit)),
        };
        let batch = StoredBatch::from_records(
            AgentId::new("123456789012", "i-1").expect("agent id"),
            "eu-west-1".into(),
            vec![record.clone(), record],
        );
        tx.send(batch.clone()).await.expect("queued");
        stop.stop().await;
        let page = store.list(&ListQuery::default()).expect("list");
        assert_eq!(page.findings.len(), 1);
        assert_eq!(page.findings[0].service.count, 2);
        assert_eq!(page.findings[0].region, "eu-west-1");
        assert!(
            tx.send(batch).await.is_err(),
            "a stopped task refuses batches"
        );
    }

    #[tokio::test]
    async fn a_batch_with_a_damaged_record_is_skipped_and_the_next_one_observed() {
        let (_dir, store, tx, stop) = start();
        let agent = AgentId::new("123456789012", "i-1").expect("agent id");
        // Batch framing intact, but its one record's HostStats claims 5 bytes and holds 1.
        let damaged = StoredBatch {
            agent: agent.clone(),
            region: "eu-west-1".into(),
            bytes: bytes::Bytes::from_static(&[0x12, 0x03, 0x22, 0x05, 0x08]),
            records: 1,
            seq: 0,
            lane: picket_proto::v1::Lane::Bulk,
        };
        tx.send(damaged).await.expect("queued");
        tx.send(StoredBatch::from_records(
            agent,
            "eu-west-1".into(),
            vec![hit_to("198.51.100.9")],
        ))
        .await
        .expect("queued");
        stop.stop().await;
        let findings = stored(&store);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].remote_ipv4(), Some("198.51.100.9"));
    }

    /// A record of an intel hit on remote address `addr`.
    pub(crate) fn hit_to(addr: &str) -> Record {
        Record {
            record: Some(R::IntelHit(IntelHit {
                observed_at_ms: 1_700_000_000_000,
                matched_value: addr.into(),
                remote_addr: addr.into(),
                category: "c2".into(),
                site: MatchSite::RemoteAddr as i32,
                ..IntelHit::default()
            })),
        }
    }

    fn stored(store: &FindingStore) -> Vec<crate::findings::Finding> {
        store.list(&ListQuery::default()).expect("list").findings
    }

    async fn wait_for_stored(store: &FindingStore, n: usize) {
        // Far below FLUSH_EVERY, so only the prompt path can meet it.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let now = stored(store);
            if now.len() >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waited 5 s for {n} stored findings, have {}",
                now.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_new_finding_is_stored_before_the_flush_and_a_repeat_waits_for_it() {
        let (_dir, store, tx, stop) = start();
        let agent = AgentId::new("123456789012", "i-1").expect("agent id");
        let batch = |records| StoredBatch::from_records(agent.clone(), "eu-west-1".into(), records);
        tx.send(batch(vec![hit_to("198.51.100.7")]))
            .await
            .expect("queued");
        wait_for_stored(&store, 1).await;
        // A repeat of the stored finding and a new one: the new one is written promptly...
        tx.send(batch(vec![hit_to("198.51.100.7"), hit_to("198.51.100.8")]))
            .await
            .expect("queued");
        wait_for_stored(&store, 2).await;
        let first = stored(&store)
            .into_iter()
            .find(|f| f.remote_ipv4() == Some("198.51.100.7"))
            .expect("first finding");
        // ...while the repeat is held for the regular flush (here: the stop).
        assert_eq!(first.service.count, 1);
        stop.stop().await;
        let first = stored(&store)
            .into_iter()
            .find(|f| f.remote_ipv4() == Some("198.51.100.7"))
            .expect("first finding");
        assert_eq!(first.service.count, 2);
    }
}
