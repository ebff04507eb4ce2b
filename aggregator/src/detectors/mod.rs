//! Detectors: small state machines fed normalised [`Event`]s that emit [`Observation`]s.
//!
//! Every detector implements [`Detector`]; [`all`] builds the set that both `serve` and
//! `analyze` run, so offline analysis can never drift from the service. A detector keeps only
//! bounded state and never touches findings or the store: turning observations into findings
//! (ids, aggregation, suppression) is the finding engine's job.
//!
//! Intel hits arrive already filtered: trusted lists are applied by the agent's matcher, so a
//! trusted address never becomes an `IntelHit` and nothing here needs to know about them.

pub mod intel_hit;
pub mod observation;

use picket_proto::v1::Record;

pub use observation::{
    Activity, ApiCallActivity, ConnectionDirection, DnsActivity, DnsContext, EvidenceDetail,
    FlowContext, IntelHitEvidence, NetworkActivity, Observation, PortProbeActivity, ResourceRef,
    ResourceRole, ThreatIntel,
};

/// The agent a record came from, as authenticated by ingest (or given to `analyze`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentSource {
    /// 12-digit AWS account id.
    pub account_id: String,
    /// EC2 instance id.
    pub instance_id: String,
    /// AWS region.
    pub region: String,
}

/// A normalised input to the detectors.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// One record an agent shipped, with the agent's identity.
    Agent {
        /// Who sent it.
        source: AgentSource,
        /// What it sent.
        record: Record,
    },
    // CloudTrail API events join here (DESIGN §3 "CloudTrail"), as `Api(ApiEvent)`.
}

/// The kinds of event a detector can ask for, so the pipeline can skip the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `FlowSummary` records.
    Flow,
    /// `DnsSummary` records.
    Dns,
    /// `IntelHit` records.
    IntelHit,
    /// `HostStats` records.
    HostStats,
}

impl Event {
    /// The kind of this event, or `None` for an agent record with no body.
    pub fn kind(&self) -> Option<EventKind> {
        use picket_proto::v1::record::Record as R;
        match self {
            Self::Agent { record, .. } => match record.record.as_ref()? {
                R::Flow(_) => Some(EventKind::Flow),
                R::Dns(_) => Some(EventKind::Dns),
                R::IntelHit(_) => Some(EventKind::IntelHit),
                R::HostStats(_) => Some(EventKind::HostStats),
            },
        }
    }
}

/// A named count a detector keeps about its own work (e.g. unknown categories seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorCounter {
    /// Fixed label, e.g. `unknown_category`.
    pub name: &'static str,
    /// The count since the detector was built.
    pub count: u64,
}

/// One detection rule or model.
pub trait Detector: Send {
    /// Stable name, used in logs and counters.
    fn name(&self) -> &'static str;
    /// The event kinds this detector wants; it is never given others.
    fn inputs(&self) -> &'static [EventKind];
    /// Looks at one event and pushes any observations it causes onto `out`.
    fn observe(&mut self, event: &Event, out: &mut Vec<Observation>);
    /// Called as time passes (`now_ms`, ms since the epoch) so windowed detectors can close
    /// windows and evict state; pushes any observations that causes.
    fn on_tick(&mut self, now_ms: i64, out: &mut Vec<Observation>);
    /// The detector's own counters, for reports and metrics.
    fn counters(&self) -> Vec<DetectorCounter> {
        Vec::new()
    }
}

/// Every detector, configured with defaults: the one set `serve` and `analyze` both run.
pub fn all() -> Vec<Box<dyn Detector>> {
    vec![Box::new(intel_hit::IntelHitDetector::default())]
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_detector_has_a_unique_name_and_asks_for_some_input() {
        let detectors = all();
        assert!(!detectors.is_empty());
        let names: HashSet<_> = detectors.iter().map(|d| d.name()).collect();
        assert_eq!(names.len(), detectors.len());
        for d in &detectors {
            assert!(!d.inputs().is_empty(), "{} wants nothing", d.name());
        }
    }

    #[test]
    fn an_agent_record_without_a_body_has_no_kind() {
        let event = Event::Agent {
            source: AgentSource {
                account_id: "123456789012".into(),
                instance_id: "i-1".into(),
                region: "eu-west-1".into(),
            },
            record: Record { record: None },
        };
        assert_eq!(event.kind(), None);
    }
}
