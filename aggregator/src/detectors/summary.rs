//! Reading agent summaries for the behavioural detectors: which records an event holds, what
//! an address is (public or not), and how a flow becomes a finding's network activity and
//! resource. Kept here so every detector reads the records the same way.

use std::net::IpAddr;

use picket_proto::v1::record::Record as R;
use picket_proto::v1::{Direction, DnsSummary, FlowSummary};

use super::{
    Activity, AgentSource, BehaviourEvidence, ConnectionDirection, DnsActivity, Event,
    EvidenceDetail, NetworkActivity, Observation, ResourceRef, ResourceRole,
};
use crate::findings::types::FindingType;

/// Flow summaries, DNS summaries and examples kept in evidence, at most.
pub const MAX_EXAMPLES: usize = 5;

/// The flow summary in `event`, if it holds one.
pub fn flow(event: &Event) -> Option<(&AgentSource, &FlowSummary)> {
    let Event::Agent { source, record } = event else {
        return None;
    };
    match &record.record {
        Some(R::Flow(f)) => Some((source, f)),
        _ => None,
    }
}

/// The DNS summary in `event`, if it holds one.
pub fn dns(event: &Event) -> Option<(&AgentSource, &DnsSummary)> {
    let Event::Agent { source, record } = event else {
        return None;
    };
    match &record.record {
        Some(R::Dns(d)) => Some((source, d)),
        _ => None,
    }
}

/// The flow's direction, as a finding writes it.
pub fn direction(f: &FlowSummary) -> ConnectionDirection {
    match Direction::try_from(f.direction) {
        Ok(Direction::Ingress) => ConnectionDirection::Inbound,
        Ok(Direction::Egress) => ConnectionDirection::Outbound,
        _ => ConnectionDirection::Unknown,
    }
}

/// When the summary's activity happened: its last sighting, else the interval's end.
pub fn flow_time(f: &FlowSummary) -> i64 {
    if f.last_seen_ms > 0 {
        f.last_seen_ms
    } else {
        f.interval_end_ms
    }
}

/// When the DNS summary's activity happened.
pub fn dns_time(d: &DnsSummary) -> i64 {
    if d.last_seen_ms > 0 {
        d.last_seen_ms
    } else {
        d.interval_end_ms
    }
}

/// Whether `ip` can be a public destination: not private, loopback, link-local, CGNAT,
/// unique-local, multicast or unspecified. Documentation ranges count as public, so crafted
/// tests read like real traffic.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let cgnat = a == 100 && (64..128).contains(&b);
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || cgnat)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            !(v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || unique_local
                || link_local)
        }
    }
}

/// The instance resource of an agent, with the address it used.
pub fn instance(source: &AgentSource, local_addr: &str) -> ResourceRef {
    ResourceRef::Instance {
        instance_id: source.instance_id.clone(),
        private_ip: (!local_addr.is_empty()).then(|| local_addr.to_owned()),
    }
}

/// The network activity of a flow summary: the service port is the remote's for egress and
/// ours for ingress; the client side's port is not in a summary and is written as 0.
pub fn network_activity(f: &FlowSummary) -> Activity {
    let direction = direction(f);
    let (local_port, remote_port) = match direction {
        ConnectionDirection::Inbound => (f.service_port, 0),
        _ => (0, f.service_port),
    };
    Activity::Network(NetworkActivity {
        direction,
        protocol: f.protocol,
        local_ip: f.local_addr.clone(),
        local_port,
        remote_ip: f.remote_addr.clone(),
        remote_port,
    })
}

/// A DNS request activity for `domain`.
pub fn dns_activity(domain: &str) -> Activity {
    Activity::Dns(DnsActivity {
        domain: domain.to_owned(),
        protocol: "UDP",
    })
}

/// Everything a behavioural observation needs besides the evidence.
#[derive(Debug)]
pub struct ObservationParts<'a> {
    /// The type, from the registry.
    pub finding_type: FindingType,
    /// Who sent the records.
    pub source: &'a AgentSource,
    /// The instance's address in the traffic.
    pub local_addr: &'a str,
    /// Actor or target.
    pub role: ResourceRole,
    /// The activity.
    pub activity: Activity,
    /// Event time.
    pub at_ms: i64,
    /// A severity other than the type's default, if any.
    pub severity: Option<f64>,
}

impl ObservationParts<'_> {
    /// The observation, carrying `evidence`.
    pub fn observation(self, evidence: BehaviourEvidence) -> Observation {
        Observation {
            finding_type: self.finding_type,
            account_id: self.source.account_id.clone(),
            region: self.source.region.clone(),
            resource: instance(self.source, self.local_addr),
            role: self.role,
            activity: self.activity,
            at_ms: self.at_ms,
            threat_intel: None,
            severity: self.severity,
            evidence: EvidenceDetail::Behaviour(Box::new(evidence)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_local_addresses_are_not_public_and_routable_ones_are() {
        for a in [
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "::1",
        ] {
            assert!(!is_public(a.parse().expect("addr")), "{a}");
        }
        for a in ["198.51.100.7", "8.8.8.8", "2001:db8::7", "2606:4700::1111"] {
            assert!(is_public(a.parse().expect("addr")), "{a}");
        }
    }
}
