//! A one-shot export of every stored finding (`picket-aggregator findings export`), for offline
//! use: the same formats as the exporters, in update order, with no position kept. It opens the
//! store itself, so it works only while the server is stopped (sled holds a lock on the folder).

use std::io::Write;
use std::num::NonZeroUsize;

use super::ExportError;
use super::formats::Format;
use crate::findings::model::Timestamp;
use crate::findings::store::FindingStore;

/// Which findings a one-shot export writes.
#[derive(Debug, Clone, Default)]
pub struct OfflineFilter {
    /// Lowest severity written.
    pub min_severity: f64,
    /// Whether archived findings are written.
    pub include_archived: bool,
}

/// What a one-shot export did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfflineReport {
    /// Findings written.
    pub written: u64,
    /// Findings left out by the filter.
    pub skipped: u64,
    /// Stored findings that did not decode.
    pub corrupt: u64,
}

/// Writes every stored finding that passes `filter` to `out` as JSON lines in `format`,
/// oldest update first.
///
/// # Errors
/// [`ExportError::Store`], or [`ExportError::Io`] naming `out_name` when writing fails.
pub fn export_all(
    store: &FindingStore,
    format: &Format,
    filter: &OfflineFilter,
    out: &mut dyn Write,
    out_name: &std::path::Path,
) -> Result<OfflineReport, ExportError> {
    let io = |source| ExportError::Io {
        path: out_name.to_owned(),
        source,
    };
    let mut report = OfflineReport::default();
    let mut cursor = None;
    let page_size = NonZeroUsize::new(1_000).unwrap_or(NonZeroUsize::MIN);
    loop {
        let page = store.updated_since(cursor.as_ref(), Timestamp(i64::MAX), page_size)?;
        report.corrupt += page.corrupt.len() as u64;
        for f in &page.findings {
            if f.severity < filter.min_severity || (f.service.archived && !filter.include_archived)
            {
                report.skipped += 1;
                continue;
            }
            let mut line = format.encode(f).map_err(ExportError::Encode)?;
            line.push(b'\n');
            out.write_all(&line).map_err(io)?;
            report.written += 1;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.flush().map_err(io)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::samples::sample_finding_at;
    use crate::findings::types::FindingType;

    #[test]
    fn every_stored_finding_is_written_once_in_update_order_past_a_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FindingStore::open(dir.path()).expect("open");
        let mut ids = Vec::new();
        for i in 0..1_203_i64 {
            let t = FindingType::ALL[(i as usize) % FindingType::ALL.len()];
            let account = format!("{:012}", 100_000_000_000 + i);
            let mut f = sample_finding_at(t, &account, "eu-west-1", Timestamp(i));
            f.service.archived = i % 100 == 7;
            if !f.service.archived {
                ids.push(f.id.clone());
            }
            store.upsert(&f).expect("upsert");
        }
        let mut out = Vec::new();
        let report = export_all(
            &store,
            &Format::GuardDuty,
            &OfflineFilter::default(),
            &mut out,
            std::path::Path::new("-"),
        )
        .expect("export");
        assert_eq!(report.skipped, 12);
        assert_eq!(report.written, 1_191);
        let got: Vec<String> = String::from_utf8(out)
            .expect("utf8")
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                v["id"].as_str().expect("id").to_owned()
            })
            .collect();
        assert_eq!(got, ids);
    }
}
