//! Summaries: per interval, finished flow records and DNS transactions are folded into
//! compact `FlowSummary` and `DnsSummary` records, the form ordinary traffic is shipped in.
//!
//! [`interval`] cuts time into aligned windows; [`flow_summary`] and [`dns_summary`] each hold
//! one interval's bounded aggregates and drain them into records when it closes, writing
//! addresses with [`addr_text`].

pub mod addr_text;
pub mod dns_summary;
pub mod flow_summary;
pub mod interval;

pub use dns_summary::{DnsSummaries, DnsSummaryLimits, DnsSummaryStats};
pub use flow_summary::{FlowSummaries, FlowSummaryLimits, FlowSummaryStats};
pub use interval::{Interval, IntervalClock};
