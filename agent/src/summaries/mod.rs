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

use std::hash::Hash;

use hashbrown::Equivalent;
use hashbrown::hash_map::EntryRef;

pub use dns_summary::{DnsSummaries, DnsSummaryLimits, DnsSummaryStats};
pub use flow_summary::{FlowSummaries, FlowSummaryLimits, FlowSummaryStats};
pub use interval::{Interval, IntervalClock};

/// One interval's aggregates by key, as both summary kinds keep them: hashbrown's map, so a
/// key can be looked up borrowed and copied only when it is new.
type Aggregates<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

/// The aggregate for `key`, a new one from `new` under the key `owned` makes unless `map`
/// already holds `max`; past the bound the record is counted in `overflow` and `None` comes
/// back. One hash of the key for both the bound and the update, and no owned key for an
/// aggregate that exists (a DNS summary's key holds the domain's text).
fn bounded_entry<'m, K: Hash + Eq, Q: Hash + Equivalent<K> + ?Sized, V>(
    map: &'m mut Aggregates<K, V>,
    key: &Q,
    owned: impl FnOnce() -> K,
    max: usize,
    overflow: &mut u64,
    new: impl FnOnce() -> V,
) -> Option<&'m mut V> {
    let full = map.len() >= max;
    match map.entry_ref(key) {
        EntryRef::Occupied(entry) => Some(entry.into_mut()),
        EntryRef::Vacant(entry) if !full => Some(entry.insert_with_key(owned(), new())),
        EntryRef::Vacant(_) => {
            *overflow = overflow.saturating_add(1);
            None
        }
    }
}
