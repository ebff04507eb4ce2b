//! Reading the configured intel sources (list files and folders of list files) into parsed
//! lists, logging their bad lines, and compiling them into a [`Snapshot`].
//!
//! Used by the running service (through the manager) and by `intel check`/`intel stats`, so the
//! command line sees exactly what the service would load.

use std::path::{Path, PathBuf};

use picket_intel::{
    BuildError, Category, ListFormat, ListKind, ListOptions, ParseError, ParsedList, Snapshot,
    SnapshotBuilder, canary_list, parse_list,
};
use tracing::warn;

/// Rejected (or ignored) lines logged per list; the rest are counted in one line, so a broken
/// feed of a million lines cannot flood the log.
pub const MAX_LOGGED_ISSUES: usize = 20;

/// One configured source: a list file, or a folder whose every file is a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// The file or folder.
    pub path: PathBuf,
    /// Threat or trusted.
    pub kind: ListKind,
    /// The format; detected per file when `None`.
    pub format: Option<ListFormat>,
    /// The list name (a folder's lists are `NAME/FILE`); the file name when `None`.
    pub name: Option<String>,
    /// Category for entries whose line names none.
    pub category: Category,
}

/// The resolved `[intel]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntelSettings {
    /// Whether the built-in canary list is loaded.
    pub canaries: bool,
    /// The sources, in configuration order.
    pub sources: Vec<SourceSpec>,
}

impl Default for IntelSettings {
    fn default() -> Self {
        Self {
            canaries: true,
            sources: Vec::new(),
        }
    }
}

impl IntelSettings {
    /// Settings for lists named on the command line (`--threat-list`, `--trusted-list`): each
    /// file one list, format detected, no canaries.
    pub fn from_files(threat: &[PathBuf], trusted: &[PathBuf]) -> Self {
        let spec = |kind| {
            move |path: &PathBuf| SourceSpec {
                path: path.clone(),
                kind,
                format: None,
                name: None,
                category: Category::Custom,
            }
        };
        let mut sources: Vec<SourceSpec> = threat.iter().map(spec(ListKind::Threat)).collect();
        sources.extend(trusted.iter().map(spec(ListKind::Trusted)));
        Self {
            canaries: false,
            sources,
        }
    }
}

/// Why the lists could not be loaded; each names the file and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Occurs when a list file or folder cannot be read (missing, no permission).
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Occurs when a list cannot be parsed at all (undetectable format, JSON that is not STIX).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Occurs when the lists cannot be compiled (two lists with one name, tables too large).
    #[error("compiling the intel snapshot: {0}")]
    Build(#[from] BuildError),
}

/// Whether a folder entry is a list rather than an editor's or sync tool's leftover.
fn is_list_file(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".tmp"))
}

/// The files a source stands for, sorted by name so list order (and names) are stable.
fn files_of(spec: &SourceSpec) -> Result<Vec<(PathBuf, String)>, SourceError> {
    let read_err = |source| SourceError::Read {
        path: spec.path.clone(),
        source,
    };
    let meta = std::fs::metadata(&spec.path).map_err(read_err)?;
    let file_name = |p: &Path| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    if !meta.is_dir() {
        let name = spec.name.clone().unwrap_or_else(|| file_name(&spec.path));
        return Ok(vec![(spec.path.clone(), name)]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&spec.path).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let path = entry.path();
        let file = file_name(&path);
        // Sub-folders are not lists; follow symlinks to files, as config management makes them.
        if !is_list_file(&file) || !path.is_file() {
            continue;
        }
        let name = match &spec.name {
            Some(n) => format!("{n}/{file}"),
            None => file,
        };
        files.push((path, name));
    }
    files.sort();
    Ok(files)
}

/// Reads and parses one list file.
///
/// # Errors
/// [`SourceError::Read`] or [`SourceError::Parse`] naming the file.
pub fn parse_file(path: &Path, name: &str, spec: &SourceSpec) -> Result<ParsedList, SourceError> {
    let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut opts = ListOptions::new(name, spec.kind).category(spec.category);
    opts.format = spec.format;
    Ok(parse_list(&path.display().to_string(), &bytes, &opts)?)
}

/// Reads every configured list (and the canary list when enabled), in configuration order.
///
/// # Errors
/// The first [`SourceError`]: one unusable list fails the whole load, so a half-loaded set
/// never replaces a complete one.
pub fn load_lists(settings: &IntelSettings) -> Result<Vec<ParsedList>, SourceError> {
    let mut lists = Vec::new();
    let files = settings
        .sources
        .iter()
        .map(|spec| files_of(spec).map(|f| (spec, f)))
        .collect::<Result<Vec<_>, _>>()?;
    let total: usize = files.iter().map(|(_, f)| f.len()).sum();
    // Big feeds take seconds: say how far loading has got, at most once a second.
    let started = std::time::Instant::now();
    let mut last = started;
    for (spec, spec_files) in files {
        for (path, name) in spec_files {
            lists.push(parse_file(&path, &name, spec)?);
            if last.elapsed() >= crate::progress::EVERY {
                last = std::time::Instant::now();
                tracing::info!(
                    files_done = lists.len(),
                    files = total,
                    indicators = lists.iter().map(|l| l.indicators.len()).sum::<usize>(),
                    elapsed_secs = started.elapsed().as_secs(),
                    "intel lists loading"
                );
            }
        }
    }
    if settings.canaries {
        lists.push(canary_list());
    }
    Ok(lists)
}

/// Logs each list's rejected and ignored lines as `file:line: why`, at most
/// [`MAX_LOGGED_ISSUES`] of each per list, and returns the number of rejected lines.
pub fn log_issues(lists: &[ParsedList]) -> u64 {
    let mut rejected = 0u64;
    for list in lists {
        for (what, issues) in [("rejected", &list.rejected), ("ignored", &list.ignored)] {
            for issue in issues.iter().take(MAX_LOGGED_ISSUES) {
                warn!(list = %list.name, "intel line {what}: {issue}");
            }
            if issues.len() > MAX_LOGGED_ISSUES {
                warn!(
                    list = %list.name,
                    more = issues.len() - MAX_LOGGED_ISSUES,
                    "more intel lines {what}, not logged"
                );
            }
        }
        rejected = rejected.saturating_add(u64::try_from(list.rejected.len()).unwrap_or(u64::MAX));
    }
    rejected
}

/// Compiles parsed lists into a snapshot numbered `version`.
///
/// # Errors
/// [`SourceError::Build`] when two lists share a name or a table overflows.
pub fn compile(lists: Vec<ParsedList>, version: u64) -> Result<Snapshot, SourceError> {
    let started = std::time::Instant::now();
    let indicators: usize = lists.iter().map(|l| l.indicators.len()).sum();
    let mut builder = SnapshotBuilder::new();
    for list in lists {
        builder.add_list(list);
    }
    let snapshot = builder.build(version)?;
    if started.elapsed() >= crate::progress::EVERY {
        tracing::info!(
            version,
            indicators,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "intel snapshot compiled"
        );
    }
    Ok(snapshot)
}

/// Loads and compiles in one step (for the command line).
///
/// # Errors
/// Any [`SourceError`].
pub fn load_snapshot(settings: &IntelSettings, version: u64) -> Result<Snapshot, SourceError> {
    compile(load_lists(settings)?, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &Path, kind: ListKind, name: Option<&str>) -> SourceSpec {
        SourceSpec {
            path: path.to_owned(),
            kind,
            format: None,
            name: name.map(str::to_owned),
            category: Category::C2,
        }
    }

    #[test]
    fn a_folder_source_loads_each_visible_file_as_its_own_named_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.txt"), "evil.example\n").unwrap();
        std::fs::write(dir.path().join("a.txt"), "203.0.113.0/24\nnot a thing\n").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x.example\n").unwrap();
        std::fs::write(dir.path().join("a.txt~"), "y.example\n").unwrap();
        let settings = IntelSettings {
            canaries: false,
            sources: vec![spec(dir.path(), ListKind::Threat, Some("feeds"))],
        };
        let lists = load_lists(&settings).unwrap();
        let names: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["feeds/a.txt", "feeds/b.txt"]);
        assert_eq!(lists[0].rejected.len(), 1);
        assert_eq!(log_issues(&lists), 1);
        let snap = compile(lists, 7).unwrap();
        assert_eq!(snap.version(), 7);
        let hit = snap.match_domain("www.evil.example").unwrap();
        assert_eq!(hit.list, "feeds/b.txt");
        assert_eq!(hit.category, Category::C2);
    }

    #[test]
    fn canaries_are_added_only_when_enabled() {
        let with = load_snapshot(&IntelSettings::default(), 1).unwrap();
        assert!(with.match_domain("guarddutyc2activityb.com").is_some());
        let without = load_snapshot(&IntelSettings::from_files(&[], &[]), 1).unwrap();
        assert!(without.match_domain("guarddutyc2activityb.com").is_none());
    }

    #[test]
    fn a_missing_file_or_an_unparseable_list_fails_the_whole_load_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.txt");
        let err = load_lists(&IntelSettings::from_files(&[missing], &[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.txt: cannot read"), "{err}");

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{ not json").unwrap();
        let good = dir.path().join("good.txt");
        std::fs::write(&good, "evil.example\n").unwrap();
        let err = load_lists(&IntelSettings::from_files(&[good, bad], &[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.json"), "{err}");
    }
}
