//! The aggregator's Prometheus series and health check, served by [`picket_telemetry`] when
//! `metrics.listen` is set.
//!
//! Two sources: [`counters`], process-wide counters raised where rare events happen (a
//! refused session, a stored finding); and values sampled at scrape time from what already
//! exists (the agent ledgers in the batch store, the session limiter, the detection queue, the
//! published intel, the exporters' counters and lag). Nothing here runs per record.

use std::sync::{Arc, OnceLock};

use picket_telemetry::prometheus_client::metrics::counter::Counter;
use picket_telemetry::prometheus_client::metrics::family::Family;
use picket_telemetry::prometheus_client::registry::Registry;
use picket_telemetry::{HealthCheck, HealthReport, SampledCollector, Samples};
use tokio::sync::{mpsc, watch};

use crate::exports::runner::ExportStats;
use crate::findings::model::{Finding, Timestamp};
use crate::findings::store::Upserted;
use crate::findings::types::SeverityBand;
use crate::ingest::{BatchStore, SessionLimiter, StoredBatch};
use crate::intel::Published;

/// Why an agent's session or frame was refused or failed; fixed metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IngestErrorCause {
    /// The client certificate named no agent (or none was given).
    Unauthenticated,
    /// An administrator certificate tried to open an ingest session.
    AdminCertificate,
    /// The agent already had its maximum of concurrent sessions.
    SessionLimit,
    /// No `Hello` arrived in time.
    NoHello,
    /// The first frame was not a `Hello`, or a later frame was malformed.
    BadFrame,
    /// `Hello` claimed another identity than the certificate's.
    IdentityMismatch,
    /// A batch could not be written to the store.
    StoreWrite,
    /// The store could not be flushed, so nothing was acked.
    StoreFlush,
    /// The stream ended with an error (reset, keep-alive timeout).
    StreamError,
    /// A TLS handshake was refused (bad or untrusted certificate, not TLS).
    TlsHandshake,
    /// A TLS handshake did not finish in time.
    TlsTimeout,
}

impl IngestErrorCause {
    /// Every cause, so each series exists (at 0) from the start and `rate()` works at once.
    pub const ALL: [Self; 11] = [
        Self::Unauthenticated,
        Self::AdminCertificate,
        Self::SessionLimit,
        Self::NoHello,
        Self::BadFrame,
        Self::IdentityMismatch,
        Self::StoreWrite,
        Self::StoreFlush,
        Self::StreamError,
        Self::TlsHandshake,
        Self::TlsTimeout,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::AdminCertificate => "admin_certificate",
            Self::SessionLimit => "session_limit",
            Self::NoHello => "no_hello",
            Self::BadFrame => "bad_frame",
            Self::IdentityMismatch => "identity_mismatch",
            Self::StoreWrite => "store_write",
            Self::StoreFlush => "store_flush",
            Self::StreamError => "stream_error",
            Self::TlsHandshake => "tls_handshake",
            Self::TlsTimeout => "tls_timeout",
        }
    }
}

fn band_name(b: SeverityBand) -> &'static str {
    match b {
        SeverityBand::Low => "low",
        SeverityBand::Medium => "medium",
        SeverityBand::High => "high",
        SeverityBand::Critical => "critical",
    }
}

type StaticLabels = Vec<(&'static str, &'static str)>;

/// Process-wide counters and gauges raised by the parts that see the events.
#[derive(Debug, Default)]
pub struct Counters {
    ingest_errors: Family<StaticLabels, Counter>,
    findings: Family<StaticLabels, Counter>,
}

/// The process's [`Counters`].
pub fn counters() -> &'static Counters {
    static COUNTERS: OnceLock<Counters> = OnceLock::new();
    COUNTERS.get_or_init(Counters::default)
}

impl Counters {
    /// Counts one refused or failed session or frame.
    pub fn ingest_error(&self, cause: IngestErrorCause) {
        self.ingest_errors
            .get_or_create(&vec![("cause", cause.as_str())])
            .inc();
    }

    /// Counts findings stored by the detection task, created or updated, by type and
    /// severity band.
    pub fn findings_stored(&self, findings: &[Finding], outcomes: &[Upserted]) {
        for (f, outcome) in findings.iter().zip(outcomes) {
            let outcome = match outcome {
                Upserted::Inserted | Upserted::ReplacedCorrupt => "created",
                Upserted::Merged => "updated",
            };
            self.findings
                .get_or_create(&vec![
                    ("type", f.finding_type.name()),
                    ("severity", band_name(SeverityBand::of(f.severity))),
                    ("outcome", outcome),
                ])
                .inc();
        }
    }
}

/// What the sampled series and the health check read.
#[derive(Clone)]
pub struct Sources {
    /// The batch store (agent ledgers; a probe write for health).
    pub store: BatchStore,
    /// Open sessions.
    pub limiter: Arc<SessionLimiter>,
    /// The published intel.
    pub intel: watch::Receiver<Arc<Published>>,
    /// The detection queue's sender (its free capacity gives the depth).
    pub detection: mpsc::Sender<StoredBatch>,
    /// Each running exporter's counters and lag.
    pub exports: Vec<Arc<ExportStats>>,
}

const RECORD_KINDS: [&str; 4] = ["flow", "dns", "intel_hit", "host_stats"];

/// A registry with the aggregator's series.
pub fn registry(sources: Sources) -> Registry {
    let mut registry = Registry::default();
    let c = counters();
    for cause in IngestErrorCause::ALL {
        let _ = c
            .ingest_errors
            .get_or_create(&vec![("cause", cause.as_str())]);
    }
    registry.register(
        "picket_aggregator_ingest_errors",
        "Sessions or frames refused or failed, by cause.",
        c.ingest_errors.clone(),
    );
    registry.register(
        "picket_aggregator_findings",
        "Findings stored, by type, severity band and outcome (created or updated).",
        c.findings.clone(),
    );
    registry.register_collector(Box::new(SampledCollector::new(move |s: &mut Samples| {
        sample(&sources, s);
    })));
    registry
}

fn sample(src: &Sources, s: &mut Samples) {
    s.gauge_with(
        "picket_aggregator_build_info",
        "The aggregator's version (value is always 1).",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    s.gauge(
        "picket_aggregator_connected_agents",
        "Agents with a session open now.",
        src.limiter.connected_agents() as f64,
    );
    let depth = src
        .detection
        .max_capacity()
        .saturating_sub(src.detection.capacity());
    s.gauge(
        "picket_aggregator_detection_queue_depth",
        "Stored batches waiting for detection.",
        depth as f64,
    );
    s.gauge(
        "picket_aggregator_detection_queue_capacity",
        "The detection queue's bound; ingest waits when it is full.",
        src.detection.max_capacity() as f64,
    );
    s.gauge(
        "picket_aggregator_intel_version",
        "Version of the published intel snapshot.",
        src.intel.borrow().version() as f64,
    );
    sample_exports(&src.exports, Timestamp::now(), s);
    let Ok(ledgers) = src.store.ledgers() else {
        return;
    };
    s.gauge(
        "picket_aggregator_agents_known",
        "Agents the aggregator has ever heard from.",
        ledgers.len() as f64,
    );
    let mut batches = 0_u64;
    let mut duplicates = 0_u64;
    let mut records = [0_u64; RECORD_KINDS.len() + 1];
    let mut backlog_bytes = 0_u64;
    let mut backlog_batches = 0_u64;
    for l in &ledgers {
        batches = batches.saturating_add(l.batches_received);
        duplicates = duplicates.saturating_add(l.duplicates_discarded);
        for (kind, n) in &l.records_received {
            let slot = RECORD_KINDS
                .iter()
                .position(|k| k == kind)
                .unwrap_or(RECORD_KINDS.len());
            records[slot] = records[slot].saturating_add(*n);
        }
        if let Some(h) = &l.last_health {
            backlog_bytes = backlog_bytes.saturating_add(h.outbox_bytes);
            backlog_batches = backlog_batches.saturating_add(h.outbox_batches);
        }
    }
    s.counter(
        "picket_aggregator_batches_ingested",
        "Batches stored (duplicates excluded), all agents.",
        batches,
    );
    s.counter(
        "picket_aggregator_duplicate_batches",
        "Replayed batches recognised and not applied again.",
        duplicates,
    );
    for (i, n) in records.iter().enumerate() {
        let kind = RECORD_KINDS.get(i).copied().unwrap_or("other");
        s.counter_with(
            "picket_aggregator_records_ingested",
            "Records stored, by kind, all agents.",
            &[("kind", kind)],
            *n,
        );
    }
    s.gauge(
        "picket_aggregator_agent_backlog_bytes",
        "Bytes buffered in agents' outboxes, as their last heartbeats reported.",
        backlog_bytes as f64,
    );
    s.gauge(
        "picket_aggregator_agent_backlog_batches",
        "Batches buffered in agents' outboxes, as their last heartbeats reported.",
        backlog_batches as f64,
    );
}

/// Each exporter's counters, and its lag once it has one (see [`ExportStats::lag`]): an
/// exporter failing since start has a lag from its first batch on, so an alert on the lag fires.
fn sample_exports(exports: &[Arc<ExportStats>], now: Timestamp, s: &mut Samples) {
    for e in exports {
        let labels = [("exporter", e.name())];
        if let Some(lag) = e.lag(now) {
            s.gauge_with(
                "picket_aggregator_export_lag_seconds",
                "How far each exporter is behind the findings store: 0 when caught up, else the age of the oldest finding it is delivering (or of the newest it delivered).",
                &labels,
                lag.as_secs_f64(),
            );
        }
        s.counter_with(
            "picket_aggregator_exported_findings",
            "Findings each exporter delivered since start.",
            &labels,
            e.exported(),
        );
        s.counter_with(
            "picket_aggregator_export_failures",
            "Failed deliveries since start, each retried, by exporter.",
            &labels,
            e.failures(),
        );
        s.counter_with(
            "picket_aggregator_export_skipped_findings",
            "Findings an exporter passed over by its min_severity or include_archived, since start.",
            &labels,
            e.skipped(),
        );
        s.counter_with(
            "picket_aggregator_export_corrupt_findings",
            "Stored findings that did not decode and were not exported, since start, by exporter.",
            &labels,
            e.corrupt(),
        );
    }
}

/// The aggregator's health: unhealthy when the store cannot be written.
pub fn health_check(sources: Sources) -> Arc<dyn HealthCheck> {
    Arc::new(move || check(&sources))
}

fn check(src: &Sources) -> HealthReport {
    let mut r = HealthReport::default();
    r.fact("version", env!("CARGO_PKG_VERSION"));
    r.fact("connected_agents", src.limiter.connected_agents());
    r.fact("intel_version", src.intel.borrow().version());
    r.fact(
        "detection_queue_depth",
        src.detection
            .max_capacity()
            .saturating_sub(src.detection.capacity()),
    );
    if let Err(e) = probe_store(&src.store) {
        r.problem(format!("store unwritable: {e}"));
    }
    r
}

/// Writes and flushes a small key, so a full disk or a read-only mount shows up here.
fn probe_store(store: &BatchStore) -> Result<(), String> {
    let tree = store.tree("ops").map_err(|e| e.to_string())?;
    let now = crate::ingest::store::now_ms().to_be_bytes();
    tree.insert(b"healthz", &now[..])
        .map_err(|e| e.to_string())?;
    tree.flush().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::types::FindingType;

    #[test]
    fn stored_findings_are_counted_by_type_severity_and_outcome() {
        let c = Counters::default();
        let mut f = crate::findings::samples::samples(
            "123456789012",
            "us-east-1",
            crate::findings::model::Timestamp(1_700_000_000_000),
        )
        .into_iter()
        .find(|f| f.finding_type == FindingType::ReconPortscan)
        .expect("a port scan sample");
        f.severity = 5.0;
        c.findings_stored(
            &[f.clone(), f.clone(), f],
            &[Upserted::Inserted, Upserted::Merged, Upserted::Merged],
        );
        let mut registry = Registry::default();
        registry.register("picket_aggregator_findings", "x", c.findings.clone());
        c.ingest_error(IngestErrorCause::IdentityMismatch);
        registry.register(
            "picket_aggregator_ingest_errors",
            "x",
            c.ingest_errors.clone(),
        );
        let mut text = String::new();
        picket_telemetry::prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("picket_aggregator_findings_total{type=\"Recon:EC2/Portscan\",severity=\"medium\",outcome=\"created\"} 1"), "{text}");
        assert!(text.contains("outcome=\"updated\"} 2"), "{text}");
        assert!(
            text.contains("picket_aggregator_ingest_errors_total{cause=\"identity_mismatch\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn exporters_are_sampled_by_name_with_a_lag_once_they_have_one() {
        let exports = vec![Arc::new(ExportStats::new("siem"))];
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SampledCollector::new(move |s: &mut Samples| {
            sample_exports(&exports, Timestamp(10_000), s);
        })));
        let mut text = String::new();
        picket_telemetry::prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for series in [
            "picket_aggregator_exported_findings_total{exporter=\"siem\"} 0",
            "picket_aggregator_export_failures_total{exporter=\"siem\"} 0",
            "picket_aggregator_export_skipped_findings_total{exporter=\"siem\"} 0",
            "picket_aggregator_export_corrupt_findings_total{exporter=\"siem\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
        // Nothing looked at yet: no lag rather than a made-up 0.
        assert!(!text.contains("export_lag"), "{text}");
    }
}
