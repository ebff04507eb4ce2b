//! `Trojan:EC2/DGADomainRequest.B`: bursts of random-looking domains that mostly do not exist,
//! as malware walking a domain generation algorithm queries them.
//!
//! Input: DNS summaries. A registered domain counts when it got NXDOMAIN and its
//! second-level label looks random (long enough, high character entropy, few vowels or mixed
//! digits). Distinct such domains are counted per (instance, client) in a tumbling window;
//! the window reports once at `min_domains`.

use std::num::{NonZeroU32, NonZeroUsize};

use picket_proto::v1::DnsSummary;
use serde::Deserialize;

use super::summary::{self, MAX_EXAMPLES};
use super::window::{DistinctSet, WindowTable, keep_example};
use super::{
    BehaviourEvidence, Detector, DetectorCounter, Event, EventFacts, EventKind, Observation,
    ResourceRole, ThresholdCrossed,
};
use crate::findings::types::FindingType;

/// Distinct domains kept per client; far above any sensible `min_domains`.
const DOMAIN_CAP: usize = 1024;

/// `[detectors.dga]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DgaConfig {
    /// Distinct random-looking NXDOMAIN domains from one client within a window.
    #[serde(default = "default_min_domains")]
    pub min_domains: NonZeroU32,
    /// Shortest second-level label judged at all.
    #[serde(default = "default_min_label_len")]
    pub min_label_len: NonZeroU32,
    /// Character entropy (bits) from which a label looks random.
    #[serde(default = "default_min_entropy")]
    pub min_entropy: f64,
    /// Window length in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: NonZeroU32,
    /// Clients tracked at once; the least recently seen is evicted beyond this.
    #[serde(default = "super::default_max_keys")]
    pub max_keys: NonZeroUsize,
}

impl Default for DgaConfig {
    fn default() -> Self {
        Self {
            min_domains: default_min_domains(),
            min_label_len: default_min_label_len(),
            min_entropy: default_min_entropy(),
            window_secs: default_window_secs(),
            max_keys: super::default_max_keys(),
        }
    }
}

impl DgaConfig {
    /// Pushes every out-of-range value onto `problems`.
    pub fn check(&self, problems: &mut Vec<String>) {
        if !(self.min_entropy > 0.0 && self.min_entropy <= 6.0) {
            problems.push(format!(
                "detectors.dga.min_entropy must be in (0, 6] bits, got {}",
                self.min_entropy
            ));
        }
    }
}

fn default_min_domains() -> NonZeroU32 {
    NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN)
}
fn default_min_label_len() -> NonZeroU32 {
    NonZeroU32::new(8).unwrap_or(NonZeroU32::MIN)
}
fn default_min_entropy() -> f64 {
    // Dictionary words of 8–12 letters measure about 2.5–3.1 bits; random letters 3.2 and up.
    3.1
}
fn default_window_secs() -> NonZeroU32 {
    NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN)
}

/// Shannon entropy of `s`'s bytes, in bits per byte.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    if n == 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether the second-level label of `domain` looks machine-generated under `c`.
pub fn looks_random(domain: &str, c: &DgaConfig) -> bool {
    let label = domain.split('.').next().unwrap_or("").to_ascii_lowercase();
    if label.len() < c.min_label_len.get() as usize || entropy(&label) < c.min_entropy {
        return false;
    }
    let letters = label.bytes().filter(u8::is_ascii_alphabetic).count();
    let vowels = label.bytes().filter(|b| b"aeiouy".contains(b)).count();
    let digits = label.bytes().filter(u8::is_ascii_digit).count();
    // Pronounceable words keep about 40% vowels; generated strings fall well below, or mix
    // digits into letters.
    let few_vowels = letters > 0 && (vowels as f64) < 0.3 * letters as f64;
    let mixed = digits > 0 && letters > 0;
    few_vowels || mixed
}

#[derive(Debug, Default)]
struct Burst {
    domains: DistinctSet<String>,
    names: Vec<String>,
    records: Vec<DnsSummary>,
}

/// Counts random-looking NXDOMAIN domains per client.
#[derive(Debug)]
pub struct DgaDetector {
    config: DgaConfig,
    table: WindowTable<(String, String), Burst>,
}

impl DgaDetector {
    /// A detector with `config`.
    pub fn new(config: DgaConfig) -> Self {
        let window_ms = i64::from(config.window_secs.get()) * 1000;
        Self {
            table: WindowTable::new(config.max_keys, window_ms),
            config,
        }
    }
}

impl Detector for DgaDetector {
    fn name(&self) -> &'static str {
        "dga"
    }

    fn inputs(&self) -> &'static [EventKind] {
        &[EventKind::Dns]
    }

    fn observe(&mut self, event: &Event, _facts: &EventFacts<'_>, out: &mut Vec<Observation>) {
        let Some((source, d)) = summary::dns(event) else {
            return;
        };
        if d.nxdomain == 0 || !looks_random(&d.registered_domain, &self.config) {
            return;
        }
        let at = summary::dns_time(d);
        let key = (source.instance_id.clone(), d.client_addr.clone());
        let min = self.config.min_domains.get();
        let window_ms = i64::from(self.config.window_secs.get()) * 1000;
        let w = self.table.window(key, at);
        w.state
            .domains
            .insert(d.registered_domain.to_ascii_lowercase(), DOMAIN_CAP);
        keep_example(&mut w.state.names, MAX_EXAMPLES, || {
            d.registered_domain.clone()
        });
        keep_example(&mut w.state.records, MAX_EXAMPLES, || d.clone());
        let seen = w.state.domains.len();
        if w.fired || seen < min as usize {
            return;
        }
        w.fired = true;
        let names = std::mem::take(&mut w.state.names);
        // The first domain of the burst names the finding, so one burst is one finding.
        let first = names
            .first()
            .cloned()
            .unwrap_or_else(|| d.registered_domain.clone());
        let evidence = BehaviourEvidence {
            detector: "dga".to_owned(),
            window_ms,
            thresholds: vec![ThresholdCrossed {
                key: "detectors.dga.min_domains".into(),
                limit: f64::from(min),
                observed: seen as f64,
            }],
            example_names: names,
            flows: Vec::new(),
            dns: std::mem::take(&mut w.state.records),
            note: None,
        };
        out.push(
            summary::ObservationParts {
                finding_type: FindingType::TrojanDgaDomainRequestB,
                source,
                local_addr: &d.client_addr,
                role: ResourceRole::Actor,
                activity: summary::dns_activity(&first),
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
        self.table.counters(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testing::{T0, dns, dns_event, run};

    const GENERATED: [&str; 12] = [
        "xjwqkpzrtv.com",
        "qzkxvbnmtr.net",
        "k3j9x7w2qp.org",
        "plmkjnhbgv.info",
        "wqxzrtpkls.biz",
        "z8x7c6v5b4.com",
        "mnbvcxzlkj.ru",
        "trwqpzxkvn.top",
        "hgfdsxzqwr.xyz",
        "vbnmqwrtzp.cc",
        "ghjklzxcvb.su",
        "qwrtzpsdfg.cn",
    ];

    fn nx(client: &str, domain: &str) -> Event {
        let mut d = dns(client, domain, 1, T0);
        d.nxdomain = 1;
        d.responses = 1;
        dns_event(d)
    }

    #[test]
    fn generated_labels_look_random_and_words_do_not() {
        let c = DgaConfig::default();
        for d in GENERATED {
            assert!(
                looks_random(d, &c),
                "{d}: {}",
                entropy(d.split('.').next().unwrap_or(""))
            );
        }
        for d in [
            "microsoft.com",
            "wikipedia.org",
            "amazonaws.com",
            "goooogle.com",
            "internal",
        ] {
            assert!(!looks_random(d, &c), "{d}");
        }
    }

    #[test]
    fn ten_random_nxdomains_from_an_ipv4_client_are_a_dga_burst() {
        let out = run(
            &mut DgaDetector::new(DgaConfig::default()),
            GENERATED.iter().map(|d| nx("10.0.0.5", d)),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].finding_type, FindingType::TrojanDgaDomainRequestB);
        assert_eq!(out[0].activity.remote(), GENERATED[0]);
    }

    #[test]
    fn an_ipv6_client_counts_the_same_way_and_nine_is_a_near_miss() {
        let mut d = DgaDetector::new(DgaConfig::default());
        assert!(run(&mut d, GENERATED[..9].iter().map(|g| nx("2001:db8::5", g))).is_empty());
        assert_eq!(run(&mut d, [nx("2001:db8::5", GENERATED[9])]).len(), 1);
    }

    #[test]
    fn random_names_that_resolve_or_nxdomain_for_words_are_not_dga() {
        let mut d = DgaDetector::new(DgaConfig::default());
        let resolved = GENERATED
            .iter()
            .map(|g| dns_event(dns("10.0.0.5", g, 1, T0)));
        assert!(run(&mut d, resolved).is_empty());
        let typos = [
            "gooogle.com",
            "amazn.com",
            "wikipedai.org",
            "micosoft.com",
            "faceboook.com",
        ];
        assert!(
            run(
                &mut d,
                typos.iter().cycle().take(20).map(|t| nx("10.0.0.5", t))
            )
            .is_empty()
        );
    }

    #[test]
    fn min_domains_from_config_is_honoured() {
        let mut d = DgaDetector::new(DgaConfig {
            min_domains: NonZeroU32::new(3).expect("3"),
            ..DgaConfig::default()
        });
        assert_eq!(
            run(&mut d, GENERATED[..3].iter().map(|g| nx("10.0.0.5", g))).len(),
            1
        );
    }
}
