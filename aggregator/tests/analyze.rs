//! `picket-aggregator analyze` and `findings samples`, run as the built binary.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};
use serde_json::Value;

mod common;
use common::stdin::output_with_stdin;

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
fn analyze_names_a_missing_cloudtrail_path_or_intel_list_and_fails() -> Result<()> {
    // CloudTrail input and intel lists are supported now (ct-reader); what is missing is named.
    let out = bin()
        .args(["analyze", "--cloudtrail", "/nonexistent"])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cloudtrail /nonexistent"));
    let out = bin()
        .args(["analyze", "--agent-records", &fixture("intel_hits.jsonl")])
        .args(["--threat-list", "/nonexistent"])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
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

fn find<'a>(findings: &'a [Value], t: &str, role: &str) -> Result<&'a Value> {
    findings
        .iter()
        .find(|f| f["type"] == t && f["service"]["resourceRole"] == role)
        .with_context(|| format!("no {t} finding as {role}"))
}

#[test]
fn analyze_finds_each_network_behaviour_in_crafted_summaries() -> Result<()> {
    let out = bin()
        .args([
            "analyze",
            "--agent-records",
            &fixture("network_detections.jsonl"),
        ])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let findings = json_lines(&out)?;
    assert_eq!(
        types(&findings),
        vec![
            "Backdoor:EC2/DenialOfService.Udp",
            "CryptoCurrency:EC2/BitcoinTool.B",
            "DefenseEvasion:EC2/UnusualDoHActivity",
            "DefenseEvasion:EC2/UnusualDoTActivity",
            "Impact:EC2/PortSweep",
            "Recon:EC2/Portscan",
            "Trojan:EC2/DGADomainRequest.B",
            "Trojan:EC2/DNSDataExfiltration",
            "UnauthorizedAccess:EC2/MetadataDNSRebind",
            "UnauthorizedAccess:EC2/RDPBruteForce",
            "UnauthorizedAccess:EC2/SSHBruteForce",
            "UnauthorizedAccess:EC2/SSHBruteForce",
        ],
        "stderr: {stderr}"
    );
    // Brute force against the instance is Low; from it (here over IPv6, SSH on port 2222) High.
    let target = find(&findings, "UnauthorizedAccess:EC2/SSHBruteForce", "TARGET")?;
    assert_eq!(target["severity"], 2.0);
    let actor = find(&findings, "UnauthorizedAccess:EC2/SSHBruteForce", "ACTOR")?;
    assert_eq!(actor["severity"], 8.0);
    assert_eq!(
        actor["service"]["action"]["networkConnectionAction"]["remoteIpDetails"]["ipAddressV6"],
        "2001:db8:3::9"
    );
    // Evidence: the threshold crossed and, for DNS, example names.
    let scan = find(&findings, "Recon:EC2/Portscan", "ACTOR")?;
    let ev = &scan["service"]["additionalInfo"]["picketEvidence"];
    assert_eq!(ev["kind"], "behaviour");
    assert_eq!(ev["thresholds"][0]["key"], "detectors.port_scan.min_ports");
    assert_eq!(ev["thresholds"][0]["observed"], 50.0);
    assert!(ev["flows"].as_array().is_some_and(|f| !f.is_empty()));
    let tunnel = find(&findings, "Trojan:EC2/DNSDataExfiltration", "ACTOR")?;
    assert_eq!(
        tunnel["service"]["action"]["dnsRequestAction"]["domain"],
        "tunnel.example"
    );
    assert_eq!(
        tunnel["service"]["additionalInfo"]["picketEvidence"]["exampleNames"][0],
        "mzxw6ytboi2dcmrzgq3tmnzy.tunnel.example"
    );
    Ok(())
}

#[test]
fn analyze_finds_nothing_above_low_in_benign_summaries() -> Result<()> {
    let out = bin()
        .args([
            "analyze",
            "--agent-records",
            &fixture("benign_traffic.jsonl"),
        ])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("analyzed 16 records"), "{stderr}");
    let findings = json_lines(&out)?;
    let above_low: Vec<_> = findings
        .iter()
        .filter(|f| f["severity"].as_f64().is_none_or(|s| s >= 4.0))
        .map(|f| f["type"].clone())
        .collect();
    assert!(above_low.is_empty(), "{above_low:?}");
    Ok(())
}

#[test]
fn analyze_honours_detector_thresholds_from_the_config() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        "[detectors.port_scan]\nmin_ports = 61\n[detectors.brute_force]\nmin_short_connections = 3\n",
    )?;
    let run = |file: &str| -> Result<Vec<String>> {
        let out = bin()
            .args(["analyze", "--agent-records", &fixture(file)])
            .args(["--config", &config.display().to_string()])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(types(&json_lines(&out)?))
    };
    let attack = run("network_detections.jsonl")?;
    assert!(
        !attack.iter().any(|t| t == "Recon:EC2/Portscan"),
        "{attack:?}"
    );
    // Three mistyped passwords now count, still Low with the instance as target.
    assert_eq!(
        run("benign_traffic.jsonl")?,
        vec!["UnauthorizedAccess:EC2/SSHBruteForce"]
    );
    Ok(())
}

#[test]
fn analyze_reads_agent_records_from_standard_input() -> Result<()> {
    use std::process::Stdio;
    // As `picket-agent replay --account-id … --instance-id …` writes them: bare records, then
    // the stats line whose identity applies to every record before it.
    let mut input = std::fs::read(fixture("intel_hits.jsonl"))?;
    input.extend_from_slice(
        b"{\"stats\":{\"account_id\":\"345678901234\",\"instance_id\":\"i-0piped\",\"packets\":9}}\n",
    );
    let out = output_with_stdin(bin().args(["analyze", "--agent-records", "-"]), input)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let findings = json_lines(&out)?;
    assert_eq!(findings.len(), 4, "stderr: {stderr}");
    let crypto = findings
        .iter()
        .find(|f| f["type"] == "CryptoCurrency:EC2/BitcoinTool.B!DNS")
        .context("crypto finding")?;
    assert_eq!(
        crypto["accountId"], "345678901234",
        "the stats line's identity"
    );
    assert_eq!(
        crypto["resource"]["instanceDetails"]["instanceId"],
        "i-0piped"
    );
    // A bad line is named by its place in standard input.
    assert!(stderr.contains("<stdin>:4: not JSON"), "{stderr}");

    let out = bin()
        .args(["analyze", "--agent-records", "-", "--agent-records", "-"])
        .stdin(Stdio::null())
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only once"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
