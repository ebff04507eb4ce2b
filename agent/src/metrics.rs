//! The agent's Prometheus series and health check, served by [`picket_telemetry`] when
//! `metrics.listen` is set. Every value is read at scrape time from counters that already
//! exist ([`Health`]'s atomics, the outbox's stats, the intel cache, the capture thread count),
//! so capture and delivery pay nothing for metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use picket_telemetry::prometheus_client::registry::Registry;
use picket_telemetry::{HealthCheck, HealthReport, SampledCollector, Samples};

use crate::decode::SkipKind;
use crate::health::{Health, RECORD_KINDS, SENSOR_DROP_CAUSES};
use crate::intel_cache::IntelCache;
use crate::outbox::Outbox;
use crate::pipeline::NatStats;
use crate::transport::now_ms;

/// Outbox fill (percent of `outbox.max_bytes`) from which `/healthz` reports the outbox as
/// full: past the bound the oldest summaries are being dropped.
pub const OUTBOX_FULL_PERCENT: u64 = 95;

/// What the agent's metrics and health are read from.
#[derive(Clone)]
pub struct Sources {
    /// Running totals.
    pub health: Arc<Health>,
    /// The outbox.
    pub outbox: Outbox,
    /// The intel snapshot held.
    pub intel: Arc<IntelCache>,
    /// Capture threads started, and a live count of those still running; `None` without a
    /// sensor.
    pub capture: Option<crate::sensor::CaptureThreads>,
}

/// A registry holding the agent's series, sampled from `sources` on every scrape.
pub fn registry(sources: Sources) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SampledCollector::new(move |s: &mut Samples| {
        sample(&sources, s);
    })));
    registry
}

fn sample(src: &Sources, s: &mut Samples) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let h = &src.health;
    s.gauge_with(
        "picket_agent_build_info",
        "The agent's version (value is always 1).",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    let sensor = &h.sensor;
    s.counter(
        "picket_agent_packets_captured",
        "Packets captured (updated once per summary interval).",
        load(&sensor.packets),
    );
    s.counter(
        "picket_agent_captured_bytes",
        "Bytes captured (updated once per summary interval).",
        load(&sensor.bytes),
    );
    for (cause, v) in [
        ("kernel", &sensor.kernel_drops),
        ("internal", &sensor.internal_drops),
    ] {
        s.counter_with(
            "picket_agent_packet_drops",
            "Packets lost before decoding, by cause (kernel: ring full; internal: the agent's own).",
            &[("cause", cause)],
            load(v),
        );
    }
    for (kind, v) in SkipKind::ALL.iter().zip(&sensor.packets_skipped) {
        s.counter_with(
            "picket_agent_packets_skipped",
            "Packets skipped on purpose, by kind (not IP; counted_on_container_link: a container's packet, counted on its own link).",
            &[("kind", kind.as_str())],
            load(v),
        );
    }
    for (result, v) in NatStats::KINDS.iter().zip(&sensor.nat_checks) {
        s.counter_with(
            "picket_agent_nat_checks",
            "The NAT check's questions to connection tracking and what came of them, by result (asked; left_to_link: a container's NATed flow left to its link; failed and unchecked: flows counted where seen, twice if a container's).",
            &[("result", result)],
            load(v),
        );
    }
    s.gauge(
        "picket_agent_flows_active",
        "Flows in the flow tables at the last summary.",
        load(&sensor.flows_active) as f64,
    );
    s.counter(
        "picket_agent_flow_evictions",
        "Flows evicted from a full flow table.",
        load(&sensor.flows_evicted),
    );
    for (cause, v) in SENSOR_DROP_CAUSES.iter().zip(&sensor.records_dropped) {
        s.counter_with(
            "picket_agent_sensor_records_dropped",
            "Records the sensor dropped on purpose, by cause.",
            &[("cause", cause)],
            load(v),
        );
    }
    for (kind, v) in RECORD_KINDS.iter().zip(&h.records.by_kind) {
        s.counter_with(
            "picket_agent_records_produced",
            "Records handed to the outbox, by kind.",
            &[("kind", kind)],
            load(v),
        );
    }
    s.gauge(
        "picket_agent_connected",
        "1 while a session to the aggregator is open.",
        load(&h.connected) as f64,
    );
    s.counter(
        "picket_agent_batches_sent",
        "Batches written to the stream (a resend counts again).",
        load(&h.batches_sent),
    );
    s.counter(
        "picket_agent_batches_acked",
        "Batches the aggregator acked.",
        load(&h.batches_acked),
    );
    s.counter(
        "picket_agent_reconnects",
        "Sessions opened after the first.",
        load(&h.reconnects),
    );
    s.gauge(
        "picket_agent_intel_version",
        "Version of the intel snapshot the agent holds (0: the built-in canary only).",
        src.intel.version() as f64,
    );
    if let Some(threads) = &src.capture {
        s.gauge(
            "picket_agent_capture_threads_started",
            "Capture threads that should be running: one per interface captured on (one whose interface went away no longer counts).",
            threads.expected.load(Ordering::Relaxed) as f64,
        );
        s.gauge(
            "picket_agent_capture_threads_running",
            "Capture threads still running.",
            threads.running.load(Ordering::Relaxed) as f64,
        );
        for name in threads.interfaces() {
            s.gauge_with(
                "picket_agent_capturing",
                "1 for each interface being captured on now.",
                &[("interface", &name)],
                1.0,
            );
        }
        for (kind, n) in [
            ("own", &threads.local.own),
            ("hosted", &threads.local.hosted),
        ] {
            s.gauge_with(
                "picket_agent_local_networks",
                "Addresses and networks that tell flow direction: the host's own addresses, and its containers' networks (hosted).",
                &[("kind", kind)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
    }
    if let Ok(o) = src.outbox.stats() {
        s.gauge(
            "picket_agent_outbox_bytes",
            "Bytes of batches waiting for an ack.",
            o.bytes as f64,
        );
        s.gauge(
            "picket_agent_outbox_max_bytes",
            "The outbox's byte bound.",
            o.max_bytes as f64,
        );
        for (lane, n) in [("bulk", o.batches), ("priority", o.priority_batches)] {
            s.gauge_with(
                "picket_agent_outbox_batches",
                "Batches waiting for an ack, by lane.",
                &[("lane", lane)],
                n as f64,
            );
        }
        let age = o
            .oldest_created_at_ms
            .map_or(0, |t| now_ms().saturating_sub(t));
        s.gauge(
            "picket_agent_outbox_oldest_age_seconds",
            "Age of the oldest waiting batch (0 when none).",
            age as f64 / 1000.0,
        );
        for kind in RECORD_KINDS {
            s.counter_with(
                "picket_agent_outbox_dropped_records",
                "Records the outbox dropped to stay within its bound, by kind.",
                &[("kind", kind)],
                o.dropped.get(kind).copied().unwrap_or(0),
            );
        }
        s.counter(
            "picket_agent_outbox_corrupt_batches_dropped",
            "Stored batches that no longer decoded and were removed.",
            o.corrupt_dropped,
        );
    }
}

/// The agent's health: unhealthy when a capture thread has died or the outbox is full.
pub fn health_check(sources: Sources) -> Arc<dyn HealthCheck> {
    Arc::new(move || check(&sources))
}

fn check(src: &Sources) -> HealthReport {
    let mut r = HealthReport::default();
    r.fact("version", env!("CARGO_PKG_VERSION"));
    r.fact(
        "connected",
        src.health.connected.load(Ordering::Relaxed) == 1,
    );
    if let Some(threads) = &src.capture {
        let running = threads.running.load(Ordering::Relaxed);
        let started = threads.expected.load(Ordering::Relaxed);
        r.fact("capture_threads_running", running);
        if running < started {
            r.problem(format!(
                "capture threads dead: {running} of {started} running (see the agent log for the error)"
            ));
        }
    }
    match src.outbox.stats() {
        Ok(o) => {
            r.fact("outbox_bytes", o.bytes);
            r.fact("outbox_batches", o.batches + o.priority_batches);
            if o.max_bytes > 0
                && o.bytes.saturating_mul(100) >= o.max_bytes.saturating_mul(OUTBOX_FULL_PERCENT)
            {
                r.problem(format!(
                    "outbox full: {} of {} bytes buffered; the oldest summaries are being dropped",
                    o.bytes, o.max_bytes
                ));
            }
        }
        Err(e) => r.problem(format!("outbox unreadable: {e}")),
    }
    r
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use picket_proto::v1::{Counter, HostStats, Record, record};

    use super::*;

    fn sources(dir: &std::path::Path, max_bytes: u64) -> Sources {
        let db = sled::open(dir.join("state")).unwrap();
        let outbox = Outbox::open(&db, dir.join("state"), max_bytes).unwrap();
        Sources {
            health: Arc::new(Health::default()),
            outbox,
            intel: IntelCache::open(&db).unwrap(),
            capture: Some(crate::sensor::CaptureThreads {
                expected: Arc::new(AtomicUsize::new(2)),
                running: Arc::new(AtomicUsize::new(2)),
                interfaces: Arc::new(std::sync::Mutex::new(
                    ["ens5".to_owned(), "ens6".to_owned()].into(),
                )),
                local: Arc::new(crate::sensor::LocalCounts {
                    own: AtomicUsize::new(3),
                    hosted: AtomicUsize::new(7),
                }),
            }),
        }
    }

    #[test]
    fn host_stats_on_the_way_to_the_outbox_become_series() {
        let dir = tempfile::tempdir().unwrap();
        let src = sources(dir.path(), 1 << 20);
        let stats = HostStats {
            packets: 10,
            kernel_drops: 3,
            internal_drops: 1,
            flows_active: 4,
            flows_evicted: 2,
            records_dropped: vec![
                Counter {
                    kind: "sensor_channel_full".into(),
                    count: 5,
                },
                Counter {
                    kind: "flow".into(),
                    count: 9,
                },
            ],
            skipped: vec![Counter {
                kind: "counted_on_container_link".into(),
                count: 6,
            }],
            nat_checks: vec![
                Counter {
                    kind: "asked".into(),
                    count: 8,
                },
                Counter {
                    kind: "failed".into(),
                    count: 2,
                },
            ],
            ..HostStats::default()
        };
        src.health.count_records(&[Record {
            record: Some(record::Record::HostStats(stats)),
        }]);
        let mut text = String::new();
        picket_telemetry::prometheus_client::encoding::text::encode(
            &mut text,
            &registry(src.clone()),
        )
        .unwrap();
        for line in [
            "picket_agent_packets_captured_total 10",
            "picket_agent_packet_drops_total{cause=\"kernel\"} 3",
            "picket_agent_packet_drops_total{cause=\"internal\"} 1",
            "picket_agent_packets_skipped_total{kind=\"counted_on_container_link\"} 6",
            "picket_agent_packets_skipped_total{kind=\"arp\"} 0",
            "picket_agent_nat_checks_total{result=\"asked\"} 8",
            "picket_agent_nat_checks_total{result=\"failed\"} 2",
            "picket_agent_nat_checks_total{result=\"unchecked\"} 0",
            "picket_agent_flows_active 4",
            "picket_agent_flow_evictions_total 2",
            "picket_agent_sensor_records_dropped_total{cause=\"sensor_channel_full\"} 5",
            "picket_agent_records_produced_total{kind=\"host_stats\"} 1",
            "picket_agent_outbox_bytes 0",
            "picket_agent_capture_threads_running 2",
            "picket_agent_capturing{interface=\"ens5\"} 1",
            "picket_agent_capturing{interface=\"ens6\"} 1",
            "picket_agent_local_networks{kind=\"own\"} 3",
            "picket_agent_local_networks{kind=\"hosted\"} 7",
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
        // The outbox's own drop (kind "flow") is not the sensor's.
        assert!(!text.contains("cause=\"flow\""), "{text}");
        assert!(check(&src).is_healthy());
    }

    #[tokio::test]
    async fn a_full_outbox_makes_the_agent_unhealthy_and_says_so() {
        use picket_proto::v1::{FlowSummary, Lane};
        let dir = tempfile::tempdir().unwrap();
        let src = sources(dir.path(), crate::config::MIN_OUTBOX_BYTES);
        assert!(check(&src).is_healthy());
        let flow = Record {
            record: Some(record::Record::Flow(FlowSummary {
                local_addr: "10.0.0.5".into(),
                remote_addr: "198.51.100.7".into(),
                app_protocol: "x".repeat(200),
                ..FlowSummary::default()
            })),
        };
        for i in 0..400 {
            src.outbox
                .push(Lane::Bulk, vec![flow.clone(); 4], i)
                .await
                .unwrap();
        }
        let r = check(&src);
        assert!(!r.is_healthy(), "{r:?}");
        assert!(
            r.problems[0].starts_with("outbox full:"),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn a_dead_capture_thread_makes_the_agent_unhealthy() {
        let dir = tempfile::tempdir().unwrap();
        let src = sources(dir.path(), 1 << 20);
        if let Some(threads) = &src.capture {
            threads.running.store(1, Ordering::Relaxed);
        }
        let r = check(&src);
        assert!(!r.is_healthy());
        assert!(r.problems[0].contains("1 of 2 running"), "{:?}", r.problems);
    }
}
