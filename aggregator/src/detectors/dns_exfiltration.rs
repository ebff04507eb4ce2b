//! `Trojan:EC2/DNSDataExfiltration`: data tunnelled out in DNS query names.
//!
//! Input: DNS summaries. Per (instance, client, zone) in a tumbling window it sums distinct
//! names and queries, keeps the longest label, the query-weighted mean label length and
//! entropy, and the share of TXT/NULL/CNAME/MX queries (the types tunnels use to carry replies).
//! Distinct names are summed over the window's summaries, so a name repeated in several
//! intervals counts more than once: an upper bound, which the shape rules keep honest.
//! A window reports once when it has `min_distinct_names` and at least one shape rule holds:
//! long labels, high-entropy labels, or a tunnel-type-heavy mix.
//!
//! The zone is the registered domain, except when that has no plausible top-level label (e.g.
//! `dnscat.5f3a…` where every name looks like its own "domain"): then names are grouped by
//! their leading label, so such tunnels still add up.

use std::num::{NonZeroU32, NonZeroUsize};

use picket_proto::v1::DnsSummary;
use serde::Deserialize;

use super::summary::{self, MAX_EXAMPLES};
use super::window::{WindowTable, keep_example};
use super::{
    BehaviourEvidence, Detector, DetectorCounter, Event, EventKind, Observation, ResourceRole,
    ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Query types tunnels favour because their answers carry arbitrary data. `10` is NULL by
/// number, as some parsers write unknown mnemonics.
const TUNNEL_TYPES: [&str; 5] = ["TXT", "NULL", "10", "CNAME", "MX"];

/// `[detectors.dns_exfiltration]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsExfiltrationConfig {
    /// Distinct names under one zone within a window, needed before any shape rule applies.
    #[serde(default = "default_min_distinct_names")]
    pub min_distinct_names: NonZeroU32,
    /// Longest label (bytes) that counts as long; DNS allows 63.
    #[serde(default = "default_min_max_label_len")]
    pub min_max_label_len: NonZeroU32,
    /// Query-weighted mean label entropy (bits per character) that counts as encoded data.
    #[serde(default = "default_min_mean_entropy")]
    pub min_mean_entropy: f64,
    /// Share of TXT/NULL/CNAME/MX queries (0–1) that counts as a tunnel's query mix.
    #[serde(default = "default_min_tunnel_type_share")]
    pub min_tunnel_type_share: f64,
    /// Window length in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: NonZeroU32,
    /// Zones tracked at once; the least recently seen is evicted beyond this.
    #[serde(default = "super::default_max_keys")]
    pub max_keys: NonZeroUsize,
}

impl Default for DnsExfiltrationConfig {
    fn default() -> Self {
        Self {
            min_distinct_names: default_min_distinct_names(),
            min_max_label_len: default_min_max_label_len(),
            min_mean_entropy: default_min_mean_entropy(),
            min_tunnel_type_share: default_min_tunnel_type_share(),
            window_secs: default_window_secs(),
            max_keys: super::default_max_keys(),
        }
    }
}

impl DnsExfiltrationConfig {
    /// Pushes every out-of-range value onto `problems`.
    pub fn check(&self, problems: &mut Vec<String>) {
        if !(self.min_mean_entropy > 0.0 && self.min_mean_entropy <= 8.0) {
            problems.push(format!(
                "detectors.dns_exfiltration.min_mean_entropy must be in (0, 8] bits, got {}",
                self.min_mean_entropy
            ));
        }
        if !(self.min_tunnel_type_share > 0.0 && self.min_tunnel_type_share <= 1.0) {
            problems.push(format!(
                "detectors.dns_exfiltration.min_tunnel_type_share must be in (0, 1], got {}",
                self.min_tunnel_type_share
            ));
        }
        if self.min_max_label_len.get() > 63 {
            problems.push(format!(
                "detectors.dns_exfiltration.min_max_label_len must be at most 63 (the DNS label limit), got {}",
                self.min_max_label_len
            ));
        }
    }
}

fn default_min_distinct_names() -> NonZeroU32 {
    NonZeroU32::new(40).unwrap_or(NonZeroU32::MIN)
}
fn default_min_max_label_len() -> NonZeroU32 {
    // Ordinary host labels rarely pass 30 bytes; base32/hex chunks of tunnels sit near 63.
    NonZeroU32::new(40).unwrap_or(NonZeroU32::MIN)
}
fn default_min_mean_entropy() -> f64 {
    // English-like labels measure 2–3 bits per character; base32/base64 chunks 4 and more.
    3.8
}
fn default_min_tunnel_type_share() -> f64 {
    0.5
}
fn default_window_secs() -> NonZeroU32 {
    NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN)
}

/// Whether `label` could be a top-level domain: letters only (or an IDN `xn--` label), 2–24 long.
fn plausible_tld(label: &str) -> bool {
    (2..=24).contains(&label.len())
        && (label.bytes().all(|b| b.is_ascii_alphabetic()) || label.starts_with("xn--"))
}

/// The zone names are grouped under: the registered domain, or its leading label when the
/// domain has no plausible top-level label.
pub fn zone(registered_domain: &str) -> String {
    let d = registered_domain.trim_end_matches('.').to_ascii_lowercase();
    let last = d.rsplit('.').next().unwrap_or("");
    if plausible_tld(last) || !d.contains('.') {
        return d;
    }
    let first = d.split('.').next().unwrap_or("");
    format!("{first}.*")
}

type Key = (String, String, String);

#[derive(Debug, Default)]
struct Zone {
    queries: u64,
    tunnel_type_queries: u64,
    distinct_names: u64,
    max_label_len: u32,
    weighted_entropy: f64,
    weighted_label_len: f64,
    names: Vec<String>,
    records: Vec<DnsSummary>,
}

impl Zone {
    fn mean(&self, weighted: f64) -> f64 {
        if self.queries == 0 {
            0.0
        } else {
            weighted / self.queries as f64
        }
    }
}

/// Looks for tunnel-shaped names per zone.
#[derive(Debug)]
pub struct DnsExfiltrationDetector {
    config: DnsExfiltrationConfig,
    table: WindowTable<Key, Zone>,
}

impl DnsExfiltrationDetector {
    /// A detector with `config`.
    pub fn new(config: DnsExfiltrationConfig) -> Self {
        let window_ms = i64::from(config.window_secs.get()) * 1000;
        Self {
            table: WindowTable::new(config.max_keys, window_ms),
            config,
        }
    }

    /// The shape thresholds `z` crosses.
    fn crossed(c: &DnsExfiltrationConfig, z: &Zone) -> Vec<ThresholdCrossed> {
        let mut out = Vec::new();
        if z.max_label_len >= c.min_max_label_len.get() {
            out.push(ThresholdCrossed {
                key: "detectors.dns_exfiltration.min_max_label_len".into(),
                limit: f64::from(c.min_max_label_len.get()),
                observed: f64::from(z.max_label_len),
            });
        }
        let entropy = z.mean(z.weighted_entropy);
        if entropy >= c.min_mean_entropy {
            out.push(ThresholdCrossed {
                key: "detectors.dns_exfiltration.min_mean_entropy".into(),
                limit: c.min_mean_entropy,
                observed: entropy,
            });
        }
        let share = if z.queries == 0 {
            0.0
        } else {
            z.tunnel_type_queries as f64 / z.queries as f64
        };
        if share >= c.min_tunnel_type_share {
            out.push(ThresholdCrossed {
                key: "detectors.dns_exfiltration.min_tunnel_type_share".into(),
                limit: c.min_tunnel_type_share,
                observed: share,
            });
        }
        out
    }
}

impl Detector for DnsExfiltrationDetector {
    fn name(&self) -> &'static str {
        "dns_exfiltration"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Dns]
    }

    fn observe(&mut self, event: &Event, out: &mut Vec<Observation>) {
        let Some((source, d)) = summary::dns(event) else {
            return;
        };
        if d.queries == 0 {
            return;
        }
        let at = summary::dns_time(d);
        let zone = zone(&d.registered_domain);
        let key = (
            source.instance_id.clone(),
            d.client_addr.clone(),
            zone.clone(),
        );
        let window_ms = i64::from(self.config.window_secs.get()) * 1000;
        let w = self.table.window(key, at);
        let z = &mut w.state;
        z.queries = z.queries.saturating_add(d.queries);
        z.tunnel_type_queries = z.tunnel_type_queries.saturating_add(
            d.queries_by_type
                .iter()
                .filter(|t| {
                    TUNNEL_TYPES
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(&t.qtype))
                })
                .map(|t| t.count)
                .sum(),
        );
        z.distinct_names = z.distinct_names.saturating_add(d.distinct_names);
        z.max_label_len = z.max_label_len.max(d.max_label_len);
        // Non-finite values from a confused agent would poison the mean; skip them.
        if d.mean_label_entropy.is_finite() && d.mean_label_len.is_finite() {
            z.weighted_entropy += d.mean_label_entropy * d.queries as f64;
            z.weighted_label_len += d.mean_label_len * d.queries as f64;
        }
        for n in &d.example_names {
            keep_example(&mut z.names, MAX_EXAMPLES, || n.clone());
        }
        keep_example(&mut z.records, MAX_EXAMPLES, || d.clone());
        let min = self.config.min_distinct_names.get();
        if w.fired || z.distinct_names < u64::from(min) {
            return;
        }
        let mut thresholds = Self::crossed(&self.config, z);
        if thresholds.is_empty() {
            return;
        }
        w.fired = true;
        thresholds.insert(
            0,
            ThresholdCrossed {
                key: "detectors.dns_exfiltration.min_distinct_names".into(),
                limit: f64::from(min),
                observed: z.distinct_names as f64,
            },
        );
        let evidence = BehaviourEvidence {
            detector: "dns_exfiltration".to_owned(),
            window_ms,
            thresholds,
            example_names: std::mem::take(&mut z.names),
            flows: Vec::new(),
            dns: std::mem::take(&mut z.records),
            note: (zone != d.registered_domain.to_ascii_lowercase())
                .then(|| format!("names have no registrable domain; grouped as {zone}")),
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::TrojanDnsDataExfiltration,
                source,
                local_addr: &d.client_addr,
                role: ResourceRole::Actor,
                activity: summary::dns_activity(&zone),
                at_ms: at,
                severity: None,
            }
            .observation(evidence),
        );
    }

    fn on_tick(&mut self, now_ms: i64, _out: &mut Vec<Observation>) {
        self.table.expire(now_ms);
    }

    fn tracked_keys(&self) -> usize {
        self.table.len()
    }

    fn counters(&self) -> Vec<DetectorCounter> {
        vec![
            DetectorCounter {
                name: "evicted_full",
                count: self.table.evicted_full(),
            },
            DetectorCounter {
                name: "expired",
                count: self.table.expired(),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use picket_proto::v1::TypeCount;

    use super::*;
    use crate::detectors::EvidenceDetail;
    use crate::detectors::testing::{T0, dns, dns_event, run};

    fn tunnel(client: &str, domain: &str, distinct: u64, label_len: u32, entropy: f64) -> Event {
        let mut d = dns(client, domain, distinct, T0);
        d.distinct_names = distinct;
        d.max_label_len = label_len;
        d.mean_label_len = f64::from(label_len);
        d.mean_label_entropy = entropy;
        d.example_names = vec![format!("{}.{domain}", "a".repeat(label_len as usize))];
        dns_event(d)
    }

    fn detector() -> DnsExfiltrationDetector {
        DnsExfiltrationDetector::new(DnsExfiltrationConfig::default())
    }

    #[test]
    fn many_long_high_entropy_names_under_one_zone_are_exfiltration_with_examples() {
        let out = run(
            &mut detector(),
            [tunnel("10.0.0.5", "tunnel.example", 60, 60, 4.6)],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].finding_type, FindingType::TrojanDnsDataExfiltration);
        assert_eq!(out[0].activity.remote(), "tunnel.example");
        let EvidenceDetail::Behaviour(ev) = &out[0].evidence else {
            panic!("expected behaviour evidence");
        };
        assert_eq!(ev.example_names.len(), 1);
        assert_eq!(ev.thresholds.len(), 3, "{:?}", ev.thresholds);
    }

    #[test]
    fn an_ipv6_client_using_txt_queries_with_short_labels_is_caught_by_the_query_mix() {
        let mut d = dns("2001:db8::5", "c2.example", 50, T0);
        d.distinct_names = 50;
        d.queries_by_type = vec![TypeCount {
            qtype: "TXT".into(),
            count: 45,
        }];
        let out = run(&mut detector(), [dns_event(d)]);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn names_without_a_registrable_domain_add_up_under_their_leading_label() {
        assert_eq!(zone("dnscat.5f3a9c01"), "dnscat.*");
        assert_eq!(zone("example.com"), "example.com");
        let events = (0..50).map(|i| tunnel("10.0.0.5", &format!("dnscat.{i:08x}a1"), 1, 45, 4.0));
        let out = run(&mut detector(), events);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].activity.remote(), "dnscat.*");
    }

    #[test]
    fn many_ordinary_names_or_few_long_ones_are_not_exfiltration() {
        let mut d = detector();
        // 200 short, low-entropy names under one zone: a busy service directory.
        assert!(run(&mut d, [tunnel("10.0.0.5", "corp.example", 200, 12, 2.8)]).is_empty());
        // Long random labels, but only 39 distinct names.
        assert!(run(&mut d, [tunnel("2001:db8::5", "cdn.example", 39, 60, 4.6)]).is_empty());
    }

    #[test]
    fn thresholds_from_config_are_honoured_and_nonsense_is_named() {
        let mut d = DnsExfiltrationDetector::new(DnsExfiltrationConfig {
            min_distinct_names: NonZeroU32::new(500).expect("500"),
            ..DnsExfiltrationConfig::default()
        });
        assert!(run(&mut d, [tunnel("10.0.0.5", "tunnel.example", 499, 60, 4.6)]).is_empty());
        let mut problems = Vec::new();
        DnsExfiltrationConfig {
            min_tunnel_type_share: 1.5,
            ..DnsExfiltrationConfig::default()
        }
        .check(&mut problems);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("min_tunnel_type_share") && problems[0].contains("1.5"));
    }
}
