//! The agent's own accounting, shipped as a `HostStats` record each summary interval so the
//! aggregator sees that the agent is alive and what it saw and lost.
//!
//! The packet, drop and flow counters are filled by the sensor (capture → decode → flow
//! table); until a sensor runs they are honestly zero.

use std::collections::BTreeMap;
use std::net::IpAddr;

use picket_proto::v1::{Counter, HostStats, Record, record};
use tokio::sync::watch;
use tracing::{debug, error};

use crate::records_sink::RecordSink;
use crate::transport::now_ms;

/// Pushes one `HostStats` record per interval through the sink until shutdown. Each carries
/// the records the outbox dropped during the interval, by kind.
pub async fn report_every(
    interval: std::time::Duration,
    sink: RecordSink,
    mut shutdown: watch::Receiver<bool>,
) {
    let dropped_totals =
        |sink: &RecordSink| sink.outbox().stats().map(|s| s.dropped).unwrap_or_default();
    let mut dropped_before: BTreeMap<String, u64> = dropped_totals(&sink);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut interval_start = now_ms();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let interval_end = now_ms();
        let dropped_now = dropped_totals(&sink);
        let records_dropped = dropped_now
            .iter()
            .filter_map(|(kind, n)| {
                let delta = n.saturating_sub(dropped_before.get(kind).copied().unwrap_or(0));
                (delta > 0).then(|| Counter {
                    kind: kind.clone(),
                    count: delta,
                })
            })
            .collect();
        dropped_before = dropped_now;
        let (addresses, public_ip) = instance_addresses(
            crate::capture::live::host_addresses()
                .iter()
                .filter_map(crate::flow_table::local_nets::Cidr::host),
        );
        let stats = HostStats {
            interval_start_ms: interval_start,
            interval_end_ms: interval_end,
            records_dropped,
            addresses,
            public_ip,
            ..HostStats::default()
        };
        interval_start = interval_end;
        let records = vec![Record {
            record: Some(record::Record::HostStats(stats)),
        }];
        match sink.submit(records).await {
            Ok(()) => debug!("host stats buffered"),
            Err(e) => error!(error = %e, "host stats not buffered"),
        }
    }
}

/// Most addresses reported per `HostStats` (an instance has a few ENIs with a few each).
const MAX_REPORTED_ADDRESSES: usize = 32;

/// The instance's addresses as `HostStats` reports them: loopback, link-local and unspecified
/// addresses left out (they identify no instance), at most [`MAX_REPORTED_ADDRESSES`], and
/// the first publicly routable one, so the aggregator can match CloudTrail callers with the
/// instance whose role credentials they used.
pub fn instance_addresses(addrs: impl IntoIterator<Item = IpAddr>) -> (Vec<String>, String) {
    let mut out: Vec<IpAddr> = Vec::new();
    for a in addrs {
        let useless = a.is_loopback()
            || a.is_unspecified()
            || match a {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
        if !useless && !out.contains(&a) && out.len() < MAX_REPORTED_ADDRESSES {
            out.push(a);
        }
    }
    let public = out
        .iter()
        .find(|a| !crate::flow_table::local_nets::is_private(**a))
        .map(ToString::to_string)
        .unwrap_or_default();
    (out.iter().map(ToString::to_string).collect(), public)
}

/// Adds the public IPv4 instance metadata gave (`public`, empty when none) to a `HostStats`:
/// it becomes `public_ip` when the interfaces showed no public address (the usual NAT'ed EC2
/// case), and is added to `addresses` otherwise, so the aggregator can match CloudTrail calls
/// from that address to this instance either way.
pub fn add_public_ip(stats: &mut HostStats, public: &str) {
    if public.is_empty() || stats.public_ip == public {
        return;
    }
    if stats.public_ip.is_empty() {
        public.clone_into(&mut stats.public_ip);
    } else if !stats.addresses.iter().any(|a| a == public)
        && stats.addresses.len() < MAX_REPORTED_ADDRESSES
    {
        stats.addresses.push(public.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_link_local_addresses_are_left_out_and_the_public_one_is_named() {
        let addrs = [
            "127.0.0.1",
            "10.0.0.5",
            "169.254.1.1",
            "fe80::1",
            "3.5.140.7",
            "10.0.0.5",
        ]
        .iter()
        .map(|s| s.parse().expect("ip"));
        let (list, public) = instance_addresses(addrs);
        assert_eq!(list, vec!["10.0.0.5".to_owned(), "3.5.140.7".to_owned()]);
        assert_eq!(public, "3.5.140.7");
    }

    #[test]
    fn an_instance_with_only_private_addresses_has_no_public_ip() {
        let (list, public) = instance_addresses(["10.1.2.3".parse().expect("ip")]);
        assert_eq!(list, vec!["10.1.2.3".to_owned()]);
        assert!(public.is_empty());
    }

    #[test]
    fn the_metadata_public_ip_fills_an_empty_public_ip_and_is_added_beside_another() {
        let mut nat = HostStats {
            addresses: vec!["10.0.0.5".into()],
            ..HostStats::default()
        };
        add_public_ip(&mut nat, "54.240.197.10");
        assert_eq!(nat.public_ip, "54.240.197.10");
        assert_eq!(nat.addresses, ["10.0.0.5"]);

        let mut both = HostStats {
            addresses: vec!["3.5.140.7".into()],
            public_ip: "3.5.140.7".into(),
            ..HostStats::default()
        };
        add_public_ip(&mut both, "54.240.197.10");
        assert_eq!(both.public_ip, "3.5.140.7");
        assert_eq!(both.addresses, ["3.5.140.7", "54.240.197.10"]);

        let mut none = HostStats::default();
        add_public_ip(&mut none, "");
        assert_eq!(none, HostStats::default());
    }
}
