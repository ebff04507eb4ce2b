//! `picket-aggregator analyze --cloudtrail`, run as the built binary over CloudTrail as S3
//! delivers it (gzip `Records` files in the `AWSLogs/` layout, a digest, a damaged file),
//! with threat and trusted lists, beside agent records.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

mod common;
use common::stdin::output_with_stdin;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn gz(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes)?;
    Ok(e.finish()?)
}

/// The rules fixture as S3 would deliver it, plus a digest, a damaged gzip and a bad event.
fn s3_tree(root: &Path) -> Result<()> {
    let day = root.join("AWSLogs/o-exampleorg/111122223333/CloudTrail/us-east-1/2024/05/01");
    std::fs::create_dir_all(&day)?;
    let lines = std::fs::read_to_string(fixture("cloudtrail/rules.jsonl"))?;
    let mut events: Vec<Value> = lines
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    // A record that is not an event, in the middle of the file.
    events.insert(
        3,
        serde_json::json!({"eventVersion": "1.09", "eventSource": "iam.amazonaws.com"}),
    );
    let (first, second) = events.split_at(9);
    for (i, part) in [first, second].iter().enumerate() {
        let body = serde_json::to_vec(&serde_json::json!({ "Records": part }))?;
        std::fs::write(
            day.join(format!(
                "111122223333_CloudTrail_us-east-1_20240501T10{i}0Z_x{i}.json.gz"
            )),
            gz(&body)?,
        )?;
    }
    std::fs::write(
        day.join("111122223333_CloudTrail_us-east-1_20240501T1100Z_bad.json.gz"),
        [0x1f, 0x8b, 8, 0, 9, 9, 9],
    )?;
    let digest =
        root.join("AWSLogs/o-exampleorg/111122223333/CloudTrail-Digest/us-east-1/2024/05/01");
    std::fs::create_dir_all(&digest)?;
    std::fs::write(
        digest.join("111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20240501T110000Z.json.gz"),
        gz(br#"{"awsAccountId":"111122223333","digestSignatureAlgorithm":"SHA256withRSA","logFiles":[]}"#)?,
    )?;
    Ok(())
}

#[test]
fn analyze_reads_s3_delivered_cloudtrail_with_intel_and_agent_records_and_reports_bad_input()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    s3_tree(dir.path())?;
    let out = Command::new(env!("CARGO_BIN_EXE_picket-aggregator"))
        .arg("analyze")
        .arg("--cloudtrail")
        .arg(dir.path())
        .arg("--cloudtrail")
        .arg(fixture(
            "cloudtrail/aws.defense-evasion.cloudtrail-event-selectors.json",
        ))
        .arg("--agent-records")
        .arg(fixture("intel_hits.jsonl"))
        .arg("--threat-list")
        .arg(fixture("cloudtrail/threats.txt"))
        .arg("--trusted-list")
        .arg(fixture("cloudtrail/trusted.txt"))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let findings: Vec<Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| l.to_owned()))
        .collect::<Result<_>>()?;
    let mut api_types: Vec<&str> = findings
        .iter()
        .filter(|f| f["service"]["action"]["actionType"] == "AWS_API_CALL")
        .filter_map(|f| f["type"].as_str())
        .collect();
    api_types.sort_unstable();
    assert_eq!(
        api_types,
        [
            // ListBuckets from a listed address: an S3 type although it names no bucket, as
            // GuardDuty (issue 9).
            "Discovery:S3/MaliciousIPCaller.Custom",
            "PenTest:IAMUser/KaliLinux",
            "Policy:IAMUser/RootCredentialUsage",
            "Policy:S3/AccountBlockPublicAccessDisabled",
            "Policy:S3/BucketAnonymousAccessGranted",
            "Policy:S3/BucketBlockPublicAccessDisabled",
            "Policy:S3/BucketPublicAccessGranted",
            "Stealth:IAMUser/CloudTrailLoggingDisabled",
            "Stealth:IAMUser/CloudTrailLoggingDisabled",
            "Stealth:IAMUser/CloudTrailLoggingDisabled",
            "Stealth:IAMUser/PasswordPolicyChange",
            "Stealth:S3/ServerAccessLoggingDisabled",
            "UnauthorizedAccess:IAMUser/ConsoleLoginSuccess.B",
            "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
        ]
    );
    // The agent's own records still give their findings in the same run.
    assert!(
        findings
            .iter()
            .any(|f| f["resource"]["resourceType"] == "Instance")
    );
    // The trusted caller (also inside the threat range) raised nothing.
    assert!(!findings.iter().any(
        |f| f["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]["ipAddressV4"]
            == "45.9.148.99"
    ));
    let anon = findings
        .iter()
        .find(|f| f["type"] == "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom")
        .context("custom caller finding")?;
    let call = &anon["service"]["action"]["awsApiCallAction"];
    assert_eq!(call["api"], "CreateUser");
    assert_eq!(call["callerType"], "Remote IP");
    assert_eq!(call["remoteIpDetails"]["ipAddressV4"], "45.9.148.21");
    assert!(
        call["userAgent"]
            .as_str()
            .is_some_and(|u| u.starts_with("aws-cli/"))
    );
    assert_eq!(
        anon["service"]["evidence"]["threatIntelligenceDetails"][0]["threatListName"],
        "threats.txt"
    );
    let ev = &anon["service"]["additionalInfo"]["picketEvidence"];
    assert_eq!(ev["kind"], "api_call");
    assert!(
        ev["origin"]
            .as_str()
            .is_some_and(|o| o.contains("x0.json.gz:")),
        "{ev}"
    );
    // A service-invoked call is a Domain caller; a foreign principal is a remote account.
    assert!(findings.iter().any(
        |f| f["service"]["action"]["awsApiCallAction"]["domainDetails"]["domain"]
            == "cloudformation.amazonaws.com"
    ));
    assert!(findings.iter().any(
        |f| f["service"]["action"]["awsApiCallAction"]["remoteAccountDetails"]["accountId"]
            == "444455556666"
    ));
    // Bad input is named, and the rest still counted.
    assert!(
        stderr.contains("x0.json.gz:Records[3]: not a CloudTrail event: eventName is missing"),
        "{stderr}"
    );
    assert!(stderr.contains("_bad.json.gz: bad gzip"), "{stderr}");
    assert!(
        stderr.contains(
            "read 18 CloudTrail events from 5 files (1 digest files skipped, 3 problems)"
        ),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn analyze_without_any_input_says_what_to_give() -> Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_picket-aggregator"))
        .arg("analyze")
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cloudtrail PATH"));
    Ok(())
}

#[test]
fn analyze_reads_lookup_events_output_piped_to_standard_input() -> Result<()> {
    // `aws cloudtrail lookup-events --output json | picket-aggregator analyze --cloudtrail -`:
    // for an account whose trail does not reach S3, the last 90 days of management events.
    let input = std::fs::read(fixture("cloudtrail/lookup-events.json"))?;
    let out = output_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_picket-aggregator")).args([
            "analyze",
            "--cloudtrail",
            "-",
        ]),
        input,
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("read 3 CloudTrail events from 1 files"),
        "{stderr}"
    );
    let findings: Vec<Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| l.to_owned()))
        .collect::<Result<_>>()?;
    let types: Vec<&str> = findings.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(types, ["Policy:IAMUser/RootCredentialUsage"], "{stderr}");
    assert_eq!(findings[0]["accountId"], "111122223333");
    Ok(())
}
