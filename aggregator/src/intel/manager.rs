//! The aggregator's current intel snapshot: built at start, rebuilt on a file change or an
//! admin request, and published through a `tokio::sync::watch` that every agent session holds.
//!
//! Invariants:
//! - A reload that fails (a list unreadable or unparseable as a whole) publishes nothing: the
//!   previous snapshot stays in force, and the failure is logged with the file and why.
//! - Versions only grow, also across restarts: the last version and its content hash are kept
//!   in the aggregator's sled store and written (and flushed) before a snapshot is published.
//!   A new version is `max(last + 1, now in ms)`, so even a wiped store is unlikely to reissue
//!   a version an agent already holds with other content.
//! - Content equal to the published snapshot's (same hash) is not republished, and at start
//!   it keeps the stored version, so restarting the aggregator sends agents nothing new.

use std::path::PathBuf;
use std::sync::Arc;

use picket_intel::Snapshot;
use tokio::sync::{Mutex, watch};
use tracing::{info, warn};

use super::sources::{self, IntelSettings, SourceError};

/// Key of the last published version and content hash in the intel tree.
const LAST_KEY: &[u8] = b"last";

/// A published snapshot with its encoding, made once and shared by every session.
#[derive(Debug)]
pub struct Published {
    /// The compiled snapshot.
    pub snapshot: Arc<Snapshot>,
    /// `snapshot.to_bytes()`, the `IntelUpdate` payload; clones share the buffer.
    pub encoded: prost::bytes::Bytes,
}

impl Published {
    /// Wraps a snapshot with its encoding.
    pub fn new(snapshot: Snapshot) -> Self {
        let encoded = prost::bytes::Bytes::from(snapshot.to_bytes());
        Self {
            snapshot: Arc::new(snapshot),
            encoded,
        }
    }

    /// The snapshot's version.
    pub fn version(&self) -> u64 {
        self.snapshot.version()
    }
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new snapshot was published.
    Published {
        /// Its version.
        version: u64,
        /// Its indicator count.
        indicators: usize,
    },
    /// The lists' content had not changed; the current snapshot stays.
    Unchanged {
        /// The current version.
        version: u64,
        /// Its indicator count.
        indicators: usize,
    },
}

/// Why a reload published nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// Occurs when a list cannot be read, parsed or compiled.
    #[error(transparent)]
    Sources(#[from] SourceError),
    /// Occurs when the version cannot be stored.
    #[error("storing the intel version: {0}")]
    Store(#[from] sled::Error),
    /// Occurs when the loading task panicked or was cancelled.
    #[error("intel loading task failed: {0}")]
    Task(String),
}

/// Holds the current snapshot and rebuilds it on request.
#[derive(Debug)]
pub struct IntelManager {
    settings: Arc<IntelSettings>,
    tree: sled::Tree,
    tx: watch::Sender<Arc<Published>>,
    // Serialises reloads so two triggers cannot publish out of version order.
    reloading: Mutex<()>,
}

fn read_last(tree: &sled::Tree) -> Result<Option<(u64, [u8; 32])>, sled::Error> {
    Ok(tree.get(LAST_KEY)?.and_then(|v| {
        let (ver, hash) = v.split_first_chunk::<8>()?;
        let hash: [u8; 32] = hash.try_into().ok()?;
        Some((u64::from_be_bytes(*ver), hash))
    }))
}

fn write_last(tree: &sled::Tree, version: u64, hash: &[u8; 32]) -> Result<(), sled::Error> {
    let mut v = version.to_be_bytes().to_vec();
    v.extend_from_slice(hash);
    tree.insert(LAST_KEY, v)?;
    tree.flush()?;
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Loads and compiles the lists, numbering the result after the stored version (reused when
/// `reuse_same_content` and the content is unchanged). Blocking: file reads and compilation.
fn build(
    settings: &IntelSettings,
    tree: &sled::Tree,
    current_hash: Option<[u8; 32]>,
    reuse_same_content: bool,
) -> Result<Option<Snapshot>, ReloadError> {
    let lists = sources::load_lists(settings)?;
    sources::log_issues(&lists);
    // Compile once with a placeholder version: the hash does not depend on it, and the
    // version can only be chosen once the hash is known.
    let draft = sources::compile(lists, 0)?;
    let hash = draft.content_hash();
    if current_hash == Some(hash) {
        return Ok(None);
    }
    let last = read_last(tree)?;
    let version = match last {
        Some((v, h)) if reuse_same_content && h == hash => v,
        Some((v, _)) => v.saturating_add(1).max(now_ms()),
        None => now_ms().max(1),
    };
    if last.map(|(v, _)| v) != Some(version) {
        write_last(tree, version, &hash)?;
    }
    Ok(Some(draft.with_version(version)))
}

impl IntelManager {
    /// Loads the configured lists and publishes the first snapshot. Blocking (reads files).
    ///
    /// # Errors
    /// [`ReloadError`] naming the list that could not be loaded: the aggregator does not start
    /// without its configured intel.
    pub fn start(settings: IntelSettings, tree: sled::Tree) -> Result<Arc<Self>, ReloadError> {
        let snapshot = build(&settings, &tree, None, true)?
            .ok_or_else(|| ReloadError::Task("no snapshot built".to_owned()))?;
        let published = Published::new(snapshot);
        log_published(&published, "start");
        let (tx, _) = watch::channel(Arc::new(published));
        Ok(Arc::new(Self {
            settings: Arc::new(settings),
            tree,
            tx,
            reloading: Mutex::new(()),
        }))
    }

    /// A receiver of the current snapshot and every later one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// The snapshot in force.
    pub fn current(&self) -> Arc<Published> {
        Arc::clone(&self.tx.borrow())
    }

    /// The files and folders the lists come from.
    pub fn source_paths(&self) -> Vec<PathBuf> {
        self.settings
            .sources
            .iter()
            .map(|s| s.path.clone())
            .collect()
    }

    /// Rebuilds the snapshot from the lists and publishes it if its content changed; on
    /// failure the previous snapshot stays in force. `trigger` says why, for the log.
    ///
    /// # Errors
    /// [`ReloadError`] naming the list at fault; it is also logged.
    pub async fn reload(&self, trigger: &'static str) -> Result<ReloadOutcome, ReloadError> {
        let _guard = self.reloading.lock().await;
        let current = self.current();
        let settings = Arc::clone(&self.settings);
        let tree = self.tree.clone();
        let hash = current.snapshot.content_hash();
        let result =
            tokio::task::spawn_blocking(move || build(&settings, &tree, Some(hash), false))
                .await
                .map_err(|e| ReloadError::Task(e.to_string()))
                .and_then(|r| r);
        match result {
            Ok(Some(snapshot)) => {
                let published = Published::new(snapshot);
                log_published(&published, trigger);
                let outcome = ReloadOutcome::Published {
                    version: published.version(),
                    indicators: published.snapshot.indicator_count(),
                };
                self.tx.send_replace(Arc::new(published));
                Ok(outcome)
            }
            Ok(None) => {
                info!(
                    trigger,
                    version = current.version(),
                    "intel lists unchanged; snapshot kept"
                );
                Ok(ReloadOutcome::Unchanged {
                    version: current.version(),
                    indicators: current.snapshot.indicator_count(),
                })
            }
            Err(e) => {
                warn!(
                    trigger,
                    version = current.version(),
                    error = %e,
                    "intel reload failed; the previous snapshot stays in force"
                );
                Err(e)
            }
        }
    }
}

fn log_published(p: &Published, trigger: &str) {
    let s = &p.snapshot;
    info!(
        trigger,
        version = s.version(),
        indicators = s.indicator_count(),
        lists = s.lists().len(),
        bytes = p.encoded.len(),
        content_hash = %s.content_hash_hex(),
        "intel snapshot published"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intel::sources::SourceSpec;
    use picket_intel::{Category, ListKind};

    struct Fixture {
        _dir: tempfile::TempDir,
        list: PathBuf,
        db: sled::Db,
        settings: IntelSettings,
    }

    fn fixture(text: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("threat.txt");
        std::fs::write(&list, text).unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let settings = IntelSettings {
            canaries: true,
            sources: vec![SourceSpec {
                path: list.clone(),
                kind: ListKind::Threat,
                format: None,
                name: None,
                category: Category::C2,
            }],
        };
        Fixture {
            _dir: dir,
            list,
            db,
            settings,
        }
    }

    #[tokio::test]
    async fn a_changed_list_publishes_a_higher_version_that_matches_the_new_entry() {
        let f = fixture("evil.example\n");
        let m = IntelManager::start(f.settings.clone(), f.db.open_tree("intel").unwrap()).unwrap();
        let mut rx = m.subscribe();
        let v1 = m.current().version();
        assert!(
            m.current()
                .snapshot
                .match_domain("newbad.example")
                .is_none()
        );
        std::fs::write(&f.list, "evil.example\nnewbad.example\n").unwrap();
        let outcome = m.reload("test").await.unwrap();
        let ReloadOutcome::Published {
            version,
            indicators,
        } = outcome
        else {
            panic!("expected a new snapshot, got {outcome:?}");
        };
        assert!(version > v1);
        assert_eq!(indicators, 2 + 6);
        assert!(rx.has_changed().unwrap());
        let seen = rx.borrow_and_update().clone();
        assert_eq!(seen.version(), version);
        assert!(seen.snapshot.match_domain("newbad.example").is_some());
        let decoded = Snapshot::from_bytes(&seen.encoded).unwrap();
        assert_eq!(decoded.version(), version);
        assert_eq!(decoded.content_hash(), seen.snapshot.content_hash());
    }

    #[tokio::test]
    async fn an_unparseable_list_leaves_the_previous_snapshot_in_force() {
        let f = fixture("evil.example\n");
        let m = IntelManager::start(f.settings.clone(), f.db.open_tree("intel").unwrap()).unwrap();
        let before = m.current();
        // Binary content: no format can be detected, so the list fails as a whole.
        std::fs::write(&f.list, b"\x00\x01\x02").unwrap();
        let err = m.reload("test").await.unwrap_err().to_string();
        assert!(err.contains("threat.txt"), "{err}");
        let after = m.current();
        assert_eq!(after.version(), before.version());
        assert!(after.snapshot.match_domain("evil.example").is_some());
        std::fs::remove_file(&f.list).unwrap();
        assert!(m.reload("test").await.is_err());
        assert_eq!(m.current().version(), before.version());
    }

    #[tokio::test]
    async fn unchanged_content_is_not_republished_and_a_restart_keeps_its_version() {
        let f = fixture("evil.example\n");
        let tree = f.db.open_tree("intel").unwrap();
        let m = IntelManager::start(f.settings.clone(), tree.clone()).unwrap();
        let v1 = m.current().version();
        let rx = m.subscribe();
        assert!(matches!(
            m.reload("test").await.unwrap(),
            ReloadOutcome::Unchanged { version, .. } if version == v1
        ));
        assert!(!rx.has_changed().unwrap());
        drop(m);
        let again = IntelManager::start(f.settings.clone(), tree.clone()).unwrap();
        assert_eq!(again.current().version(), v1);
        drop(again);
        std::fs::write(&f.list, "other.example\n").unwrap();
        let changed = IntelManager::start(f.settings.clone(), tree).unwrap();
        assert!(changed.current().version() > v1);
    }
}
