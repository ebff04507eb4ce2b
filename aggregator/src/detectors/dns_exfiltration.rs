//! `Trojan:EC2/DNSDataExfiltration`: data tunnelled out in DNS query names.
//!
//! Input: DNS summaries. Only summaries that carry a tunnel sign are looked at: TXT/NULL/
//! CNAME/MX queries (the types tunnels use to carry replies), a long label, or high-entropy
//! labels. Everything else (the bulk of DNS: short A/AAAA names) leaves at once, before any key
//! is built, so the detector costs next to nothing on ordinary traffic. The distinct names and
//! shares below are therefore those of the sign-carrying summaries.
//!
//! Per (instance, client, zone) in a tumbling window it sums distinct names and queries, keeps
//! the longest label, the query-weighted mean label length and entropy, the share of tunnel-type
//! queries, and how many example names look encoded (hex, base32/base36 chunks with digits mixed
//! in, or bytes outside letters/digits/hyphen). Distinct names are summed over the window's
//! summaries, so a name repeated in several intervals counts more than once: an upper bound,
//! which the shape rules keep honest. A window reports once, by the first of two rules to hold:
//!
//! - **volume** (High, the type's severity): `min_distinct_names` and at least one shape rule —
//!   long labels, high-entropy labels, or a tunnel-type-heavy mix;
//! - **short tunnel** (`short_tunnel_severity`, Medium by default, because the evidence is
//!   small): `short_tunnel_min_names` distinct names, a tunnel-type-heavy mix, a label of at
//!   least `short_tunnel_min_label_len`, and the names themselves look like data: NULL queries
//!   (which nothing ordinary asks for) or at least half the example names encoded. This catches
//!   a tunnel's handshake or a short session (a dozen dnscat2 or iodine queries) that volume
//!   alone misses, while a mail server's TXT lookups (SPF, DKIM, DMARC: a few readable names
//!   per domain) stay quiet.
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
    BehaviourEvidence, Detector, DetectorCounter, Event, EventFacts, EventKind, Observation,
    ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Query types tunnels favour because their answers carry arbitrary data. `10` is NULL by
/// number, as some parsers write unknown mnemonics.
const TUNNEL_TYPES: [&str; 5] = ["TXT", "NULL", "10", "CNAME", "MX"];

/// Query types no ordinary resolver client asks for: NULL (RFC 1035 "experimental").
const NULL_TYPES: [&str; 2] = ["NULL", "10"];

/// Shortest label judged by [`looks_encoded`]: shorter ones are too small to tell.
const ENCODED_MIN_LABEL: usize = 16;

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
    /// Distinct names under one zone for the short-tunnel rule (few names, every other sign).
    #[serde(default = "default_short_tunnel_min_names")]
    pub short_tunnel_min_names: NonZeroU32,
    /// Longest label (bytes) the short-tunnel rule needs; at most 63.
    #[serde(default = "default_short_tunnel_min_label_len")]
    pub short_tunnel_min_label_len: NonZeroU32,
    /// Severity (1–10) of a short-tunnel finding; the volume rule keeps the type's own (High).
    #[serde(default = "default_short_tunnel_severity")]
    pub short_tunnel_severity: f64,
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
            short_tunnel_min_names: default_short_tunnel_min_names(),
            short_tunnel_min_label_len: default_short_tunnel_min_label_len(),
            short_tunnel_severity: default_short_tunnel_severity(),
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
        for (key, value) in [
            ("min_max_label_len", self.min_max_label_len),
            (
                "short_tunnel_min_label_len",
                self.short_tunnel_min_label_len,
            ),
        ] {
            if value.get() > 63 {
                problems.push(format!(
                    "detectors.dns_exfiltration.{key} must be at most 63 (the DNS label limit), got {value}"
                ));
            }
        }
        if !(1.0..=10.0).contains(&self.short_tunnel_severity) {
            problems.push(format!(
                "detectors.dns_exfiltration.short_tunnel_severity must be in [1, 10], got {}",
                self.short_tunnel_severity
            ));
        }
    }

    /// The shortest label that is a tunnel sign on its own.
    fn sign_label_len(&self) -> u32 {
        self.min_max_label_len
            .get()
            .min(self.short_tunnel_min_label_len.get())
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
fn default_short_tunnel_min_names() -> NonZeroU32 {
    // A dnscat2 or iodine handshake alone is about a dozen distinct names.
    NonZeroU32::new(8).unwrap_or(NonZeroU32::MIN)
}
fn default_short_tunnel_min_label_len() -> NonZeroU32 {
    // dnscat2's shortest chunk is a 34-character hex label; readable SPF/DKIM labels are shorter.
    NonZeroU32::new(24).unwrap_or(NonZeroU32::MIN)
}
fn default_short_tunnel_severity() -> f64 {
    5.0
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

/// Whether one label looks like encoded data rather than a word or a host name: at least
/// [`ENCODED_MIN_LABEL`] bytes and either hex with digits and letters mixed, base32/base36-like
/// (letters and digits, no hyphen, at least one digit in ten bytes), or bytes outside
/// letters/digits/hyphen/underscore (raw binary, as iodine's raw mode sends).
pub fn looks_encoded(label: &str) -> bool {
    let b = label.as_bytes();
    if b.len() < ENCODED_MIN_LABEL {
        return false;
    }
    if b.iter()
        .any(|c| !(c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_'))
    {
        return true;
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    if digits == 0 || letters == 0 {
        return false;
    }
    let hex = b.iter().all(|c| c.is_ascii_hexdigit());
    hex || (digits + letters == b.len() && digits * 10 >= b.len())
}

/// Whether any label of `name` left of `zone`'s labels looks encoded.
fn name_looks_encoded(name: &str) -> bool {
    name.split('.').any(looks_encoded)
}

fn count_types(d: &DnsSummary, types: &[&str]) -> u64 {
    d.queries_by_type
        .iter()
        .filter(|t| types.iter().any(|n| n.eq_ignore_ascii_case(&t.qtype)))
        .fold(0u64, |n, t| n.saturating_add(t.count))
}

type Key = (String, String, String);

#[derive(Debug, Default)]
struct Zone {
    queries: u64,
    tunnel_type_queries: u64,
    null_queries: u64,
    distinct_names: u64,
    max_label_len: u32,
    weighted_entropy: f64,
    weighted_label_len: f64,
    examples_seen: u64,
    examples_encoded: u64,
    /// Whether the short-tunnel rule already reported this window.
    short_reported: bool,
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

    fn tunnel_type_share(&self) -> f64 {
        if self.queries == 0 {
            0.0
        } else {
            self.tunnel_type_queries as f64 / self.queries as f64
        }
    }
}

/// Looks for tunnel-shaped names per zone.
#[derive(Debug)]
pub struct DnsExfiltrationDetector {
    config: DnsExfiltrationConfig,
    table: WindowTable<Key, Zone>,
    signed: u64,
}

impl DnsExfiltrationDetector {
    /// A detector with `config`.
    pub fn new(config: DnsExfiltrationConfig) -> Self {
        let window_ms = i64::from(config.window_secs.get()) * 1000;
        Self {
            table: WindowTable::new(config.max_keys, window_ms),
            config,
            signed: 0,
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
        let share = z.tunnel_type_share();
        if share >= c.min_tunnel_type_share {
            out.push(ThresholdCrossed {
                key: "detectors.dns_exfiltration.min_tunnel_type_share".into(),
                limit: c.min_tunnel_type_share,
                observed: share,
            });
        }
        out
    }

    /// The volume rule's thresholds, when it holds.
    fn volume(c: &DnsExfiltrationConfig, z: &Zone) -> Option<Vec<ThresholdCrossed>> {
        let min = c.min_distinct_names.get();
        if z.distinct_names < u64::from(min) {
            return None;
        }
        let mut thresholds = Self::crossed(c, z);
        if thresholds.is_empty() {
            return None;
        }
        thresholds.insert(
            0,
            ThresholdCrossed {
                key: "detectors.dns_exfiltration.min_distinct_names".into(),
                limit: f64::from(min),
                observed: z.distinct_names as f64,
            },
        );
        Some(thresholds)
    }

    /// The short-tunnel rule's thresholds and why the names look like data, when it holds.
    fn short_tunnel(
        c: &DnsExfiltrationConfig,
        z: &Zone,
    ) -> Option<(Vec<ThresholdCrossed>, String)> {
        let min = c.short_tunnel_min_names.get();
        let share = z.tunnel_type_share();
        let label = c.short_tunnel_min_label_len.get();
        if z.distinct_names < u64::from(min)
            || share < c.min_tunnel_type_share
            || z.max_label_len < label
        {
            return None;
        }
        let encoded_majority = z.examples_seen > 0 && z.examples_encoded * 2 >= z.examples_seen;
        let why = if z.null_queries > 0 {
            format!(
                "{} NULL queries, a type nothing ordinary asks for",
                z.null_queries
            )
        } else if encoded_majority {
            format!(
                "{} of {} example names carry an encoded (hex/base32/binary) label",
                z.examples_encoded, z.examples_seen
            )
        } else {
            return None;
        };
        let thresholds = vec![
            ThresholdCrossed {
                key: "detectors.dns_exfiltration.short_tunnel_min_names".into(),
                limit: f64::from(min),
                observed: z.distinct_names as f64,
            },
            ThresholdCrossed {
                key: "detectors.dns_exfiltration.min_tunnel_type_share".into(),
                limit: c.min_tunnel_type_share,
                observed: share,
            },
            ThresholdCrossed {
                key: "detectors.dns_exfiltration.short_tunnel_min_label_len".into(),
                limit: f64::from(label),
                observed: f64::from(z.max_label_len),
            },
        ];
        Some((thresholds, why))
    }

    /// Whether `d` carries any tunnel sign; the others never reach the window table.
    fn has_sign(&self, d: &DnsSummary) -> bool {
        d.max_label_len >= self.config.sign_label_len()
            || (d.mean_label_entropy.is_finite()
                && d.mean_label_entropy >= self.config.min_mean_entropy)
            || count_types(d, &TUNNEL_TYPES) > 0
    }
}

impl Detector for DnsExfiltrationDetector {
    fn name(&self) -> &'static str {
        "dns_exfiltration"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Dns]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Some((source, d)) = summary::dns(event) else {
            return;
        };
        if d.queries == 0 || !self.has_sign(d) {
            return;
        }
        self.signed += 1;
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
        z.tunnel_type_queries = z
            .tunnel_type_queries
            .saturating_add(count_types(d, &TUNNEL_TYPES));
        z.null_queries = z.null_queries.saturating_add(count_types(d, &NULL_TYPES));
        z.distinct_names = z.distinct_names.saturating_add(d.distinct_names);
        z.max_label_len = z.max_label_len.max(d.max_label_len);
        // Non-finite values from a confused agent would poison the mean; skip them.
        if d.mean_label_entropy.is_finite() && d.mean_label_len.is_finite() {
            z.weighted_entropy += d.mean_label_entropy * d.queries as f64;
            z.weighted_label_len += d.mean_label_len * d.queries as f64;
        }
        for n in &d.example_names {
            z.examples_seen += 1;
            z.examples_encoded += u64::from(name_looks_encoded(n));
            keep_example(&mut z.names, MAX_EXAMPLES, || n.clone());
        }
        keep_example(&mut z.records, MAX_EXAMPLES, || d.clone());
        // The volume rule reports once per window; a short tunnel reports once before that,
        // and a window that goes on to cross the volume rule escalates to it.
        if w.fired {
            return;
        }
        let (thresholds, severity, why) = if let Some(t) = Self::volume(&self.config, z) {
            w.fired = true;
            (t, None, None)
        } else if z.short_reported {
            return;
        } else if let Some((t, why)) = Self::short_tunnel(&self.config, z) {
            z.short_reported = true;
            (t, Some(self.config.short_tunnel_severity), Some(why))
        } else {
            return;
        };
        // A short-tunnel report keeps its examples for a later volume report.
        let (example_names, dns) = if w.fired {
            (std::mem::take(&mut z.names), std::mem::take(&mut z.records))
        } else {
            (z.names.clone(), z.records.clone())
        };
        let grouped = (zone != d.registered_domain.to_ascii_lowercase())
            .then(|| format!("names have no registrable domain; grouped as {zone}"));
        let note = match (why, grouped) {
            (Some(w), Some(g)) => Some(format!("short tunnel: {w}; {g}")),
            (Some(w), None) => Some(format!("short tunnel: {w}")),
            (None, g) => g,
        };
        let evidence = BehaviourEvidence {
            detector: "dns_exfiltration".to_owned(),
            window_ms,
            thresholds,
            example_names,
            flows: Vec::new(),
            dns,
            note,
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::TrojanDnsDataExfiltration,
                source,
                local_addr: &d.client_addr,
                role: ResourceRole::Actor,
                activity: summary::dns_activity(&zone),
                at_ms: at,
                severity,
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
        self.table.counters(&[("signed_summaries", self.signed)])
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

    /// One summary of `names` distinct queries of `types` under `domain`, shaped like a short
    /// tunnel session (the dnscat2 capture: 12 MX/TXT/CNAME queries for 34-character hex labels).
    fn short(client: &str, domain: &str, types: &[(&str, u64)], examples: &[&str]) -> Event {
        let queries: u64 = types.iter().map(|(_, n)| n).sum();
        let mut d = dns(client, domain, queries, T0);
        d.distinct_names = queries;
        d.queries_by_type = types
            .iter()
            .map(|(t, n)| TypeCount {
                qtype: (*t).into(),
                count: *n,
            })
            .collect();
        d.max_label_len = examples
            .iter()
            .flat_map(|n| n.split('.'))
            .map(|l| l.len() as u32)
            .max()
            .unwrap_or(0);
        d.mean_label_len = f64::from(d.max_label_len);
        d.mean_label_entropy = 3.6;
        d.example_names = examples.iter().map(|n| (*n).to_owned()).collect();
        dns_event(d)
    }

    const DNSCAT: [&str; 4] = [
        "147901b8d3df9cc46c59d600078b3316ce.biillpi.com",
        "504d01b8d3d714495f7e54000838b18a3b.biillpi.com",
        "bc4401b8d36101a30d1ca10009904e7bf9.biillpi.com",
        "58b501b8d376560d9c0db8000a3f44acb9.biillpi.com",
    ];

    fn band(o: &Observation) -> crate::findings::types::SeverityBand {
        crate::findings::types::SeverityBand::of(
            o.severity.unwrap_or(o.finding_type.default_severity()),
        )
    }

    #[test]
    fn a_dozen_hex_names_over_mx_txt_cname_is_a_short_tunnel_at_medium_over_ipv4_and_ipv6() {
        use crate::findings::types::SeverityBand;
        for client in ["192.168.1.17", "2001:db8::17"] {
            let out = run(
                &mut detector(),
                [short(
                    client,
                    "biillpi.com",
                    &[("MX", 6), ("TXT", 5), ("CNAME", 1)],
                    &DNSCAT,
                )],
            );
            assert_eq!(out.len(), 1, "{client}");
            assert_eq!(out[0].finding_type, FindingType::TrojanDnsDataExfiltration);
            assert_eq!(band(&out[0]), SeverityBand::Medium);
            assert_eq!(out[0].activity.remote(), "biillpi.com");
            let EvidenceDetail::Behaviour(ev) = &out[0].evidence else {
                panic!("expected behaviour evidence");
            };
            assert!(
                ev.note.as_deref().is_some_and(|n| n.contains("4 of 4")),
                "{:?}",
                ev.note
            );
        }
    }

    #[test]
    fn null_queries_make_a_short_tunnel_even_when_most_example_labels_are_short() {
        // iodine's handshake: NULL queries, mostly short labels, one long chunk.
        let out = run(
            &mut detector(),
            [short(
                "192.168.1.17",
                "biillpi.com",
                &[("NULL", 12)],
                &[
                    "yrb0pe.t1.biillpi.com",
                    "vaaaakaxj2u.t1.biillpi.com",
                    "laczi1dwmfbaywb0fm5xhkrgz0heotzq.t1.biillpi.com",
                    "yrb0ph.t1.biillpi.com",
                ],
            )],
        );
        assert_eq!(out.len(), 1);
        let EvidenceDetail::Behaviour(ev) = &out[0].evidence else {
            panic!("expected behaviour evidence");
        };
        assert!(ev.note.as_deref().is_some_and(|n| n.contains("NULL")));
    }

    #[test]
    fn a_mail_servers_readable_txt_lookups_or_too_few_tunnel_names_are_not_a_short_tunnel() {
        let mut d = detector();
        // DKIM/DMARC lookups: TXT, long-ish but readable labels, no NULL.
        let dkim = [
            "selector1-contoso-mail-com._domainkey.contoso.example",
            "selector2-contoso-mail-com._domainkey.contoso.example",
            "_dmarc.contoso.example",
            "contoso.example",
        ];
        assert!(
            run(
                &mut d,
                [short("10.0.0.25", "contoso.example", &[("TXT", 12)], &dkim)]
            )
            .is_empty()
        );
        // Seven hex names: below short_tunnel_min_names.
        assert!(
            run(
                &mut d,
                [short("2001:db8::17", "biillpi.com", &[("TXT", 7)], &DNSCAT)]
            )
            .is_empty()
        );
        // Hex names asked as A records: not a tunnel-type mix.
        assert!(
            run(
                &mut d,
                [short("10.0.0.17", "cdn.example", &[("A", 12)], &DNSCAT)]
            )
            .is_empty()
        );
    }

    #[test]
    fn a_short_tunnel_that_grows_escalates_to_the_volume_rule_once() {
        let mut d = detector();
        let mut events: Vec<Event> = (0..5)
            .map(|_| short("10.0.0.17", "biillpi.com", &[("TXT", 10)], &DNSCAT))
            .collect();
        events.push(short("10.0.0.17", "biillpi.com", &[("TXT", 10)], &DNSCAT));
        let out = run(&mut d, events);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].severity, Some(5.0));
        assert_eq!(out[1].severity, None, "volume keeps the type's High");
    }

    #[test]
    fn encoded_labels_are_told_from_words_and_host_names() {
        for l in [
            "147901b8d3df9cc46c59d600078b3316ce",
            "laczi1dwmfbaywb0fm5xhkrgz0heotzq",
            "z0pmaA\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        ] {
            assert!(looks_encoded(l), "{l}");
        }
        for l in [
            "selector1-contoso-mail-com",
            "authenticationservice",
            "deadbeefcafebabe",
            "1234567890123456",
            "abc123",
        ] {
            assert!(!looks_encoded(l), "{l}");
        }
    }

    #[test]
    fn summaries_without_any_tunnel_sign_never_reach_the_window_table() {
        let mut d = detector();
        let events = (0..100).map(|i| {
            let mut s = dns("10.0.0.5", &format!("site{i}.example"), 3, T0);
            s.queries_by_type = vec![TypeCount {
                qtype: "A".into(),
                count: 3,
            }];
            dns_event(s)
        });
        assert!(run(&mut d, events).is_empty());
        assert_eq!(d.table.len(), 0);
        assert_eq!(
            crate::detectors::testing::counter(&d, "signed_summaries"),
            Some(0)
        );
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
        let mut problems = Vec::new();
        DnsExfiltrationConfig {
            short_tunnel_min_label_len: NonZeroU32::new(64).expect("64"),
            short_tunnel_severity: 11.0,
            ..DnsExfiltrationConfig::default()
        }
        .check(&mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("short_tunnel_min_label_len"));
        assert!(problems[1].contains("short_tunnel_severity"));
    }
}
