//! `picket-aggregator analyze` and `findings samples`, run as the built binary.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_picket-aggregator"))
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn json_lines(out: &Output) -> Result<Vec<Value>> {
    String::from_utf8(out.stdout.clone())?
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("line {l:?}")))
        .collect()
}

fn types(findings: &[Value]) -> Vec<String> {
    let mut t: Vec<String> = findings
        .iter()
        .filter_map(|f| f["type"].as_str().map(str::to_owned))
        .collect();
    t.sort();
    t
}

#[test]
fn analyze_turns_intel_hits_into_aggregated_findings_and_reports_the_bad_line() -> Result<()> {
    let out = bin()
        .args(["analyze", "--agent-records", &fixture("intel_hits.jsonl")])
        .args(["--account-id", "210987654321", "--instance-id", "i-0bare"])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let findings = json_lines(&out)?;
    assert_eq!(
        types(&findings),
        vec![
            "Backdoor:EC2/C&CActivity.B",
            "CryptoCurrency:EC2/BitcoinTool.B!DNS",
            "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
            "UnauthorizedAccess:EC2/TorClient",
        ],
        "stderr: {stderr}"
    );
    let c2 = findings
        .iter()
        .find(|f| f["type"] == "Backdoor:EC2/C&CActivity.B")
        .context("c2 finding")?;
    assert_eq!(c2["service"]["count"], 2);
    assert_eq!(c2["accountId"], "123456789012");
    assert_eq!(
        c2["resource"]["instanceDetails"]["instanceId"],
        "i-0aaa1111bbbb2222c"
    );
    assert_eq!(c2["service"]["eventFirstSeen"], "2023-11-14T22:13:20.000Z");
    assert_eq!(c2["service"]["eventLastSeen"], "2023-11-14T22:14:20.000Z");
    assert_eq!(
        c2["service"]["evidence"]["threatIntelligenceDetails"][0]["threatListName"],
        "feodo"
    );
    assert_eq!(
        c2["service"]["additionalInfo"]["picketEvidence"]["indicator"],
        "198.51.100.0/24"
    );
    let crypto = findings
        .iter()
        .find(|f| f["type"] == "CryptoCurrency:EC2/BitcoinTool.B!DNS")
        .context("crypto finding")?;
    assert_eq!(
        crypto["accountId"], "210987654321",
        "bare records take the flags' identity"
    );
    assert_eq!(
        crypto["service"]["action"]["dnsRequestAction"]["domain"],
        "pool.minexmr.example"
    );
    let custom = findings
        .iter()
        .find(|f| f["type"] == "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom")
        .context("custom finding")?;
    let note = custom["service"]["additionalInfo"]["picketEvidence"]["note"]
        .as_str()
        .unwrap_or_default();
    assert!(note.contains("ransomware"), "{note}");
    assert!(stderr.contains("intel_hits.jsonl:4: not JSON"), "{stderr}");
    assert!(stderr.contains("unknown_category = 1"), "{stderr}");
    Ok(())
}

#[test]
fn analyze_applies_suppression_rules_from_the_config() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        "[[findings.suppression]]\nname = \"tor-ok\"\n\
         filter = { criterion = { type = { eq = [\"UnauthorizedAccess:EC2/TorClient\"] } } }\n",
    )?;
    let out = bin()
        .args(["analyze", "--agent-records", &fixture("intel_hits.jsonl")])
        .args(["--config", &config.display().to_string()])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = json_lines(&out)?;
    assert_eq!(findings.len(), 4);
    for f in &findings {
        let tor = f["type"] == "UnauthorizedAccess:EC2/TorClient";
        assert_eq!(f["service"]["archived"], tor, "{}", f["type"]);
    }
    Ok(())
}

#[test]
fn analyze_refuses_cloudtrail_and_intel_lists_for_now() -> Result<()> {
    let out = bin()
        .args(["analyze", "--cloudtrail", "/nonexistent"])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported yet"));
    let out = bin()
        .args(["analyze", "--agent-records", &fixture("intel_hits.jsonl")])
        .args(["--threat-list", "/nonexistent"])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("applied by the agent"));
    Ok(())
}

#[test]
fn analyze_reports_a_missing_file_and_fails() -> Result<()> {
    let out = bin()
        .args(["analyze", "--agent-records", "/nonexistent/records.jsonl"])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/records.jsonl"));
    Ok(())
}

#[test]
fn findings_samples_prints_one_archived_sample_per_type() -> Result<()> {
    let out = bin()
        .args([
            "findings",
            "samples",
            "--account-id",
            "123456789012",
            "--region",
            "eu-west-1",
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = json_lines(&out)?;
    let expected = picket_aggregator::findings::FindingType::ALL.len();
    assert_eq!(samples.len(), expected);
    let mut names = types(&samples);
    names.dedup();
    assert_eq!(names.len(), expected, "one per type");
    for s in &samples {
        assert_eq!(s["service"]["archived"], true);
        assert_eq!(s["accountId"], "123456789012");
        assert!(
            s["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("[SAMPLE]"))
        );
    }
    Ok(())
}
