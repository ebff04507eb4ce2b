//! The agent's running totals, shared by the tasks that count and the heartbeat that reports.
//! Plain atomics: counted per batch, never per packet, and never locked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use picket_proto::v1::AgentHealth;

use crate::decode::SkipKind;
use crate::outbox::OutboxStats;
use crate::pipeline::NatStats;

/// Counters since the agent started.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Batches written to the stream (a resend counts again).
    pub batches_sent: AtomicU64,
    /// Batches the aggregator acked.
    pub batches_acked: AtomicU64,
    /// Sessions opened after the first.
    pub reconnects: AtomicU64,
    /// Whether a session is open now (0 or 1).
    pub connected: AtomicU64,
    /// What the sensor reported in its `HostStats` records, summed since start.
    pub sensor: SensorTotals,
    /// Records handed to the outbox since start, by kind.
    pub records: RecordTotals,
}

/// The sensor's totals, folded from each `HostStats` record on its way to the outbox (so the
/// capture threads are untouched; the figures move once per summary interval).
#[derive(Debug, Default)]
pub struct SensorTotals {
    /// Packets captured.
    pub packets: AtomicU64,
    /// Bytes captured.
    pub bytes: AtomicU64,
    /// Packets the kernel dropped (ring full).
    pub kernel_drops: AtomicU64,
    /// Packets the agent dropped itself (e.g. oversized frames).
    pub internal_drops: AtomicU64,
    /// Flows in the flow table at the most recent report (a gauge; with several interfaces,
    /// the last one to report).
    pub flows_active: AtomicU64,
    /// Flows evicted from a full table.
    pub flows_evicted: AtomicU64,
    /// Records the sensor dropped on purpose, by cause ([`SENSOR_DROP_CAUSES`] order; other
    /// kinds on the same record are the outbox's, which it counts itself).
    pub records_dropped: [AtomicU64; SENSOR_DROP_CAUSES.len()],
    /// Packets skipped on purpose after capture, by [`SkipKind`] (its order): not IP, or a
    /// container's packet counted on the container's own link.
    pub packets_skipped: [AtomicU64; SkipKind::COUNT],
    /// The NAT check's work, by [`NatStats::KINDS`] (its order).
    pub nat_checks: [AtomicU64; NatStats::KINDS.len()],
}

/// The causes the sensor reports in `HostStats.records_dropped` (fixed labels for metrics).
pub const SENSOR_DROP_CAUSES: [&str; 4] = [
    "sensor_channel_full",
    "flow_summaries_full",
    "tls_names_full",
    "dns_summaries_full",
];

/// Record kinds counted on their way into the outbox.
pub const RECORD_KINDS: [&str; 4] = ["flow", "dns", "intel_hit", "host_stats"];

/// Records handed to the outbox, by kind ([`RECORD_KINDS`] order).
#[derive(Debug, Default)]
pub struct RecordTotals {
    /// One counter per kind.
    pub by_kind: [AtomicU64; RECORD_KINDS.len()],
}

impl Default for Health {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            batches_sent: AtomicU64::new(0),
            batches_acked: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            sensor: SensorTotals::default(),
            records: RecordTotals::default(),
        }
    }
}

impl Health {
    /// Counts `records` by kind and folds any `HostStats` among them into [`SensorTotals`].
    /// Called once per batch handed to the outbox: a pass of relaxed atomic adds, no lock.
    pub fn count_records(&self, records: &[picket_proto::v1::Record]) {
        use picket_proto::v1::record::Record as R;
        let mut kinds = [0_u64; RECORD_KINDS.len()];
        for r in records {
            let slot = match &r.record {
                Some(R::Flow(_)) => 0,
                Some(R::Dns(_)) => 1,
                Some(R::IntelHit(_)) => 2,
                Some(R::HostStats(h)) => {
                    self.fold_host_stats(h);
                    3
                }
                None => continue,
            };
            kinds[slot] += 1;
        }
        for (counter, n) in self.records.by_kind.iter().zip(kinds) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn fold_host_stats(&self, h: &picket_proto::v1::HostStats) {
        let s = &self.sensor;
        s.packets.fetch_add(h.packets, Ordering::Relaxed);
        s.bytes.fetch_add(h.bytes, Ordering::Relaxed);
        s.kernel_drops.fetch_add(h.kernel_drops, Ordering::Relaxed);
        s.internal_drops
            .fetch_add(h.internal_drops, Ordering::Relaxed);
        s.flows_active.store(h.flows_active, Ordering::Relaxed);
        s.flows_evicted
            .fetch_add(h.flows_evicted, Ordering::Relaxed);
        for c in &h.skipped {
            let slot = SkipKind::ALL.iter().position(|k| k.as_str() == c.kind);
            if let Some(counter) = slot.and_then(|i| s.packets_skipped.get(i)) {
                counter.fetch_add(c.count, Ordering::Relaxed);
            }
        }
        for c in &h.nat_checks {
            let slot = NatStats::KINDS.iter().position(|k| *k == c.kind);
            if let Some(counter) = slot.and_then(|i| s.nat_checks.get(i)) {
                counter.fetch_add(c.count, Ordering::Relaxed);
            }
        }
        for c in &h.records_dropped {
            // Outbox drops ride on the same record but are counted by the outbox itself.
            let slot = SENSOR_DROP_CAUSES.iter().position(|k| *k == c.kind);
            if let Some(counter) = slot.and_then(|i| s.records_dropped.get(i)) {
                counter.fetch_add(c.count, Ordering::Relaxed);
            }
        }
    }

    /// A snapshot for a heartbeat, with the outbox's current state.
    pub fn snapshot(&self, outbox: &OutboxStats, now_ms: i64) -> AgentHealth {
        let mut records_dropped: std::collections::HashMap<String, u64> = outbox
            .dropped
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if outbox.corrupt_dropped > 0 {
            records_dropped.insert("corrupt_batch".into(), outbox.corrupt_dropped);
        }
        AgentHealth {
            uptime_secs: self.started.elapsed().as_secs(),
            batches_sent: self.batches_sent.load(Ordering::Relaxed),
            batches_acked: self.batches_acked.load(Ordering::Relaxed),
            outbox_batches: outbox.batches + outbox.priority_batches,
            outbox_bytes: outbox.bytes,
            outbox_max_bytes: outbox.max_bytes,
            outbox_priority_batches: outbox.priority_batches,
            oldest_unacked_age_ms: outbox
                .oldest_created_at_ms
                .map_or(0, |t| now_ms.saturating_sub(t)),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            records_dropped,
            packets_captured: self.sensor.packets.load(Ordering::Relaxed),
            kernel_drops: self.sensor.kernel_drops.load(Ordering::Relaxed),
            internal_drops: self.sensor.internal_drops.load(Ordering::Relaxed),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            ..AgentHealth::default()
        }
    }
}
