//! The agent's own accounting, shipped as a `HostStats` record each summary interval so the
//! aggregator sees that the agent is alive and what it saw and lost.
//!
//! The packet, drop and flow counters are filled by the sensor (capture → decode → flow
//! table); until a sensor runs they are honestly zero.

use std::sync::Arc;

use picket_proto::v1::{HostStats, Record, record};
use tokio::sync::{Notify, watch};
use tracing::{debug, error};

use crate::outbox::Outbox;
use crate::transport::now_ms;

/// Pushes one `HostStats` batch per interval into the outbox until shutdown.
pub async fn report_every(
    interval: std::time::Duration,
    outbox: Outbox,
    new_batches: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut interval_start = now_ms();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let interval_end = now_ms();
        let stats = HostStats {
            interval_start_ms: interval_start,
            interval_end_ms: interval_end,
            ..HostStats::default()
        };
        interval_start = interval_end;
        let records = vec![Record {
            record: Some(record::Record::HostStats(stats)),
        }];
        match outbox.push(records, interval_end).await {
            Ok(seq) => {
                debug!(seq, "host stats buffered");
                new_batches.notify_one();
            }
            // Counted by the log line; the outbox issue makes this a reported drop.
            Err(e) => error!(error = %e, "host stats not buffered"),
        }
    }
}
