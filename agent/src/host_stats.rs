//! The agent's own accounting, shipped as a `HostStats` record each summary interval so the
//! aggregator sees that the agent is alive and what it saw and lost.
//!
//! The packet, drop and flow counters are filled by the sensor (capture → decode → flow
//! table); until a sensor runs they are honestly zero.

use std::collections::BTreeMap;

use picket_proto::v1::{Counter, HostStats, Record, record};
use tokio::sync::watch;
use tracing::{debug, error};

use crate::records_sink::RecordSink;
use crate::transport::now_ms;

/// Pushes one `HostStats` record per interval through the sink until shutdown. Each carries
/// the records the outbox dropped during the interval, by kind.
pub async fn report_every(
    interval: std::time::Duration,
    sink: RecordSink,
    mut shutdown: watch::Receiver<bool>,
) {
    let dropped_totals =
        |sink: &RecordSink| sink.outbox().stats().map(|s| s.dropped).unwrap_or_default();
    let mut dropped_before: BTreeMap<String, u64> = dropped_totals(&sink);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut interval_start = now_ms();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let interval_end = now_ms();
        let dropped_now = dropped_totals(&sink);
        let records_dropped = dropped_now
            .iter()
            .filter_map(|(kind, n)| {
                let delta = n.saturating_sub(dropped_before.get(kind).copied().unwrap_or(0));
                (delta > 0).then(|| Counter {
                    kind: kind.clone(),
                    count: delta,
                })
            })
            .collect();
        dropped_before = dropped_now;
        let stats = HostStats {
            interval_start_ms: interval_start,
            interval_end_ms: interval_end,
            records_dropped,
            ..HostStats::default()
        };
        interval_start = interval_end;
        let records = vec![Record {
            record: Some(record::Record::HostStats(stats)),
        }];
        match sink.submit(records).await {
            Ok(()) => debug!("host stats buffered"),
            Err(e) => error!(error = %e, "host stats not buffered"),
        }
    }
}
