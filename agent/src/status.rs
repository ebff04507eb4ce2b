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
    /// Interfaces being captured on now (absent in files from older agents).
    #[serde(default)]
    pub capturing: Vec<String>,
}

impl AgentStatus {
    /// Builds a status from the outbox and counters.
    pub fn new(
        agent: String,
        aggregator: String,
        outbox: &OutboxStats,
        health: Option<&Health>,
        capturing: Vec<String>,
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
            capturing,
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
            "agent:        {}\nrunning:      {}\naggregator:   {}\nconnection:   {}\ncapturing:    {}\nbuffered:     {} batches ({} priority), {} bytes of {} max\noldest:       {}\ndropped:      {}\ncorrupt:      {}\nsent/acked:   {} / {} batches, {} reconnects\n",
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
            if running && !self.capturing.is_empty() {
                self.capturing.join(", ")
            } else {
                "-".to_owned()
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

/// Batches waiting from which a shrinking outbox is reported as a backlog being drained.
pub const DRAIN_REPORT_MIN_BATCHES: u64 = 50;
/// How often backlog drain progress is logged.
pub const DRAIN_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Tracks a backlog being delivered after an outage, for progress lines in the log.
#[derive(Debug, Default)]
pub struct DrainProgress {
    last: Option<(std::time::Instant, u64)>,
    draining: bool,
}

/// One progress line's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DrainReport {
    /// Still draining: batches left, batches per second since the last report, seconds to go.
    Progress {
        /// Batches waiting now.
        left: u64,
        /// Batches delivered per second since the last report.
        rate: f64,
        /// Estimated seconds until empty at that rate (`None` when not shrinking).
        eta_secs: Option<u64>,
    },
    /// The backlog that was being reported is gone.
    Drained,
}

impl DrainProgress {
    /// Looks at the outbox's batch count at `now`; returns a report at most once per
    /// [`DRAIN_REPORT_EVERY`], only while connected with a backlog (and once when it empties).
    pub fn observe(
        &mut self,
        now: std::time::Instant,
        batches: u64,
        connected: bool,
    ) -> Option<DrainReport> {
        if self.draining && batches == 0 {
            self.draining = false;
            self.last = None;
            return Some(DrainReport::Drained);
        }
        if !connected || batches < DRAIN_REPORT_MIN_BATCHES {
            self.last = None;
            return None;
        }
        let Some((at, before)) = self.last else {
            self.last = Some((now, batches));
            return None;
        };
        let elapsed = now.duration_since(at);
        if elapsed < DRAIN_REPORT_EVERY {
            return None;
        }
        self.last = Some((now, batches));
        let delivered = before.saturating_sub(batches);
        if delivered == 0 {
            return None;
        }
        self.draining = true;
        let rate = delivered as f64 / elapsed.as_secs_f64();
        Some(DrainReport::Progress {
            left: batches,
            rate,
            eta_secs: (rate > 0.0).then(|| (batches as f64 / rate).ceil() as u64),
        })
    }
}

/// Rewrites the status file every second until shutdown.
pub async fn write_every_second(
    dir: PathBuf,
    agent: String,
    aggregator: String,
    outbox: Outbox,
    health: Arc<Health>,
    capture: crate::sensor::CaptureThreads,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut warned = false;
    let mut drain = DrainProgress::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let result = outbox.stats().map_err(|e| e.to_string()).and_then(|stats| {
            let status = AgentStatus::new(
                agent.clone(),
                aggregator.clone(),
                &stats,
                Some(&health),
                capture.interfaces(),
            );
            match drain.observe(
                std::time::Instant::now(),
                status.buffered_batches,
                status.connected,
            ) {
                Some(DrainReport::Progress {
                    left,
                    rate,
                    eta_secs,
                }) => tracing::info!(
                    batches_left = left,
                    batches_per_sec = format!("{rate:.1}"),
                    eta_secs,
                    "draining backlog"
                ),
                Some(DrainReport::Drained) => tracing::info!("backlog drained"),
                None => {}
            }
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_shrinking_backlog_is_reported_every_ten_seconds_and_once_when_empty() {
        let t0 = Instant::now();
        let mut d = DrainProgress::default();
        assert_eq!(d.observe(t0, 1000, true), None);
        assert_eq!(d.observe(t0 + Duration::from_secs(5), 900, true), None);
        let Some(DrainReport::Progress {
            left,
            rate,
            eta_secs,
        }) = d.observe(t0 + Duration::from_secs(10), 800, true)
        else {
            panic!("expected progress");
        };
        assert_eq!(left, 800);
        assert!((rate - 20.0).abs() < 1e-9);
        assert_eq!(eta_secs, Some(40));
        assert_eq!(
            d.observe(t0 + Duration::from_secs(12), 0, true),
            Some(DrainReport::Drained)
        );
        assert_eq!(d.observe(t0 + Duration::from_secs(30), 0, true), None);
    }

    #[test]
    fn a_small_or_disconnected_or_growing_backlog_is_not_reported() {
        let t0 = Instant::now();
        let mut d = DrainProgress::default();
        assert_eq!(d.observe(t0, 10, true), None);
        assert_eq!(d.observe(t0 + Duration::from_secs(20), 5, true), None);
        assert_eq!(d.observe(t0, 1000, false), None);
        assert_eq!(d.observe(t0 + Duration::from_secs(20), 900, false), None);
        assert_eq!(d.observe(t0, 1000, true), None);
        assert_eq!(d.observe(t0 + Duration::from_secs(20), 1200, true), None);
    }

    #[test]
    fn the_interfaces_captured_on_are_shown_and_kept_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = OutboxStats::default();
        let status = AgentStatus::new(
            "123456789012/i-0abc".into(),
            "https://agg:7443".into(),
            &stats,
            Some(&Health::default()),
            vec!["ens5".into(), "ens6".into()],
        );
        assert!(status.render(true).contains("capturing:    ens5, ens6\n"));
        assert!(status.render(false).contains("capturing:    -\n"));
        write_status(dir.path(), &status).expect("written");
        assert_eq!(read_status(dir.path()).expect("read"), status);
        // A file from an agent that did not write the member still reads.
        let mut old: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATUS_FILE)).expect("read"))
                .expect("json");
        old.as_object_mut().expect("object").remove("capturing");
        std::fs::write(dir.path().join(STATUS_FILE), old.to_string()).expect("written");
        assert!(read_status(dir.path()).expect("read").capturing.is_empty());
    }
}
