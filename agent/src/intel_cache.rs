//! The agent's intel cache: the snapshot the aggregator last sent, readable on the hot path
//! without locks, and persisted in the agent's sled database so a restarted agent that cannot
//! reach the aggregator still filters.
//!
//! Invariants:
//! - Readers never wait: the snapshot sits in an `ArcSwap`; an update swaps one pointer.
//! - An update is verified (full snapshots only, decodes, version and content hash as
//!   announced) and flushed to disk before it is swapped in, so what the agent filters with is
//!   always what it would reload after a crash.
//! - At start the persisted snapshot is used when it decodes; a damaged one is reported (error
//!   log) and replaced by the built-in canary list, which is also what a fresh agent starts
//!   with. The canary snapshot has version 0, which `Hello` reports as "holds none", so the
//!   aggregator sends its snapshot on the first session.

use std::sync::Arc;

use arc_swap::ArcSwap;
use picket_intel::{Snapshot, SnapshotBuilder, canary_list};
use picket_proto::v1::IntelUpdate;
use tracing::{error, info};

/// The sled tree holding the snapshot.
pub const TREE: &str = "intel";
/// The key of the encoded snapshot in [`TREE`].
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// Why an update was not applied, or the cache could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntelCacheError {
    /// Occurs when an update is a delta, which this agent does not apply.
    #[error("intel update {version} is a delta against {base}; only full snapshots are applied")]
    DeltaUnsupported {
        /// The update's version.
        version: u64,
        /// The version it applies to.
        base: u64,
    },
    /// Occurs when the payload is not a valid snapshot encoding.
    #[error("intel update {version} does not decode: {source}")]
    Decode {
        /// The announced version.
        version: u64,
        /// Why.
        source: picket_intel::DecodeError,
    },
    /// Occurs when the decoded snapshot's version or content hash differs from the frame's.
    #[error("intel update {version} announces {what} {announced} but carries {carried}")]
    Mismatch {
        /// The announced version.
        version: u64,
        /// `version` or `content hash`.
        what: &'static str,
        /// What the frame said.
        announced: String,
        /// What the payload holds.
        carried: String,
    },
    /// Occurs when the snapshot cannot be stored.
    #[error("storing the intel snapshot: {0}")]
    Store(#[from] sled::Error),
    /// Occurs when the verification task panicked or was cancelled.
    #[error("intel verification task failed: {0}")]
    Task(String),
    /// Occurs when the built-in canary list cannot be compiled (a bug).
    #[error("compiling the built-in canary list: {0}")]
    Canary(#[from] picket_intel::BuildError),
}

/// Where the snapshot in use at start came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The persisted snapshot.
    Persisted,
    /// The built-in canary list: nothing was persisted yet.
    CanaryFresh,
    /// The built-in canary list, because the persisted snapshot was damaged.
    CanaryAfterDamage,
}

/// The current snapshot and its persistence.
pub struct IntelCache {
    current: ArcSwap<Snapshot>,
    tree: sled::Tree,
    origin: Origin,
}

impl std::fmt::Debug for IntelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntelCache")
            .field("version", &self.version())
            .field("origin", &self.origin)
            .finish()
    }
}

/// The built-in canary list as a snapshot of version 0 (none from the aggregator).
pub fn canary_snapshot() -> Result<Snapshot, picket_intel::BuildError> {
    let mut b = SnapshotBuilder::new();
    b.add_list(canary_list());
    b.build(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl IntelCache {
    /// Opens the cache in `db`: the persisted snapshot, or the canary list (logging which, and
    /// why when the persisted one is damaged).
    ///
    /// # Errors
    /// [`IntelCacheError::Store`] when sled fails.
    pub fn open(db: &sled::Db) -> Result<Arc<Self>, IntelCacheError> {
        let tree = db.open_tree(TREE)?;
        let (snapshot, origin) = match tree.get(SNAPSHOT_KEY)? {
            None => (canary_snapshot()?, Origin::CanaryFresh),
            Some(bytes) => match Snapshot::from_bytes(&bytes) {
                Ok(s) => (s, Origin::Persisted),
                Err(e) => {
                    error!(
                        error = %e,
                        bytes = bytes.len(),
                        "persisted intel snapshot is damaged; using the built-in canary list until the aggregator sends a new one"
                    );
                    (canary_snapshot()?, Origin::CanaryAfterDamage)
                }
            },
        };
        match origin {
            Origin::Persisted => info!(
                version = snapshot.version(),
                indicators = snapshot.indicator_count(),
                "intel snapshot loaded from cache"
            ),
            Origin::CanaryFresh | Origin::CanaryAfterDamage => info!(
                indicators = snapshot.indicator_count(),
                "intel: using the built-in canary list"
            ),
        }
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(snapshot),
            tree,
            origin,
        }))
    }

    /// The snapshot in force; cheap, lock-free, and valid for as long as it is held.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A short-lived borrow of the snapshot for one lookup, cheaper than [`Self::snapshot`].
    pub fn guard(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The version held (0 for the built-in canary list).
    pub fn version(&self) -> u64 {
        self.current.load().version()
    }

    /// Where the snapshot in use at start came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Checks an update and decodes its snapshot without applying it. CPU-heavy for large
    /// snapshots: call it off the async threads.
    ///
    /// # Errors
    /// [`IntelCacheError`] saying what does not match.
    pub fn verify(update: &IntelUpdate) -> Result<Snapshot, IntelCacheError> {
        let version = update.version;
        if update.base_version != 0 {
            return Err(IntelCacheError::DeltaUnsupported {
                version,
                base: update.base_version,
            });
        }
        let snapshot = Snapshot::from_bytes(&update.payload)
            .map_err(|source| IntelCacheError::Decode { version, source })?;
        if snapshot.version() != version {
            return Err(IntelCacheError::Mismatch {
                version,
                what: "version",
                announced: version.to_string(),
                carried: snapshot.version().to_string(),
            });
        }
        if snapshot.content_hash().as_slice() != update.content_hash.as_slice() {
            return Err(IntelCacheError::Mismatch {
                version,
                what: "content hash",
                announced: hex(&update.content_hash),
                carried: snapshot.content_hash_hex(),
            });
        }
        Ok(snapshot)
    }

    /// Persists `payload` (the encoding of `snapshot`, already verified) and swaps the snapshot
    /// in. Flushes before swapping.
    ///
    /// # Errors
    /// [`IntelCacheError::Store`]; the previous snapshot stays in force.
    pub async fn install(&self, snapshot: Snapshot, payload: &[u8]) -> Result<(), IntelCacheError> {
        self.tree.insert(SNAPSHOT_KEY, payload)?;
        self.tree.flush_async().await?;
        let version = snapshot.version();
        let indicators = snapshot.indicator_count();
        self.current.store(Arc::new(snapshot));
        info!(version, indicators, "intel snapshot applied");
        Ok(())
    }

    /// Verifies, persists and swaps in an update (verification runs on a blocking thread).
    ///
    /// # Errors
    /// [`IntelCacheError`]; the previous snapshot stays in force.
    pub async fn apply(&self, update: IntelUpdate) -> Result<(), IntelCacheError> {
        let (update, verified) = tokio::task::spawn_blocking(move || {
            let r = Self::verify(&update);
            (update, r)
        })
        .await
        .map_err(|e| IntelCacheError::Task(e.to_string()))?;
        self.install(verified?, &update.payload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use picket_intel::{ListKind, ListOptions, parse_list};

    fn update_for(text: &str, version: u64) -> IntelUpdate {
        let list = parse_list(
            "t.txt",
            text.as_bytes(),
            &ListOptions::new("t", ListKind::Threat),
        )
        .unwrap();
        let mut b = SnapshotBuilder::new();
        b.add_list(list);
        let s = b.build(version).unwrap();
        IntelUpdate {
            version,
            content_hash: s.content_hash().to_vec(),
            base_version: 0,
            payload: s.to_bytes().into(),
        }
    }

    #[tokio::test]
    async fn a_fresh_cache_holds_the_canaries_and_an_applied_update_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let cache = IntelCache::open(&db).unwrap();
        assert_eq!(cache.origin(), Origin::CanaryFresh);
        assert_eq!(cache.version(), 0);
        assert!(
            cache
                .snapshot()
                .match_domain("guarddutyc2activityb.com")
                .is_some()
        );

        cache.apply(update_for("evil.example\n", 42)).await.unwrap();
        assert_eq!(cache.version(), 42);
        assert!(cache.guard().match_domain("a.evil.example").is_some());
        drop(cache);

        let again = IntelCache::open(&db).unwrap();
        assert_eq!(again.origin(), Origin::Persisted);
        assert_eq!(again.version(), 42);
        assert!(again.snapshot().match_domain("evil.example").is_some());
    }

    #[tokio::test]
    async fn updates_with_a_wrong_hash_version_or_delta_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let cache = IntelCache::open(&db).unwrap();

        let mut bad_hash = update_for("evil.example\n", 5);
        bad_hash.content_hash = vec![0; 32];
        let err = cache.apply(bad_hash).await.unwrap_err().to_string();
        assert!(err.contains("content hash"), "{err}");

        let mut bad_version = update_for("evil.example\n", 5);
        bad_version.version = 6;
        let err = cache.apply(bad_version).await.unwrap_err().to_string();
        assert!(err.contains("announces version 6 but carries 5"), "{err}");

        let mut delta = update_for("evil.example\n", 5);
        delta.base_version = 4;
        assert!(matches!(
            cache.apply(delta).await,
            Err(IntelCacheError::DeltaUnsupported { .. })
        ));

        let mut garbage = update_for("evil.example\n", 5);
        garbage.payload.truncate(20);
        assert!(matches!(
            cache.apply(garbage).await,
            Err(IntelCacheError::Decode { .. })
        ));
        assert_eq!(cache.version(), 0);
        drop(cache);
        assert_eq!(IntelCache::open(&db).unwrap().origin(), Origin::CanaryFresh);
    }

    #[test]
    fn a_damaged_persisted_snapshot_is_replaced_by_the_canaries_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let mut bytes = update_for("evil.example\n", 9).payload.to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        db.open_tree(TREE)
            .unwrap()
            .insert(SNAPSHOT_KEY, bytes)
            .unwrap();
        let cache = IntelCache::open(&db).unwrap();
        assert_eq!(cache.origin(), Origin::CanaryAfterDamage);
        assert_eq!(cache.version(), 0);
        assert!(cache.snapshot().match_domain("evil.example").is_none());
        assert!(
            cache
                .snapshot()
                .match_domain("guarddutyc2activityb.com")
                .is_some()
        );
    }
}
