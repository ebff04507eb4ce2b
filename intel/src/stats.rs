//! Counts for the `intel stats` command: indicators per list, kind and category, and each list's
//! rejected, ignored and skipped lines.

use crate::category::{Category, IndicatorKind, ListKind};
use crate::snapshot::ListSummary;
use std::collections::BTreeMap;

/// Indicator counts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// Single IPv4 addresses.
    pub ipv4: u64,
    /// Single IPv6 addresses.
    pub ipv6: u64,
    /// Networks (IPv4 or IPv6) broader than one address.
    pub cidr: u64,
    /// Domain names.
    pub domain: u64,
}

impl KindCounts {
    /// The total over all kinds.
    pub fn total(&self) -> u64 {
        self.ipv4 + self.ipv6 + self.cidr + self.domain
    }

    /// The count for one kind.
    pub fn get(&self, kind: IndicatorKind) -> u64 {
        match kind {
            IndicatorKind::Ipv4 => self.ipv4,
            IndicatorKind::Ipv6 => self.ipv6,
            IndicatorKind::Cidr => self.cidr,
            IndicatorKind::Domain => self.domain,
        }
    }

    fn bump(&mut self, kind: IndicatorKind) {
        let n = match kind {
            IndicatorKind::Ipv4 => &mut self.ipv4,
            IndicatorKind::Ipv6 => &mut self.ipv6,
            IndicatorKind::Cidr => &mut self.cidr,
            IndicatorKind::Domain => &mut self.domain,
        };
        *n += 1;
    }
}

/// Counts for one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListStats {
    /// The list's name.
    pub name: String,
    /// Threat or trusted.
    pub kind: ListKind,
    /// Loaded indicators by kind.
    pub by_kind: KindCounts,
    /// Loaded indicators by category.
    pub by_category: BTreeMap<Category, u64>,
    /// Lines rejected while parsing.
    pub rejected: u64,
    /// Entries ignored on purpose (special-purpose addresses).
    pub ignored: u64,
    /// Indicators of unsupported types skipped.
    pub skipped: u64,
}

impl ListStats {
    pub(crate) fn empty(l: &ListSummary) -> ListStats {
        ListStats {
            name: l.name.clone(),
            kind: l.kind,
            by_kind: KindCounts::default(),
            by_category: BTreeMap::new(),
            rejected: l.rejected,
            ignored: l.ignored,
            skipped: l.skipped,
        }
    }

    pub(crate) fn add(&mut self, kind: IndicatorKind, category: Category) {
        self.by_kind.bump(kind);
        *self.by_category.entry(category).or_insert(0) += 1;
    }
}

/// Counts for a whole snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// One entry per list, sorted by name.
    pub lists: Vec<ListStats>,
}

impl Stats {
    /// Indicator counts by kind over all lists.
    pub fn by_kind(&self) -> KindCounts {
        let mut k = KindCounts::default();
        for l in &self.lists {
            k.ipv4 += l.by_kind.ipv4;
            k.ipv6 += l.by_kind.ipv6;
            k.cidr += l.by_kind.cidr;
            k.domain += l.by_kind.domain;
        }
        k
    }

    /// Indicator counts by category over all lists.
    pub fn by_category(&self) -> BTreeMap<Category, u64> {
        let mut out = BTreeMap::new();
        for l in &self.lists {
            for (c, n) in &l.by_category {
                *out.entry(*c).or_insert(0) += n;
            }
        }
        out
    }

    /// Rejected lines over all lists.
    pub fn rejected(&self) -> u64 {
        self.lists.iter().map(|l| l.rejected).sum()
    }
}
