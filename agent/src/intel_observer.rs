//! The intel pre-filter plugged into the sensor pipeline: every flow's addresses, every DNS
//! query name and every DNS answer address is checked against the current snapshot, and a
//! threat match becomes an `IntelHit` at once, ahead of the interval's summaries.
//!
//! Addresses are checked once per flow and interval, not per packet: the pipeline shows this
//! observer a flow's first packet, the first of each of its intervals, and the first after
//! the snapshot's version changed (see [`Observer::epoch`]); that is two allocation-free
//! lookups, and a packet of a flow already checked costs the pipeline one compare. A hit on
//! the same (local, remote,
//! protocol) is reported again only after [`REPORT_AGAIN_AFTER_MS`], so a long connection to a
//! listed address yields a hit a minute rather than one per packet; the table of recent hits
//! is bounded and counts what it forgets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use picket_intel::Snapshot;
use picket_proto::v1::{Direction, IntelHit};

use crate::capture::Timestamp;
use crate::decode::{Decoded, Transport};
use crate::dns::{DnsAnswer, DnsTransaction};
use crate::flow_table::Endpoint;
use crate::intel_cache::IntelCache;
use crate::intel_check::{DnsContext, FlowContext, check_dns_answer, check_dns_query, check_flow};
use crate::pipeline::Observer;

/// How long a (local, remote, protocol) hit stays reported before it is reported again.
pub const REPORT_AGAIN_AFTER_MS: u64 = 60_000;
/// Recent hits remembered; past this the table is cleared (and the clearing counted).
const MAX_RECENT: usize = 16_384;

/// Where the observer reads its snapshot from.
#[derive(Clone)]
pub enum SnapshotSource {
    /// The agent's live cache: updates from the aggregator apply at once.
    Cache(Arc<IntelCache>),
    /// A fixed snapshot (replay with `--threat-list`).
    Fixed(Arc<Snapshot>),
}

/// A pipeline [`Observer`] that turns threat matches into `IntelHit` records.
pub struct IntelObserver {
    source: SnapshotSource,
    recent: HashMap<(IpAddr, IpAddr, u8), u64>,
    /// Times the recent-hit table was cleared because it was full.
    pub recent_cleared: u64,
}

impl IntelObserver {
    /// An observer reading `source`.
    pub fn new(source: SnapshotSource) -> Self {
        Self {
            source,
            recent: HashMap::new(),
            recent_cleared: 0,
        }
    }

    fn with_snapshot<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        match &self.source {
            SnapshotSource::Cache(cache) => f(&cache.guard()),
            SnapshotSource::Fixed(s) => f(s),
        }
    }

    /// Whether this pair was reported recently; records it as reported now if not.
    fn fresh(&mut self, key: (IpAddr, IpAddr, u8), now_ms: u64) -> bool {
        if let Some(last) = self.recent.get(&key) {
            if now_ms.saturating_sub(*last) < REPORT_AGAIN_AFTER_MS {
                return false;
            }
        }
        if self.recent.len() >= MAX_RECENT {
            self.recent.clear();
            self.recent_cleared += 1;
        }
        self.recent.insert(key, now_ms);
        true
    }
}

fn ports(t: &Transport) -> (u16, u16) {
    match *t {
        Transport::Tcp {
            src_port, dst_port, ..
        }
        | Transport::Udp { src_port, dst_port } => (src_port, dst_port),
        _ => (0, 0),
    }
}

impl Observer for IntelObserver {
    /// The snapshot's version: a new snapshot gets every live flow checked again.
    fn epoch(&self) -> u64 {
        self.with_snapshot(Snapshot::version)
    }

    fn on_packet(&mut self, ts: Timestamp, packet: &Decoded<'_>, hits: &mut Vec<IntelHit>) {
        let (src_port, dst_port) = ports(&packet.transport);
        let (src, dst) = Endpoint::pair(packet, (src_port, dst_port));
        // The listed end is the remote one: sent to it → egress, received from it → ingress.
        for (local, remote, direction) in [
            (src, dst, Direction::Egress),
            (dst, src, Direction::Ingress),
        ] {
            let flow = FlowContext {
                local,
                remote,
                protocol: packet.protocol,
                direction,
                ts,
            };
            let Some(hit) = self.with_snapshot(|s| check_flow(s, &flow)) else {
                continue;
            };
            if self.fresh((local.addr, remote.addr, packet.protocol), ts.as_millis()) {
                hits.push(hit);
            }
        }
    }

    fn on_dns(&mut self, tx: &DnsTransaction, hits: &mut Vec<IntelHit>) {
        let ts = tx.response_ts.or(tx.query_ts).unwrap_or(Timestamp(0));
        let ctx = DnsContext {
            name: &tx.name,
            client: tx.client,
            resolver: tx.server,
            protocol: tx.protocol,
            qtype: tx.qtype,
            ts,
        };
        let found: Vec<IntelHit> = self.with_snapshot(|s| {
            check_dns_query(s, &ctx)
                .into_iter()
                .chain(
                    tx.answers
                        .iter()
                        .filter_map(DnsAnswer::addr)
                        .filter_map(|addr| check_dns_answer(s, addr, &ctx)),
                )
                .collect()
        });
        hits.extend(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intel_cache::canary_snapshot;

    fn tx(name: &str) -> DnsTransaction {
        DnsTransaction {
            client: Endpoint {
                addr: "10.0.0.5".parse().unwrap(),
                port: 40000,
            },
            server: Endpoint {
                addr: "10.0.0.2".parse().unwrap(),
                port: 53,
            },
            protocol: 17,
            id: 1,
            name: name.into(),
            qtype: 1,
            query_ts: Some(Timestamp::from_millis(1_000)),
            response_ts: None,
            rcode: None,
            answers: Default::default(),
        }
    }

    #[test]
    fn a_query_for_a_canary_sub_name_is_a_c2_hit_and_an_ordinary_name_is_not() {
        let mut obs =
            IntelObserver::new(SnapshotSource::Fixed(Arc::new(canary_snapshot().unwrap())));
        let mut hits = Vec::new();
        obs.on_dns(&tx("www.example.com"), &mut hits);
        assert!(hits.is_empty());
        obs.on_dns(&tx("beacon.guarddutyc2activityb.com"), &mut hits);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].category, "c2");
        assert_eq!(hits[0].dns_query_name, "beacon.guarddutyc2activityb.com");
    }

    #[test]
    fn a_pair_is_reported_again_only_after_the_quiet_period() {
        let mut obs =
            IntelObserver::new(SnapshotSource::Fixed(Arc::new(canary_snapshot().unwrap())));
        let key = (
            "10.0.0.5".parse().unwrap(),
            "203.0.113.9".parse().unwrap(),
            6,
        );
        assert!(obs.fresh(key, 1_000));
        assert!(!obs.fresh(key, 1_000 + REPORT_AGAIN_AFTER_MS - 1));
        assert!(obs.fresh(key, 1_000 + REPORT_AGAIN_AFTER_MS));
    }
}
