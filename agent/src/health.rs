//! The agent's running totals, shared by the tasks that count and the heartbeat that reports.
//! Plain atomics: counted per batch, never per packet, and never locked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use picket_proto::v1::AgentHealth;

use crate::outbox::OutboxStats;

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
}

impl Default for Health {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            batches_sent: AtomicU64::new(0),
            batches_acked: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            connected: AtomicU64::new(0),
        }
    }
}

impl Health {
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
            ..AgentHealth::default()
        }
    }
}
