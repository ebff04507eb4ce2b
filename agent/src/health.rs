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
    pub fn snapshot(&self, outbox: &OutboxStats, oldest_age_ms: i64) -> AgentHealth {
        AgentHealth {
            uptime_secs: self.started.elapsed().as_secs(),
            batches_sent: self.batches_sent.load(Ordering::Relaxed),
            batches_acked: self.batches_acked.load(Ordering::Relaxed),
            outbox_batches: outbox.batches,
            outbox_bytes: outbox.bytes,
            oldest_unacked_age_ms: oldest_age_ms,
            reconnects: self.reconnects.load(Ordering::Relaxed),
            ..AgentHealth::default()
        }
    }
}
