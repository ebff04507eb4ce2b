//! The detection pipeline: events → every detector → correlation → finding engine. `serve` and
//! `analyze` both build one of these, so offline analysis runs exactly the detectors,
//! correlation and aggregation the service runs.
//!
//! Correlation sees every event and every detector observation together with whether the
//! engine's suppression archived it: suppressed findings still count as signals for attack
//! sequences. What correlation raises goes to the engine but is not fed back as a signal.

use crate::correlation::Correlator;
use crate::detectors::window::SharedNames;
use crate::detectors::{
    self, Detector, DetectorContext, DetectorCounter, DetectorsConfig, Event, EventFacts,
    EventKind, Observation,
};
use crate::findings::engine::{Applied, EngineConfig, FindingEngine};
use crate::findings::model::{Finding, Timestamp};
use crate::findings::suppression::SuppressionRules;

/// Which time a finding's `createdAt`/`updatedAt` take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The activity's own time: offline analysis, so the same input gives the same output.
    EventTime,
    /// The wall clock: the live service.
    Wall,
}

/// Every event kind, in [`kind_index`] order.
const EVENT_KINDS: [EventKind; 5] = [
    EventKind::Flow,
    EventKind::Dns,
    EventKind::IntelHit,
    EventKind::HostStats,
    EventKind::Api,
];

/// For each event kind, the indexes of the detectors whose `kinds` list it.
fn by_kind(
    detectors: &[Box<dyn Detector>],
    kinds: impl Fn(&dyn Detector) -> &'static [EventKind],
) -> [Vec<usize>; EVENT_KINDS.len()] {
    EVENT_KINDS.map(|kind| {
        detectors
            .iter()
            .enumerate()
            .filter(|(_, d)| kinds(d.as_ref()).contains(&kind))
            .map(|(i, _)| i)
            .collect()
    })
}

fn kind_index(kind: EventKind) -> usize {
    match kind {
        EventKind::Flow => 0,
        EventKind::Dns => 1,
        EventKind::IntelHit => 2,
        EventKind::HostStats => 3,
        EventKind::Api => 4,
    }
}

/// Detectors plus the finding engine.
pub struct Pipeline {
    detectors: Vec<Box<dyn Detector>>,
    /// The detectors (indexes) that want each event kind, worked out once: asking every
    /// detector per event cost more than most detectors' own work.
    wanted: [Vec<usize>; EVENT_KINDS.len()],
    /// The detectors (indexes) that asked for a prefetch of each event kind.
    prefetching: [Vec<usize>; EVENT_KINDS.len()],
    /// The agents' instance ids, shared: each event's is looked up once here and its key
    /// handed to every detector (in [`EventFacts`]), instead of each detector hashing the id.
    names: SharedNames,
    engine: FindingEngine,
    correlator: Correlator,
    clock: Clock,
    scratch: Vec<Observation>,
    correlated: Vec<Observation>,
    events: u64,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field(
                "detectors",
                &self.detectors.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .field("engine", &self.engine)
            .field("clock", &self.clock)
            .finish()
    }
}

impl Pipeline {
    /// Every detector ([`detectors::all`], configured by `detectors`, consulting `context`)
    /// feeding an engine with `config` and `rules`.
    pub fn new(
        config: EngineConfig,
        rules: SuppressionRules,
        clock: Clock,
        detectors: &DetectorsConfig,
        context: &DetectorContext,
    ) -> Self {
        let built = detectors::all(detectors, context);
        let wanted = by_kind(&built, |d| d.inputs());
        let prefetching = by_kind(&built, |d| d.prefetch_inputs());
        Self {
            detectors: built,
            wanted,
            prefetching,
            names: SharedNames::default(),
            engine: FindingEngine::new(config, rules),
            correlator: Correlator::new(detectors, Correlator::load_ranges(detectors)),
            clock,
            scratch: Vec::new(),
            correlated: Vec::new(),
            events: 0,
        }
    }

    /// Runs one event through the detectors that want its kind and applies what they observe.
    pub fn feed(&mut self, event: &Event) {
        self.events += 1;
        let Some(kind) = event.kind() else {
            return;
        };
        let facts = EventFacts::of(event, &mut self.names);
        // The prefetches first, so their loads from memory overlap the detectors' work.
        for &i in &self.prefetching[kind_index(kind)] {
            if let Some(d) = self.detectors.get(i) {
                d.prefetch(event, &facts);
            }
        }
        let wanted = &self.wanted[kind_index(kind)];
        for &i in wanted {
            if let Some(d) = self.detectors.get_mut(i) {
                d.observe(event, &facts, &mut self.scratch);
            }
        }
        self.correlator.observe_event(event, &mut self.correlated);
        let cause = match event {
            Event::Api(e) => Some(&**e),
            Event::Agent { .. } => None,
        };
        self.apply(cause);
    }

    /// Lets windowed detectors close windows at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) {
        for d in &mut self.detectors {
            d.on_tick(now_ms, &mut self.scratch);
        }
        self.correlator.on_tick(now_ms);
        self.apply(None);
    }

    /// Sends the detectors' observations to the engine and to correlation as signals, then
    /// correlation's own observations to the engine.
    fn apply(&mut self, cause: Option<&crate::cloudtrail::ApiEvent>) {
        let wall = match self.clock {
            Clock::Wall => Some(Timestamp::now()),
            Clock::EventTime => None,
        };
        for obs in self.scratch.drain(..) {
            let now = wall.unwrap_or(Timestamp(obs.at_ms));
            let suppressed = match self.engine.observe(&obs, now) {
                Applied::Created { archived, .. } => archived,
                Applied::Updated { id } => self.engine.is_archived(&id).unwrap_or(false),
            };
            self.correlator
                .observe_signal(&obs, suppressed, cause, &mut self.correlated);
        }
        for obs in self.correlated.drain(..) {
            let now = wall.unwrap_or(Timestamp(obs.at_ms));
            self.engine.observe(&obs, now);
        }
    }

    /// Whether the engine wants a [`Self::drain`].
    pub fn is_full(&self) -> bool {
        self.engine.is_full()
    }

    /// The findings touched since the last drain.
    pub fn drain(&mut self) -> Vec<Finding> {
        self.engine.drain()
    }

    /// The engine (for its statistics).
    pub fn engine(&self) -> &FindingEngine {
        &self.engine
    }

    /// Events fed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Every detector's counters, with the detector's name.
    pub fn counters(&self) -> Vec<(&'static str, DetectorCounter)> {
        self.detectors
            .iter()
            .flat_map(|d| d.counters().into_iter().map(move |c| (d.name(), c)))
            .chain(
                self.correlator
                    .counters()
                    .into_iter()
                    .map(|c| ("correlation", c)),
            )
            .collect()
    }

    /// Each detector's learned state worth persisting, by detector name.
    pub fn save_states(&self) -> Vec<(&'static str, Vec<u8>)> {
        self.detectors
            .iter()
            .filter_map(|d| d.save_state().map(|b| (d.name(), b)))
            .collect()
    }

    /// Gives each detector the state `load` returns for its name; returns the detectors
    /// whose saved state was refused, with why (they start fresh).
    pub fn restore_states(
        &mut self,
        mut load: impl FnMut(&str) -> Option<Vec<u8>>,
    ) -> Vec<(&'static str, String)> {
        let mut refused = Vec::new();
        for d in &mut self.detectors {
            if let Some(bytes) = load(d.name())
                && let Err(why) = d.restore_state(&bytes)
            {
                refused.push((d.name(), why));
            }
        }
        refused
    }
}
