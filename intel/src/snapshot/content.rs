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

/// Domain rows, packed as records `[name length: u8][metadata index: u32 LE][name]` in one byte
/// arena, with each row's record offset.
///
/// Keeping a row's metadata beside its name means a lookup that finds a name already holds what
/// it needs to decide trust and build the hit. The domain index (`domain_table.rs`) lays the
/// arena out in cache lines; the length comes first so a zero byte (padding, never a name's
/// length) ends a line's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DomainRows {
    pub(crate) records: Vec<u8>,
    pub(crate) offsets: Vec<u32>,
}

/// Bytes before the name in a record: length and metadata index.
pub(crate) const RECORD_HEADER: usize = 5;

/// The largest arena, in bytes (about 40 million names): a quarter of the `u32` offset range, so
/// the domain index's cache-line layout (which adds slack and padding) still fits in it.
const MAX_ARENA: usize = (u32::MAX / 4) as usize;

/// A record's header fields at `offset`: (name length, metadata index).
#[inline]
pub(crate) fn header_at(records: &[u8], offset: usize) -> Option<(usize, u32)> {
    let header: &[u8; RECORD_HEADER] = records
        .get(offset..offset.checked_add(RECORD_HEADER)?)?
        .try_into()
        .ok()?;
    let [len, m0, m1, m2, m3] = *header;
    Some((usize::from(len), u32::from_le_bytes([m0, m1, m2, m3])))
}

/// Reads the record at `offset`: (metadata index, name bytes).
#[inline]
pub(crate) fn record_at(records: &[u8], offset: usize) -> Option<(u32, &[u8])> {
    let (len, meta) = header_at(records, offset)?;
    let start = offset + RECORD_HEADER;
    Some((meta, records.get(start..start.checked_add(len)?)?))
}

/// Appends a record for `name` and `meta` to `arena`.
pub(crate) fn put_record(arena: &mut Vec<u8>, name: &[u8], meta: u32) {
    // Names are at most 253 bytes (checked before any row is made).
    arena.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    arena.extend_from_slice(&meta.to_le_bytes());
    arena.extend_from_slice(name);
}

impl DomainRows {
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Row `i`'s record offset, metadata index and name bytes (validated content never misses).
    pub(crate) fn row(&self, i: usize) -> Option<(u32, u32, &[u8])> {
        let offset = *self.offsets.get(i)?;
        let (meta, name) = record_at(&self.records, offset as usize)?;
        Some((offset, meta, name))
    }

    /// Row `i`'s metadata index (0 if out of range, which validated content never is).
    pub(crate) fn meta(&self, i: usize) -> u32 {
        self.row(i).map_or(0, |r| r.1)
    }

    /// The bytes of row `i`'s name (empty if out of range).
    pub(crate) fn name_bytes(&self, i: usize) -> &[u8] {
        self.row(i).map_or(&[], |r| r.2)
    }

    /// The name of row `i` (empty if out of range).
    pub(crate) fn name(&self, i: usize) -> &str {
        // Names are checked ASCII when built or decoded, so this never falls back.
        std::str::from_utf8(self.name_bytes(i)).unwrap_or("")
    }

    /// Appends a row; `false` if the name is longer than 255 bytes or the arena would pass
    /// [`MAX_ARENA`] bytes.
    pub(crate) fn push(&mut self, name: &[u8], meta: u32) -> bool {
        let (Ok(offset), Ok(_)) = (u32::try_from(self.records.len()), u8::try_from(name.len()))
        else {
            return false;
        };
        if self.records.len() + RECORD_HEADER + name.len() > MAX_ARENA {
            return false;
        }
        put_record(&mut self.records, name, meta);
        self.offsets.push(offset);
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
    /// Occurs when a hand-built list holds a domain value that is not in normal form (what
    /// [`crate::domain::normalize`] returns); parsed lists never do.
    #[error("`{name}` is not a normalised domain name: {why}")]
    BadDomain {
        /// The offending value.
        name: String,
        /// What is wrong with it.
        why: crate::domain::DomainError,
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
        if let Some((name, why)) = names.iter().find_map(|(n, _)| {
            crate::domain::check_normalized(n)
                .err()
                .map(|why| (*n, why))
        }) {
            return Err(BuildError::BadDomain {
                name: name.to_owned(),
                why,
            });
        }
        names.sort_unstable();
        names.dedup();
        to_u32(v4.len(), "IPv4 rows")?;
        to_u32(v6.len(), "IPv6 rows")?;
        to_u32(names.len(), "domain rows")?;
        let mut domains = DomainRows {
            records: Vec::with_capacity(names.iter().map(|(n, _)| n.len() + RECORD_HEADER).sum()),
            offsets: Vec::with_capacity(names.len()),
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
            + self.domains.records.capacity()
            + self.domains.offsets.capacity() * 4
    }
}
