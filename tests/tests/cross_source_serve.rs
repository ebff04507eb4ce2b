//! The cross-source join through `serve` (issue 9): a real agent identity uploads `HostStats`
//! naming its instance's addresses over mTLS, then CloudTrail files dropped into the watched
//! folder show that instance's role session used from a foreign public address (stolen) and
//! another instance's session used from its own address (at home). Exactly one
//! `UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS` is stored, for the
//! stolen session only; read back with `picket-aggregator findings list --format json`.
//!
//! The same aggregator also serves two member accounts: one access key calling both raises one
//! `Discovery:IAMUser/MultiAccountActivity` in the administrator account naming both.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use picket_aggregator::certs::LeafKind;
use picket_proto::v1::{HostStats, Record, record};
use picket_tests::{
    FAST_AGENT_CONFIG, Leaf, Pki, WAIT, bin, path_str, start_agent_cmd, start_aggregator,
};
use serde_json::{Value, json};

const ACCOUNT: &str = "111111111111";
const OTHER_MEMBER: &str = "222222222222";
const ADMIN_ACCOUNT: &str = "999999999999";
const STOLEN: &str = "i-0aaaaaaaaaaaaaaa1";
const HOME: &str = "i-0bbbbbbbbbbbbbbb2";
const EXFIL_TYPE: &str = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS";
const T0_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// One `HostStats` record as the agent writes it, naming `addresses`.
fn host_stats_line(addresses: &[&str]) -> Result<String> {
    let r = Record {
        record: Some(record::Record::HostStats(HostStats {
            interval_start_ms: T0_MS,
            interval_end_ms: T0_MS + 60_000,
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            ..HostStats::default()
        })),
    };
    Ok(format!("{}\n", serde_json::to_string(&r)?))
}

/// A call by `instance`'s role session (`ec2RoleDelivery`) from `caller`.
fn role_call(instance: &str, id: &str, caller: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventTime": "2026-01-01T00:05:00Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity",
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

/// A call by one IAM user's key against `account` (cross-account through a role would look
/// the same to the counter: one key, several recipient accounts).
fn member_call(account: &str, id: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventTime": "2026-01-01T00:06:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "81.2.69.160",
        "userAgent": "aws-cli/2.15.0",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAROAMER",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/roamer"),
            "accountId": ACCOUNT,
            "accessKeyId": "AKIAROAMER0000000001",
            "userName": "roamer",
        },
        "eventID": id,
        "readOnly": true,
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
    })
}

/// Writes `events` as a CloudTrail file, aside then renamed in (as sync tools do).
fn drop_trail(dir: &Path, name: &str, events: &[Value]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(&json!({ "Records": events }))?)?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

/// `findings list --format json` as `admin`, with `filters`; the findings.
fn list_findings(addr: &str, pki: &Pki, admin: &Leaf, filters: &[&str]) -> Result<Vec<Value>> {
    let mut cmd = Command::new(bin("picket-aggregator"));
    cmd.args([
        "findings",
        "list",
        "--format",
        "json",
        "--max-results",
        "1000",
    ]);
    for f in filters {
        cmd.args(["--filter", f]);
    }
    let ca = pki.ca();
    cmd.args(["--aggregator", &format!("https://{addr}")])
        .args(["--ca", path_str(&ca)?])
        .args(["--cert", path_str(&admin.cert)?])
        .args(["--key", path_str(&admin.key)?]);
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "findings list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let body: Value = serde_json::from_slice(&out.stdout).context("findings list output")?;
    Ok(body["findings"].as_array().cloned().unwrap_or_default())
}

/// Polls `list_findings` until `done` holds for what it returns, for at most [`WAIT`].
fn wait_findings(
    addr: &str,
    pki: &Pki,
    admin: &Leaf,
    filters: &[&str],
    done: impl Fn(&[Value]) -> bool,
) -> Result<Vec<Value>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = list_findings(addr, pki, admin, filters)?;
        if done(&found) {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!("waited {WAIT:?} for findings {filters:?}; last saw {found:#?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_role_session_used_away_from_its_instance_is_stored_as_exfiltration_through_serve() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let pki = Pki::new()?;
    let server = pki.server()?;
    let admin = pki.issue("admin", LeafKind::Admin("tester".into()))?;
    let data = dir.path().join("data");
    let logs = dir.path().join(format!(
        "trail/AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/01/01"
    ));
    std::fs::create_dir_all(&logs)?;
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[cloudtrail]\npaths = [\"{}\"]\ndebounce_ms = 100\nrescan_secs = 3600\n\n\
             [accounts]\nadministrator = \"{ADMIN_ACCOUNT}\"\nmembers = [\"{ACCOUNT}\", \"{OTHER_MEMBER}\"]\n\n\
             [detectors.cross_account]\nmin_accounts = 2\n",
            dir.path().join("trail").display()
        ),
    )?;
    let (mut agg, addr) =
        start_aggregator(&pki, &server, &data, 0, &["--config", path_str(&config)?])?;

    // Each instance's agent reports its addresses: a private one and, for the stolen
    // instance, its public address too.
    for (instance, addresses) in [
        (STOLEN, &["10.0.1.10", "54.240.197.10"][..]),
        (HOME, &["10.0.2.20"][..]),
    ] {
        let leaf = pki.agent(ACCOUNT, instance)?;
        let agent_dir = dir.path().join(format!("agent-{instance}"));
        std::fs::create_dir_all(&agent_dir)?;
        let records = agent_dir.join("records.jsonl");
        std::fs::write(&records, host_stats_line(addresses)?)?;
        let mut up = start_agent_cmd(
            "upload",
            &["--records", path_str(&records)?, "--timeout-secs", "60"],
            FAST_AGENT_CONFIG,
            &pki,
            &leaf,
            &addr,
            &agent_dir,
            ACCOUNT,
            instance,
        )?;
        let status = up.wait_exit(Duration::from_secs(90))?;
        assert!(status.success(), "upload failed: {}", up.tail(20));
        // Acked means stored; wait until detection has seen the batch too, so the join does
        // not depend on which of the two inputs the detection task picks first.
        agg.wait_for("agent records observed", 1, |v| {
            v["instance_id"] == instance && v["host_stats"] == 1
        })?;
    }

    drop_trail(
        &logs,
        "roles.json",
        &[
            // Stolen: the first instance's session from an address no instance has.
            role_call(STOLEN, "EXFIL000000000001", "5.188.10.10"),
            // At home: the second instance's session from its own address, and the first
            // instance's session from its own public address.
            role_call(HOME, "HOME0000000000002", "10.0.2.20"),
            role_call(STOLEN, "HOMEPUBLIC0000003", "54.240.197.10"),
        ],
    )?;
    let exfil = wait_findings(&addr, &pki, &admin, &[&format!("type={EXFIL_TYPE}")], |f| {
        !f.is_empty()
    })?;
    assert_eq!(exfil.len(), 1, "{exfil:#?}");
    let text = exfil[0].to_string();
    assert!(text.contains("ASIAEXFIL000000000001"), "{text}");
    assert!(text.contains("5.188.10.10"), "{text}");
    assert_eq!(exfil[0]["accountId"], ACCOUNT);
    assert_eq!(exfil[0]["service"]["count"], 1, "{text}");
    assert_eq!(exfil[0]["severity"], 8.0, "{text}");

    // The cross-account case: one key against both member accounts.
    drop_trail(
        &logs,
        "members.json",
        &[
            member_call(ACCOUNT, "MEMBER-A-1"),
            member_call(OTHER_MEMBER, "MEMBER-B-1"),
        ],
    )?;
    let multi = wait_findings(
        &addr,
        &pki,
        &admin,
        &["type=Discovery:IAMUser/MultiAccountActivity"],
        |f| {
            f.iter()
                .any(|f| f.to_string().contains("AKIAROAMER0000000001"))
        },
    )?;
    let by_key: Vec<&Value> = multi
        .iter()
        .filter(|f| {
            f["service"]["additionalInfo"]["picketEvidence"]["actor"] == "AKIAROAMER0000000001"
        })
        .collect();
    assert_eq!(by_key.len(), 1, "{multi:#?}");
    assert_eq!(by_key[0]["accountId"], ADMIN_ACCOUNT);
    let text = by_key[0].to_string();
    assert!(
        text.contains(ACCOUNT) && text.contains(OTHER_MEMBER),
        "{text}"
    );

    // Everything from both files is stored by now: the at-home sessions raised nothing.
    let all = list_findings(&addr, &pki, &admin, &[])?;
    for home in ["HOME0000000000002", "HOMEPUBLIC0000003"] {
        assert!(
            !all.iter().any(|f| f.to_string().contains(home)),
            "a session used from its own instance raised something: {all:#?}"
        );
    }
    assert_eq!(
        all.iter().filter(|f| f["type"] == EXFIL_TYPE).count(),
        1,
        "{all:#?}"
    );
    assert!(agg.terminate()?.success());
    Ok(())
}
