//! The findings API end to end (issue 7): a real aggregator with its gRPC `Findings` service
//! and its HTTPS listener, real certificates for an administrator, member users of two
//! accounts and an agent, and a real sled store. Lists, pages, gets, archives, unarchives and
//! counts through gRPC, HTTP and the CLI; members see and change only their account; bad
//! input is refused naming the field.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use picket_aggregator::certs::LeafKind;
use picket_aggregator::findings::model::{Finding, Timestamp};
use picket_aggregator::findings::samples::sample_finding_at;
use picket_aggregator::findings::store::FindingStore;
use picket_aggregator::findings::types::FindingType;
use picket_proto::v1::{
    ArchiveFindingsRequest, FindingFilter, GetFindingsRequest, GetFindingsStatisticsRequest,
    ListFindingsRequest, SortCriteria, UnarchiveFindingsRequest,
};
use picket_tests::api::{Https, findings_client, member_user, start_with_api};
use picket_tests::{FAST_AGENT_CONFIG, Leaf, Pki, bin, path_str, start_agent_cmd};
use serde_json::{Value, json};

const A: &str = "111111111111";
const B: &str = "222222222222";
const TYPES: [FindingType; 4] = [
    FindingType::ReconPortscan,
    FindingType::BackdoorCcActivity,
    FindingType::TrojanBlackholeTraffic,
    FindingType::CryptoCurrencyBitcoinTool,
];

/// Six findings of account A and four of B, with distinct ids, types cycling, severities
/// 2, 5, 8, 9.5 cycling, updated one second apart in the last minute (recent, so the
/// aggregator's retention keeps them).
fn seed(data_dir: &std::path::Path) -> Result<Vec<Finding>> {
    let store = FindingStore::open(data_dir)?;
    let base = Timestamp::now().0 - 60_000;
    let findings: Vec<Finding> = (0..10u32)
        .map(|n| {
            let account = if n < 6 { A } else { B };
            let t = TYPES[n as usize % TYPES.len()];
            let at = Timestamp(base + i64::from(n) * 1000);
            let mut f = sample_finding_at(t, account, "eu-west-1", at);
            f.id = format!("{:032x}", 0xf00d_0000 + n);
            f.severity = [2.0, 5.0, 8.0, 9.5][n as usize % 4];
            f.service.archived = false;
            f
        })
        .collect();
    store.upsert_all(&findings)?;
    Ok(findings)
}

fn ids_of(findings_json: &[String]) -> Result<BTreeSet<String>> {
    findings_json
        .iter()
        .map(|j| {
            let f: Finding = serde_json::from_str(j)?;
            Ok(f.id)
        })
        .collect()
}

fn list(conditions: &[&str], max: u32, token: &str) -> ListFindingsRequest {
    ListFindingsRequest {
        filter: Some(FindingFilter {
            criteria_json: String::new(),
            conditions: conditions.iter().map(|c| (*c).to_owned()).collect(),
        }),
        sort_criteria: Some(SortCriteria::default()),
        max_results: max,
        next_token: token.to_owned(),
    }
}

fn expect_ids(all: &[Finding], pred: impl Fn(&Finding) -> bool) -> BTreeSet<String> {
    all.iter()
        .filter(|f| pred(f))
        .map(|f| f.id.clone())
        .collect()
}

struct Setup {
    pki: Pki,
    admin: Leaf,
    member_a: Leaf,
    member_b: Leaf,
    agent_a: Leaf,
}

fn setup() -> Result<Setup> {
    let pki = Pki::new()?;
    let admin = pki.issue("admin", LeafKind::Admin("ops".into()))?;
    // One member certificate through the CLI, as an operator would make it.
    let out = Command::new(bin("picket-aggregator"))
        .args(["certs", "issue", "--dir"])
        .arg(pki.dir.path())
        .args(["--member-user", "alice", "--account-id", A, "--out"])
        .arg(pki.dir.path().join("alice"))
        .output()?;
    assert!(out.status.success(), "{out:?}");
    let member_a = Leaf {
        cert: pki.dir.path().join("alice.pem"),
        key: pki.dir.path().join("alice.key"),
    };
    let member_b = member_user(&pki, B, "bob")?;
    let agent_a = pki.agent(A, "i-0api")?;
    Ok(Setup {
        pki,
        admin,
        member_a,
        member_b,
        agent_a,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_lists_gets_archives_and_counts_with_member_visibility() -> Result<()> {
    let s = setup()?;
    let server = s.pki.server()?;
    let dir = tempfile::tempdir()?;
    let all = seed(dir.path())?;
    let agg = start_with_api(None, &s.pki, &server, dir.path(), &[])?;
    let mut admin = findings_client(&agg.grpc, &s.pki.ca(), &s.admin).await?;

    // Pages of three cover all ten, each once.
    let mut seen = BTreeSet::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = admin
            .list_findings(list(&[], 3, &token))
            .await?
            .into_inner();
        let ids = ids_of(&page.findings_json)?;
        assert!(seen.is_disjoint(&ids), "a finding was listed twice");
        seen.extend(ids);
        pages += 1;
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, expect_ids(&all, |_| true));

    let high = admin
        .list_findings(list(&["severity>=7"], 50, ""))
        .await?
        .into_inner();
    assert_eq!(
        ids_of(&high.findings_json)?,
        expect_ids(&all, |f| f.severity >= 7.0)
    );
    assert!(high.next_token.is_empty());

    // Get, archive and unarchive one of A's findings as the administrator.
    let target = all[1].id.clone();
    let got = admin
        .get_findings(GetFindingsRequest {
            finding_ids: vec![target.clone()],
        })
        .await?
        .into_inner();
    let f: Finding = serde_json::from_str(&got.findings_json[0])?;
    assert_eq!(f, all[1]);
    let changed = admin
        .archive_findings(ArchiveFindingsRequest {
            finding_ids: vec![target.clone()],
        })
        .await?
        .into_inner()
        .changed;
    assert_eq!(changed, 1);
    let archived = admin
        .list_findings(list(&["service.archived=true"], 50, ""))
        .await?
        .into_inner();
    assert_eq!(
        ids_of(&archived.findings_json)?,
        BTreeSet::from([target.clone()])
    );
    let changed = admin
        .unarchive_findings(UnarchiveFindingsRequest {
            finding_ids: vec![target.clone()],
        })
        .await?
        .into_inner()
        .changed;
    assert_eq!(changed, 1);

    let stats = admin
        .get_findings_statistics(GetFindingsStatisticsRequest { filter: None })
        .await?
        .into_inner();
    assert_eq!(stats.total, 10);
    assert_eq!(stats.count_by_severity["LOW"], 3);
    assert_eq!(stats.count_by_severity["CRITICAL"], 2);
    assert_eq!(stats.count_by_type.values().sum::<u64>(), 10);

    // A member of A sees A's six, not B's, and cannot touch B's.
    let mut member = findings_client(&agg.grpc, &s.pki.ca(), &s.member_a).await?;
    let mine = member.list_findings(list(&[], 50, "")).await?.into_inner();
    assert_eq!(
        ids_of(&mine.findings_json)?,
        expect_ids(&all, |f| f.account_id == A)
    );
    // Asking for another account by name is refused outright, not answered with nothing.
    let e = member
        .list_findings(list(&[&format!("accountId={B}")], 50, ""))
        .await
        .expect_err("another account asked for");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let b_id = all[7].id.clone();
    let e = member
        .get_findings(GetFindingsRequest {
            finding_ids: vec![b_id.clone()],
        })
        .await
        .expect_err("another account's finding");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    assert!(!e.message().contains("222222222222"), "{e:?}");
    let e = member
        .archive_findings(ArchiveFindingsRequest {
            finding_ids: vec![b_id.clone()],
        })
        .await
        .expect_err("another account's finding");
    assert_eq!(e.code(), tonic::Code::NotFound);
    let stats = member
        .get_findings_statistics(GetFindingsStatisticsRequest { filter: None })
        .await?
        .into_inner();
    assert_eq!(stats.total, 6);
    let mut member_b = findings_client(&agg.grpc, &s.pki.ca(), &s.member_b).await?;
    let theirs = member_b
        .list_findings(list(&[], 50, ""))
        .await?
        .into_inner();
    assert_eq!(
        ids_of(&theirs.findings_json)?,
        expect_ids(&all, |f| f.account_id == B)
    );
    let still = admin
        .get_findings(GetFindingsRequest {
            finding_ids: vec![b_id],
        })
        .await?
        .into_inner();
    let f: Finding = serde_json::from_str(&still.findings_json[0])?;
    assert!(
        !f.service.archived,
        "a member archived another account's finding"
    );

    // Agents may not use the API at all.
    let mut agent = findings_client(&agg.grpc, &s.pki.ca(), &s.agent_a).await?;
    let e = agent
        .list_findings(list(&[], 50, ""))
        .await
        .expect_err("agent");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");

    // Bad input is InvalidArgument naming the field.
    for (request, field) in [
        (list(&["sevrity>=7"], 50, ""), "filter[0]"),
        (list(&["type=Recon:EC2/Portscn"], 50, ""), "filter[0]"),
        (list(&[], 5000, ""), "maxResults"),
        (list(&[], 50, "0102"), "nextToken"),
        (list(&["severity>=7"], 3, &token), "nextToken"),
    ] {
        let e = admin.list_findings(request).await.expect_err("bad input");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{field}: {e:?}");
    }
    let e = admin
        .get_findings(GetFindingsRequest {
            finding_ids: vec!["not-an-id".into()],
        })
        .await
        .expect_err("bad id");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("findingIds[0]"), "{e:?}");
    Ok(())
}

#[test]
fn http_and_cli_give_the_same_operations_and_refuse_bad_input_with_the_field() -> Result<()> {
    let s = setup()?;
    let server = s.pki.server()?;
    let dir = tempfile::tempdir()?;
    let all = seed(dir.path())?;
    let agg = start_with_api(None, &s.pki, &server, dir.path(), &[])?;
    let admin = Https::new(&agg.http, &s.pki, &s.admin)?;
    let member = Https::new(&agg.http, &s.pki, &s.member_a)?;
    let agent = Https::new(&agg.http, &s.pki, &s.agent_a)?;
    let ids = |body: &Value| -> BTreeSet<String> {
        body["findings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };

    // Paging by nextToken with a short-form filter.
    let mut seen = BTreeSet::new();
    let mut path = "/v1/findings?filter=severity%3E%3D5&maxResults=2".to_owned();
    for _ in 0..10 {
        let r = admin.get(&path)?;
        assert_eq!(r.status, 200, "{r:?}");
        seen.extend(ids(&r.body));
        match r.body["nextToken"].as_str() {
            Some(t) => {
                path = format!("/v1/findings?filter=severity%3E%3D5&maxResults=2&nextToken={t}")
            }
            None => break,
        }
    }
    assert_eq!(seen, expect_ids(&all, |f| f.severity >= 5.0));

    // GuardDuty's ListFindings body, sorted by severity.
    let r = admin.post(
        "/v1/findings/list",
        &json!({"findingCriteria": {"criterion": {"accountId": {"eq": [B]}}},
                "sortCriteria": {"attributeName": "severity", "orderBy": "DESC"}}),
    )?;
    assert_eq!(r.status, 200, "{r:?}");
    let sev: Vec<f64> = r.body["findings"]
        .as_array()
        .context("findings")?
        .iter()
        .filter_map(|f| f["severity"].as_f64())
        .collect();
    assert_eq!(sev, vec![9.5, 8.0, 5.0, 2.0]);

    // One finding: exactly the stored model.
    let r = admin.get(&format!("/v1/findings/{}", all[0].id))?;
    assert_eq!(r.status, 200);
    let f: Finding = serde_json::from_value(r.body)?;
    assert_eq!(f, all[0]);

    let r = admin.post("/v1/findings/archive", &json!({"findingIds": [all[2].id]}))?;
    assert_eq!((r.status, r.body["changed"].as_u64()), (200, Some(1)));
    let r = admin.get("/v1/findings?filter=service.archived%3Dtrue")?;
    assert_eq!(ids(&r.body), BTreeSet::from([all[2].id.clone()]));
    let r = admin.post(
        "/v1/findings/unarchive",
        &json!({"findingIds": [all[2].id]}),
    )?;
    assert_eq!((r.status, r.body["changed"].as_u64()), (200, Some(1)));
    let r = admin.post(
        "/v1/findings/get",
        &json!({"findingIds": [all[0].id, all[9].id]}),
    )?;
    assert_eq!(
        ids(&r.body),
        BTreeSet::from([all[0].id.clone(), all[9].id.clone()])
    );

    let r = admin.get("/v1/findings/statistics")?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["total"], 10);
    assert_eq!(r.body["countBySeverity"]["HIGH"], 2);
    let r = admin.get("/v1/findings/statistics?filter=type%3DRecon:EC2/Portscan")?;
    assert_eq!(r.body["total"], 3);

    // A member: its own account only; another account's finding is a 404 without content.
    let r = member.get("/v1/findings?maxResults=50")?;
    assert_eq!(ids(&r.body), expect_ids(&all, |f| f.account_id == A));
    let r = member.get(&format!("/v1/findings/{}", all[8].id))?;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(
        r.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("not found"))
    );
    assert!(r.body.get("accountId").is_none());
    let r = member.post("/v1/findings/archive", &json!({"findingIds": [all[8].id]}))?;
    assert_eq!(r.status, 404);
    let r = member.get("/v1/findings/statistics")?;
    assert_eq!(r.body["total"], 6);
    let r = member.get(&format!("/v1/findings/statistics?filter=accountId%3D{B}"))?;
    assert_eq!(r.status, 403, "{r:?}");

    // Agents: 403.
    let r = agent.get("/v1/findings")?;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body["error"].as_str().is_some());

    // Bad input: 400 naming the field.
    for (path, field) in [
        ("/v1/findings?filter=sevrity%3E%3D7", "filter[0]"),
        (
            "/v1/findings?filter=severity%3E%3D1&filter=type%3Dnope",
            "filter[1]",
        ),
        ("/v1/findings?criteria=%7Bnope", "criteria"),
        (
            "/v1/findings?criteria=%7B%22criterion%22%3A%7B%22severity%22%3A%7B%22gte%22%3A%22x%22%7D%7D%7D",
            "criteria.severity",
        ),
        ("/v1/findings?maxResults=abc", "maxResults"),
        ("/v1/findings?maxResults=0&maxResults=1", "maxResults"),
        ("/v1/findings?nextToken=zz", "nextToken"),
        ("/v1/findings?sort=title", "sortCriteria.attributeName"),
        ("/v1/findings?colour=red", "colour"),
        ("/v1/findings/not-an-id", "findingIds[0]"),
    ] {
        let r = admin.get(path)?;
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert_eq!(r.body["field"], field, "{path}: {r:?}");
        assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let r = admin.post("/v1/findings/archive", &json!({"ids": ["x"]}))?;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (400, Some("body")),
        "{r:?}"
    );
    let r = admin.post("/v1/findings/archive", &json!({"findingIds": []}))?;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (400, Some("findingIds"))
    );
    let r = admin.get(&format!("/v1/findings/{:032x}", 7))?;
    assert_eq!(r.status, 404);

    // The CLI over gRPC: the same findings, as JSON and as a table.
    let url = format!("https://{}", agg.grpc);
    let ca = s.pki.ca();
    let cli = |leaf: &Leaf, args: &[&str]| -> Result<std::process::Output> {
        let mut cmd = Command::new(bin("picket-aggregator"));
        cmd.arg("findings").args(args);
        cmd.args(["--aggregator", &url, "--ca", path_str(&ca)?]);
        cmd.args([
            "--cert",
            path_str(&leaf.cert)?,
            "--key",
            path_str(&leaf.key)?,
        ]);
        Ok(cmd.output()?)
    };
    let out = cli(
        &s.admin,
        &["list", "--filter", "severity>=7", "--format", "json"],
    )?;
    assert!(out.status.success(), "{out:?}");
    let body: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(ids(&body), expect_ids(&all, |f| f.severity >= 7.0));
    let criteria = dir.path().join("criteria.json");
    std::fs::write(
        &criteria,
        r#"{"criterion": {"type": {"eq": ["Recon:EC2/Portscan"]}}}"#,
    )?;
    let out = cli(
        &s.member_a,
        &[
            "list",
            "--criteria",
            path_str(&criteria)?,
            "--max-results",
            "1",
        ],
    )?;
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout)?;
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("Recon:EC2/Portscan"), "{table}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--next-token"), "{err}");
    let out = cli(&s.admin, &["get", &all[3].id])?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&all[3].id),
        "{out:?}"
    );
    let out = cli(&s.admin, &["archive", &all[3].id, "--format", "json"])?;
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout)?["changed"],
        1,
        "{out:?}"
    );
    let out = cli(&s.admin, &["unarchive", &all[3].id])?;
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("1 of 1"),
        "{out:?}"
    );
    let out = cli(&s.member_a, &["stats"])?;
    let stats = String::from_utf8_lossy(&out.stdout);
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("TOTAL") && l.ends_with(" 6")),
        "{stats}"
    );
    let out = cli(&s.admin, &["list", "--filter", "sevrity>=7"])?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("InvalidArgument") && err.contains("filter[0]"),
        "{err}"
    );
    let out = cli(&s.member_a, &["get", &all[8].id])?;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{out:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_from_an_agent_is_returned_by_the_api_without_waiting_for_the_flush() -> Result<()>
{
    let s = setup()?;
    let server = s.pki.server()?;
    let dir = tempfile::tempdir()?;
    let agg = start_with_api(None, &s.pki, &server, dir.path(), &[])?;
    let records = dir.path().join("hit.jsonl");
    let hit = json!({"record": {"IntelHit": {
        "observed_at_ms": 1_700_000_000_000_i64, "matched_value": "evil-c2.example",
        "dns_query_name": "evil-c2.example", "category": "c2", "site": 2,
        "local_addr": "10.0.0.5", "remote_addr": "10.0.0.2", "list_name": "test"}}});
    std::fs::write(&records, format!("{hit}\n"))?;
    let agent_dir = tempfile::tempdir()?;
    let path = path_str(&records)?.to_owned();
    let mut upload = start_agent_cmd(
        "upload",
        &["--records", &path, "--timeout-secs", "60"],
        FAST_AGENT_CONFIG,
        &s.pki,
        &s.agent_a,
        &agg.grpc,
        agent_dir.path(),
        A,
        "i-0api",
    )?;
    assert!(
        upload.wait_exit(Duration::from_secs(60))?.success(),
        "{}",
        upload.tail(10)
    );
    let mut member = findings_client(&agg.grpc, &s.pki.ca(), &s.member_a).await?;
    // Bounded wait well under the 10 s flush: the finding is stored promptly.
    let deadline = Instant::now() + Duration::from_secs(5);
    let found = loop {
        let page = member
            .list_findings(list(&["type=Backdoor:EC2/C&CActivity.B!DNS"], 50, ""))
            .await?
            .into_inner();
        if let Some(j) = page.findings_json.first() {
            break serde_json::from_str::<Value>(j)?;
        }
        assert!(
            Instant::now() < deadline,
            "no finding after 5 s; aggregator: {}",
            agg.proc.tail(10)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(found["accountId"], A);
    assert_eq!(
        found["service"]["action"]["dnsRequestAction"]["domain"],
        "evil-c2.example"
    );
    let mut other = findings_client(&agg.grpc, &s.pki.ca(), &s.member_b).await?;
    let none = other.list_findings(list(&[], 50, "")).await?.into_inner();
    assert!(none.findings_json.is_empty());
    Ok(())
}
