//! Reloads the intel snapshot when a list file changes, debounced so that an editor's save or a
//! feed download (truncate, several writes, rename) causes one reload, not ten.
//!
//! Each file source is watched through its parent folder rather than the file itself: editors
//! and download tools replace files by renaming over them, which silently ends a watch on the
//! old inode.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::manager::IntelManager;

/// How long the lists must stay quiet before a change is reloaded.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(300);

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// Occurs when the OS watch cannot be set up (e.g. the inotify watch limit is reached).
    #[error("watching {path} for intel changes: {source}")]
    Watch {
        /// The folder.
        path: PathBuf,
        /// notify's error.
        source: notify::Error,
    },
    /// Occurs when the platform watcher cannot be created.
    #[error("creating the intel file watcher: {0}")]
    Create(notify::Error),
}

/// The running watcher; dropping it stops watching.
pub struct IntelWatcher {
    _watcher: RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Drop for IntelWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether an event path concerns one of the sources: the file itself, or anything directly in
/// a folder source.
fn concerns(sources: &[PathBuf], path: &Path) -> bool {
    sources
        .iter()
        .any(|s| s == path || path.parent() == Some(s.as_path()))
}

/// Starts watching the manager's sources; every burst of changes ends in one
/// [`IntelManager::reload`].
///
/// # Errors
/// [`WatchError`] naming the folder that cannot be watched.
pub fn spawn(manager: Arc<IntelManager>, debounce: Duration) -> Result<IntelWatcher, WatchError> {
    // Events carry the watched folder's path joined with the file name, so a relative source
    // (`feed.txt` from a config in the working folder) would never equal them: compare and
    // watch absolute paths.
    let sources: Vec<PathBuf> = manager
        .source_paths()
        .into_iter()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .collect();
    // Capacity one: a queued signal already means "reload soon", so a full queue loses nothing.
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let filter = sources.clone();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                if event.paths.iter().any(|p| concerns(&filter, p)) {
                    let _full_means_already_pending = tx.try_send(());
                }
            }
            Err(e) => warn!(error = %e, "intel file watcher error"),
        })
        .map_err(WatchError::Create)?;
    let mut folders: Vec<PathBuf> = sources
        .iter()
        .map(|s| {
            if s.is_dir() {
                s.clone()
            } else {
                s.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_owned)
            }
        })
        .collect();
    folders.sort();
    folders.dedup();
    for folder in &folders {
        watcher
            .watch(folder, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                path: folder.clone(),
                source,
            })?;
        debug!(folder = %folder.display(), "watching for intel changes");
    }
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Wait for a quiet spell so a burst of writes is read once, complete.
            loop {
                match tokio::time::timeout(debounce, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_elapsed) => break,
                }
            }
            // The manager logs both outcomes; a failed reload keeps the previous snapshot.
            let _logged = manager.reload("file change").await;
        }
    });
    Ok(IntelWatcher {
        _watcher: watcher,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_to_a_list_named_by_a_relative_path_is_reloaded() {
        use crate::intel::sources::{IntelSettings, SourceSpec};
        use picket_intel::{Category, ListKind};
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("feed.txt");
        std::fs::write(&list, "evil.example\n").unwrap();
        let cwd = std::env::current_dir().unwrap();
        let relative = pathdiff(&list, &cwd);
        assert!(relative.is_relative());
        let settings = IntelSettings {
            canaries: false,
            sources: vec![SourceSpec {
                path: relative,
                kind: ListKind::Threat,
                format: None,
                name: None,
                category: Category::C2,
            }],
        };
        let db = sled::open(dir.path().join("db")).unwrap();
        let manager = IntelManager::start(settings, db.open_tree("intel").unwrap()).unwrap();
        let mut rx = manager.subscribe();
        let _watcher = spawn(Arc::clone(&manager), Duration::from_millis(50)).unwrap();
        std::fs::write(&list, "evil.example\nnewbad.example\n").unwrap();
        tokio::time::timeout(Duration::from_secs(20), rx.changed())
            .await
            .expect("no reload within 20 s of the change")
            .unwrap();
        assert!(
            rx.borrow()
                .snapshot
                .match_domain("newbad.example")
                .is_some()
        );
    }

    /// `path` relative to `base` (both absolute), with `..` steps as needed.
    fn pathdiff(path: &Path, base: &Path) -> PathBuf {
        let p: Vec<_> = path.components().collect();
        let b: Vec<_> = base.components().collect();
        let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let mut out = PathBuf::new();
        for _ in common..b.len() {
            out.push("..");
        }
        for c in &p[common..] {
            out.push(c);
        }
        out
    }

    #[test]
    fn events_count_for_the_listed_file_and_for_files_in_listed_folders_only() {
        let sources = vec![PathBuf::from("/etc/intel/a.txt"), PathBuf::from("/feeds")];
        assert!(concerns(&sources, Path::new("/etc/intel/a.txt")));
        assert!(!concerns(&sources, Path::new("/etc/intel/b.txt")));
        assert!(concerns(&sources, Path::new("/feeds/x.csv")));
        assert!(!concerns(&sources, Path::new("/feeds/sub/x.csv")));
    }
}
