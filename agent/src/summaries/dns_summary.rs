//! DNS summaries: one interval's DNS transactions folded per (client address, registered
//! domain) into `DnsSummary` records, with the name-shape features tunnelling and DGA
//! detectors read (label lengths, entropy, distinct names, NXDOMAIN, query types).
//!
//! Label features are computed over the part of the name left of the registered domain (the
//! labels a tunnel or a DGA fills); a query for the registered domain itself uses its first
//! label. Entropy is Shannon entropy, in bits per character, of that part's characters
//! without the dots, averaged over queries.
//!
//! Bounds: at most `max_summaries` keys per interval (transactions for further keys are
//! counted in [`DnsSummaryStats::overflow`]); `distinct_names` counts exactly up to
//! [`MAX_DISTINCT_NAMES`] and saturates there; at most [`MAX_QUERY_TYPES`] query types (the
//! rest count under `"OTHER"`), [`MAX_EXAMPLE_NAMES`] examples, [`MAX_ANSWERS`] distinct
//! answers and [`MAX_RESOLVERS`] resolvers per summary.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use picket_proto::v1::{DnsAnswer as WireAnswer, DnsSummary, Record, TypeCount, record};

use super::addr_text::addr_text;
use super::interval::Interval;
use super::{Aggregates, bounded_entry};
use crate::dns::{AnswerData, DnsTransaction, record_type_name};

/// Distinct names counted exactly per summary; past this `distinct_names` stays at the cap.
pub const MAX_DISTINCT_NAMES: usize = 1024;
/// Query types counted separately per summary.
pub const MAX_QUERY_TYPES: usize = 8;
/// Example names kept per summary.
pub const MAX_EXAMPLE_NAMES: usize = 4;
/// Distinct answers kept per summary.
pub const MAX_ANSWERS: usize = 8;
/// Resolvers kept per summary.
pub const MAX_RESOLVERS: usize = 4;

// The examples double as the first distinct names (see `Aggregate::names`).
const _: () = assert!(MAX_EXAMPLE_NAMES <= MAX_DISTINCT_NAMES);

/// What bounds the DNS summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsSummaryLimits {
    /// Most summaries per interval.
    pub max_summaries: usize,
}

impl Default for DnsSummaryLimits {
    /// 16 384 (client, domain) pairs per interval.
    fn default() -> Self {
        Self {
            max_summaries: 16_384,
        }
    }
}

/// What the DNS summaries dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DnsSummaryStats {
    /// Transactions not summarised because the interval already had `max_summaries` keys.
    pub overflow: u64,
}

#[derive(Debug, Default)]
struct Aggregate {
    queries: u64,
    by_type: Vec<(u16, u64)>,
    other_types: u64,
    responses: u64,
    nxdomain: u64,
    unanswered: u64,
    /// Distinct names past the examples (which are the first distinct ones), so a summary
    /// with few names allocates no set.
    names: HashSet<Box<str>, foldhash::fast::RandomState>,
    max_label_len: u32,
    max_name_len: u32,
    label_len_sum: f64,
    entropy_sum: f64,
    /// Queries the label features were measured on.
    measured: u64,
    examples: Vec<Box<str>>,
    answers: Vec<WireAnswer>,
    /// Each of `answers`' type number and address, so telling a new answer from one already
    /// kept compares numbers rather than an address's text.
    answer_kinds: Vec<(u16, Option<IpAddr>)>,
    resolvers: Vec<IpAddr>,
    first_seen_ms: u64,
    last_seen_ms: u64,
}

/// One interval's DNS summaries being built.
#[derive(Debug)]
pub struct DnsSummaries {
    limits: DnsSummaryLimits,
    map: Aggregates<(IpAddr, Box<str>), Aggregate>,
    stats: DnsSummaryStats,
}

/// A summary's key borrowed from a transaction, so finding an existing summary copies no
/// name (most transactions are for a domain the interval has already seen).
struct DomainKey<'a>(IpAddr, &'a str);

impl Hash for DomainKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the owned key `(IpAddr, Box<str>)` hashes: the tuple's fields in order.
        (self.0, self.1).hash(state);
    }
}

impl hashbrown::Equivalent<(IpAddr, Box<str>)> for DomainKey<'_> {
    fn equivalent(&self, key: &(IpAddr, Box<str>)) -> bool {
        self.0 == key.0 && self.1 == &*key.1
    }
}

impl DnsSummaries {
    /// Empty summaries within `limits`.
    pub fn new(limits: DnsSummaryLimits) -> Self {
        Self {
            limits,
            map: Aggregates::with_hasher(foldhash::fast::RandomState::default()),
            stats: DnsSummaryStats::default(),
        }
    }

    /// Drops so far.
    pub fn stats(&self) -> DnsSummaryStats {
        self.stats
    }

    /// Summaries being built now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no summary is being built.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Folds one transaction into its (client, registered domain) summary.
    pub fn add(&mut self, tx: &DnsTransaction) {
        let domain = tx.registered_domain();
        let new = || Aggregate {
            first_seen_ms: u64::MAX,
            ..Aggregate::default()
        };
        let Some(agg) = bounded_entry(
            &mut self.map,
            &DomainKey(tx.client.addr, domain),
            || (tx.client.addr, domain.into()),
            self.limits.max_summaries,
            &mut self.stats.overflow,
            new,
        ) else {
            return;
        };
        for ts in [tx.query_ts, tx.response_ts].into_iter().flatten() {
            agg.first_seen_ms = agg.first_seen_ms.min(ts.as_millis());
            agg.last_seen_ms = agg.last_seen_ms.max(ts.as_millis());
        }
        if tx.query_ts.is_some() {
            agg.queries = agg.queries.saturating_add(1);
            count_type(agg, tx.qtype);
            measure_name(agg, &tx.name, domain);
        }
        if tx.response_ts.is_some() {
            agg.responses = agg.responses.saturating_add(1);
        } else {
            agg.unanswered = agg.unanswered.saturating_add(1);
        }
        if tx.is_nxdomain() {
            agg.nxdomain = agg.nxdomain.saturating_add(1);
        }
        // The examples are the first distinct names: only names past them need the set.
        let name = tx.name.as_str();
        if agg.examples.len() + agg.names.len() < MAX_DISTINCT_NAMES
            && !agg.examples.iter().any(|e| **e == *name)
            && !agg.names.contains(name)
        {
            if agg.examples.len() < MAX_EXAMPLE_NAMES {
                agg.examples.push(name.into());
            } else {
                agg.names.insert(name.into());
            }
        }
        if agg.resolvers.len() < MAX_RESOLVERS && !agg.resolvers.contains(&tx.server.addr) {
            agg.resolvers.push(tx.server.addr);
        }
        for answer in &tx.answers {
            if agg.answers.len() >= MAX_ANSWERS {
                break;
            }
            let name = answer.name(&tx.name);
            let seen = agg.answers.iter().zip(&agg.answer_kinds).any(|(a, kind)| {
                a.name == name
                    && kind.0 == answer.rtype
                    && match &answer.data {
                        AnswerData::Addr(addr) => kind.1 == Some(*addr),
                        AnswerData::Text(text) => a.data == *text,
                    }
            });
            if !seen {
                agg.answers.push(WireAnswer {
                    name: name.to_owned(),
                    rtype: record_type_name(answer.rtype).to_owned(),
                    data: answer.data.text().into_owned(),
                    ttl: answer.ttl,
                });
                agg.answer_kinds.push((answer.rtype, answer.addr()));
            }
        }
    }

    /// Emits every summary of `interval`, ordered by (client, domain), and starts the next
    /// interval empty.
    pub fn drain(&mut self, interval: Interval, emit: &mut impl FnMut(Record)) {
        let mut entries: Vec<((IpAddr, Box<str>), Aggregate)> = self.map.drain().collect();
        // Sorted by position: moving whole aggregates about was most of the cost.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            let key = |i: usize| entries.get(i).map(|(k, _)| k);
            key(a).cmp(&key(b))
        });
        for i in order {
            let Some(((client, domain), agg)) = entries.get_mut(i) else {
                continue;
            };
            let agg = std::mem::take(agg);
            emit(Record {
                record: Some(record::Record::Dns(to_summary(
                    interval, *client, domain, agg,
                ))),
            });
        }
    }
}

fn count_type(agg: &mut Aggregate, qtype: u16) {
    if let Some((_, n)) = agg.by_type.iter_mut().find(|(t, _)| *t == qtype) {
        *n = n.saturating_add(1);
    } else if agg.by_type.len() < MAX_QUERY_TYPES {
        agg.by_type.push((qtype, 1));
    } else {
        agg.other_types = agg.other_types.saturating_add(1);
    }
}

/// The labels left of the registered domain, or the domain's first label when there are none.
fn leftmost_part<'a>(name: &'a str, domain: &'a str) -> &'a str {
    let sub = name
        .strip_suffix(domain)
        .and_then(|s| s.strip_suffix('.'))
        .filter(|s| !s.is_empty());
    match sub {
        Some(sub) => sub,
        None => domain.split('.').next().unwrap_or(domain),
    }
}

fn measure_name(agg: &mut Aggregate, name: &str, domain: &str) {
    let part = leftmost_part(name, domain);
    let mut labels = 0_u32;
    let mut label_chars = 0_u64;
    let mut len = 0_u32;
    let mut counts = [0_u32; 256];
    let mut total = 0_u32;
    // The byte values met: the entropy sums only over them, in the same (ascending) order.
    let (mut lowest, mut highest) = (u8::MAX, u8::MIN);
    // Names arrive in presentation form, where a binary label byte reads `\DDD`: lengths and
    // entropy are measured on the wire bytes, so a tunnel's 63-byte label counts 63, not 252.
    for unit in wire_units(part) {
        match unit {
            Unit::Dot => {
                agg.max_label_len = agg.max_label_len.max(len);
                labels = labels.saturating_add(1);
                label_chars = label_chars.saturating_add(u64::from(len));
                len = 0;
            }
            Unit::Byte(b) => {
                len = len.saturating_add(1);
                if let Some(c) = counts.get_mut(usize::from(b)) {
                    *c = c.saturating_add(1);
                }
                total = total.saturating_add(1);
                lowest = lowest.min(b);
                highest = highest.max(b);
            }
        }
    }
    agg.max_label_len = agg.max_label_len.max(len);
    labels = labels.saturating_add(1);
    label_chars = label_chars.saturating_add(u64::from(len));
    agg.max_name_len = agg
        .max_name_len
        .max(u32::try_from(name.len()).unwrap_or(u32::MAX));
    agg.label_len_sum += label_chars as f64 / f64::from(labels);
    let met = counts
        .get(usize::from(lowest)..=usize::from(highest))
        .unwrap_or_default();
    agg.entropy_sum += entropy_of_counts(met, total);
    agg.measured = agg.measured.saturating_add(1);
}

/// One step through a presentation-form name: a label separator or one wire byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Dot,
    Byte(u8),
}

/// The wire bytes and separators of a presentation-form name: `\DDD` is one byte, `\X` is
/// `X` (an escaped dot stays inside its label), an unescaped `.` separates labels.
fn wire_units(text: &str) -> impl Iterator<Item = Unit> + '_ {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *bytes.get(i)?;
        if b == b'.' {
            i += 1;
            return Some(Unit::Dot);
        }
        if b != b'\\' {
            i += 1;
            return Some(Unit::Byte(b));
        }
        let digits = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        if let Some(d) = digits {
            let value = d.iter().fold(0_u32, |v, c| v * 10 + u32::from(c - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                i += 4;
                return Some(Unit::Byte(byte));
            }
        }
        match bytes.get(i + 1) {
            Some(&next) => {
                i += 2;
                Some(Unit::Byte(next))
            }
            None => {
                i += 1;
                Some(Unit::Byte(b))
            }
        }
    })
}

/// Shannon entropy in bits per symbol of the bytes given; 0 for none.
pub fn shannon_entropy(bytes: impl Iterator<Item = u8>) -> f64 {
    let mut counts = [0_u32; 256];
    let mut total = 0_u32;
    for b in bytes {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c = c.saturating_add(1);
        }
        total = total.saturating_add(1);
    }
    entropy_of_counts(&counts, total)
}

/// Shannon entropy in bits per symbol of a byte histogram (or the part of one holding every
/// nonzero count) holding `total` symbols.
fn entropy_of_counts(counts: &[u32], total: u32) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / total;
            -p * p.log2()
        })
        .sum()
}

fn to_summary(interval: Interval, client: IpAddr, domain: &str, agg: Aggregate) -> DnsSummary {
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let measured = agg.measured.max(1) as f64;
    let mut queries_by_type: Vec<TypeCount> = agg
        .by_type
        .iter()
        .map(|(t, n)| TypeCount {
            qtype: record_type_name(*t).to_owned(),
            count: *n,
        })
        .collect();
    if agg.other_types > 0 {
        queries_by_type.push(TypeCount {
            qtype: "OTHER".to_owned(),
            count: agg.other_types,
        });
    }
    let (first, last) = if agg.first_seen_ms == u64::MAX {
        (0, 0)
    } else {
        (agg.first_seen_ms, agg.last_seen_ms)
    };
    DnsSummary {
        interval_start_ms: to_i64(interval.start.as_millis()),
        interval_end_ms: to_i64(interval.end.as_millis()),
        client_addr: addr_text(client),
        registered_domain: domain.to_owned(),
        queries: agg.queries,
        queries_by_type,
        responses: agg.responses,
        nxdomain: agg.nxdomain,
        distinct_names: u64::try_from(agg.examples.len() + agg.names.len()).unwrap_or(u64::MAX),
        max_label_len: agg.max_label_len,
        mean_label_len: agg.label_len_sum / measured,
        mean_label_entropy: agg.entropy_sum / measured,
        example_names: agg.examples.into_iter().map(String::from).collect(),
        answers: agg.answers,
        resolvers: agg.resolvers.iter().map(|r| addr_text(*r)).collect(),
        first_seen_ms: to_i64(first),
        last_seen_ms: to_i64(last),
        unanswered: agg.unanswered,
        max_name_len: agg.max_name_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_is_zero_for_one_symbol_and_grows_with_variety() {
        assert_eq!(shannon_entropy("aaaa".bytes()), 0.0);
        assert_eq!(shannon_entropy("".bytes()), 0.0);
        assert!((shannon_entropy("ab".bytes()) - 1.0).abs() < 1e-9);
        assert!(shannon_entropy("x8f3kq9z".bytes()) > shannon_entropy("wwwwwwww".bytes()));
    }

    #[test]
    fn escaped_presentation_bytes_count_as_one_wire_byte() {
        let units: Vec<Unit> = wire_units(r"a\200b.c\.d\\").collect();
        let expect = [
            Unit::Byte(b'a'),
            Unit::Byte(200),
            Unit::Byte(b'b'),
            Unit::Dot,
            Unit::Byte(b'c'),
            Unit::Byte(b'.'),
            Unit::Byte(b'd'),
            Unit::Byte(b'\\'),
        ];
        assert_eq!(units, expect);
        // A lone trailing backslash is kept as itself, never skipped or read past.
        assert_eq!(wire_units("x\\").count(), 2);

        let mut agg = Aggregate::default();
        let label: String = (0..63_u8).map(|i| format!("\\{:03}", 128 + i)).collect();
        measure_name(&mut agg, &format!("{label}.t.example.com"), "example.com");
        assert_eq!(agg.max_label_len, 63);
        assert!(
            (agg.label_len_sum - 32.0).abs() < 1e-9,
            "{}",
            agg.label_len_sum
        );
        // 63 distinct bytes and one `t`: near log2(64) bits, not the digits' entropy.
        assert!(agg.entropy_sum > 5.9, "{}", agg.entropy_sum);
    }

    proptest::proptest! {
        #[test]
        fn label_entropy_is_bit_for_bit_the_whole_histograms(
            part in proptest::prop_oneof![
                "[a-z0-9-]{0,20}(\\.[a-z0-9-]{1,12}){0,3}",
                r"([a-z]|\\[0-9]{3}|\\.){0,30}",
                proptest::prelude::any::<String>(),
            ]
        ) {
            let name = format!("{part}.example.com");
            let mut agg = Aggregate::default();
            measure_name(&mut agg, &name, "example.com");
            let bytes = wire_units(leftmost_part(&name, "example.com"))
                .filter_map(|u| match u {
                    Unit::Byte(b) => Some(b),
                    Unit::Dot => None,
                });
            // Added to a fresh sum as `measure_name` adds it (which turns a -0.0 into 0.0).
            let whole = 0.0 + shannon_entropy(bytes);
            proptest::prop_assert_eq!(agg.entropy_sum.to_bits(), whole.to_bits());
        }
    }

    #[test]
    fn distinct_names_count_past_the_examples_and_saturate_at_the_cap() {
        let endpoint = |addr: &str, port| crate::flow_table::Endpoint {
            addr: addr.parse().expect("address"),
            port,
        };
        let query = |name: String| DnsTransaction {
            client: endpoint("10.0.0.5", 40000),
            server: endpoint("10.0.0.2", 53),
            protocol: 17,
            id: 1,
            name,
            qtype: 1,
            query_ts: Some(crate::capture::Timestamp(1_000_000)),
            response_ts: None,
            rcode: None,
            answers: Default::default(),
        };
        let mut summaries = DnsSummaries::new(DnsSummaryLimits::default());
        // Six distinct names, each asked twice, the repeats after all of them.
        for round in 0..2 {
            for i in 0..6 {
                summaries.add(&query(format!("n{i}.example.com")));
            }
            assert_eq!(summaries.len(), 1, "round {round}");
        }
        let mut records = Vec::new();
        let interval = Interval {
            start: crate::capture::Timestamp(0),
            end: crate::capture::Timestamp(60_000_000_000),
        };
        summaries.drain(interval, &mut |r| records.push(r));
        let Some(Record {
            record: Some(record::Record::Dns(summary)),
        }) = records.pop()
        else {
            panic!("one DNS summary, got {records:?}");
        };
        assert_eq!(summary.queries, 12);
        assert_eq!(summary.distinct_names, 6);
        assert_eq!(
            summary.example_names,
            [
                "n0.example.com",
                "n1.example.com",
                "n2.example.com",
                "n3.example.com"
            ]
        );

        for i in 0..MAX_DISTINCT_NAMES + 10 {
            summaries.add(&query(format!("m{i}.example.com")));
        }
        summaries.drain(interval, &mut |r| records.push(r));
        let Some(Record {
            record: Some(record::Record::Dns(summary)),
        }) = records.pop()
        else {
            panic!("one DNS summary");
        };
        assert_eq!(summary.distinct_names, MAX_DISTINCT_NAMES as u64);
    }

    #[test]
    fn label_features_look_left_of_the_registered_domain() {
        assert_eq!(
            leftmost_part("a1b2.t1.biillpi.com", "biillpi.com"),
            "a1b2.t1"
        );
        assert_eq!(leftmost_part("example.com", "example.com"), "example");
        assert_eq!(leftmost_part("localhost", "localhost"), "localhost");
        assert_eq!(leftmost_part("", ""), "");
    }
}
