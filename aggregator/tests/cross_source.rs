//! The cross-source join through `analyze`, run as the built binary: agents' `HostStats` say
//! which addresses their instances have, CloudTrail says where each instance-role session
//! called from, and a session used from an address that is not its instance's becomes
//! `UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS`.

use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};

const ACCOUNT: &str = "111111111111";
const T0_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn host_stats(instance: &str, address: &str) -> Value {
    json!({
        "account_id": ACCOUNT,
        "instance_id": instance,
        "region": "us-east-1",
        "record": {"record": {"HostStats": {
            "interval_start_ms": T0_MS,
            "interval_end_ms": T0_MS + 60_000,
            "addresses": [address],
        }}},
    })
}

fn role_call(instance: &str, id: &str, caller: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventTime": "2026-01-01T00:05:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets",
        "awsRegion": "us-east-1",
        "sourceIPAddress": caller,
        "userAgent": "aws-cli/2.15.0",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("AROAEXAMPLE:{instance}"),
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app-role/{instance}"),
            "accountId": ACCOUNT,
            "accessKeyId": format!("ASIA{id}"),
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{ACCOUNT}:role/app-role"),
                                  "accountId": ACCOUNT, "userName": "app-role"},
                "attributes": {"mfaAuthenticated": "false"},
                "ec2RoleDelivery": "2.0",
            },
        },
        "eventID": id,
        "readOnly": true,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    })
}

#[test]
fn a_role_session_used_away_from_its_instance_is_exfiltration_and_at_home_is_not() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let records = dir.path().join("records.jsonl");
    let lines = [
        host_stats("i-0aaaaaaaaaaaaaaa1", "10.0.1.10"),
        host_stats("i-0bbbbbbbbbbbbbbb2", "10.0.2.20"),
    ];
    std::fs::write(
        &records,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )?;
    let trail = dir.path().join("trail.json");
    let events = json!({"Records": [
        // Stolen: the first instance's session from an address on no instance.
        role_call("i-0aaaaaaaaaaaaaaa1", "EXFIL000000000001", "5.188.10.10"),
        // At home: the second instance's session from its own address.
        role_call("i-0bbbbbbbbbbbbbbb2", "HOME0000000000002", "10.0.2.20"),
    ]});
    std::fs::write(&trail, serde_json::to_vec(&events)?)?;

    let out = Command::new(env!("CARGO_BIN_EXE_picket-aggregator"))
        .arg("analyze")
        .arg("--agent-records")
        .arg(&records)
        .arg("--cloudtrail")
        .arg(&trail)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "analyze failed: {stderr}");
    let findings: Vec<Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("findings are JSON lines")?;
    let exfil: Vec<&Value> = findings
        .iter()
        .filter(|f| {
            f["type"] == "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
        })
        .collect();
    assert_eq!(exfil.len(), 1, "{findings:#?}\n{stderr}");
    let text = exfil[0].to_string();
    assert!(text.contains("ASIAEXFIL000000000001"), "{text}");
    assert!(text.contains("5.188.10.10"), "{text}");
    assert!(
        !findings
            .iter()
            .any(|f| f.to_string().contains("HOME0000000000002")),
        "the session used from its own instance raised something: {findings:#?}"
    );
    Ok(())
}
