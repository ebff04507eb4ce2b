//! The edge pre-filter: checks a flow's remote address, a DNS query name or a DNS answer
//! address against the intel snapshot and, on a threat match, builds the `IntelHit` record that
//! is shipped at once.
//!
//! Lookups allocate nothing; only a hit builds strings. Trusted matches and misses give `None`:
//! a trusted address is never reported, whatever the threat lists say.

use std::net::IpAddr;

use picket_intel::{Hit, MatchedValue, Snapshot};
use picket_proto::v1::{Direction, IntelHit, MatchSite};

use crate::capture::Timestamp;
use crate::flow_table::Endpoint;

/// A flow as the pre-filter sees it: the host's end, the remote end and how they met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowContext {
    /// The host's end.
    pub local: Endpoint,
    /// The other end; its address is what is checked.
    pub remote: Endpoint,
    /// IP protocol number.
    pub protocol: u8,
    /// Ingress or egress.
    pub direction: Direction,
    /// When the flow was seen.
    pub ts: Timestamp,
}

/// A DNS query as the pre-filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsContext<'a> {
    /// The queried name, as on the wire (case and a trailing dot are ignored).
    pub name: &'a str,
    /// The host's end (the client).
    pub client: Endpoint,
    /// The resolver.
    pub resolver: Endpoint,
    /// IP protocol number (17 UDP, 6 TCP).
    pub protocol: u8,
    /// The query type (1 A, 28 AAAA, 16 TXT, …).
    pub qtype: u16,
    /// When the query (or answer) was seen.
    pub ts: Timestamp,
}

fn observed_at_ms(ts: Timestamp) -> i64 {
    i64::try_from(ts.as_millis()).unwrap_or(i64::MAX)
}

/// The record for a threat hit, without traffic context.
fn base_record(
    hit: &Hit<'_>,
    matched: String,
    site: MatchSite,
    snapshot: &Snapshot,
    ts: Timestamp,
) -> IntelHit {
    IntelHit {
        observed_at_ms: observed_at_ms(ts),
        matched_value: matched,
        indicator: match hit.indicator {
            MatchedValue::Net(net) => net.to_string(),
            MatchedValue::Domain(name) => name.to_owned(),
        },
        list_name: hit.list.to_owned(),
        category: hit.category.wire_name().to_owned(),
        source: hit.source.to_owned(),
        description: hit.description.to_owned(),
        site: site as i32,
        intel_version: snapshot.version(),
        ..IntelHit::default()
    }
}

/// Checks a flow's remote address; `Some` only for a threat match.
pub fn check_flow(snapshot: &Snapshot, flow: &FlowContext) -> Option<IntelHit> {
    let hit = snapshot.match_ip(flow.remote.addr)?;
    let mut record = base_record(
        &hit,
        flow.remote.addr.to_string(),
        MatchSite::RemoteAddr,
        snapshot,
        flow.ts,
    );
    record.direction = flow.direction as i32;
    record.local_addr = flow.local.addr.to_string();
    record.remote_addr = flow.remote.addr.to_string();
    record.protocol = u32::from(flow.protocol);
    record.local_port = u32::from(flow.local.port);
    record.remote_port = u32::from(flow.remote.port);
    Some(record)
}

/// Fills the DNS context of a record: the query, its type and the resolver.
fn with_dns(mut record: IntelHit, dns: &DnsContext<'_>) -> IntelHit {
    record.direction = Direction::Egress as i32;
    record.local_addr = dns.client.addr.to_string();
    record.local_port = u32::from(dns.client.port);
    record.remote_addr = dns.resolver.addr.to_string();
    record.remote_port = u32::from(dns.resolver.port);
    record.protocol = u32::from(dns.protocol);
    record.dns_query_name = dns.name.strip_suffix('.').unwrap_or(dns.name).to_owned();
    record.dns_qtype = hickory_proto::rr::RecordType::from(dns.qtype).to_string();
    record.dns_resolver = dns.resolver.addr.to_string();
    record
}

/// Checks a DNS query name (and, by suffix, its parent names); `Some` only for a threat match.
pub fn check_dns_query(snapshot: &Snapshot, dns: &DnsContext<'_>) -> Option<IntelHit> {
    let hit = snapshot.match_domain(dns.name)?;
    let matched = dns.name.strip_suffix('.').unwrap_or(dns.name).to_owned();
    let record = base_record(&hit, matched, MatchSite::DnsQuery, snapshot, dns.ts);
    Some(with_dns(record, dns))
}

/// Checks an address a DNS answer gave for `dns.name`; `Some` only for a threat match.
pub fn check_dns_answer(
    snapshot: &Snapshot,
    answer: IpAddr,
    dns: &DnsContext<'_>,
) -> Option<IntelHit> {
    let hit = snapshot.match_ip(answer)?;
    let record = base_record(
        &hit,
        answer.to_string(),
        MatchSite::DnsAnswer,
        snapshot,
        dns.ts,
    );
    Some(with_dns(record, dns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_intel::{ListKind, ListOptions, SnapshotBuilder, canary_list, parse_list};

    fn snapshot() -> Snapshot {
        let threat = parse_list(
            "bad.txt",
            b"93.184.216.0/24\n",
            &ListOptions::new("bad", ListKind::Threat).category(picket_intel::Category::Crypto),
        )
        .unwrap();
        let trusted = parse_list(
            "ok.txt",
            b"93.184.216.5\nguarddutydgaactivity.com\n",
            &ListOptions::new("ok", ListKind::Trusted),
        )
        .unwrap();
        let mut b = SnapshotBuilder::new();
        b.add_list(threat).add_list(trusted).add_list(canary_list());
        b.build(17).unwrap()
    }

    fn ep(addr: &str, port: u16) -> Endpoint {
        Endpoint {
            addr: addr.parse().unwrap(),
            port,
        }
    }

    fn dns(name: &str) -> DnsContext<'_> {
        DnsContext {
            name,
            client: ep("10.0.0.5", 40000),
            resolver: ep("10.0.0.2", 53),
            protocol: 17,
            qtype: 1,
            ts: Timestamp::from_millis(1_700_000_000_123),
        }
    }

    #[test]
    fn a_query_for_a_canary_sub_name_is_a_c2_hit_with_its_dns_context() {
        let s = snapshot();
        let hit = check_dns_query(&s, &dns("www.GuardDutyC2ActivityB.com.")).unwrap();
        assert_eq!(hit.matched_value, "www.GuardDutyC2ActivityB.com");
        assert_eq!(hit.indicator, "guarddutyc2activityb.com");
        assert_eq!(hit.list_name, "picket-canary");
        assert_eq!(hit.category, "c2");
        assert_eq!(hit.source, "aws-guardduty-tester");
        assert_eq!(hit.site, MatchSite::DnsQuery as i32);
        assert_eq!(hit.intel_version, 17);
        assert_eq!(hit.observed_at_ms, 1_700_000_000_123);
        assert_eq!(hit.dns_qtype, "A");
        assert_eq!(hit.dns_resolver, "10.0.0.2");
        assert_eq!(hit.local_addr, "10.0.0.5");
        assert_eq!(hit.dns_query_name, "www.GuardDutyC2ActivityB.com");
    }

    #[test]
    fn drop_point_canaries_carry_the_snake_case_category() {
        let hit = check_dns_query(&snapshot(), &dns("guarddutydroppointactivity.com")).unwrap();
        assert_eq!(hit.category, "drop_point");
    }

    #[test]
    fn trusted_names_and_unlisted_names_give_no_hit() {
        let s = snapshot();
        assert_eq!(
            check_dns_query(&s, &dns("x.guarddutydgaactivity.com")),
            None
        );
        assert_eq!(check_dns_query(&s, &dns("example.org")), None);
    }

    #[test]
    fn a_flow_to_a_listed_network_is_a_hit_but_a_trusted_address_inside_it_never_is() {
        let s = snapshot();
        let flow = |remote: &str| FlowContext {
            local: ep("10.0.0.5", 51000),
            remote: ep(remote, 3333),
            protocol: 6,
            direction: Direction::Egress,
            ts: Timestamp::from_millis(5),
        };
        let hit = check_flow(&s, &flow("93.184.216.9")).unwrap();
        assert_eq!(hit.indicator, "93.184.216.0/24");
        assert_eq!(hit.list_name, "bad");
        assert_eq!(hit.category, "crypto");
        assert_eq!(hit.site, MatchSite::RemoteAddr as i32);
        assert_eq!(hit.remote_port, 3333);
        assert_eq!(hit.local_port, 51000);
        assert_eq!(hit.protocol, 6);
        assert_eq!(hit.direction, Direction::Egress as i32);
        assert_eq!(check_flow(&s, &flow("93.184.216.5")), None);
        assert_eq!(check_flow(&s, &flow("8.8.8.8")), None);
    }

    #[test]
    fn an_answer_address_on_a_threat_list_is_a_dns_answer_hit() {
        let s = snapshot();
        let hit =
            check_dns_answer(&s, "93.184.216.77".parse().unwrap(), &dns("cdn.example")).unwrap();
        assert_eq!(hit.site, MatchSite::DnsAnswer as i32);
        assert_eq!(hit.matched_value, "93.184.216.77");
        assert_eq!(hit.dns_query_name, "cdn.example");
        assert_eq!(
            check_dns_answer(&s, "93.184.216.5".parse().unwrap(), &dns("cdn.example")),
            None
        );
    }
}
