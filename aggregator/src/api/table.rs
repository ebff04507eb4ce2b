//! Findings and statistics as fixed-width text tables, for `picket-aggregator findings …`.

use std::fmt::Write;

use super::service::Statistics;
use crate::findings::model::Finding;

/// One line per finding: id, account, severity, type, last update, count, archived, resource.
pub fn findings_table(findings: &[Finding]) -> String {
    let mut out = String::new();
    // Wide enough for the longest type shown, so the columns after it stay aligned.
    let tw = findings
        .iter()
        .map(|f| f.finding_type.name().len())
        .max()
        .unwrap_or(0)
        .max(44);
    let _ = writeln!(
        out,
        "{:<32} {:<12} {:>4} {:<tw$} {:<24} {:>6} {:<8} RESOURCE",
        "ID", "ACCOUNT", "SEV", "TYPE", "UPDATED", "COUNT", "ARCHIVED"
    );
    for f in findings {
        let access_key = f
            .resource
            .access_key_details
            .as_ref()
            .map(|k| k.access_key_id.clone())
            .filter(|k| !k.is_empty());
        let resource = f
            .instance_id()
            .map(str::to_owned)
            .or(access_key)
            .unwrap_or_else(|| f.resource.resource_type.as_str().to_owned());
        let _ = writeln!(
            out,
            "{:<32} {:<12} {:>4.1} {:<tw$} {:<24} {:>6} {:<8} {}",
            f.id,
            f.account_id,
            f.severity,
            f.finding_type.name(),
            f.updated_at.to_string(),
            f.service.count,
            if f.service.archived { "yes" } else { "no" },
            resource
        );
    }
    out
}

/// Counts by band (in band order), then by type (most first).
pub fn statistics_table(stats: &Statistics) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<44} {:>8}", "SEVERITY", "FINDINGS");
    for band in ["CRITICAL", "HIGH", "MEDIUM", "LOW"] {
        let n = stats.count_by_severity.get(band).copied().unwrap_or(0);
        let _ = writeln!(out, "{band:<44} {n:>8}");
    }
    let _ = writeln!(out, "\n{:<44} {:>8}", "TYPE", "FINDINGS");
    let mut types: Vec<(&String, &u64)> = stats.count_by_type.iter().collect();
    types.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (t, n) in types {
        let _ = writeln!(out, "{t:<44} {n:>8}");
    }
    let _ = writeln!(
        out,
        "\n{:<44} {:>8}{}",
        "TOTAL",
        stats.total,
        if stats.truncated {
            " (stopped at the examination bound: a lower bound)"
        } else {
            ""
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::samples::sample_finding;
    use crate::findings::types::FindingType;

    #[test]
    fn a_findings_table_has_a_header_and_one_line_per_finding() {
        let f = sample_finding(FindingType::ReconPortscan, "123456789012", "us-east-1");
        let t = findings_table(std::slice::from_ref(&f));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with(&f.id));
        assert!(lines[1].contains("Recon:EC2/Portscan"));
    }

    #[test]
    fn statistics_list_bands_in_order_and_types_by_count() {
        let mut s = Statistics::default();
        s.count_by_severity.insert("HIGH".into(), 2);
        s.count_by_type.insert("A".into(), 1);
        s.count_by_type.insert("B".into(), 3);
        s.total = 4;
        let t = statistics_table(&s);
        let high = t.find("HIGH").expect("high");
        let low = t.find("LOW").expect("low");
        assert!(high < low);
        assert!(t.find("\nB ").expect("B") < t.find("\nA ").expect("A"));
    }
}
