//! AWS's published address ranges (`ip-ranges.json`), to tell a caller inside AWS from one
//! outside it.
//!
//! The file is read once at startup; prefixes are merged into sorted, non-overlapping
//! intervals so a lookup is one binary search. A prefix that does not parse is skipped and
//! counted (the rest still count); a file that is not JSON of the published shape is an error
//! naming the file, line and column.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the ranges file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AwsRangesError {
    /// Occurs when the file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Occurs when the file is not the published JSON shape.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    prefixes: Vec<V4Entry>,
    #[serde(default)]
    ipv6_prefixes: Vec<V6Entry>,
}

#[derive(Deserialize)]
struct V4Entry {
    ip_prefix: String,
}

#[derive(Deserialize)]
struct V6Entry {
    ipv6_prefix: String,
}

/// AWS's address ranges, merged for lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsRanges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    skipped: Vec<String>,
}

impl AwsRanges {
    /// Reads `path`.
    ///
    /// # Errors
    /// [`AwsRangesError`] naming the file (and line and column for a parse error).
    pub fn load(path: &Path) -> Result<Self, AwsRangesError> {
        let text = std::fs::read_to_string(path).map_err(|source| AwsRangesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| AwsRangesError::Parse {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }

    /// Parses the JSON text of an `ip-ranges.json`.
    ///
    /// # Errors
    /// The JSON error when the text is not of the published shape.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let file: File = serde_json::from_str(text)?;
        let mut ranges = Self::default();
        for (i, p) in file.prefixes.iter().enumerate() {
            match p.ip_prefix.parse::<ipnet::Ipv4Net>() {
                Ok(net) => ranges
                    .v4
                    .push((u32::from(net.network()), u32::from(net.broadcast()))),
                Err(_) => ranges
                    .skipped
                    .push(format!("prefixes[{i}].ip_prefix = {:?}", p.ip_prefix)),
            }
        }
        for (i, p) in file.ipv6_prefixes.iter().enumerate() {
            match p.ipv6_prefix.parse::<ipnet::Ipv6Net>() {
                Ok(net) => ranges
                    .v6
                    .push((u128::from(net.network()), u128::from(net.broadcast()))),
                Err(_) => ranges.skipped.push(format!(
                    "ipv6_prefixes[{i}].ipv6_prefix = {:?}",
                    p.ipv6_prefix
                )),
            }
        }
        merge(&mut ranges.v4);
        merge(&mut ranges.v6);
        Ok(ranges)
    }

    /// Entries that did not parse and were skipped, each with its position and value.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Merged intervals held (both families).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether no range is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `ip` is in one of AWS's ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => within(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => within(&self.v4, u32::from(v4)),
                None => within(&self.v6, u128::from(a)),
            },
        }
    }
}

fn merge<T: Ord + Copy + num_like::Succ>(v: &mut Vec<(T, T)>) {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for &(s, e) in v.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1.succ() => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *v = out;
}

fn within<T: Ord + Copy>(v: &[(T, T)], x: T) -> bool {
    let i = v.partition_point(|(s, _)| *s <= x);
    i.checked_sub(1)
        .and_then(|i| v.get(i))
        .is_some_and(|(_, e)| x <= *e)
}

mod num_like {
    /// The next value, saturating (adjacent intervals merge).
    pub trait Succ {
        fn succ(self) -> Self;
    }
    impl Succ for u32 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"syncToken":"1","createDate":"2024-01-01-00-00-00",
        "prefixes":[{"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"AMAZON","network_border_group":"ap-northeast-2"},
                    {"ip_prefix":"3.5.144.0/22","region":"x","service":"EC2","network_border_group":"x"},
                    {"ip_prefix":"not-a-prefix","region":"x","service":"EC2","network_border_group":"x"}],
        "ipv6_prefixes":[{"ipv6_prefix":"2600:1f00::/24","region":"x","service":"AMAZON","network_border_group":"x"}]}"#;

    #[test]
    fn addresses_inside_published_prefixes_are_aws_and_others_are_not() {
        let r = AwsRanges::parse(SAMPLE).expect("parse");
        assert!(r.contains("3.5.140.1".parse().expect("ip")));
        assert!(r.contains("3.5.147.255".parse().expect("ip")));
        assert!(!r.contains("3.5.148.0".parse().expect("ip")));
        assert!(!r.contains("203.0.113.9".parse().expect("ip")));
        assert!(r.contains("2600:1f00::1".parse().expect("ip")));
        assert!(!r.contains("2a00::1".parse().expect("ip")));
    }

    #[test]
    fn a_bad_prefix_is_skipped_and_named_while_the_rest_count() {
        let r = AwsRanges::parse(SAMPLE).expect("parse");
        assert_eq!(r.skipped(), ["prefixes[2].ip_prefix = \"not-a-prefix\""]);
        assert_eq!(r.len(), 2, "two adjacent v4 prefixes merge");
    }

    #[test]
    fn a_file_that_is_not_json_is_an_error_naming_file_and_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("ip-ranges.json");
        std::fs::write(&path, "{\n \"prefixes\": [1,\n").expect("write");
        let err = AwsRanges::load(&path).expect_err("bad file").to_string();
        assert!(err.contains("ip-ranges.json:2:"), "{err}");
    }
}
