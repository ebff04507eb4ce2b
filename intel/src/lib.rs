//! Picket's threat-intel crate: indicator parsing and the compiled matcher that both the
//! aggregator and the agent use.
//!
//! # Brief overview
//!
//! - [`parse_list`] reads one list file in any [`ListFormat`] (plain/hosts, STIX, OTX CSV,
//!   AlienVault, Proofpoint ET, FireEye iSIGHT, Zeek intel, Suricata iprep, Spamhaus DROP,
//!   DShield) into a [`ParsedList`]: [`Indicator`]s plus every bad line as a [`LineIssue`]
//!   (`file:line: why`), special-purpose addresses ignored with a warning, and unsupported
//!   indicator types counted.
//! - [`SnapshotBuilder`] compiles threat and trusted lists (and the built-in [`canary_list`])
//!   into an immutable, versioned [`Snapshot`] with a SHA-256 content hash and a binary encoding.
//! - [`Snapshot::match_ip`] / [`Snapshot::match_domain`] answer hot-path lookups without
//!   allocating: longest prefix for addresses, exact-or-parent for names, trusted beats threat.
//! - [`FindingType::for_match`] names the GuardDuty finding a [`Category`] raises, and
//!   [`Snapshot::stats`] counts what was loaded for `intel stats`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod canary;
pub mod category;
pub mod domain;
pub mod finding_type;
pub mod format;
pub mod indicator;
pub mod parse;
pub mod reserved;
pub mod snapshot;
pub mod stats;

pub use canary::canary_list;
pub use category::{Category, IndicatorKind, ListKind};
pub use finding_type::{FindingType, Target};
pub use format::ListFormat;
pub use indicator::{Indicator, IndicatorValue, LineIssue, LineProblem, ParsedList};
pub use parse::{ListOptions, ParseError, SuricataCategories, parse_list};
pub use snapshot::{
    BuildError, DecodeError, Hit, ListSummary, MatchedValue, Snapshot, SnapshotBuilder, Verdict,
};
pub use stats::{KindCounts, ListStats, Stats};
