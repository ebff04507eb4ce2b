//! The live sensor: one capture thread per interface, each running its own [`Pipeline`],
//! handing records over a bounded channel to a task that buffers them in the outbox.
//!
//! Capture reads block, so they run on plain threads, never on the async runtime. The
//! channel between them is bounded: when the outbox cannot keep up, records are dropped at
//! the channel and counted, and the count rides on the next `HostStats` record
//! (`records_dropped`, kind `sensor_channel_full`) together with what the outbox itself
//! dropped in the meantime.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use picket_proto::v1::{Counter, Record, record};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::capture::PacketSource as _;
use crate::capture::live::{self, LiveCapture, LiveCaptureError, Poll};
use crate::pipeline::{Pipeline, PipelineConfig, PipelineTotals};
use crate::records_sink::RecordSink;

/// Records waiting between the capture threads and the outbox.
pub const CHANNEL_RECORDS: usize = 16_384;
/// Records per outbox batch at most.
const BATCH_RECORDS: usize = picket_proto::AGENT_BATCH_RECORDS;
/// How often an idle or busy capture thread expires flows and reads kernel drops.
const TICK: Duration = Duration::from_secs(1);
/// Packets between clock checks on a busy interface (a clock read per packet would cost more
/// than the rest of the steady path).
const PACKETS_PER_CLOCK_CHECK: u32 = 1024;

/// Longest time spent reading what the socket holds after a stop.
const STOP_DRAIN: Duration = Duration::from_secs(2);

/// Runs capture on `capture` until `stop` is set (then until the socket is drained), feeding `pipeline` and handing records to
/// `emit`; then finishes the pipeline (final summaries and `HostStats`) and returns its totals.
///
/// # Errors
/// [`LiveCaptureError`] when the socket fails; the pipeline is finished first, so what was
/// seen until then is still emitted.
pub fn capture_until<O: crate::pipeline::Observer>(
    capture: &mut LiveCapture,
    pipeline: &mut Pipeline<O>,
    stop: &AtomicBool,
    emit: &mut impl FnMut(Record),
) -> Result<PipelineTotals, LiveCaptureError> {
    let mut last_tick = Instant::now();
    let mut since_check = 0_u32;
    let mut stopping_since: Option<Instant> = None;
    let result = loop {
        if stopping_since.is_none() && stop.load(Ordering::Relaxed) {
            stopping_since = Some(Instant::now());
        }
        let idle = match capture.poll() {
            Ok(Poll::Packet(packet)) => {
                pipeline.packet(&packet, emit);
                false
            }
            Ok(Poll::Idle) => true,
            Err(e) => break Err(e),
        };
        // On stop, what the socket already holds is read first (until it is idle, for at
        // most STOP_DRAIN), so packets that arrived before the stop are counted.
        if let Some(since) = stopping_since {
            if idle || since.elapsed() >= STOP_DRAIN {
                break Ok(());
            }
        }
        since_check = since_check.saturating_add(1);
        if idle || since_check >= PACKETS_PER_CLOCK_CHECK {
            since_check = 0;
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                if let Err(e) = capture.refresh_kernel_drops() {
                    break Err(e);
                }
                pipeline.set_capture_stats(capture.stats());
                pipeline.tick(live::now(), emit);
            }
        }
    };
    let drops = capture.refresh_kernel_drops();
    pipeline.set_capture_stats(capture.stats());
    pipeline.finish(emit);
    result.and(drops).map(|()| pipeline.totals())
}

/// A running live sensor.
#[derive(Debug)]
pub struct Sensor {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    running: Arc<AtomicUsize>,
    forwarder: tokio::task::JoinHandle<()>,
}

impl Sensor {
    /// Opens capture on every interface in `interfaces` (all of them, before any thread
    /// starts, so a bad name fails start-up) and starts the threads and the forwarding task.
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`LiveCaptureError`] for the first interface that cannot be captured on.
    pub fn start(
        interfaces: &[String],
        config: &PipelineConfig,
        sink: RecordSink,
        intel: Arc<crate::intel_cache::IntelCache>,
    ) -> Result<Self, LiveCaptureError> {
        let captures = interfaces
            .iter()
            .map(|name| LiveCapture::open(name))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = mpsc::channel(CHANNEL_RECORDS);
        let overflow = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::with_capacity(captures.len());
        for mut capture in captures {
            let config = PipelineConfig {
                interface: capture.name().to_owned(),
                ..config.clone()
            };
            let tx = tx.clone();
            let overflow = Arc::clone(&overflow);
            let thread_stop = Arc::clone(&stop);
            let name = capture.name().to_owned();
            let thread_name = name.clone();
            let observer = crate::intel_observer::IntelObserver::new(
                crate::intel_observer::SnapshotSource::Cache(Arc::clone(&intel)),
            );
            info!(interface = %name, "capturing");
            running.fetch_add(1, Ordering::Relaxed);
            let alive = RunningGuard(Arc::clone(&running));
            let spawned = std::thread::Builder::new()
                .name(format!("capture-{name}"))
                .spawn(move || {
                    let _alive = alive;
                    let mut pipeline = Pipeline::with_observer(config, observer);
                    let mut emit = |r: Record| match tx.try_send(r) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            overflow.fetch_add(1, Ordering::Relaxed);
                        }
                        // The forwarder is gone: shutting down.
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            thread_stop.store(true, Ordering::Relaxed);
                        }
                    };
                    match capture_until(&mut capture, &mut pipeline, &thread_stop, &mut emit) {
                        Ok(t) => info!(
                            interface = %thread_name,
                            packets = t.packets,
                            kernel_drops = t.capture.kernel_drops,
                            "capture stopped"
                        ),
                        Err(e) => error!(error = %e, "capture stopped"),
                    }
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(LiveCaptureError::Open { name, source: e });
                }
            }
        }
        drop(tx);
        let forwarder = tokio::spawn(forward(rx, sink, overflow));
        Ok(Self {
            stop,
            threads,
            running,
            forwarder,
        })
    }

    /// Capture threads started.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// A live count of capture threads still running, for health checks: fewer than
    /// [`Self::threads`] before a stop means a capture died.
    pub fn running_threads(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.running)
    }

    /// Stops capture, waits for each thread's final records, and for them to be buffered.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = self.threads;
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    error!("a capture thread panicked");
                }
            }
        })
        .await;
        if let Err(e) = joined {
            error!(error = %e, "joining capture threads failed");
        }
        if let Err(e) = self.forwarder.await {
            error!(error = %e, "sensor forwarding task failed");
        }
    }
}

/// Counts a capture thread as running until it ends, however it ends (panics included).
struct RunningGuard(Arc<AtomicUsize>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Moves records from the channel into the outbox in batches, adding the drop counts to each
/// `HostStats` record on the way.
async fn forward(mut rx: mpsc::Receiver<Record>, sink: RecordSink, overflow: Arc<AtomicU64>) {
    let outbox_dropped =
        |sink: &RecordSink| sink.outbox().stats().map(|s| s.dropped).unwrap_or_default();
    let mut outbox_before: BTreeMap<String, u64> = outbox_dropped(&sink);
    let mut overflow_before = 0_u64;
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH_RECORDS {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        for r in &mut batch {
            if let Some(record::Record::HostStats(stats)) = &mut r.record {
                let overflow_now = overflow.load(Ordering::Relaxed);
                let delta = overflow_now.saturating_sub(overflow_before);
                overflow_before = overflow_now;
                if delta > 0 {
                    stats.records_dropped.push(Counter {
                        kind: "sensor_channel_full".to_owned(),
                        count: delta,
                    });
                }
                let outbox_now = outbox_dropped(&sink);
                for (kind, n) in &outbox_now {
                    let delta = n.saturating_sub(outbox_before.get(kind).copied().unwrap_or(0));
                    if delta > 0 {
                        stats.records_dropped.push(Counter {
                            kind: kind.clone(),
                            count: delta,
                        });
                    }
                }
                outbox_before = outbox_now;
            }
        }
        let records = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_RECORDS));
        let count = records.len();
        if let Err(e) = sink.submit(records).await {
            warn!(error = %e, records = count, "sensor records not buffered");
        }
    }
}

/// The interfaces to capture on: the configured list, else every interface that is up
/// (loopback excluded).
pub fn interfaces_to_capture(configured: Option<&[String]>) -> Vec<String> {
    configured.map_or_else(live::default_interfaces, <[String]>::to_vec)
}
