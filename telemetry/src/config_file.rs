//! Reading a daemon's TOML config file with errors that name the file, line and column.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a config file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// Occurs when the file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Occurs when the TOML is malformed or has an unknown or mistyped key.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What TOML/serde said, on one line.
        message: String,
    },
}

/// Reads `path` and deserialises it as TOML into `T`.
///
/// # Errors
/// [`ConfigFileError::Read`], or [`ConfigFileError::Parse`] with the position of the problem.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = line_col(&text, e.span().map_or(0, |s| s.start));
        ConfigFileError::Parse {
            path: path.to_owned(),
            line,
            column,
            message: e.message().replace('\n', " "),
        }
    })
}

/// Makes a relative `path` relative to `base` (the config file's folder), so a config and the
/// files it names can move together. An empty path stays empty: it means "not set".
pub fn rebase(path: &mut PathBuf, base: &Path) {
    if path.is_relative() && !path.as_os_str().is_empty() {
        *path = base.join(&*path);
    }
}

/// As [`rebase`] for a setting that may be absent; an empty path (`data_dir = ""`) counts as
/// absent, so the setting's default applies rather than the working directory.
pub fn rebase_optional(path: &mut Option<PathBuf>, base: &Path) {
    if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        *path = None;
    }
    if let Some(p) = path {
        rebase(p, base);
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Small {
        name: Option<String>,
    }

    #[test]
    fn a_problem_is_named_with_file_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        // The stray comma is the 8th character of line 2 (the 9th byte): columns count
        // characters.
        std::fs::write(&path, "name = \"x\"\n\"ä\" = 1, 2\n").expect("write");
        let err = load::<Small>(&path).expect_err("syntax");
        let ConfigFileError::Parse { line, column, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!((*line, *column), (2, 8));
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}:2:8: ", path.display())),
            "{text}"
        );
        assert!(!text.trim_end().contains('\n'), "one line: {text}");

        std::fs::write(&path, "name = \"x\"\n  colour = 1\n").expect("write");
        let err = load::<Small>(&path).expect_err("unknown key").to_string();
        assert!(
            err.starts_with(&format!("{}:2:3: ", path.display())),
            "{err}"
        );
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = load::<Small>(Path::new("/nonexistent/picket.toml")).expect_err("missing");
        assert!(matches!(err, ConfigFileError::Read { .. }));
        assert!(
            err.to_string().starts_with("/nonexistent/picket.toml: "),
            "{err}"
        );
    }

    #[test]
    fn relative_paths_move_with_the_config_and_empty_ones_stay_unset() {
        let base = Path::new("/etc/picket");
        let mut relative = PathBuf::from("certs/ca.pem");
        rebase(&mut relative, base);
        assert_eq!(relative, Path::new("/etc/picket/certs/ca.pem"));
        let mut absolute = PathBuf::from("/srv/ca.pem");
        rebase(&mut absolute, base);
        assert_eq!(absolute, Path::new("/srv/ca.pem"));
        let mut empty = PathBuf::new();
        rebase(&mut empty, base);
        assert_eq!(empty, PathBuf::new());
        let mut unset = Some(PathBuf::new());
        rebase_optional(&mut unset, base);
        assert_eq!(unset, None);
        let mut set = Some(PathBuf::from("state"));
        rebase_optional(&mut set, base);
        assert_eq!(set.as_deref(), Some(Path::new("/etc/picket/state")));
    }
}
