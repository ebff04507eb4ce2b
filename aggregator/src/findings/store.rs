//! The findings store (sled), under `<data_dir>/findings`.
//!
//! Trees:
//! - `findings`: id → the finding as GuardDuty JSON.
//! - `by_account`: `account \0 updated id`, `by_type`: `type \0 updated id`,
//!   `by_severity`: `severity×10 (u16 BE) updated id`, `by_updated`: `updated id` → empty.
//!   `updated` is `updatedAt` in ms as 8 big-endian bytes with the sign bit flipped, so byte
//!   order is time order; ids are 32 hex digits, so the id is always the key's last 32 bytes.
//! - `suppression_rules`: rule name → the filter's JSON.
//!
//! Invariants:
//! - A finding and its four index entries are written in one sled transaction, and an update
//!   removes the old entries in the same transaction, so a finding is listed exactly once.
//! - An index entry is trusted only if it equals the entry recomputed from the finding it points
//!   at; anything else (left by a corrupt finding that was replaced) is skipped as stale.
//! - Upserts merge with the stored finding ([`Finding::absorb`]): counts add, the event window
//!   widens and `archived` sticks, so draining the engine twice never loses or double-counts.
//! - [`FindingStore::upsert_all`] flushes before returning.
//! - A stored finding that does not decode is reported ([`StoreError::Corrupt`] from
//!   [`FindingStore::get`], [`Page::corrupt`] from listings), never a panic and never skipped
//!   silently; an upsert of the same id replaces it.
//! - Listing newest first does bounded work per page ([`MAX_SCAN_PER_PAGE`] index entries);
//!   so does [`FindingStore::scan`] (the findings API's queries), whose positions are
//!   `updated ‖ id` (or `severity ‖ updated ‖ id`), so they stay valid while findings are added.

use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::model::{Finding, Timestamp};
use super::suppression::{Filter, FilterError, SuppressionRule, SuppressionRules};
use super::types::FindingType;

/// Index entries a single [`FindingStore::list`] call examines at most.
pub const MAX_SCAN_PER_PAGE: usize = 10_000;
/// The largest page a listing returns.
pub const MAX_PAGE: usize = 1_000;
const ID_LEN: usize = 32;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Occurs when sled cannot open, read or write the database.
    #[error("findings store {path}: {source}")]
    Sled {
        /// The database folder.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// Occurs when a stored finding does not decode.
    #[error("findings store: finding {id} is corrupt: {why}")]
    Corrupt {
        /// The finding's id.
        id: String,
        /// The decoder's complaint.
        why: String,
    },
    /// Occurs when a finding's id is not 32 lowercase hex digits.
    #[error("findings store: id {id:?} is not 32 hex digits")]
    BadId {
        /// The id given.
        id: String,
    },
    /// Occurs when a finding cannot be encoded.
    #[error("findings store: encoding finding {id}: {source}")]
    Encode {
        /// The finding's id.
        id: String,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// Occurs when a page cursor is malformed or belongs to another listing.
    #[error("findings store: bad page cursor {cursor:?}")]
    BadCursor {
        /// The cursor given.
        cursor: String,
    },
    /// Occurs when a stored suppression rule no longer parses.
    #[error("findings store: suppression rule {name:?}: {source}")]
    BadRule {
        /// The rule's name.
        name: String,
        /// Why it does not parse.
        source: FilterError,
    },
}

/// A stored finding that could not be decoded, reported by listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptFinding {
    /// Its id.
    pub id: String,
    /// The decoder's complaint.
    pub why: String,
}

/// What [`FindingStore::upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// The id was new.
    Inserted,
    /// Merged into the stored finding.
    Merged,
    /// The stored finding was corrupt and was replaced.
    ReplacedCorrupt,
}

/// Which index a listing walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Index {
    Account = 1,
    Type = 2,
    Severity = 3,
    Updated = 4,
}

/// Where the next page starts; opaque to callers (hex text for APIs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(Vec<u8>);

impl Cursor {
    /// The cursor as hex text.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads a cursor back from [`Self::to_hex`].
    ///
    /// # Errors
    /// [`StoreError::BadCursor`] when the text is not even-length hex.
    pub fn from_hex(s: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::BadCursor {
            cursor: s.to_owned(),
        };
        if s.len() % 2 != 0 || s.is_empty() {
            return Err(bad());
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(bad)
            })
            .collect::<Result<Vec<u8>, _>>()
            .map(Self)
    }
}

/// A listing: filters (all optional, all must hold), page size and where to start.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Only this account.
    pub account_id: Option<String>,
    /// Only this type.
    pub finding_type: Option<FindingType>,
    /// Only at least this severity.
    pub min_severity: Option<f64>,
    /// Only archived (`Some(true)`) or only active (`Some(false)`) findings.
    pub archived: Option<bool>,
    /// Only findings updated at or after this time.
    pub updated_since: Option<Timestamp>,
    /// Page size (capped at [`MAX_PAGE`]).
    pub limit: NonZeroUsize,
    /// The previous page's [`Page::next`].
    pub after: Option<Cursor>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            account_id: None,
            finding_type: None,
            min_severity: None,
            archived: None,
            updated_since: None,
            limit: NonZeroUsize::new(50).unwrap_or(NonZeroUsize::MIN),
            after: None,
        }
    }
}

impl ListQuery {
    fn index(&self) -> Index {
        // The most selective index the filter allows, so a listing never scans everything.
        if self.account_id.is_some() {
            Index::Account
        } else if self.finding_type.is_some() {
            Index::Type
        } else if self.min_severity.is_some() {
            Index::Severity
        } else {
            Index::Updated
        }
    }

    fn accepts(&self, f: &Finding) -> bool {
        self.account_id.as_ref().is_none_or(|a| *a == f.account_id)
            && self.finding_type.is_none_or(|t| t == f.finding_type)
            && self.min_severity.is_none_or(|s| f.severity >= s)
            && self.archived.is_none_or(|a| a == f.service.archived)
            && self.updated_since.is_none_or(|t| f.updated_at >= t)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The findings, newest update first (by severity first when listing by severity).
    pub findings: Vec<Finding>,
    /// Where the next page starts; `None` when the listing is exhausted.
    pub next: Option<Cursor>,
    /// Stored findings met on the way that do not decode.
    pub corrupt: Vec<CorruptFinding>,
}

/// The findings store.
#[derive(Debug, Clone)]
pub struct FindingStore {
    path: PathBuf,
    db: sled::Db,
    findings: sled::Tree,
    by_account: sled::Tree,
    by_type: sled::Tree,
    by_severity: sled::Tree,
    by_updated: sled::Tree,
    rules: sled::Tree,
    detector_state: sled::Tree,
}

fn updated_bytes(t: Timestamp) -> [u8; 8] {
    // Flipping the sign bit makes big-endian byte order equal numeric order for negatives too.
    (u64::from_be_bytes(t.0.to_be_bytes()) ^ (1 << 63)).to_be_bytes()
}

fn severity_bytes(severity: f64) -> [u8; 2] {
    let tenths = (severity * 10.0).round().clamp(0.0, 1000.0);
    // In 0..=1000 after the clamp, so the conversion is exact.
    (tenths as u16).to_be_bytes()
}

fn index_keys(f: &Finding) -> [(Index, Vec<u8>); 4] {
    let upd = updated_bytes(f.updated_at);
    let id = f.id.as_bytes();
    let cat = |parts: &[&[u8]]| parts.concat();
    [
        (
            Index::Account,
            cat(&[f.account_id.as_bytes(), &[0], &upd, id]),
        ),
        (
            Index::Type,
            cat(&[f.finding_type.name().as_bytes(), &[0], &upd, id]),
        ),
        (
            Index::Severity,
            cat(&[&severity_bytes(f.severity), &upd, id]),
        ),
        (Index::Updated, cat(&[&upd, id])),
    ]
}

fn valid_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn decode(id: &str, bytes: &[u8]) -> Result<Finding, CorruptFinding> {
    let f: Finding = serde_json::from_slice(bytes).map_err(|e| CorruptFinding {
        id: id.to_owned(),
        why: e.to_string(),
    })?;
    if f.id != id {
        return Err(CorruptFinding {
            id: id.to_owned(),
            why: format!("stored under {id} but says it is {}", f.id),
        });
    }
    Ok(f)
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl FindingStore {
    /// Opens (creating if needed) the store in `<data_dir>/findings`.
    ///
    /// # Errors
    /// [`StoreError::Sled`] naming the folder.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("findings");
        let err = |source| StoreError::Sled {
            path: path.clone(),
            source,
        };
        let db = sled::open(&path).map_err(err)?;
        let tree = |name: &str| db.open_tree(name).map_err(err);
        Ok(Self {
            findings: tree("findings")?,
            by_account: tree("by_account")?,
            by_type: tree("by_type")?,
            by_severity: tree("by_severity")?,
            by_updated: tree("by_updated")?,
            rules: tree("suppression_rules")?,
            detector_state: tree("detector_state")?,
            db,
            path,
        })
    }

    fn sled_err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    fn tx_err(&self, e: TransactionError<StoreError>) -> StoreError {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(source) => self.sled_err(source),
        }
    }

    fn index_tree(&self, index: Index) -> &sled::Tree {
        match index {
            Index::Account => &self.by_account,
            Index::Type => &self.by_type,
            Index::Severity => &self.by_severity,
            Index::Updated => &self.by_updated,
        }
    }

    /// Stores `finding`, merging it into the stored finding with the same id.
    ///
    /// # Errors
    /// [`StoreError::BadId`], [`StoreError::Encode`] or [`StoreError::Sled`].
    pub fn upsert(&self, finding: &Finding) -> Result<Upserted, StoreError> {
        if !valid_id(&finding.id) {
            return Err(StoreError::BadId {
                id: finding.id.clone(),
            });
        }
        let trees = (
            &self.findings,
            &self.by_account,
            &self.by_type,
            &self.by_severity,
            &self.by_updated,
        );
        trees
            .transaction(|(findings, acc, typ, sev, upd)| -> TxResult<Upserted> {
                let idx = |i: Index| -> &TransactionalTree {
                    match i {
                        Index::Account => acc,
                        Index::Type => typ,
                        Index::Severity => sev,
                        Index::Updated => upd,
                    }
                };
                let old = findings.get(finding.id.as_bytes())?;
                let (merged, outcome) = match old.map(|b| decode(&finding.id, &b)) {
                    None => (finding.clone(), Upserted::Inserted),
                    Some(Err(_)) => (finding.clone(), Upserted::ReplacedCorrupt),
                    Some(Ok(mut stored)) => {
                        for (i, key) in index_keys(&stored) {
                            idx(i).remove(key)?;
                        }
                        stored.absorb(finding);
                        (stored, Upserted::Merged)
                    }
                };
                let bytes = serde_json::to_vec(&merged).map_err(|source| {
                    ConflictableTransactionError::Abort(StoreError::Encode {
                        id: merged.id.clone(),
                        source,
                    })
                })?;
                findings.insert(merged.id.as_bytes(), bytes)?;
                for (i, key) in index_keys(&merged) {
                    idx(i).insert(key, &[][..])?;
                }
                Ok(outcome)
            })
            .map_err(|e| self.tx_err(e))
    }

    /// Stores every finding (see [`Self::upsert`]) and flushes.
    ///
    /// # Errors
    /// The first failure; findings before it are stored.
    pub fn upsert_all(&self, findings: &[Finding]) -> Result<Vec<Upserted>, StoreError> {
        let out = findings
            .iter()
            .map(|f| self.upsert(f))
            .collect::<Result<Vec<_>, _>>()?;
        self.flush()?;
        Ok(out)
    }

    /// Saves detectors' learned state (baselines) by detector name, durably.
    ///
    /// # Errors
    /// [`StoreError::Sled`].
    pub fn save_detector_states(&self, states: &[(&str, Vec<u8>)]) -> Result<(), StoreError> {
        for (name, bytes) in states {
            self.detector_state
                .insert(name.as_bytes(), bytes.as_slice())
                .map_err(|e| self.sled_err(e))?;
        }
        self.flush()
    }

    /// Where the store lives on disk (`<data_dir>/findings`), for messages about its contents.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state a detector saved last, if any.
    ///
    /// # Errors
    /// [`StoreError::Sled`].
    pub fn detector_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.detector_state
            .get(name.as_bytes())
            .map(|v| v.map(|b| b.to_vec()))
            .map_err(|e| self.sled_err(e))
    }

    /// Waits until everything written is on disk.
    ///
    /// # Errors
    /// [`StoreError::Sled`].
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(|e| self.sled_err(e))
    }

    /// The finding with this id.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when it does not decode; [`StoreError::Sled`].
    pub fn get(&self, id: &str) -> Result<Option<Finding>, StoreError> {
        let Some(bytes) = self
            .findings
            .get(id.as_bytes())
            .map_err(|e| self.sled_err(e))?
        else {
            return Ok(None);
        };
        decode(id, &bytes)
            .map(Some)
            .map_err(|c| StoreError::Corrupt {
                id: c.id,
                why: c.why,
            })
    }

    /// One page of findings matching `query`, newest update first.
    ///
    /// # Errors
    /// [`StoreError::BadCursor`] when `query.after` is not from this listing; [`StoreError::Sled`].
    pub fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let index = query.index();
        let tree = self.index_tree(index);
        let low = query_low(index, query);
        let high = match index {
            Index::Account | Index::Type => prefix_range(&low[..low.len().saturating_sub(1)]).1,
            Index::Severity | Index::Updated => None,
        };
        let high = match &query.after {
            None => high,
            Some(c) => {
                let (tag, key) =
                    c.0.split_first()
                        .ok_or_else(|| StoreError::BadCursor { cursor: c.to_hex() })?;
                if *tag != index as u8 || key < low.as_slice() {
                    return Err(StoreError::BadCursor { cursor: c.to_hex() });
                }
                Some(key.to_vec())
            }
        };
        let iter = match high {
            Some(h) => tree.range(low.clone()..h),
            None => tree.range(low.clone()..),
        };
        let limit = query.limit.get().min(MAX_PAGE);
        let mut page = Page::default();
        let mut last_key = None;
        for (scanned, entry) in iter.rev().enumerate() {
            if scanned >= MAX_SCAN_PER_PAGE || page.findings.len() >= limit {
                break;
            }
            let (key, _) = entry.map_err(|e| self.sled_err(e))?;
            last_key = Some(key.to_vec());
            let Some(id) = key
                .len()
                .checked_sub(ID_LEN)
                .and_then(|start| key.get(start..))
                .and_then(|b| std::str::from_utf8(b).ok())
            else {
                continue;
            };
            let Some(bytes) = self
                .findings
                .get(id.as_bytes())
                .map_err(|e| self.sled_err(e))?
            else {
                continue;
            };
            let f = match decode(id, &bytes) {
                Ok(f) => f,
                Err(c) => {
                    page.corrupt.push(c);
                    continue;
                }
            };
            let current = index_keys(&f)
                .into_iter()
                .any(|(i, k)| i == index && k[..] == key[..]);
            if current && query.accepts(&f) {
                page.findings.push(f);
            }
        }
        // More is left only if an entry precedes the last one examined.
        if let Some(k) = last_key {
            if self.has_before(tree, &low, &k)? {
                let mut c = vec![index as u8];
                c.extend_from_slice(&k);
                page.next = Some(Cursor(c));
            }
        }
        Ok(page)
    }

    fn has_before(&self, tree: &sled::Tree, low: &[u8], key: &[u8]) -> Result<bool, StoreError> {
        Ok(tree
            .range(low.to_vec()..key.to_vec())
            .next_back()
            .transpose()
            .map_err(|e| self.sled_err(e))?
            .is_some())
    }

    /// Sets or clears a finding's archived flag; `false` when there is no such finding.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the finding does not decode; [`StoreError::Sled`].
    pub fn set_archived(&self, id: &str, archived: bool) -> Result<bool, StoreError> {
        self.findings
            .transaction(|t| -> TxResult<bool> {
                let Some(bytes) = t.get(id.as_bytes())? else {
                    return Ok(false);
                };
                let mut f = decode(id, &bytes).map_err(|c| {
                    ConflictableTransactionError::Abort(StoreError::Corrupt {
                        id: c.id,
                        why: c.why,
                    })
                })?;
                f.service.archived = archived;
                let bytes = serde_json::to_vec(&f).map_err(|source| {
                    ConflictableTransactionError::Abort(StoreError::Encode {
                        id: id.to_owned(),
                        source,
                    })
                })?;
                t.insert(id.as_bytes(), bytes)?;
                Ok(true)
            })
            .map_err(|e| self.tx_err(e))
    }

    /// Deletes findings last updated before `cutoff`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Sled`].
    pub fn purge_updated_before(&self, cutoff: Timestamp) -> Result<usize, StoreError> {
        let mut purged = 0;
        let high = updated_bytes(cutoff).to_vec();
        for entry in self.by_updated.range(..high) {
            let (key, _) = entry.map_err(|e| self.sled_err(e))?;
            let id = key
                .len()
                .checked_sub(ID_LEN)
                .and_then(|s| key.get(s..))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("")
                .to_owned();
            let stored = self
                .findings
                .get(id.as_bytes())
                .map_err(|e| self.sled_err(e))?;
            match stored.map(|b| decode(&id, &b)) {
                Some(Ok(f)) if index_keys(&f)[3].1[..] == key[..] => {
                    self.remove(&f)?;
                    purged += 1;
                }
                // A stale entry (the finding moved on or is gone): drop just the entry.
                _ => {
                    self.by_updated.remove(&key).map_err(|e| self.sled_err(e))?;
                }
            }
        }
        self.flush()?;
        Ok(purged)
    }

    /// Applies a retention of `days`: deletes findings not updated in that many days before `now`.
    ///
    /// # Errors
    /// [`StoreError::Sled`].
    pub fn apply_retention(&self, now: Timestamp, days: NonZeroU32) -> Result<usize, StoreError> {
        let span = i64::from(days.get()).saturating_mul(86_400_000);
        self.purge_updated_before(Timestamp(now.0.saturating_sub(span)))
    }

    fn remove(&self, f: &Finding) -> Result<(), StoreError> {
        let trees = (
            &self.findings,
            &self.by_account,
            &self.by_type,
            &self.by_severity,
            &self.by_updated,
        );
        trees
            .transaction(|(findings, acc, typ, sev, upd)| -> TxResult<()> {
                findings.remove(f.id.as_bytes())?;
                for ((_, key), tree) in index_keys(f).into_iter().zip([acc, typ, sev, upd]) {
                    tree.remove(key)?;
                }
                Ok(())
            })
            .map_err(|e| self.tx_err(e))
    }

    /// Every stored finding's id that `filter` would archive (the rule's dry run), and the
    /// corrupt findings met on the way.
    ///
    /// # Errors
    /// [`StoreError::Sled`].
    pub fn dry_run(
        &self,
        filter: &Filter,
    ) -> Result<(Vec<String>, Vec<CorruptFinding>), StoreError> {
        let mut ids = Vec::new();
        let mut corrupt = Vec::new();
        for entry in self.findings.iter() {
            let (key, bytes) = entry.map_err(|e| self.sled_err(e))?;
            let id = String::from_utf8_lossy(&key).into_owned();
            match decode(&id, &bytes) {
                Ok(f) => ids.extend(super::suppression::dry_run(filter, [&f])),
                Err(c) => corrupt.push(c),
            }
        }
        Ok((ids, corrupt))
    }

    /// Saves (or replaces) a suppression rule.
    ///
    /// # Errors
    /// [`StoreError::Sled`].
    pub fn save_rule(&self, rule: &SuppressionRule) -> Result<(), StoreError> {
        let text = rule.filter.source().to_string();
        self.rules
            .insert(rule.name.as_bytes(), text.as_bytes())
            .map_err(|e| self.sled_err(e))?;
        self.flush()
    }

    /// The saved rules, in name order; a rule that no longer parses is an error naming it.
    ///
    /// # Errors
    /// [`StoreError::BadRule`] or [`StoreError::Sled`].
    pub fn rules(&self) -> Result<SuppressionRules, StoreError> {
        let mut rules = Vec::new();
        for entry in self.rules.iter() {
            let (key, value) = entry.map_err(|e| self.sled_err(e))?;
            let name = String::from_utf8_lossy(&key).into_owned();
            let filter = Filter::parse_str(&String::from_utf8_lossy(&value)).map_err(|source| {
                StoreError::BadRule {
                    name: name.clone(),
                    source,
                }
            })?;
            rules.push(SuppressionRule { name, filter });
        }
        Ok(SuppressionRules::new(rules))
    }
}

// === Export positions (exports) ===

/// A position on the `by_updated` index: (`updatedAt`, id) as the index key, for exporters that
/// walk findings in update order and persist where they stopped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UpdatedCursor(Vec<u8>);

impl UpdatedCursor {
    /// The cursor's bytes, to persist.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A cursor read back from [`Self::as_bytes`]; `None` unless it is 8 time bytes and an id.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (_, id) = bytes.split_first_chunk::<8>()?;
        (id.len() == ID_LEN && std::str::from_utf8(id).is_ok_and(valid_id))
            .then(|| Self(bytes.to_vec()))
    }

    /// The `updatedAt` the cursor stands at.
    pub fn updated_at(&self) -> Timestamp {
        let bytes = self.0.first_chunk::<8>().copied().unwrap_or_default();
        Timestamp(i64::from_be_bytes(
            (u64::from_be_bytes(bytes) ^ (1 << 63)).to_be_bytes(),
        ))
    }
}

/// Findings after a position in update order, from [`FindingStore::updated_since`].
#[derive(Debug, Clone, Default)]
pub struct UpdatedPage {
    /// The findings, oldest update first.
    pub findings: Vec<Finding>,
    /// Stored findings met on the way that do not decode (skipped; the cursor moves past them).
    pub corrupt: Vec<CorruptFinding>,
    /// The last index entry examined; `None` when nothing was examined.
    pub next: Option<UpdatedCursor>,
}

impl FindingStore {
    /// Findings whose `by_updated` entry lies after `after` (all when `None`) and whose
    /// `updatedAt` is at most `until`, oldest first, at most `limit` of them.
    ///
    /// A finding updated again moves to a later entry, so it is returned again after its
    /// update. Stale entries (the finding moved on or is gone) are skipped; `next` moves past
    /// everything examined, so a corrupt finding never stalls the caller.
    ///
    /// # Errors
    /// [`StoreError::Sled`].
    pub fn updated_since(
        &self,
        after: Option<&UpdatedCursor>,
        until: Timestamp,
        limit: NonZeroUsize,
    ) -> Result<UpdatedPage, StoreError> {
        // Every key with this time prefix sorts below `high` (ids are ASCII hex).
        let mut high = updated_bytes(until).to_vec();
        high.push(0xff);
        let iter = match after {
            Some(c) => {
                let mut low = c.0.clone();
                // The smallest key above the cursor itself.
                low.push(0);
                self.by_updated.range(low..high)
            }
            None => self.by_updated.range(..high),
        };
        let mut page = UpdatedPage::default();
        for entry in iter {
            if page.findings.len() >= limit.get() {
                break;
            }
            let (key, _) = entry.map_err(|e| self.sled_err(e))?;
            page.next = Some(UpdatedCursor(key.to_vec()));
            let Some(id) = key
                .get(8..)
                .filter(|b| b.len() == ID_LEN)
                .and_then(|b| std::str::from_utf8(b).ok())
            else {
                continue;
            };
            let Some(bytes) = self
                .findings
                .get(id.as_bytes())
                .map_err(|e| self.sled_err(e))?
            else {
                continue;
            };
            match decode(id, &bytes) {
                Ok(f) if index_keys(&f)[3].1[..] == key[..] => page.findings.push(f),
                Ok(_) => {}
                Err(c) => page.corrupt.push(c),
            }
        }
        Ok(page)
    }

    /// A sled tree of the findings database for state kept beside the findings (export
    /// positions), so it shares their flushes and their folder.
    ///
    /// # Errors
    /// [`StoreError::Sled`].
    pub fn aux_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(|e| self.sled_err(e))
    }
}

// === Queries for the findings API (issue 7) ===

/// Index entries [`FindingStore::scan`] examines at most for statistics.
pub const MAX_SCAN_FOR_STATISTICS: usize = 1_000_000;
/// Length of a scan position in the update-time orders: `updated ‖ id`.
const UPDATED_POS_LEN: usize = 8 + ID_LEN;
/// Length of a scan position in the severity orders: `severity ‖ updated ‖ id`.
const SEVERITY_POS_LEN: usize = 2 + 8 + ID_LEN;

/// The order a [`FindingStore::scan`] visits findings in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOrder {
    /// Last update, newest first; equal times by id, descending.
    UpdatedDesc,
    /// Last update, oldest first; equal times by id, ascending.
    UpdatedAsc,
    /// Severity, highest first, then newest update first.
    SeverityDesc,
    /// Severity, lowest first, then oldest update first.
    SeverityAsc,
}

impl ScanOrder {
    fn descending(self) -> bool {
        matches!(self, Self::UpdatedDesc | Self::SeverityDesc)
    }

    fn by_severity(self) -> bool {
        matches!(self, Self::SeverityDesc | Self::SeverityAsc)
    }
}

/// A scan: its order, the bounds its indexes can use (each is also checked on every finding),
/// where to resume and how much to do.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The order.
    pub order: ScanOrder,
    /// Only these accounts (`Some(vec![])` matches nothing).
    pub accounts: Option<Vec<String>>,
    /// Only these types (`Some(vec![])` matches nothing).
    pub types: Option<Vec<FindingType>>,
    /// Severity within these inclusive bounds.
    pub severity: (Option<f64>, Option<f64>),
    /// `updatedAt` within these inclusive bounds.
    pub updated: (Option<Timestamp>, Option<Timestamp>),
    /// The previous scan's [`ScanEnd::next`]: resume after it.
    pub after: Option<Vec<u8>>,
    /// Stop after the visitor took this many findings.
    pub limit: usize,
    /// Stop after examining this many index entries.
    pub max_examined: usize,
}

impl Scan {
    /// A scan in `order` with no bounds, one page of `limit`.
    pub fn new(order: ScanOrder, limit: usize) -> Self {
        Self {
            order,
            accounts: None,
            types: None,
            severity: (None, None),
            updated: (None, None),
            after: None,
            limit,
            max_examined: MAX_SCAN_PER_PAGE,
        }
    }

    fn within(&self, f: &Finding) -> bool {
        self.accounts
            .as_ref()
            .is_none_or(|a| a.contains(&f.account_id))
            && self
                .types
                .as_ref()
                .is_none_or(|t| t.contains(&f.finding_type))
            && self.severity.0.is_none_or(|s| f.severity >= s)
            && self.severity.1.is_none_or(|s| f.severity <= s)
            && self.updated.0.is_none_or(|t| f.updated_at >= t)
            && self.updated.1.is_none_or(|t| f.updated_at <= t)
    }
}

/// How a [`FindingStore::scan`] ended.
#[derive(Debug, Clone, Default)]
pub struct ScanEnd {
    /// Where the next scan resumes; `None` when nothing is left.
    pub next: Option<Vec<u8>>,
    /// Stored findings met on the way that do not decode.
    pub corrupt: Vec<CorruptFinding>,
    /// Index entries examined.
    pub examined: usize,
}

type KeyIter = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>;

/// One key range of one index: its entries share `prefix`; what follows is the position.
struct IndexRange {
    prefix_len: usize,
    iter: KeyIter,
    head: Option<sled::IVec>,
}

/// The smallest key greater than every key starting with `prefix`; `None` when unbounded.
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < u8::MAX {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

impl FindingStore {
    /// Visits the findings a [`Scan`] selects, in its order, handing each to `take`, which
    /// says whether it took it (a taken finding counts toward [`Scan::limit`]).
    ///
    /// Picks the index the bounds allow: in the update-time orders each listed account (else
    /// each listed type, else each stored severity step within the bounds) is one range of its
    /// index, already in update order, and the ranges are merged; otherwise `by_updated`. In
    /// the severity orders, `by_severity`. Positions are index-independent in the update-time
    /// orders (`updated ‖ id`), so a position stays valid while findings are added: new
    /// findings sort after it in newest-first order and are simply not on later pages.
    ///
    /// # Errors
    /// [`StoreError::BadCursor`] when `after` is not a position of this order;
    /// [`StoreError::Sled`].
    pub fn scan(
        &self,
        scan: &Scan,
        mut take: impl FnMut(Finding) -> bool,
    ) -> Result<ScanEnd, StoreError> {
        let mut end = ScanEnd::default();
        let pos_len = if scan.order.by_severity() {
            SEVERITY_POS_LEN
        } else {
            UPDATED_POS_LEN
        };
        if let Some(after) = &scan.after {
            if after.len() != pos_len {
                return Err(StoreError::BadCursor {
                    cursor: Cursor(after.clone()).to_hex(),
                });
            }
        }
        if scan.accounts.as_ref().is_some_and(Vec::is_empty)
            || scan.types.as_ref().is_some_and(Vec::is_empty)
        {
            return Ok(end);
        }
        let (index, mut ranges) = self.scan_ranges(scan)?;
        let desc = scan.order.descending();
        let mut taken = 0;
        let mut last_pos: Option<Vec<u8>> = None;
        loop {
            if taken >= scan.limit || end.examined >= scan.max_examined {
                break;
            }
            let best = ranges
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.head.as_ref().map(|k| (i, k.get(r.prefix_len..))))
                .fold(None::<(usize, &[u8])>, |best, (i, pos)| {
                    let pos = pos.unwrap_or_default();
                    match best {
                        Some((_, b)) if (desc && pos <= b) || (!desc && pos >= b) => best,
                        _ => Some((i, pos)),
                    }
                })
                .map(|(i, _)| i);
            let Some(i) = best else {
                last_pos = None;
                break;
            };
            let Some(range) = ranges.get_mut(i) else {
                break;
            };
            let Some(key) = range.head.take() else {
                break;
            };
            range.head = range
                .iter
                .next()
                .transpose()
                .map_err(|e| self.sled_err(e))?
                .map(|(k, _)| k);
            end.examined += 1;
            last_pos = key.get(range.prefix_len..).map(<[u8]>::to_vec);
            let Some(id) = key
                .len()
                .checked_sub(ID_LEN)
                .and_then(|start| key.get(start..))
                .and_then(|b| std::str::from_utf8(b).ok())
            else {
                continue;
            };
            let Some(bytes) = self
                .findings
                .get(id.as_bytes())
                .map_err(|e| self.sled_err(e))?
            else {
                continue;
            };
            let f = match decode(id, &bytes) {
                Ok(f) => f,
                Err(c) => {
                    end.corrupt.push(c);
                    continue;
                }
            };
            // An entry left behind by a finding that moved on is stale: skip it.
            let current = index_keys(&f)
                .into_iter()
                .any(|(i, k)| i == index && k[..] == key[..]);
            if current && scan.within(&f) && take(f) {
                taken += 1;
            }
        }
        if ranges.iter().any(|r| r.head.is_some()) {
            end.next = last_pos;
        }
        Ok(end)
    }

    fn scan_ranges(&self, scan: &Scan) -> Result<(Index, Vec<IndexRange>), StoreError> {
        let desc = scan.order.descending();
        let sev_lo = scan.severity.0.map_or([0, 0], severity_bytes);
        let sev_hi = scan.severity.1.map_or([0xff, 0xff], severity_bytes);
        let upd_lo = scan.updated.0.map(updated_bytes);
        let upd_hi = scan.updated.1.and_then(|t| successor(&updated_bytes(t)));
        let cat = |a: &[u8], b: &[u8]| [a, b].concat();
        if scan.order.by_severity() {
            let low = sev_lo.to_vec();
            let high = successor(&sev_hi);
            let range =
                self.open_range(Index::Severity, &[], low, high, scan.after.as_deref(), desc)?;
            return Ok((Index::Severity, vec![range]));
        }
        let (index, prefixes): (Index, Vec<Vec<u8>>) = if let Some(accounts) = &scan.accounts {
            let mut a: Vec<&String> = accounts.iter().collect();
            a.sort_unstable();
            a.dedup();
            (
                Index::Account,
                a.iter().map(|a| cat(a.as_bytes(), &[0])).collect(),
            )
        } else if let Some(types) = &scan.types {
            let mut t: Vec<&str> = types.iter().map(|t| t.name()).collect();
            t.sort_unstable();
            t.dedup();
            (
                Index::Type,
                t.iter().map(|t| cat(t.as_bytes(), &[0])).collect(),
            )
        } else if scan.severity != (None, None) {
            (Index::Severity, self.severity_steps(sev_lo, sev_hi)?)
        } else {
            (Index::Updated, vec![Vec::new()])
        };
        let mut ranges = Vec::with_capacity(prefixes.len());
        for p in prefixes {
            let low = cat(&p, upd_lo.as_ref().map_or(&[][..], |b| &b[..]));
            let high = match &upd_hi {
                Some(h) => Some(cat(&p, h)),
                None => successor(&p),
            };
            ranges.push(self.open_range(index, &p, low, high, scan.after.as_deref(), desc)?);
        }
        Ok((index, ranges))
    }

    /// The severity steps (tenths, as index prefixes) stored within `[lo, hi]`, found by
    /// seeking, so a severity bound costs one seek per distinct stored severity.
    fn severity_steps(&self, lo: [u8; 2], hi: [u8; 2]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut steps = Vec::new();
        let mut cur = u16::from_be_bytes(lo);
        let hi = u16::from_be_bytes(hi);
        while cur <= hi {
            let Some(entry) = self.by_severity.range(cur.to_be_bytes().to_vec()..).next() else {
                break;
            };
            let (key, _) = entry.map_err(|e| self.sled_err(e))?;
            let Some(step) = key.first_chunk::<2>().map(|b| u16::from_be_bytes(*b)) else {
                break;
            };
            if step > hi {
                break;
            }
            steps.push(step.to_be_bytes().to_vec());
            let Some(next) = step.checked_add(1) else {
                break;
            };
            cur = next;
        }
        Ok(steps)
    }

    fn open_range(
        &self,
        index: Index,
        prefix: &[u8],
        low: Vec<u8>,
        high: Option<Vec<u8>>,
        after: Option<&[u8]>,
        desc: bool,
    ) -> Result<IndexRange, StoreError> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let mut lower = Included(low);
        let mut upper = high.map_or(Unbounded, Excluded);
        if let Some(after) = after {
            let at = [prefix, after].concat();
            if desc {
                let tighter = match &upper {
                    Excluded(h) => at < *h,
                    _ => true,
                };
                if tighter {
                    upper = Excluded(at);
                }
            } else {
                let tighter = match &lower {
                    Included(l) => at >= *l,
                    _ => true,
                };
                if tighter {
                    lower = Excluded(at);
                }
            }
        }
        let empty = match (&lower, &upper) {
            (Included(l) | Excluded(l), Excluded(h)) => l >= h,
            _ => false,
        };
        let tree = self.index_tree(index);
        let mut iter: KeyIter = if empty {
            Box::new(std::iter::empty())
        } else if desc {
            Box::new(tree.range((lower, upper)).rev())
        } else {
            Box::new(tree.range((lower, upper)))
        };
        let head = iter
            .next()
            .transpose()
            .map_err(|e| self.sled_err(e))?
            .map(|(k, _)| k);
        Ok(IndexRange {
            prefix_len: prefix.len(),
            iter,
            head,
        })
    }
}

fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut low = prefix.to_vec();
    low.push(0);
    let mut high = prefix.to_vec();
    high.push(1);
    (low, Some(high))
}

fn query_low(index: Index, query: &ListQuery) -> Vec<u8> {
    match index {
        Index::Account => prefix_range(query.account_id.as_deref().unwrap_or("").as_bytes()).0,
        Index::Type => prefix_range(query.finding_type.map_or("", |t| t.name()).as_bytes()).0,
        Index::Severity => severity_bytes(query.min_severity.unwrap_or(0.0)).to_vec(),
        Index::Updated => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::findings::samples::sample_finding_at;

    fn store() -> (tempfile::TempDir, FindingStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FindingStore::open(dir.path()).expect("open");
        (dir, store)
    }

    /// A distinct active finding of type `t` in `account`, updated at `at`.
    fn finding(t: FindingType, account: &str, at: i64) -> Finding {
        let mut f = sample_finding_at(t, account, "eu-west-1", Timestamp(at));
        f.service.archived = false;
        f
    }

    fn ids(page: &Page) -> Vec<(String, i64)> {
        page.findings
            .iter()
            .map(|f| (f.account_id.clone(), f.updated_at.0))
            .collect()
    }

    #[test]
    fn listing_by_account_pages_newest_first_without_other_accounts() {
        let (_dir, store) = store();
        let types = [
            FindingType::BackdoorCcActivity,
            FindingType::ReconPortscan,
            FindingType::TrojanDropPoint,
            FindingType::BackdoorSpambot,
            FindingType::UnauthorizedAccessTorClient,
        ];
        for (i, t) in types.iter().enumerate() {
            let at = 1_000 * (i as i64 + 1);
            store
                .upsert(&finding(*t, "111111111111", at))
                .expect("upsert");
            store
                .upsert(&finding(*t, "222222222222", at + 1))
                .expect("upsert");
        }
        let mut query = ListQuery {
            account_id: Some("111111111111".into()),
            limit: NonZeroUsize::new(2).expect("nonzero"),
            ..ListQuery::default()
        };
        let first = store.list(&query).expect("list");
        assert_eq!(
            ids(&first),
            vec![
                ("111111111111".into(), 5_000),
                ("111111111111".into(), 4_000)
            ]
        );
        query.after = first.next.clone();
        assert!(query.after.is_some());
        let second = store.list(&query).expect("list");
        assert_eq!(second.findings.len(), 2);
        assert_eq!(second.findings[0].updated_at, Timestamp(3_000));
        query.after = second.next.clone();
        let third = store.list(&query).expect("list");
        assert_eq!(ids(&third), vec![("111111111111".into(), 1_000)]);
        assert!(third.next.is_none());
        assert!(third.corrupt.is_empty());
    }

    #[test]
    fn listing_by_type_and_by_severity_uses_only_matching_findings() {
        let (_dir, store) = store();
        store
            .upsert(&finding(FindingType::ReconPortscan, "111111111111", 1))
            .expect("upsert");
        store
            .upsert(&finding(FindingType::ReconPortscan, "222222222222", 2))
            .expect("upsert");
        store
            .upsert(&finding(FindingType::BackdoorCcActivity, "111111111111", 3))
            .expect("upsert");
        let by_type = store
            .list(&ListQuery {
                finding_type: Some(FindingType::ReconPortscan),
                ..ListQuery::default()
            })
            .expect("list");
        assert_eq!(by_type.findings.len(), 2);
        assert!(
            by_type
                .findings
                .iter()
                .all(|f| f.finding_type == FindingType::ReconPortscan)
        );
        let high = store
            .list(&ListQuery {
                min_severity: Some(7.0),
                ..ListQuery::default()
            })
            .expect("list");
        assert_eq!(high.findings.len(), 1);
        assert_eq!(
            high.findings[0].finding_type,
            FindingType::BackdoorCcActivity
        );
        let all = store.list(&ListQuery::default()).expect("list");
        assert_eq!(all.findings.len(), 3);
        assert!(all.next.is_none());
    }

    #[test]
    fn an_upsert_of_the_same_id_merges_and_is_listed_once() {
        let (_dir, store) = store();
        let first = finding(FindingType::ReconPortscan, "111111111111", 1_000);
        let mut again = first.clone();
        again.updated_at = Timestamp(9_000);
        again.service.event_last_seen = Timestamp(9_000);
        assert_eq!(store.upsert(&first).expect("upsert"), Upserted::Inserted);
        assert_eq!(store.upsert(&again).expect("upsert"), Upserted::Merged);
        let all = store.list(&ListQuery::default()).expect("list");
        assert_eq!(all.findings.len(), 1);
        assert_eq!(all.findings[0].service.count, 2);
        assert_eq!(all.findings[0].updated_at, Timestamp(9_000));
        let by_account = store
            .list(&ListQuery {
                account_id: Some("111111111111".into()),
                ..ListQuery::default()
            })
            .expect("list");
        assert_eq!(by_account.findings.len(), 1);
    }

    #[test]
    fn a_corrupt_stored_finding_is_reported_not_panicked_on() {
        let (_dir, store) = store();
        let good = finding(FindingType::ReconPortscan, "111111111111", 1_000);
        let bad = finding(FindingType::BackdoorCcActivity, "111111111111", 2_000);
        store.upsert(&good).expect("upsert");
        store.upsert(&bad).expect("upsert");
        store
            .findings
            .insert(bad.id.as_bytes(), &b"{\"schemaVersion\": tru"[..])
            .expect("corrupt it");
        let err = store.get(&bad.id);
        assert!(
            matches!(&err, Err(StoreError::Corrupt { id, .. }) if *id == bad.id),
            "{err:?}"
        );
        let page = store.list(&ListQuery::default()).expect("list");
        assert_eq!(page.findings.len(), 1);
        assert_eq!(page.findings[0].id, good.id);
        assert_eq!(page.corrupt.len(), 1);
        assert_eq!(page.corrupt[0].id, bad.id);
        assert!(matches!(
            store.set_archived(&bad.id, true),
            Err(StoreError::Corrupt { .. })
        ));
        // New activity replaces the corrupt record and is listed once.
        assert_eq!(
            store.upsert(&bad).expect("upsert"),
            Upserted::ReplacedCorrupt
        );
        let page = store.list(&ListQuery::default()).expect("list");
        assert_eq!(page.findings.len(), 2);
        assert!(page.corrupt.is_empty());
    }

    #[test]
    fn archiving_sets_the_flag_and_filters_by_it() {
        let (_dir, store) = store();
        let f = finding(FindingType::ReconPortscan, "111111111111", 1_000);
        store.upsert(&f).expect("upsert");
        assert!(store.set_archived(&f.id, true).expect("archive"));
        assert!(
            !store
                .set_archived("0123456789abcdef0123456789abcdef", true)
                .expect("archive")
        );
        let active = store
            .list(&ListQuery {
                archived: Some(false),
                ..ListQuery::default()
            })
            .expect("list");
        assert!(active.findings.is_empty());
        let stored = store.get(&f.id).expect("get").expect("present");
        assert!(stored.service.archived);
    }

    #[test]
    fn retention_deletes_only_findings_not_updated_within_the_window() {
        let (_dir, store) = store();
        let day = 86_400_000;
        let old = finding(FindingType::ReconPortscan, "111111111111", 10 * day);
        let fresh = finding(FindingType::BackdoorCcActivity, "111111111111", 95 * day);
        store
            .upsert_all(&[old.clone(), fresh.clone()])
            .expect("upsert");
        let days = NonZeroU32::new(30).expect("nonzero");
        assert_eq!(
            store
                .apply_retention(Timestamp(100 * day), days)
                .expect("purge"),
            1
        );
        assert!(store.get(&old.id).expect("get").is_none());
        assert!(store.get(&fresh.id).expect("get").is_some());
        let by_type = store
            .list(&ListQuery {
                finding_type: Some(FindingType::ReconPortscan),
                ..ListQuery::default()
            })
            .expect("list");
        assert!(by_type.findings.is_empty());
    }

    #[test]
    fn a_dry_run_lists_what_a_new_rule_would_archive_before_it_is_saved() {
        let (_dir, store) = store();
        let scan = finding(FindingType::ReconPortscan, "111111111111", 1);
        let c2 = finding(FindingType::BackdoorCcActivity, "111111111111", 2);
        store.upsert_all(&[scan.clone(), c2]).expect("upsert");
        let filter = Filter::parse(&json!({"criterion": {"type": {"eq": ["Recon:EC2/Portscan"]}}}))
            .expect("filter");
        let (ids, corrupt) = store.dry_run(&filter).expect("dry run");
        assert_eq!(ids, vec![scan.id.clone()]);
        assert!(corrupt.is_empty());
        assert!(store.rules().expect("rules").rules().is_empty());
        store
            .save_rule(&SuppressionRule {
                name: "no-scans".into(),
                filter,
            })
            .expect("save");
        let rules = store.rules().expect("rules");
        assert_eq!(rules.first_match(&scan), Some("no-scans"));
    }

    #[test]
    fn updated_since_walks_update_order_and_returns_an_updated_finding_again() {
        let (_dir, store) = store();
        let a = finding(FindingType::ReconPortscan, "111111111111", 1_000);
        let b = finding(FindingType::BackdoorCcActivity, "111111111111", 2_000);
        let c = finding(FindingType::TrojanDropPoint, "111111111111", 3_000);
        store
            .upsert_all(&[a.clone(), b.clone(), c.clone()])
            .expect("upsert");
        let two = NonZeroUsize::new(2).expect("nonzero");
        let first = store
            .updated_since(None, Timestamp(10_000), two)
            .expect("page");
        let got: Vec<_> = first.findings.iter().map(|f| f.id.clone()).collect();
        assert_eq!(got, vec![a.id.clone(), b.id.clone()]);
        let cursor = first.next.expect("cursor");
        assert_eq!(cursor.updated_at(), Timestamp(2_000));
        assert_eq!(
            UpdatedCursor::from_bytes(cursor.as_bytes()),
            Some(cursor.clone())
        );
        // `until` holds back what is newer.
        let held = store
            .updated_since(Some(&cursor), Timestamp(2_999), two)
            .expect("page");
        assert!(held.findings.is_empty());
        // `a` is seen again: it moves past the cursor, its old entry is gone.
        let mut again = a.clone();
        again.updated_at = Timestamp(4_000);
        store.upsert(&again).expect("upsert");
        let rest = store
            .updated_since(Some(&cursor), Timestamp(10_000), two)
            .expect("page");
        let got: Vec<_> = rest
            .findings
            .iter()
            .map(|f| (f.id.clone(), f.service.count))
            .collect();
        assert_eq!(got, vec![(c.id.clone(), 1), (a.id.clone(), 2)]);
        assert!(UpdatedCursor::from_bytes(b"short").is_none());
    }

    #[test]
    fn ids_that_are_not_32_hex_digits_and_foreign_cursors_are_rejected() {
        let (_dir, store) = store();
        let mut f = finding(FindingType::ReconPortscan, "111111111111", 1);
        f.id = "../../etc".into();
        assert!(matches!(store.upsert(&f), Err(StoreError::BadId { .. })));
        assert!(Cursor::from_hex("zz").is_err());
        let cursor = Cursor::from_hex("01ff").expect("hex");
        let query = ListQuery {
            after: Some(cursor),
            ..ListQuery::default()
        };
        assert!(matches!(
            store.list(&query),
            Err(StoreError::BadCursor { .. })
        ));
    }

    #[test]
    fn a_scan_examines_only_the_index_entries_its_bounds_select() {
        let (_dir, store) = store();
        let mut all = Vec::new();
        for i in 0..30_i64 {
            let t = if i % 3 == 0 {
                FindingType::ReconPortscan
            } else {
                FindingType::BackdoorCcActivity
            };
            let account = if i == 7 {
                "222222222222"
            } else {
                "111111111111"
            };
            let mut f = finding(t, account, 1_000 * (i + 1));
            f.id = format!("{i:032x}");
            f.severity = if i % 5 == 0 { 9.0 } else { 2.0 };
            all.push(f);
        }
        store.upsert_all(&all).expect("upsert");
        let count = |scan: &Scan| {
            let mut taken = 0;
            let end = store
                .scan(scan, |_| {
                    taken += 1;
                    true
                })
                .expect("scan");
            (taken, end.examined)
        };
        let mut scan = Scan::new(ScanOrder::UpdatedDesc, usize::MAX);
        scan.accounts = Some(vec!["222222222222".into()]);
        assert_eq!(count(&scan), (1, 1));
        let mut scan = Scan::new(ScanOrder::UpdatedDesc, usize::MAX);
        scan.types = Some(vec![FindingType::ReconPortscan]);
        assert_eq!(count(&scan), (10, 10));
        let mut scan = Scan::new(ScanOrder::UpdatedAsc, usize::MAX);
        scan.severity = (Some(8.5), None);
        assert_eq!(count(&scan), (6, 6));
        let mut scan = Scan::new(ScanOrder::UpdatedDesc, usize::MAX);
        scan.updated = (Some(Timestamp(5_000)), Some(Timestamp(9_000)));
        assert_eq!(count(&scan), (5, 5));
        let mut scan = Scan::new(ScanOrder::SeverityDesc, usize::MAX);
        scan.severity = (Some(8.5), None);
        assert_eq!(count(&scan), (6, 6));
        // A position of the wrong length is refused.
        let mut scan = Scan::new(ScanOrder::UpdatedDesc, 5);
        scan.after = Some(vec![1, 2, 3]);
        assert!(matches!(
            store.scan(&scan, |_| true),
            Err(StoreError::BadCursor { .. })
        ));
    }
}
