//! CloudTrail: reading log files as AWS delivers them and normalising each record into an
//! [`ApiEvent`] for the detectors.
//!
//! `reader` finds and reads files (gzip or plain; `Records` objects, arrays, lines; digests
//! skipped), `raw` is the record as written, `normalize` turns it into an [`ApiEvent`] with
//! the help of `address` (odd `sourceIPAddress` values) and `timestamp`; `seen` remembers which
//! files `serve` has read (and, with `resume`, how far into a growing line file) and `watcher`
//! finds new ones.

pub mod address;
pub mod event;
pub mod lazy_json;
pub mod normalize;
pub mod raw;
pub mod reader;
#[cfg(test)]
mod reader_tests;
pub mod resume;
pub mod seen;
pub mod timestamp;
pub mod watcher;

pub use event::{ApiEvent, ApiResource, CallerAddress, EventOrigin, Principal, SessionIssuer};
pub use lazy_json::LazyJson;
