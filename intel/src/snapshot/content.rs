//! The canonical content of a snapshot: interned strings, lists, metadata rows and indicator rows,
//! each sorted and free of duplicates, so equal inputs give equal bytes and an equal hash
//! whatever order lists and lines arrived in.

use crate::category::{Category, ListKind};
use crate::indicator::{IndicatorValue, ParsedList};
use ipnet::IpNet;
use std::collections::HashMap;

/// One list's identity and load counters, as a snapshot keeps them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListSummary {
    /// The list's name.
    pub name: String,
    /// Threat or trusted.
    pub kind: ListKind,
    /// Lines rejected when the list was parsed.
    pub rejected: u64,
    /// Entries ignored on purpose (special-purpose addresses).
    pub ignored: u64,
    /// Indicators of unsupported types that were skipped.
    pub skipped: u64,
}

/// Metadata shared by many indicators: list, category, source and description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct MetaRow {
    pub(crate) list: u32,
    pub(crate) category: Category,
    pub(crate) source: u32,
    pub(crate) description: u32,
}

/// Address rows, column-wise: network address, prefix length, metadata row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetRows<A> {
    pub(crate) addr: Vec<A>,
    pub(crate) prefix: Vec<u8>,
    pub(crate) meta: Vec<u32>,
}

impl<A: Copy + Ord> NetRows<A> {
    fn from_sorted(mut rows: Vec<(A, u8, u32)>) -> Self {
        rows.sort_unstable();
        rows.dedup();
        let mut out = NetRows {
            addr: Vec::with_capacity(rows.len()),
            prefix: Vec::with_capacity(rows.len()),
            meta: Vec::with_capacity(rows.len()),
        };
        for (a, p, m) in rows {
            out.addr.push(a);
            out.prefix.push(p);
            out.meta.push(m);
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.addr.len()
    }
}

/// Domain rows: names packed in one byte arena (each ending at `ends[i]`), and metadata rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DomainRows {
    pub(crate) bytes: Vec<u8>,
    pub(crate) ends: Vec<u32>,
    pub(crate) meta: Vec<u32>,
}

impl DomainRows {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Where row `i`'s name sits in the arena (empty if out of range, which validated content
    /// never is).
    pub(crate) fn span(&self, i: usize) -> (u32, u32) {
        let start = match i.checked_sub(1) {
            Some(p) => self.ends.get(p).copied().unwrap_or(0),
            None => 0,
        };
        (start, self.ends.get(i).copied().unwrap_or(start))
    }

    /// The bytes of row `i`'s name (empty if out of range, which validated content never is).
    pub(crate) fn name_bytes(&self, i: usize) -> &[u8] {
        let (start, end) = self.span(i);
        self.bytes.get(start as usize..end as usize).unwrap_or(&[])
    }

    /// The name of row `i` (empty if out of range, which validated content never is).
    pub(crate) fn name(&self, i: usize) -> &str {
        // Names are checked ASCII when built or decoded, so this never falls back.
        std::str::from_utf8(self.name_bytes(i)).unwrap_or("")
    }

    /// Appends a row; `false` if the arena would pass `u32::MAX` bytes.
    pub(crate) fn push(&mut self, name: &[u8], meta: u32) -> bool {
        self.bytes.extend_from_slice(name);
        let Ok(end) = u32::try_from(self.bytes.len()) else {
            return false;
        };
        self.ends.push(end);
        self.meta.push(meta);
        true
    }
}

/// Everything a snapshot holds, canonically ordered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Content {
    pub(crate) strings: Vec<String>,
    pub(crate) lists: Vec<ListSummary>,
    pub(crate) metas: Vec<MetaRow>,
    pub(crate) v4: NetRows<u32>,
    pub(crate) v6: NetRows<u128>,
    pub(crate) domains: DomainRows,
}

/// Why lists could not be combined into a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Occurs when two lists share a name, which findings could not tell apart.
    #[error("two lists are named `{name}`")]
    DuplicateList {
        /// The shared name.
        name: String,
    },
    /// Occurs when a table would need more than `u32::MAX` rows or bytes.
    #[error("too many {what} for one snapshot")]
    TooLarge {
        /// What overflowed.
        what: &'static str,
    },
}

fn to_u32(n: usize, what: &'static str) -> Result<u32, BuildError> {
    u32::try_from(n).map_err(|_| BuildError::TooLarge { what })
}

impl Content {
    /// Builds canonical content from parsed lists.
    pub(crate) fn from_lists(mut lists: Vec<ParsedList>) -> Result<Content, BuildError> {
        lists.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = lists.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(BuildError::DuplicateList {
                name: w[0].name.clone(),
            });
        }
        // Strings: unique first (most indicators share a few), then sorted and indexed.
        let unique: std::collections::HashSet<&str> = lists
            .iter()
            .flat_map(|l| l.indicators.iter())
            .flat_map(|i| [i.source.as_str(), i.description.as_str()])
            .collect();
        let mut strings: Vec<&str> = unique.into_iter().collect();
        strings.sort_unstable();
        to_u32(strings.len(), "strings")?;
        let string_ix: HashMap<&str, u32> = strings
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u32))
            .collect();

        // Metadata rows: provisional ids first, then sorted and remapped.
        let mut meta_ix: HashMap<MetaRow, u32> = HashMap::new();
        let mut provisional: Vec<Vec<u32>> = Vec::with_capacity(lists.len());
        for (li, list) in lists.iter().enumerate() {
            let list_id = to_u32(li, "lists")?;
            let mut ids = Vec::with_capacity(list.indicators.len());
            for ind in &list.indicators {
                let row = MetaRow {
                    list: list_id,
                    category: ind.category,
                    source: string_ix.get(ind.source.as_str()).copied().unwrap_or(0),
                    description: string_ix
                        .get(ind.description.as_str())
                        .copied()
                        .unwrap_or(0),
                };
                let next = to_u32(meta_ix.len(), "metadata rows")?;
                ids.push(*meta_ix.entry(row).or_insert(next));
            }
            provisional.push(ids);
        }
        let mut metas: Vec<(MetaRow, u32)> = meta_ix.into_iter().collect();
        metas.sort_unstable();
        let mut remap = vec![0u32; metas.len()];
        for (new, (_, old)) in metas.iter().enumerate() {
            if let Some(slot) = remap.get_mut(*old as usize) {
                *slot = new as u32;
            }
        }

        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut names: Vec<(&str, u32)> = Vec::new();
        for (list, ids) in lists.iter().zip(&provisional) {
            for (ind, old) in list.indicators.iter().zip(ids) {
                let meta = remap.get(*old as usize).copied().unwrap_or(0);
                match &ind.value {
                    IndicatorValue::Net(IpNet::V4(n)) => {
                        v4.push((u32::from(n.network()), n.prefix_len(), meta));
                    }
                    IndicatorValue::Net(IpNet::V6(n)) => {
                        v6.push((u128::from(n.network()), n.prefix_len(), meta));
                    }
                    IndicatorValue::Domain(d) => names.push((d.as_str(), meta)),
                }
            }
        }
        names.sort_unstable();
        names.dedup();
        to_u32(v4.len(), "IPv4 rows")?;
        to_u32(v6.len(), "IPv6 rows")?;
        to_u32(names.len(), "domain rows")?;
        let mut domains = DomainRows {
            bytes: Vec::with_capacity(names.iter().map(|(n, _)| n.len()).sum()),
            ends: Vec::with_capacity(names.len()),
            meta: Vec::with_capacity(names.len()),
        };
        for (name, meta) in names {
            if !domains.push(name.as_bytes(), meta) {
                return Err(BuildError::TooLarge {
                    what: "domain name bytes",
                });
            }
        }
        Ok(Content {
            strings: strings.into_iter().map(str::to_owned).collect(),
            lists: lists
                .iter()
                .map(|l| ListSummary {
                    name: l.name.clone(),
                    kind: l.kind,
                    rejected: l.rejected.len() as u64,
                    ignored: l.ignored.len() as u64,
                    skipped: l.skipped_total(),
                })
                .collect(),
            metas: metas.into_iter().map(|(m, _)| m).collect(),
            v4: NetRows::from_sorted(v4),
            v6: NetRows::from_sorted(v6),
            domains,
        })
    }

    /// The string at `i`, or `""` (validated content never misses).
    pub(crate) fn string(&self, i: u32) -> &str {
        self.strings.get(i as usize).map_or("", String::as_str)
    }

    /// Whether metadata row `meta` belongs to a trusted list.
    pub(crate) fn is_trusted(&self, meta: u32) -> bool {
        self.metas
            .get(meta as usize)
            .and_then(|m| self.lists.get(m.list as usize))
            .is_some_and(|l| l.kind == ListKind::Trusted)
    }

    /// Heap bytes held by the tables.
    pub(crate) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.strings
            .iter()
            .map(|s| s.capacity() + size_of::<String>())
            .sum::<usize>()
            + self
                .lists
                .iter()
                .map(|l| l.name.capacity() + size_of::<ListSummary>())
                .sum::<usize>()
            + self.metas.capacity() * size_of::<MetaRow>()
            + self.v4.addr.capacity() * 4
            + self.v4.prefix.capacity()
            + self.v4.meta.capacity() * 4
            + self.v6.addr.capacity() * 16
            + self.v6.prefix.capacity()
            + self.v6.meta.capacity() * 4
            + self.domains.bytes.capacity()
            + self.domains.ends.capacity() * 4
            + self.domains.meta.capacity() * 4
    }
}
