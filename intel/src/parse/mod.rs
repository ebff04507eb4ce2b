//! Parsers for every supported list format, behind one entry point, [`parse_list`].
//!
//! Each parser reads the whole file, loads every entry it can and records each bad line as a
//! [`LineIssue`] (`file:line: why`) instead of stopping; only a file that cannot be read at all
//! (a STIX file that is not JSON) is an error.

mod alienvault;
mod csv_records;
mod dshield;
mod fireeye;
mod lines;
mod otx;
mod plain;
mod proofpoint;
mod spamhaus;
mod stix;
mod suricata;
mod zeek;

pub use suricata::{SuricataCategories, SuricataCategory};

use crate::category::{Category, ListKind};
use crate::domain;
use crate::format::ListFormat;
use crate::indicator::{Indicator, IndicatorValue, LineIssue, LineProblem, ParsedList};
use crate::reserved;
use ipnet::IpNet;
use std::net::IpAddr;

/// Default cap on entries per list: GuardDuty allows 250,000 per threat list; this leaves room for
/// large open feeds while still bounding memory on a hostile or broken file.
pub const DEFAULT_MAX_ENTRIES: usize = 5_000_000;

/// Shortest IPv4 prefix accepted: anything broader covers a sizeable share of the internet.
pub const MIN_PREFIX_V4: u8 = 8;
/// Shortest IPv6 prefix accepted.
pub const MIN_PREFIX_V6: u8 = 16;

/// How to read one list file.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// The list's name, shown in findings.
    pub name: String,
    /// Threat or trusted.
    pub kind: ListKind,
    /// The file format; `None` detects it from the content.
    pub format: Option<ListFormat>,
    /// Category for entries whose line does not name a recognisable one.
    pub category: Category,
    /// Source for entries whose line does not name one.
    pub source: String,
    /// Whether a URL indicator contributes its host. Off by default: a URL names one resource on
    /// a host that may be shared (a phishing page on a big hosting domain), so listing the whole
    /// host would flag innocent traffic.
    pub url_hosts: bool,
    /// Most entries loaded from the file; the rest is reported and dropped.
    pub max_entries: usize,
    /// Category definitions for Suricata iprep lists.
    pub suricata_categories: Option<SuricataCategories>,
}

impl ListOptions {
    /// Options for a list called `name`: detected format, category `custom`, source = name.
    pub fn new(name: impl Into<String>, kind: ListKind) -> Self {
        let name = name.into();
        ListOptions {
            source: name.clone(),
            name,
            kind,
            format: None,
            category: Category::Custom,
            url_hosts: false,
            max_entries: DEFAULT_MAX_ENTRIES,
            suricata_categories: None,
        }
    }

    /// Sets the format (builder style).
    pub fn format(mut self, format: ListFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Sets the default category (builder style).
    pub fn category(mut self, category: Category) -> Self {
        self.category = category;
        self
    }
}

/// Why a whole file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Occurs when no format was given and the content is empty or binary.
    #[error("{file}: cannot detect the list format (empty or binary content)")]
    Undetectable {
        /// The file name.
        file: String,
    },
    /// Occurs when a JSON file (STIX) is not valid JSON.
    #[error("{file}:{line}:{column}: not valid JSON: {message}")]
    Json {
        /// The file name.
        file: String,
        /// The 1-based line of the error.
        line: usize,
        /// The 1-based column of the error.
        column: usize,
        /// The JSON parser's message.
        message: String,
    },
    /// Occurs when a JSON file is valid JSON but not a STIX bundle, indicator or array of objects.
    #[error("{file}: JSON is not a STIX bundle, object list or indicator")]
    NotStix {
        /// The file name.
        file: String,
    },
}

/// Parses one list file named `file` (used in issue reports) with `opts`.
///
/// # Errors
/// Returns [`ParseError`] only when the file as a whole is unusable; bad lines are collected in
/// [`ParsedList::rejected`] and the rest still loads.
pub fn parse_list(file: &str, bytes: &[u8], opts: &ListOptions) -> Result<ParsedList, ParseError> {
    let format = match opts.format {
        Some(f) => f,
        None => ListFormat::detect(bytes).ok_or_else(|| ParseError::Undetectable {
            file: file.to_owned(),
        })?,
    };
    let mut out = Collector::new(file, opts);
    match format {
        ListFormat::Plain => plain::parse(bytes, &mut out),
        ListFormat::Stix => stix::parse(bytes, &mut out)?,
        ListFormat::Otx => otx::parse(bytes, &mut out),
        ListFormat::AlienVault => alienvault::parse(bytes, &mut out),
        ListFormat::Proofpoint => proofpoint::parse(bytes, &mut out),
        ListFormat::FireEye => fireeye::parse(bytes, &mut out),
        ListFormat::Zeek => zeek::parse(bytes, &mut out),
        ListFormat::Suricata => suricata::parse(bytes, &mut out),
        ListFormat::Spamhaus => spamhaus::parse(bytes, &mut out),
        ListFormat::DShield => dshield::parse(bytes, &mut out),
    }
    Ok(out.finish())
}

/// Parses an address or network, masking host bits; IPv4-mapped IPv6 becomes IPv4.
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    let net = if text.contains('/') {
        text.parse::<IpNet>().ok()?.trunc()
    } else {
        IpNet::from(text.parse::<IpAddr>().ok()?)
    };
    Some(unmap_v4(net))
}

/// Turns `::ffff:a.b.c.d/len` into `a.b.c.d/(len-96)`, so it matches IPv4 traffic.
fn unmap_v4(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net
        && let Some(v4) = n.addr().to_ipv4_mapped()
        && n.prefix_len() >= 96
        && let Ok(v4net) = ipnet::Ipv4Net::new(v4, n.prefix_len() - 96)
    {
        return IpNet::V4(v4net);
    }
    net
}

/// Accumulates one file's indicators and issues, applying the rules every format shares.
pub(crate) struct Collector<'a> {
    file: &'a str,
    opts: &'a ListOptions,
    list: ParsedList,
    full: bool,
}

impl<'a> Collector<'a> {
    fn new(file: &'a str, opts: &'a ListOptions) -> Self {
        Collector {
            file,
            opts,
            list: ParsedList::new(opts.name.clone(), opts.kind),
            full: false,
        }
    }

    fn finish(self) -> ParsedList {
        self.list
    }

    /// The file name issues are reported under.
    pub(crate) fn list_file(&self) -> &str {
        self.file
    }

    /// The options in force.
    pub(crate) fn opts(&self) -> &ListOptions {
        self.opts
    }

    /// Whether the entry cap was reached; parsers stop reading then.
    pub(crate) fn is_full(&self) -> bool {
        self.full
    }

    /// Records a rejected line.
    pub(crate) fn reject(&mut self, line: u32, problem: LineProblem) {
        self.list.rejected.push(LineIssue {
            file: self.file.to_owned(),
            line,
            problem,
        });
    }

    /// Counts an indicator of an unsupported type.
    pub(crate) fn skip(&mut self, what: &str) {
        self.list.count_skipped(what);
    }

    fn push(&mut self, line: u32, value: IndicatorValue, meta: Meta<'_>) {
        if self.list.indicators.len() >= self.opts.max_entries {
            if !self.full {
                self.full = true;
                self.reject(
                    line,
                    LineProblem::TooManyEntries {
                        cap: self.opts.max_entries,
                    },
                );
            }
            return;
        }
        self.list.indicators.push(Indicator {
            value,
            category: meta.category.unwrap_or(self.opts.category),
            source: meta
                .source
                .filter(|s| !s.is_empty())
                .unwrap_or(&self.opts.source)
                .to_owned(),
            description: meta.description.to_owned(),
            line,
        });
    }

    /// Adds a network, applying the breadth limit and (for threat lists) the reserved-range rule.
    pub(crate) fn add_net(&mut self, line: u32, net: IpNet, meta: Meta<'_>) {
        let min = if net.addr().is_ipv4() {
            MIN_PREFIX_V4
        } else {
            MIN_PREFIX_V6
        };
        if net.prefix_len() < min {
            self.reject(
                line,
                LineProblem::TooBroad {
                    value: net.to_string(),
                    min,
                },
            );
            return;
        }
        let value = IndicatorValue::Net(net);
        if self.opts.kind == ListKind::Threat
            && let Some(r) = reserved::containing_range(&net)
        {
            let issue = LineIssue {
                file: self.file.to_owned(),
                line,
                problem: LineProblem::Reserved {
                    value: value.to_string(),
                    range: r.name,
                },
            };
            self.list.ignored.push(issue);
            return;
        }
        self.push(line, value, meta);
    }

    /// Adds a text that must be an address or network.
    pub(crate) fn add_address(&mut self, line: u32, text: &str, meta: Meta<'_>) {
        match parse_net(text) {
            Some(net) => self.add_net(line, net, meta),
            None => self.reject(line, LineProblem::BadAddress { value: cut(text) }),
        }
    }

    /// Adds a text that must be a domain name.
    pub(crate) fn add_domain(&mut self, line: u32, text: &str, meta: Meta<'_>) {
        match domain::normalize(text) {
            Ok(name) => self.push(line, IndicatorValue::Domain(name), meta),
            Err(why) => self.reject(
                line,
                LineProblem::BadDomain {
                    value: cut(text),
                    why,
                },
            ),
        }
    }

    /// Adds a text that may be an address, a network or a domain name.
    pub(crate) fn add_any(&mut self, line: u32, text: &str, meta: Meta<'_>) {
        if let Some(net) = parse_net(text) {
            self.add_net(line, net, meta);
            return;
        }
        match domain::normalize(text) {
            Ok(name) => self.push(line, IndicatorValue::Domain(name), meta),
            Err(
                domain::DomainError::BadChar(_)
                | domain::DomainError::SingleLabel
                | domain::DomainError::NumericTld,
            ) => {
                self.reject(line, LineProblem::NotAnIndicator { value: cut(text) });
            }
            Err(why) => self.reject(
                line,
                LineProblem::BadDomain {
                    value: cut(text),
                    why,
                },
            ),
        }
    }

    /// Adds the host of a URL when [`ListOptions::url_hosts`] is on; counts it as skipped
    /// under `type_name` otherwise.
    pub(crate) fn add_url(&mut self, line: u32, url: &str, type_name: &str, meta: Meta<'_>) {
        if !self.opts.url_hosts {
            self.skip(type_name);
            return;
        }
        match url_host(url) {
            Some(host) => self.add_any(line, host, meta),
            None => self.reject(line, LineProblem::NotAnIndicator { value: cut(url) }),
        }
    }
}

/// Per-entry metadata a parser found on the line; `None` falls back to the list's options.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Meta<'a> {
    pub(crate) category: Option<Category>,
    pub(crate) source: Option<&'a str>,
    pub(crate) description: &'a str,
}

impl<'a> Meta<'a> {
    /// Metadata with only a description.
    pub(crate) fn described(description: &'a str) -> Self {
        Meta {
            description,
            ..Meta::default()
        }
    }
}

/// Cuts evidence to a readable length; a whole hostile line does not belong in a report.
pub(crate) fn cut(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", text.get(..i).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// The host part of a URL (`scheme://[user@]host[:port]/...`), brackets removed from IPv6 hosts.
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let rest = url.trim().split_once("://").map_or(url.trim(), |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_masked_and_mapped_addresses_become_ipv4() {
        assert_eq!(parse_net("10.1.2.3/8"), "10.0.0.0/8".parse().ok());
        assert_eq!(parse_net("::ffff:1.2.3.4"), "1.2.3.4/32".parse().ok());
        assert_eq!(parse_net(" 2001:db8::1 "), "2001:db8::1/128".parse().ok());
        assert_eq!(parse_net("1.2.3.4/33"), None);
        assert_eq!(parse_net("08.1.250.216"), None);
        assert_eq!(parse_net("example.com"), None);
    }

    #[test]
    fn url_hosts_are_taken_from_the_authority() {
        assert_eq!(url_host("http://user@Evil.com:8080/x?y"), Some("Evil.com"));
        assert_eq!(url_host("https://[2001:db8::1]:443/"), Some("2001:db8::1"));
        assert_eq!(url_host("http://45.1.2.3:2222/a"), Some("45.1.2.3"));
        assert_eq!(url_host("http:///nohost"), None);
    }

    #[test]
    fn evidence_is_cut_to_a_readable_length() {
        assert_eq!(cut("short"), "short");
        assert_eq!(cut(&"x".repeat(500)).chars().count(), 121);
    }
}
