//! The live sensor: one capture thread per interface, each running its own [`Pipeline`],
//! handing records over a bounded channel to a task that buffers them in the outbox.
//!
//! Capture reads block, so they run on plain threads, never on the async runtime. The
//! channel between them is bounded: when the outbox cannot keep up, records are dropped at
//! the channel and counted, and the count rides on the next `HostStats` record
//! (`records_dropped`, kind `sensor_channel_full`) together with what the outbox itself
//! dropped in the meantime.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use picket_proto::v1::{Counter, Record, record};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::capture::PacketSource as _;
use crate::capture::live::{self, LiveCapture, LiveCaptureError, Poll};
use crate::host_addresses::HostAddresses;
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

/// Runs capture on `capture` until `stop` is set (then until the socket is drained), feeding
/// `pipeline` and handing records to `emit`; then finishes the pipeline (final summaries and
/// `HostStats`) and returns its totals. With `addresses`, the pipeline takes the host's
/// addresses from it at the first tick and whenever they change, and the bridged containers
/// it saw sending are handed to it at each tick.
///
/// # Errors
/// [`LiveCaptureError`] when the socket fails; the pipeline is finished first, so what was
/// seen until then is still emitted.
pub fn capture_until<O: crate::pipeline::Observer>(
    capture: &mut LiveCapture,
    pipeline: &mut Pipeline<O>,
    stop: &AtomicBool,
    addresses: Option<&HostAddresses>,
    emit: &mut impl FnMut(Record),
) -> Result<PipelineTotals, LiveCaptureError> {
    let mut last_tick = Instant::now();
    // No version seen yet: the first tick takes the list, whatever the pipeline began with.
    let mut addresses_seen = u64::MAX;
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
                if let Some(addresses) = addresses {
                    let learned = pipeline.take_learned();
                    if !learned.is_empty() {
                        addresses.learn(capture.name(), &learned);
                    }
                    if let Some(nets) = addresses.changed_since(&mut addresses_seen) {
                        pipeline.set_local(nets);
                    }
                }
                pipeline.tick(live::now(), emit);
            }
        }
    };
    let drops = capture.refresh_kernel_drops();
    pipeline.set_capture_stats(capture.stats());
    pipeline.finish(emit);
    result.and(drops).map(|()| pipeline.totals())
}

/// Gives `pipeline` (capturing `interface`) the kernel's connection tracking, so a
/// container's traffic NATed to the host's address, or to another container through a
/// service address, is counted once; without it (no connection tracking, no
/// `CAP_NET_ADMIN`) such traffic is counted here too.
fn give_nat_table<O: crate::pipeline::Observer>(pipeline: &mut Pipeline<O>, interface: &str) {
    // Said once per agent: a node with a hundred pods opens a hundred captures.
    static WARNED: AtomicBool = AtomicBool::new(false);
    match crate::conntrack::Conntrack::open() {
        Ok(table) => pipeline.set_nat_table(Box::new(table)),
        Err(e) if !WARNED.swap(true, Ordering::Relaxed) => warn!(
            interface,
            error = %e,
            "connection tracking cannot be asked: a container's traffic NATed to the host's address is counted here too"
        ),
        Err(e) => debug!(interface, error = %e, "connection tracking cannot be asked"),
    }
}

/// How often a sensor that follows the host's interfaces looks for ones that came up.
pub const RESCAN: Duration = Duration::from_secs(5);

/// Kernel memory for each capture's waiting packets: its ring, allocated in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSizes {
    /// Bytes for one of the host's own interfaces (`sensor.buffer_mib`).
    pub interface: usize,
    /// Bytes for a container's link (`sensor.container_buffer_mib`): it carries one
    /// container's traffic, and a node can have a hundred of them.
    pub container_link: usize,
}

/// Opens capture on the interface `name` with the ring its kind gets, and the pipeline
/// config for it: `config` with the interface's name and whether it is a container's link
/// (which also decides what the pipeline counts, see `pipeline::vantage`).
fn open(
    name: &str,
    rings: RingSizes,
    config: &PipelineConfig,
) -> Result<(LiveCapture, PipelineConfig), LiveCaptureError> {
    let container_link = live::is_container_link(name);
    let ring = if container_link {
        rings.container_link
    } else {
        rings.interface
    };
    let capture = LiveCapture::open_with_buffer(name, ring)?;
    let config = PipelineConfig {
        interface: name.to_owned(),
        container_link,
        ..config.clone()
    };
    Ok((capture, config))
}

/// Which interfaces a sensor captures on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interfaces {
    /// Exactly these, as configured; each must exist at start, and one that goes away is a
    /// dead capture the health check reports.
    Listed(Vec<String>),
    /// Every interface that is up, loopback excluded, followed as they come and go: one that
    /// comes up later (an ENI attached to a running instance, as the EKS VPC CNI does) is
    /// captured on within [`RESCAN`], and one that goes away simply ends its capture.
    AllUp {
        /// Interfaces whose names match one of these are left alone (`sensor.exclude`).
        exclude: Vec<glob::Pattern>,
    },
}

impl Interfaces {
    /// The interfaces to capture on now (at start, and at each rescan when followed): the
    /// listed ones, or those up and not excluded.
    pub fn current(&self) -> Vec<String> {
        match self {
            Self::Listed(names) => names.clone(),
            Self::AllUp { exclude } => {
                let mut up = live::default_interfaces();
                up.retain(|name| !exclude.iter().any(|p| p.matches(name)));
                up
            }
        }
    }

    /// Whether interfaces are followed as they come and go.
    pub fn follows(&self) -> bool {
        matches!(self, Self::AllUp { .. })
    }
}

/// Capture threads that should be running and those that are, for metrics and health: fewer
/// running than expected means a capture died.
#[derive(Debug, Clone, Default)]
pub struct CaptureThreads {
    /// Threads that should be running: one per interface captured on. A thread whose
    /// interface went away (when following interfaces) or that was stopped leaves the count;
    /// one that failed stays in it.
    pub expected: Arc<AtomicUsize>,
    /// Threads still running.
    pub running: Arc<AtomicUsize>,
    /// The interfaces those running threads capture on, for `status` and metrics.
    pub interfaces: Arc<Mutex<BTreeSet<String>>>,
    /// How many of the host's own addresses, and of its containers' networks, tell flow
    /// direction now, for metrics.
    pub local: Arc<LocalCounts>,
}

/// The sizes of the list that tells flow direction (see [`HostAddresses`]).
#[derive(Debug, Default)]
pub struct LocalCounts {
    /// The host's own addresses.
    pub own: AtomicUsize,
    /// Its containers' networks.
    pub hosted: AtomicUsize,
}

impl LocalCounts {
    /// Records the sizes of `nets`.
    fn set(&self, nets: &crate::flow_table::LocalNets) {
        self.own
            .store(nets.host_addresses().count(), Ordering::Relaxed);
        self.hosted.store(nets.hosted().len(), Ordering::Relaxed);
    }
}

impl CaptureThreads {
    /// The interfaces being captured on now, in name order.
    pub fn interfaces(&self) -> Vec<String> {
        lock(&self.interfaces).iter().cloned().collect()
    }
}

/// A running live sensor.
#[derive(Debug)]
pub struct Sensor {
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    counts: CaptureThreads,
    watcher: JoinHandle<()>,
    forwarder: tokio::task::JoinHandle<()>,
}

/// What starting one more capture thread needs; the watcher owns it (and with it a sender
/// of the channel), so the forwarder ends once the watcher and every capture have.
struct Spawner {
    tx: mpsc::Sender<Record>,
    overflow: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    counts: CaptureThreads,
    /// Interfaces with a capture thread that has not ended.
    active: Arc<Mutex<BTreeSet<String>>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    config: PipelineConfig,
    intel: Arc<crate::intel_cache::IntelCache>,
    /// Which interfaces; when followed, a capture whose interface went away ends quietly.
    interfaces: Interfaces,
    /// Kernel memory for each capture's waiting packets.
    rings: RingSizes,
    /// The host's addresses, kept current by the watcher for every capture's pipeline.
    addresses: Arc<HostAddresses>,
}

impl Spawner {
    /// Starts the capture thread of `capture`, with `config` (from [`open`]) for its pipeline.
    fn spawn(&self, mut capture: LiveCapture, config: PipelineConfig) -> std::io::Result<()> {
        let tx = self.tx.clone();
        let overflow = Arc::clone(&self.overflow);
        let thread_stop = Arc::clone(&self.stop);
        let name = capture.name().to_owned();
        let thread_name = name.clone();
        let observer = crate::intel_observer::IntelObserver::new(
            crate::intel_observer::SnapshotSource::Cache(Arc::clone(&self.intel)),
        );
        let counts = self.counts.clone();
        let active = Arc::clone(&self.active);
        let addresses = Arc::clone(&self.addresses);
        let follow = self.interfaces.follows();
        let ring_kib = capture.buffer_bytes() >> 10;
        info!(interface = %name, reading = %capture.reading(), ring_kib, "capturing");
        lock(&self.active).insert(name.clone());
        counts.expected.fetch_add(1, Ordering::Relaxed);
        counts.running.fetch_add(1, Ordering::Relaxed);
        lock(&counts.interfaces).insert(name.clone());
        let alive = RunningGuard {
            threads: counts.clone(),
            name: name.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("capture-{name}"))
            .spawn(move || {
                let _alive = alive;
                let mut pipeline = Pipeline::with_observer(config, observer);
                give_nat_table(&mut pipeline, &thread_name);
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
                let result = capture_until(
                    &mut capture,
                    &mut pipeline,
                    &thread_stop,
                    Some(&addresses),
                    &mut emit,
                );
                // Its bridged container, if it learned one, is counted where seen again.
                addresses.forget(&thread_name);
                // Expected to end: stopped, or (when following) its interface went away.
                // A failure stays expected, so health reports the capture dead.
                let ended = match &result {
                    Ok(t) => {
                        info!(
                            interface = %thread_name,
                            packets = t.packets,
                            kernel_drops = t.capture.kernel_drops,
                            "capture stopped"
                        );
                        true
                    }
                    Err(e @ LiveCaptureError::Gone { .. }) if follow => {
                        info!(interface = %thread_name, "{e}");
                        true
                    }
                    Err(e) => {
                        error!(error = %e, "capture stopped");
                        false
                    }
                };
                if ended {
                    counts.expected.fetch_sub(1, Ordering::Relaxed);
                    lock(&active).remove(&thread_name);
                }
            });
        match spawned {
            Ok(handle) => {
                lock(&self.threads).push(handle);
                Ok(())
            }
            Err(e) => {
                lock(&self.active).remove(&name);
                self.counts.expected.fetch_sub(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Until stopped, every [`RESCAN`], when interfaces are followed, opens capture on each
    /// interface that is up and not captured on, then reads the host's addresses and
    /// networks, publishing a change to every capture. In that order, so a container's
    /// network is left to its link's capture only once that capture runs. A new capture's
    /// pipeline starts with the addresses of the last reading and takes the new ones at its
    /// first tick.
    fn watch(self) {
        let mut refused = BTreeSet::new();
        loop {
            let deadline = Instant::now() + RESCAN;
            while Instant::now() < deadline {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if self.interfaces.follows() && !self.follow(&mut refused) {
                return;
            }
            self.read_addresses();
        }
    }

    /// Opens capture on each interface that is up and not captured on; false when the sensor
    /// is stopping. A refusal is logged once per interface, until it goes away or works.
    fn follow(&self, refused: &mut BTreeSet<String>) -> bool {
        let up = self.interfaces.current();
        refused.retain(|name| up.contains(name));
        for name in up {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            if lock(&self.active).contains(&name) {
                continue;
            }
            let config = PipelineConfig {
                local: self.addresses.current().1,
                ..self.config.clone()
            };
            let opened = open(&name, self.rings, &config).map_err(|e| e.to_string());
            let spawned = opened.and_then(|(capture, config)| {
                self.spawn(capture, config).map_err(|e| e.to_string())
            });
            match spawned {
                Ok(()) => {
                    refused.remove(&name);
                }
                Err(e) => {
                    if refused.insert(name.clone()) {
                        warn!(interface = %name, error = %e, "new interface not captured on; trying again at each rescan");
                    }
                }
            }
        }
        true
    }

    /// Reads the host's addresses and its containers' networks (those whose links are all
    /// captured on now are counted there) and publishes a change to every capture.
    fn read_addresses(&self) {
        let active = lock(&self.active).clone();
        let Some(change) = self
            .addresses
            .update(live::local_nets(|name| active.contains(name)))
        else {
            return;
        };
        let nets = self.addresses.current().1;
        self.counts.local.set(&nets);
        let hosted_added: Vec<String> = change
            .hosted_added
            .iter()
            .map(ToString::to_string)
            .collect();
        let hosted_removed: Vec<String> = change
            .hosted_removed
            .iter()
            .map(ToString::to_string)
            .collect();
        let counted_at_links = nets.counted_at_links().len();
        // Containers come and go all day on a busy node; the host's own addresses changing
        // is news.
        if change.own() {
            info!(added = ?change.added, removed = ?change.removed, ?hosted_added, ?hosted_removed, counted_at_links, "host addresses changed");
        } else {
            debug!(
                ?hosted_added,
                ?hosted_removed,
                counted_at_links,
                "hosted networks changed"
            );
        }
    }
}

/// The lock's contents, even if a thread panicked while holding it (the data are names and
/// handles, never left half-changed).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sensor {
    /// Opens capture on each interface `interfaces` names now (all of them, before any
    /// thread starts, so a bad name fails start-up) and starts the threads, the forwarding
    /// task and the thread that follows the host's addresses and, for
    /// [`Interfaces::AllUp`], interfaces coming up. The pipelines start with `config.local`.
    /// `counts` is where the threads are counted (shared with `status` and metrics), and
    /// `rings` the kernel memory each capture holds for waiting packets. Must be called
    /// within a tokio runtime.
    ///
    /// # Errors
    /// [`LiveCaptureError`] for the first interface that cannot be captured on.
    pub fn start(
        interfaces: &Interfaces,
        config: &PipelineConfig,
        sink: RecordSink,
        intel: Arc<crate::intel_cache::IntelCache>,
        counts: CaptureThreads,
        rings: RingSizes,
    ) -> Result<Self, LiveCaptureError> {
        let captures = interfaces
            .current()
            .iter()
            .map(|name| open(name, rings, config))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = mpsc::channel(CHANNEL_RECORDS);
        let overflow = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = Arc::new(Mutex::new(Vec::with_capacity(captures.len())));
        let spawner = Spawner {
            tx,
            overflow: Arc::clone(&overflow),
            stop: Arc::clone(&stop),
            counts: counts.clone(),
            active: Arc::default(),
            threads: Arc::clone(&threads),
            config: config.clone(),
            intel,
            interfaces: interfaces.clone(),
            rings,
            addresses: Arc::new(HostAddresses::new(config.local.clone())),
        };
        counts.local.set(&config.local);
        for (capture, config) in captures {
            let name = capture.name().to_owned();
            if let Err(source) = spawner.spawn(capture, config) {
                stop.store(true, Ordering::Relaxed);
                return Err(LiveCaptureError::Open { name, source });
            }
        }
        let spawned = std::thread::Builder::new()
            .name("capture-watch".into())
            .spawn(move || spawner.watch());
        let watcher = match spawned {
            Ok(handle) => handle,
            Err(source) => {
                stop.store(true, Ordering::Relaxed);
                return Err(LiveCaptureError::Open {
                    name: "(address and interface watcher)".into(),
                    source,
                });
            }
        };
        let forwarder = tokio::spawn(forward(rx, sink, overflow));
        Ok(Self {
            stop,
            threads,
            counts,
            watcher,
            forwarder,
        })
    }

    /// Capture threads that should be running, and those that are, for metrics and health.
    pub fn threads(&self) -> CaptureThreads {
        self.counts.clone()
    }

    /// Stops capture, waits for each thread's final records, and for them to be buffered.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (watcher, threads) = (self.watcher, self.threads);
        let joined = tokio::task::spawn_blocking(move || {
            // The watcher first, so no capture starts after the list is taken.
            if watcher.join().is_err() {
                error!("the address and interface watcher panicked");
            }
            let handles = std::mem::take(&mut *lock(&threads));
            for t in handles {
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

/// Counts a capture thread (and its interface) as running until it ends, however it ends
/// (panics included).
struct RunningGuard {
    threads: CaptureThreads,
    name: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.threads.running.fetch_sub(1, Ordering::Relaxed);
        lock(&self.threads.interfaces).remove(&self.name);
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
/// (loopback and `exclude` excluded), followed as they come and go.
pub fn interfaces_to_capture(
    configured: Option<&[String]>,
    exclude: &[glob::Pattern],
) -> Interfaces {
    configured.map_or_else(
        || Interfaces::AllUp {
            exclude: exclude.to_vec(),
        },
        |names| Interfaces::Listed(names.to_vec()),
    )
}
