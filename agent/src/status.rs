//! The agent's local status: the running agent writes `status.json` in its data folder every
//! second, and `picket-agent status` reads it — or, when no agent is running, reads the outbox
//! itself. A file rather than a socket: it needs no listener, works when the agent is wedged
//! (the timestamp goes stale), and the sled database stays owned by one process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::warn;

use crate::health::Health;
use crate::outbox::{Outbox, OutboxStats};
use crate::transport::now_ms;

/// File name of the status file inside the data folder.
pub const STATUS_FILE: &str = "status.json";

/// What `status.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentStatus {
    /// The agent's process id.
    pub pid: u32,
    /// When this status was written, Unix ms.
    pub updated_at_ms: i64,
    /// `account/instance`.
    pub agent: String,
    /// The aggregator URL.
    pub aggregator: String,
    /// Whether a session is open now.
    pub connected: bool,
    /// Batches waiting (both lanes).
    pub buffered_batches: u64,
    /// Of which in the priority lane (intel hits).
    pub buffered_priority_batches: u64,
    /// Bytes waiting.
    pub buffered_bytes: u64,
    /// The byte bound.
    pub max_bytes: u64,
    /// Age of the oldest waiting batch, ms (0 when none).
    pub oldest_age_ms: i64,
    /// Records dropped to stay within the bound, by kind.
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Undecodable batches removed.
    pub corrupt_dropped: u64,
    /// Batches sent since start (resends count again).
    pub batches_sent: u64,
    /// Batches acked since start.
    pub batches_acked: u64,
    /// Sessions opened after the first.
    pub reconnects: u64,
}

impl AgentStatus {
    /// Builds a status from the outbox and counters.
    pub fn new(
        agent: String,
        aggregator: String,
        outbox: &OutboxStats,
        health: Option<&Health>,
    ) -> Self {
        let now = now_ms();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Self {
            pid: std::process::id(),
            updated_at_ms: now,
            agent,
            aggregator,
            connected: health.is_some_and(|h| load(&h.connected) == 1),
            buffered_batches: outbox.batches + outbox.priority_batches,
            buffered_priority_batches: outbox.priority_batches,
            buffered_bytes: outbox.bytes,
            max_bytes: outbox.max_bytes,
            oldest_age_ms: outbox
                .oldest_created_at_ms
                .map_or(0, |t| now.saturating_sub(t)),
            dropped: outbox.dropped.clone(),
            corrupt_dropped: outbox.corrupt_dropped,
            batches_sent: health.map_or(0, |h| load(&h.batches_sent)),
            batches_acked: health.map_or(0, |h| load(&h.batches_acked)),
            reconnects: health.map_or(0, |h| load(&h.reconnects)),
        }
    }

    /// Renders the status for people.
    pub fn render(&self, running: bool) -> String {
        let dropped = if self.dropped.values().all(|n| *n == 0) {
            "none".to_owned()
        } else {
            self.dropped
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "agent:        {}\nrunning:      {}\naggregator:   {}\nconnection:   {}\nbuffered:     {} batches ({} priority), {} bytes of {} max\noldest:       {}\ndropped:      {}\ncorrupt:      {}\nsent/acked:   {} / {} batches, {} reconnects\n",
            self.agent,
            if running {
                format!("yes (pid {})", self.pid)
            } else {
                "no".to_owned()
            },
            self.aggregator,
            if !running {
                "-"
            } else if self.connected {
                "connected"
            } else {
                "disconnected (buffering)"
            },
            self.buffered_batches,
            self.buffered_priority_batches,
            self.buffered_bytes,
            self.max_bytes,
            if self.buffered_batches == 0 {
                "-".to_owned()
            } else {
                format!("{:.1} s", self.oldest_age_ms as f64 / 1000.0)
            },
            dropped,
            self.corrupt_dropped,
            self.batches_sent,
            self.batches_acked,
            self.reconnects,
        )
    }
}

/// Writes `status.json` atomically (temp file + rename).
///
/// # Errors
/// The I/O error.
pub fn write_status(dir: &Path, status: &AgentStatus) -> std::io::Result<()> {
    let tmp = dir.join(".status.json.tmp");
    let json = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, dir.join(STATUS_FILE))
}

/// Reads `status.json` from a data folder.
///
/// # Errors
/// The I/O or parse error, with the path.
pub fn read_status(dir: &Path) -> Result<AgentStatus, String> {
    let path: PathBuf = dir.join(STATUS_FILE);
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Rewrites the status file every second until shutdown.
pub async fn write_every_second(
    dir: PathBuf,
    agent: String,
    aggregator: String,
    outbox: Outbox,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut warned = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let result = outbox.stats().map_err(|e| e.to_string()).and_then(|stats| {
            let status = AgentStatus::new(agent.clone(), aggregator.clone(), &stats, Some(&health));
            write_status(&dir, &status).map_err(|e| e.to_string())
        });
        match result {
            Ok(()) => warned = false,
            Err(e) if !warned => {
                warn!(error = %e, "status file not written");
                warned = true;
            }
            Err(_) => {}
        }
    }
}
