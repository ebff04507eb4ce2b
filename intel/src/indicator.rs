//! Parsed indicators and the per-line problems found while loading a list.

use crate::category::{Category, IndicatorKind, ListKind};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt;

/// The value of an indicator: a network (a single address is a /32 or /128) or a domain name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IndicatorValue {
    /// An address or network, host bits already masked off.
    Net(IpNet),
    /// A normalised domain name (lower-case IDNA ASCII, no trailing dot).
    Domain(String),
}

impl IndicatorValue {
    /// The shape of this value, as statistics count it.
    pub fn kind(&self) -> IndicatorKind {
        match self {
            IndicatorValue::Net(IpNet::V4(n)) if n.prefix_len() == 32 => IndicatorKind::Ipv4,
            IndicatorValue::Net(IpNet::V6(n)) if n.prefix_len() == 128 => IndicatorKind::Ipv6,
            IndicatorValue::Net(_) => IndicatorKind::Cidr,
            IndicatorValue::Domain(_) => IndicatorKind::Domain,
        }
    }
}

impl fmt::Display for IndicatorValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndicatorValue::Net(n) if n.prefix_len() == n.max_prefix_len() => n.addr().fmt(f),
            IndicatorValue::Net(n) => n.fmt(f),
            IndicatorValue::Domain(d) => f.write_str(d),
        }
    }
}

/// One indicator loaded from a list, with the metadata a finding reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    /// What to match.
    pub value: IndicatorValue,
    /// What kind of threat (or trust) it stands for.
    pub category: Category,
    /// Who reported it (a feed name from the file, or the list's source).
    pub source: String,
    /// Free-text description from the feed; may be empty.
    pub description: String,
    /// The 1-based line it came from (0 for built-in lists).
    pub line: u32,
}

/// Why a line was rejected or ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineProblem {
    /// Occurs when a line is not valid UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// Occurs when a value is neither an IP address, a CIDR nor a domain name.
    #[error("`{value}` is not an IP address, CIDR or domain name")]
    NotAnIndicator {
        /// The offending text.
        value: String,
    },
    /// Occurs when a value that should be an address or network is not one.
    #[error("`{value}` is not an IP address or CIDR")]
    BadAddress {
        /// The offending text.
        value: String,
    },
    /// Occurs when a value that should be a domain name is not a usable one.
    #[error("`{value}` is not a usable domain name: {why}")]
    BadDomain {
        /// The offending text.
        value: String,
        /// What is wrong with it.
        why: crate::domain::DomainError,
    },
    /// Occurs when a network is so broad that listing it would flag a large part of the internet.
    #[error("`{value}` is broader than /{min} and would match too much")]
    TooBroad {
        /// The offending network.
        value: String,
        /// The shortest prefix accepted for its family.
        min: u8,
    },
    /// Occurs when a required field is missing or empty.
    #[error("missing field `{field}`")]
    MissingField {
        /// The field's name.
        field: &'static str,
    },
    /// Occurs when a numeric field does not hold a number in range.
    #[error("field `{field}` is `{value}`, expected {expected}")]
    BadNumber {
        /// The field's name.
        field: &'static str,
        /// The offending text.
        value: String,
        /// What was expected, e.g. `an integer 0..=127`.
        expected: &'static str,
    },
    /// Occurs when an iprep line names a category id the categories file does not define.
    #[error("category id {id} is not in the categories file")]
    UnknownCategory {
        /// The unknown id.
        id: u32,
    },
    /// Occurs when a DShield line's start, end and prefix length disagree.
    #[error("range {start}-{end} is not the /{prefix} it claims")]
    RangeMismatch {
        /// The start address as written.
        start: String,
        /// The end address as written.
        end: String,
        /// The prefix length as written.
        prefix: u8,
    },
    /// Occurs when a STIX pattern cannot be understood.
    #[error("cannot read STIX pattern `{pattern}`: {why}")]
    BadPattern {
        /// The pattern (cut to 120 characters).
        pattern: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Occurs when a Zeek intel data line comes before its `#fields` header.
    #[error("data line before the `#fields` header")]
    NoFieldsHeader,
    /// Occurs when a CSV record cannot be read.
    #[error("unreadable CSV record: {message}")]
    Csv {
        /// The CSV reader's message.
        message: String,
    },
    /// Occurs when a list grows past the entry cap; the rest of the file is not loaded.
    #[error("list exceeds {cap} entries; the rest is not loaded")]
    TooManyEntries {
        /// The cap in force.
        cap: usize,
    },
    /// Occurs when a threat list names a special-purpose address (a warning: the entry is ignored).
    #[error("`{value}` is in the {range} range and is ignored")]
    Reserved {
        /// The entry as parsed.
        value: String,
        /// The special-purpose range's name.
        range: &'static str,
    },
}

/// A problem on one line of one file, shown as `file:line: why`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct LineIssue {
    /// The file (or list) name as given to the parser.
    pub file: String,
    /// The 1-based line number.
    pub line: u32,
    /// What was wrong.
    pub problem: LineProblem,
}

/// Most distinct skipped-type names kept per list; the rest are counted under `other`.
///
/// The names come from the file, so without a cap a hostile file could grow the map at will.
pub const MAX_SKIPPED_KINDS: usize = 64;

/// Everything one list file yielded: indicators, rejected lines, ignored lines and skipped types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedList {
    /// The list's name (shown in findings).
    pub name: String,
    /// Threat or trusted.
    pub kind: ListKind,
    /// The indicators loaded, in file order.
    pub indicators: Vec<Indicator>,
    /// Lines that could not be loaded, with why.
    pub rejected: Vec<LineIssue>,
    /// Entries dropped on purpose (special-purpose addresses on threat lists), with why.
    pub ignored: Vec<LineIssue>,
    /// Indicators of types the matcher does not use (file hashes, URLs, e-mail), counted by type.
    pub skipped: BTreeMap<String, u64>,
}

impl ParsedList {
    /// An empty list named `name`.
    pub fn new(name: impl Into<String>, kind: ListKind) -> Self {
        ParsedList {
            name: name.into(),
            kind,
            indicators: Vec::new(),
            rejected: Vec::new(),
            ignored: Vec::new(),
            skipped: BTreeMap::new(),
        }
    }

    /// How many indicators were skipped as unsupported types, over all types.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Counts one skipped indicator of type `what`, folding new types into `other` past the cap.
    pub fn count_skipped(&mut self, what: &str) {
        if let Some(n) = self.skipped.get_mut(what) {
            *n += 1;
        } else if self.skipped.len() < MAX_SKIPPED_KINDS {
            self.skipped.insert(what.to_owned(), 1);
        } else {
            *self.skipped.entry("other".to_owned()).or_insert(0) += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_issue_displays_as_file_colon_line_colon_why() {
        let issue = LineIssue {
            file: "feeds/c2.txt".into(),
            line: 7,
            problem: LineProblem::NotAnIndicator {
                value: "not a thing".into(),
            },
        };
        assert_eq!(
            issue.to_string(),
            "feeds/c2.txt:7: `not a thing` is not an IP address, CIDR or domain name"
        );
    }

    #[test]
    fn kinds_tell_single_addresses_from_networks() {
        let v = |s: &str| IndicatorValue::Net(s.parse().expect("net"));
        assert_eq!(v("1.2.3.4/32").kind(), IndicatorKind::Ipv4);
        assert_eq!(v("1.2.3.0/24").kind(), IndicatorKind::Cidr);
        assert_eq!(v("2001:4860::1/128").kind(), IndicatorKind::Ipv6);
        assert_eq!(
            IndicatorValue::Domain("a.com".into()).kind(),
            IndicatorKind::Domain
        );
        assert_eq!(v("1.2.3.4/32").to_string(), "1.2.3.4");
        assert_eq!(v("1.2.3.0/24").to_string(), "1.2.3.0/24");
    }

    #[test]
    fn skipped_type_names_are_capped() {
        let mut list = ParsedList::new("l", ListKind::Threat);
        for i in 0..(MAX_SKIPPED_KINDS + 10) {
            list.count_skipped(&format!("type{i}"));
        }
        list.count_skipped("type0");
        assert_eq!(list.skipped.len(), MAX_SKIPPED_KINDS + 1);
        assert_eq!(list.skipped.get("other"), Some(&10));
        assert_eq!(list.skipped.get("type0"), Some(&2));
        assert_eq!(list.skipped_total(), (MAX_SKIPPED_KINDS + 11) as u64);
    }
}
