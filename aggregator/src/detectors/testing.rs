//! Crafted summaries and a runner for the detectors' unit tests.

use picket_proto::v1::record::Record as R;
use picket_proto::v1::{Direction, DnsSummary, FlowSummary, Record};

use super::window::SharedNames;
use super::{AgentSource, Detector, Event, EventFacts, Observation};

/// Start of the crafted traffic (ms since the epoch).
pub const T0: i64 = 1_700_000_000_000;

/// The agent every crafted record comes from.
pub fn source() -> AgentSource {
    AgentSource {
        account_id: "123456789012".into(),
        instance_id: "i-0abc".into(),
        region: "eu-west-1".into(),
    }
}

/// A flow summary: `egress` from `local` to `remote` on `protocol`/`port`, one connection that
/// was answered, seen at `at_ms`.
pub fn flow(
    egress: bool,
    local: &str,
    remote: &str,
    protocol: u32,
    port: u32,
    at_ms: i64,
) -> FlowSummary {
    FlowSummary {
        interval_start_ms: at_ms - 10_000,
        interval_end_ms: at_ms,
        direction: if egress {
            Direction::Egress
        } else {
            Direction::Ingress
        } as i32,
        local_addr: local.into(),
        remote_addr: remote.into(),
        protocol,
        service_port: port,
        connections: 1,
        packets_out: 3,
        packets_in: 3,
        bytes_out: 180,
        bytes_in: 180,
        first_seen_ms: at_ms - 5_000,
        last_seen_ms: at_ms,
        remote_answered: true,
        ..FlowSummary::default()
    }
}

/// A DNS summary of `queries` A queries by `client` under `domain`, all answered.
pub fn dns(client: &str, domain: &str, queries: u64, at_ms: i64) -> DnsSummary {
    DnsSummary {
        interval_start_ms: at_ms - 10_000,
        interval_end_ms: at_ms,
        client_addr: client.into(),
        registered_domain: domain.into(),
        queries,
        responses: queries,
        distinct_names: 1,
        max_label_len: 3,
        mean_label_len: 3.0,
        mean_label_entropy: 1.5,
        example_names: vec![format!("www.{domain}")],
        resolvers: vec!["10.0.0.2".into()],
        first_seen_ms: at_ms - 5_000,
        last_seen_ms: at_ms,
        ..DnsSummary::default()
    }
}

/// The event of a flow summary.
pub fn flow_event(f: FlowSummary) -> Event {
    Event::Agent {
        source: source(),
        record: Record {
            record: Some(R::Flow(f)),
        },
    }
}

/// The event of a DNS summary.
pub fn dns_event(d: DnsSummary) -> Event {
    Event::Agent {
        source: source(),
        record: Record {
            record: Some(R::Dns(d)),
        },
    }
}

/// Feeds `events` to `detector` (only the kinds it asks for) and returns what it observed.
pub fn run(
    detector: &mut dyn Detector,
    events: impl IntoIterator<Item = Event>,
) -> Vec<Observation> {
    let mut out = Vec::new();
    let mut names = SharedNames::default();
    for e in events {
        if e.kind().is_some_and(|k| detector.inputs().contains(&k)) {
            detector.observe(&e, &EventFacts::of(&e, &mut names), &mut out);
        }
    }
    out
}

/// Runs `event` through `detector` with its facts, as the pipeline does (whatever its kind).
pub fn observe<D: Detector + ?Sized>(detector: &mut D, event: &Event, out: &mut Vec<Observation>) {
    let mut names = SharedNames::default();
    detector.observe(event, &EventFacts::of(event, &mut names), out);
}

/// The value of a detector's counter, or `None` when it has no such counter.
pub fn counter(detector: &dyn Detector, name: &str) -> Option<u64> {
    detector
        .counters()
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| c.count)
}
