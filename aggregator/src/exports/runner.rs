//! One task per exporter: read settled updates after the cursor, encode, deliver with retries,
//! save the cursor; sleep when caught up. [`Exports`] starts them for `serve` and stops them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::ExportError;
use super::backoff::Backoff;
use super::config::ExportSpec;
use super::position::{Position, PositionStore};
use super::sinks::{Item, Sink};
use crate::findings::model::Timestamp;
use crate::findings::store::FindingStore;

/// An exporter's counters, shared with whoever reports metrics.
#[derive(Debug)]
pub struct ExportStats {
    name: String,
    exported: AtomicU64,
    skipped: AtomicU64,
    corrupt: AtomicU64,
    failures: AtomicU64,
    newest_ms: AtomicI64,
    /// `updatedAt` of the oldest finding in the batch being delivered; `i64::MIN` when none
    /// is, so an exporter failing since its start still has a lag.
    pending_ms: AtomicI64,
    caught_up: AtomicBool,
}

impl ExportStats {
    /// An exporter's counters at start: nothing delivered, no lag known.
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            exported: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            newest_ms: AtomicI64::new(i64::MIN),
            pending_ms: AtomicI64::new(i64::MIN),
            caught_up: AtomicBool::new(false),
        }
    }

    /// The exporter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Findings delivered since start.
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Findings passed over by `min_severity` / `include_archived` since start.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Stored findings that did not decode and were passed over since start.
    pub fn corrupt(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Failed delivery attempts (each retried) since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// `updatedAt` of the newest finding exported since start.
    pub fn newest_exported(&self) -> Option<Timestamp> {
        let ms = self.newest_ms.load(Ordering::Relaxed);
        (ms != i64::MIN).then_some(Timestamp(ms))
    }

    /// Whether the last look found nothing settled left to export.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    /// Export lag at `now`: 0 when caught up; while a batch is being delivered (retries
    /// included), the age of its oldest finding; between batches, `now − updatedAt` of the
    /// newest finding exported; `None` before anything was exported or found.
    pub fn lag(&self, now: Timestamp) -> Option<Duration> {
        if self.caught_up() {
            return Some(Duration::ZERO);
        }
        let pending = self.pending_ms.load(Ordering::Relaxed);
        let since = if pending == i64::MIN {
            self.newest_exported()?.0
        } else {
            pending
        };
        Some(Duration::from_millis(
            u64::try_from(now.0.saturating_sub(since)).unwrap_or(0),
        ))
    }
}

/// The running exporters.
#[derive(Debug)]
pub struct Exports {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    stats: Vec<Arc<ExportStats>>,
}

impl Exports {
    /// Starts one task per exporter over `store`. Positions and sinks are opened first, so a
    /// damaged position or an unreadable CA file stops the start with an error naming it.
    ///
    /// # Errors
    /// [`ExportError`] naming the exporter's problem.
    pub fn start(store: &FindingStore, specs: Vec<ExportSpec>) -> Result<Self, ExportError> {
        let positions = PositionStore::open(store)?;
        let (stop, stop_rx) = watch::channel(false);
        let mut prepared = Vec::new();
        for spec in specs {
            let pos = positions.load(&spec.name)?;
            let sink = Sink::open(&spec.name, &spec.sink)?;
            prepared.push((spec, pos, sink));
        }
        let mut tasks = Vec::new();
        let mut stats = Vec::new();
        for (spec, pos, sink) in prepared {
            let s = Arc::new(ExportStats::new(&spec.name));
            stats.push(Arc::clone(&s));
            info!(exporter = %spec.name, format = spec.format.name(), "exporter started");
            let exporter = Exporter {
                spec,
                store: store.clone(),
                positions: positions.clone(),
                sink,
                stats: s,
                stop: stop_rx.clone(),
            };
            tasks.push(tokio::spawn(exporter.run(pos)));
        }
        Ok(Self { stop, tasks, stats })
    }

    /// Each exporter's counters and lag, for metrics.
    pub fn stats(&self) -> &[Arc<ExportStats>] {
        &self.stats
    }

    /// Stops every exporter after the batch it is delivering (retry waits end at once; the
    /// batch is sent again after a restart) and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                warn!(error = %e, "exporter task failed");
            }
        }
    }
}

struct Exporter {
    spec: ExportSpec,
    store: FindingStore,
    positions: PositionStore,
    sink: Sink,
    stats: Arc<ExportStats>,
    stop: watch::Receiver<bool>,
}

impl Exporter {
    /// Waits `d`, or less if asked to stop; true when stopping.
    async fn pause(&mut self, d: Duration) -> bool {
        if *self.stop.borrow() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => *self.stop.borrow(),
            _ = self.stop.changed() => true,
        }
    }

    async fn run(mut self, mut pos: Position) {
        let name = self.spec.name.clone();
        let mut backoff = self.backoff();
        loop {
            if *self.stop.borrow() {
                break;
            }
            match self.step(&mut pos).await {
                Ok(Step::More) => backoff = self.backoff(),
                Ok(Step::CaughtUp) => {
                    backoff = self.backoff();
                    if self.pause(self.spec.poll).await {
                        break;
                    }
                }
                Ok(Step::Stopped) => break,
                Err(e) => {
                    let wait = backoff.next_wait();
                    warn!(exporter = %name, error = %e, retry_in = ?wait, "export step failed");
                    if self.pause(wait).await {
                        break;
                    }
                }
            }
        }
        info!(exporter = %name, exported = self.stats.exported(), "exporter stopped");
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.spec.retry_initial, self.spec.retry_max)
    }

    async fn step(&mut self, pos: &mut Position) -> Result<Step, ExportError> {
        let cursor = pos.cursor(&self.spec.name)?;
        let settle = i64::try_from(self.spec.settle.as_millis()).unwrap_or(i64::MAX);
        let until = Timestamp(Timestamp::now().0.saturating_sub(settle));
        let store = self.store.clone();
        let limit = self.spec.batch_size;
        let page =
            tokio::task::spawn_blocking(move || store.updated_since(cursor.as_ref(), until, limit))
                .await
                .map_err(|e| ExportError::Task(e.to_string()))??;
        for c in &page.corrupt {
            warn!(exporter = %self.spec.name, finding = %c.id, why = %c.why, "stored finding does not decode; not exported");
        }
        self.stats
            .corrupt
            .fetch_add(page.corrupt.len() as u64, Ordering::Relaxed);
        let Some(next) = page.next else {
            self.stats.caught_up.store(true, Ordering::Relaxed);
            return Ok(Step::CaughtUp);
        };
        self.stats.caught_up.store(false, Ordering::Relaxed);
        let mut items = Vec::with_capacity(page.findings.len());
        for f in &page.findings {
            if f.severity < self.spec.min_severity
                || (f.service.archived && !self.spec.include_archived)
            {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            items.push(Item {
                account_id: f.account_id.clone(),
                region: f.region.clone(),
                updated_at: f.updated_at,
                bytes: self.spec.format.encode(f).map_err(ExportError::Encode)?,
            });
        }
        if let Some(oldest) = items.iter().map(|i| i.updated_at.0).min() {
            self.stats.pending_ms.store(oldest, Ordering::Relaxed);
        }
        let items = Arc::new(items);
        let mut sent = 0;
        let mut backoff = self.backoff();
        if !items.is_empty() {
            loop {
                match self
                    .sink
                    .deliver(&self.spec.name, &items, pos, &self.positions, &mut sent)
                    .await
                {
                    Ok(()) => break,
                    Err(e) => {
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        let wait = backoff.next_wait();
                        warn!(exporter = %self.spec.name, attempt = backoff.attempts(), error = %e, retry_in = ?wait, "export delivery failed; retrying");
                        if self.pause(wait).await {
                            return Ok(Step::Stopped);
                        }
                    }
                }
            }
        }
        pos.set_cursor(&next);
        pos.exported = pos.exported.saturating_add(items.len() as u64);
        // The batch is out; the cursor must follow, or a restart sends it again.
        loop {
            let (positions, p, name) =
                (self.positions.clone(), pos.clone(), self.spec.name.clone());
            let saved = tokio::task::spawn_blocking(move || positions.save(&name, &p))
                .await
                .map_err(|e| ExportError::Task(e.to_string()))
                .and_then(|r| r);
            match saved {
                Ok(()) => break,
                Err(e) => {
                    let wait = backoff.next_wait();
                    warn!(exporter = %self.spec.name, error = %e, retry_in = ?wait, "export position not saved; retrying");
                    if self.pause(wait).await {
                        return Ok(Step::Stopped);
                    }
                }
            }
        }
        self.stats
            .exported
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        if let Some(newest) = items.iter().map(|i| i.updated_at.0).max() {
            self.stats.newest_ms.fetch_max(newest, Ordering::Relaxed);
        }
        self.stats.pending_ms.store(i64::MIN, Ordering::Relaxed);
        debug!(exporter = %self.spec.name, findings = items.len(), "export batch delivered");
        Ok(Step::More)
    }
}

enum Step {
    More,
    CaughtUp,
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_zero_when_caught_up_else_the_age_of_the_newest_export() {
        let s = ExportStats::new("x");
        assert_eq!(s.lag(Timestamp(5_000)), None);
        s.newest_ms.fetch_max(1_000, Ordering::Relaxed);
        assert_eq!(s.newest_exported(), Some(Timestamp(1_000)));
        assert_eq!(s.lag(Timestamp(4_000)), Some(Duration::from_secs(3)));
        s.caught_up.store(true, Ordering::Relaxed);
        assert_eq!(s.lag(Timestamp(9_000)), Some(Duration::ZERO));
    }

    #[test]
    fn a_batch_failing_to_go_out_ages_from_its_oldest_finding() {
        let s = ExportStats::new("x");
        // Failing since start: nothing exported, yet the lag grows with the batch's age.
        s.pending_ms.store(2_000, Ordering::Relaxed);
        assert_eq!(s.lag(Timestamp(5_000)), Some(Duration::from_secs(3)));
        assert_eq!(s.lag(Timestamp(65_000)), Some(Duration::from_secs(63)));
        s.newest_ms.fetch_max(8_000, Ordering::Relaxed);
        assert_eq!(s.lag(Timestamp(65_000)), Some(Duration::from_secs(63)));
    }
}
