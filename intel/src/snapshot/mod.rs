//! The compiled, immutable matcher: a [`Snapshot`] of every loaded list, with its version, its
//! SHA-256 content hash and a binary encoding to ship and persist.
//!
//! Build one with [`SnapshotBuilder`] from parsed lists, or decode one with
//! [`Snapshot::from_bytes`]. Lookups ([`Snapshot::match_ip`], [`Snapshot::match_domain`] and their
//! `lookup_*` forms that also report trusted matches) allocate nothing for IP addresses and ASCII
//! names. Updates ship as full snapshots; there is no delta encoding.

mod content;
mod domain_table;
mod encoding;
mod ip_ranges;

pub use content::{BuildError, ListSummary};
pub use encoding::{DecodeError, FORMAT_VERSION, MAGIC};

use crate::category::{Category, ListKind};
use crate::domain;
use crate::finding_type::{FindingType, Target};
use crate::indicator::ParsedList;
use crate::stats::{ListStats, Stats};
use content::Content;
use domain_table::DomainTable;
use ip_ranges::{V4Ranges, V6Ranges};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a lookup matched: the listed network or name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedValue<'s> {
    /// The listed address or network that contains the looked-up address.
    Net(IpNet),
    /// The listed name that equals the looked-up name or is one of its parent names.
    Domain(&'s str),
}

/// One match: the indicator entry and the metadata a finding reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'s> {
    /// The listed entry that matched.
    pub indicator: MatchedValue<'s>,
    /// The list it came from.
    pub list: &'s str,
    /// Threat or trusted.
    pub list_kind: ListKind,
    /// The entry's category.
    pub category: Category,
    /// The entry's source.
    pub source: &'s str,
    /// The entry's description (may be empty).
    pub description: &'s str,
}

impl Hit<'_> {
    /// The GuardDuty finding type this hit raises when it is a threat match, if any.
    pub fn finding_type(&self) -> Option<FindingType> {
        let target = match self.indicator {
            MatchedValue::Net(_) => Target::Ip,
            MatchedValue::Domain(_) => Target::Domain,
        };
        FindingType::for_match(self.category, target)
    }
}

/// The answer to a lookup. Trusted beats threat: an address or name covered by any trusted entry
/// is `Trusted`, whatever threat entries also cover it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'s> {
    /// On a threat list (the most specific threat entry).
    Threat(Hit<'s>),
    /// On a trusted list.
    Trusted(Hit<'s>),
    /// On no list (or a special-purpose address, which lists never cover).
    NoMatch,
}

impl<'s> Verdict<'s> {
    /// The threat hit, if this is one.
    pub fn threat(self) -> Option<Hit<'s>> {
        match self {
            Verdict::Threat(h) => Some(h),
            Verdict::Trusted(_) | Verdict::NoMatch => None,
        }
    }
}

/// Suffixes looked up together: enough for the labels of nearly every real name, so one name's
/// filter reads overlap; longer names take several batches.
const SUFFIX_BATCH: usize = 8;

/// Up to [`SUFFIX_BATCH`] suffixes of a looked-up name: where each starts and its hash.
#[derive(Default)]
struct SuffixBatch {
    starts: [usize; SUFFIX_BATCH],
    hashes: [u64; SUFFIX_BATCH],
    len: usize,
}

impl SuffixBatch {
    /// Adds a suffix; `false` once the batch is full (the suffix is added first).
    #[inline]
    fn push(&mut self, start: usize, hash: u64) -> bool {
        if let (Some(s), Some(h)) = (self.starts.get_mut(self.len), self.hashes.get_mut(self.len)) {
            *s = start;
            *h = hash;
            self.len += 1;
        }
        self.len < SUFFIX_BATCH
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// Collects parsed lists and compiles them into a [`Snapshot`].
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    lists: Vec<ParsedList>,
}

impl SnapshotBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        SnapshotBuilder::default()
    }

    /// Adds a parsed list (threat or trusted).
    pub fn add_list(&mut self, list: ParsedList) -> &mut Self {
        self.lists.push(list);
        self
    }

    /// Compiles every added list into a snapshot numbered `version`.
    ///
    /// # Errors
    /// [`BuildError::DuplicateList`] when two lists share a name; [`BuildError::TooLarge`] when a
    /// table would overflow its 32-bit indexes.
    pub fn build(self, version: u64) -> Result<Snapshot, BuildError> {
        let content = Content::from_lists(self.lists)?;
        let body = encoding::encode_body(&content);
        let hash = encoding::hash_body(&body);
        Ok(Snapshot::index(version, hash, content))
    }
}

/// An immutable, versioned, compiled set of threat and trusted lists.
#[derive(Clone)]
pub struct Snapshot {
    version: u64,
    hash: [u8; 32],
    content: Content,
    v4: V4Ranges,
    v6: V6Ranges,
    domains: DomainTable,
}

impl std::fmt::Debug for Snapshot {
    // A summary: the tables run to millions of rows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("content_hash", &self.content_hash_hex())
            .field("lists", &self.content.lists.len())
            .field("ipv4_rows", &self.content.v4.len())
            .field("ipv6_rows", &self.content.v6.len())
            .field("domain_rows", &self.content.domains.len())
            .finish()
    }
}

impl Snapshot {
    /// Builds the lookup indexes over validated content.
    fn index(version: u64, hash: [u8; 32], mut content: Content) -> Snapshot {
        let trusted = |m: u32| content.is_trusted(m);
        let v4 = V4Ranges::build(
            &content.v4.addr,
            &content.v4.prefix,
            &content.v4.meta,
            &trusted,
        );
        let v6 = V6Ranges::build(
            &content.v6.addr,
            &content.v6.prefix,
            &content.v6.meta,
            &trusted,
        );
        let mut rows = std::mem::take(&mut content.domains);
        let domains = DomainTable::build(&mut rows, &|m| content.is_trusted(m));
        content.domains = rows;
        Snapshot {
            version,
            hash,
            content,
            v4,
            v6,
            domains,
        }
    }

    /// The version given when the snapshot was built.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The same content numbered `version`. The content hash does not cover the version, so a
    /// publisher can compile first and number the snapshot once it knows whether the content
    /// changed.
    pub fn with_version(mut self, version: u64) -> Snapshot {
        self.version = version;
        self
    }

    /// SHA-256 of the canonical encoding of the content (not of the version): equal content gives
    /// an equal hash whatever order lists and lines arrived in.
    pub fn content_hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The content hash as lower-case hex.
    pub fn content_hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The lists in the snapshot, sorted by name.
    pub fn lists(&self) -> &[ListSummary] {
        &self.content.lists
    }

    /// How many indicator rows the snapshot holds (over all lists; a value on two lists counts twice).
    pub fn indicator_count(&self) -> usize {
        self.content.v4.len() + self.content.v6.len() + self.content.domains.len()
    }

    /// Heap bytes held by the snapshot's tables and indexes.
    pub fn heap_bytes(&self) -> usize {
        self.content.heap_bytes()
            + self.v4.heap_bytes()
            + self.v6.heap_bytes()
            + self.domains.heap_bytes()
    }

    /// How many resolved address ranges the IPv4 and IPv6 indexes hold.
    pub fn range_counts(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    /// The binary encoding (header, content hash, canonical body).
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(
            self.version,
            &self.hash,
            &encoding::encode_body(&self.content),
        )
    }

    /// Decodes and validates an encoding made by [`Snapshot::to_bytes`], then rebuilds indexes.
    ///
    /// # Errors
    /// A [`DecodeError`] naming the section and record at fault; never panics on hostile bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
        let (version, hash, content) = encoding::decode(bytes)?;
        Ok(Snapshot::index(version, hash, content))
    }

    fn hit<'a>(&'a self, indicator: MatchedValue<'a>, meta: u32) -> Option<Hit<'a>> {
        let m = self.content.metas.get(meta as usize)?;
        let list = self.content.lists.get(m.list as usize)?;
        Some(Hit {
            indicator,
            list: &list.name,
            list_kind: list.kind,
            category: m.category,
            source: self.content.string(m.source),
            description: self.content.string(m.description),
        })
    }

    fn verdict(hit: Option<Hit<'_>>) -> Verdict<'_> {
        match hit {
            Some(h) if h.list_kind == ListKind::Trusted => Verdict::Trusted(h),
            Some(h) => Verdict::Threat(h),
            None => Verdict::NoMatch,
        }
    }

    /// Looks an address up; IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn lookup_ip(&self, ip: IpAddr) -> Verdict<'_> {
        let v4 = match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        };
        let hit = match (v4, ip) {
            (Some(a), _) => self.v4.find(u32::from(a)).and_then(|row| {
                let row = row as usize;
                let addr = Ipv4Addr::from(*self.content.v4.addr.get(row)?);
                let prefix = *self.content.v4.prefix.get(row)?;
                let net = Ipv4Net::new(addr, prefix).unwrap_or_else(|_| Ipv4Net::from(addr));
                self.hit(
                    MatchedValue::Net(IpNet::V4(net)),
                    *self.content.v4.meta.get(row)?,
                )
            }),
            (None, IpAddr::V6(a)) => self.v6.find(u128::from(a)).and_then(|row| {
                let row = row as usize;
                let addr = Ipv6Addr::from(*self.content.v6.addr.get(row)?);
                let prefix = *self.content.v6.prefix.get(row)?;
                let net = Ipv6Net::new(addr, prefix).unwrap_or_else(|_| Ipv6Net::from(addr));
                self.hit(
                    MatchedValue::Net(IpNet::V6(net)),
                    *self.content.v6.meta.get(row)?,
                )
            }),
            (None, IpAddr::V4(_)) => None,
        };
        Self::verdict(hit)
    }

    /// The threat entry covering `ip` (longest prefix), unless a trusted entry covers it too.
    pub fn match_ip(&self, ip: IpAddr) -> Option<Hit<'_>> {
        self.lookup_ip(ip).threat()
    }

    /// Looks a name up: the name and each parent name are checked; any trusted entry wins, else
    /// the longest threat entry. Case and one trailing dot are ignored; a non-ASCII name is
    /// converted with IDNA first (the only case that allocates).
    pub fn lookup_domain(&self, name: &str) -> Verdict<'_> {
        let q = name.strip_suffix('.').unwrap_or(name);
        if !q.is_ascii() {
            return match domain::normalize(q) {
                Ok(ascii) => self.lookup_ascii_domain(&ascii),
                Err(_) => Verdict::NoMatch,
            };
        }
        self.lookup_ascii_domain(q)
    }

    fn lookup_ascii_domain(&self, q: &str) -> Verdict<'_> {
        let arena = &self.content.domains.records;
        let qb = q.as_bytes();
        let mut batch = SuffixBatch::default();
        let mut threat: Option<domain_table::Found> = None;
        let mut trusted: Option<domain_table::Found> = None;
        let mut tld = true;
        domain::for_each_suffix(qb, |start, h| {
            // Listed names have at least two labels, so the first suffix (the TLD) cannot match;
            // nor can a suffix longer than any listed name, nor (so) any longer one.
            if std::mem::take(&mut tld) {
                return true;
            }
            if qb.len() - start > domain::MAX_NAME_LEN {
                return false;
            }
            if batch.push(start, h) {
                return true;
            }
            trusted = self.probe_suffixes(&batch, qb, &mut threat);
            batch.clear();
            trusted.is_none()
        });
        if trusted.is_none() && batch.len > 0 {
            trusted = self.probe_suffixes(&batch, qb, &mut threat);
        }
        let Some(found) = trusted.or(threat) else {
            return Verdict::NoMatch;
        };
        let name = arena.get(found.start..found.end).unwrap_or(&[]);
        // Arena names are checked ASCII when built or decoded, so this never falls back.
        let name = std::str::from_utf8(name).unwrap_or("");
        let meta = found.meta;
        Self::verdict(self.hit(MatchedValue::Domain(name), meta))
    }

    /// Looks up a batch of suffixes of `q` (shortest first): returns the first trusted entry
    /// found, and leaves in `threat` the most specific threat entry found so far.
    #[inline]
    fn probe_suffixes(
        &self,
        batch: &SuffixBatch,
        q: &[u8],
        threat: &mut Option<domain_table::Found>,
    ) -> Option<domain_table::Found> {
        let arena = &self.content.domains.records;
        let hashes = batch.hashes.get(..batch.len).unwrap_or(&[]);
        let mut maybe = self.domains.maybe_mask(hashes);
        while maybe != 0 {
            let i = maybe.trailing_zeros() as usize;
            maybe &= maybe - 1;
            let (Some(&start), Some(&h)) = (batch.starts.get(i), hashes.get(i)) else {
                break;
            };
            let suffix = q.get(start..).unwrap_or(&[]);
            if let Some(found) = self.domains.find(h, arena, suffix) {
                if self.content.is_trusted(found.meta) {
                    return Some(found);
                }
                // Suffixes come shortest first, so the last threat seen is the most specific.
                *threat = Some(found);
            }
        }
        None
    }

    /// The threat entry matching `name` or a parent name, unless a trusted entry matches.
    pub fn match_domain(&self, name: &str) -> Option<Hit<'_>> {
        self.lookup_domain(name).threat()
    }

    /// Counts per list, kind and category, plus each list's rejected, ignored and skipped lines.
    pub fn stats(&self) -> Stats {
        let c = &self.content;
        let mut lists: Vec<ListStats> = c.lists.iter().map(ListStats::empty).collect();
        let mut count = |meta: u32, kind: crate::category::IndicatorKind| {
            if let Some(m) = c.metas.get(meta as usize)
                && let Some(ls) = lists.get_mut(m.list as usize)
            {
                ls.add(kind, m.category);
            }
        };
        use crate::category::IndicatorKind as K;
        for (p, m) in c.v4.prefix.iter().zip(&c.v4.meta) {
            count(*m, if *p == 32 { K::Ipv4 } else { K::Cidr });
        }
        for (p, m) in c.v6.prefix.iter().zip(&c.v6.meta) {
            count(*m, if *p == 128 { K::Ipv6 } else { K::Cidr });
        }
        for i in 0..c.domains.len() {
            count(c.domains.meta(i), K::Domain);
        }
        Stats { lists }
    }
}
