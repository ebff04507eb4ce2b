//! `picket-aggregator findings export`: the stored findings in an export format, offline, and a
//! clear refusal while something else holds the store.

use std::process::Command;

use picket_aggregator::findings::model::Timestamp;
use picket_aggregator::findings::samples::sample_finding_at;
use picket_aggregator::findings::store::FindingStore;
use picket_aggregator::findings::types::FindingType;
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_picket-aggregator"))
}

#[test]
fn findings_export_writes_the_stored_findings_and_refuses_a_held_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FindingStore::open(dir.path()).expect("open");
    let mut want = Vec::new();
    for (i, t) in FindingType::ALL.iter().take(3).enumerate() {
        let mut f = sample_finding_at(*t, "123456789012", "eu-west-1", Timestamp(i as i64));
        f.service.archived = false;
        want.push(f.arn.clone());
        store.upsert(&f).expect("upsert");
    }
    store.flush().expect("flush");

    // The store is open here, as a running server would hold it.
    let held = bin()
        .args(["findings", "export", "--out", "-", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!held.status.success());
    let err = String::from_utf8_lossy(&held.stderr);
    assert!(err.contains("stop the server first"), "{err}");
    drop(store);

    let out = dir.path().join("asff.jsonl");
    let run = bin()
        .args(["findings", "export", "--format", "asff", "--data-dir"])
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got: Vec<String> = std::fs::read_to_string(&out)
        .expect("read")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            assert_eq!(v["SchemaVersion"], "2018-10-08");
            v["Id"].as_str().expect("Id").to_owned()
        })
        .collect();
    assert_eq!(got, want);

    let bad = bin()
        .args([
            "findings",
            "export",
            "--format",
            "cef",
            "--out",
            "-",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--format must be one of guardduty, eventbridge, asff, ocsf, got \"cef\""),
        "{err}"
    );
}
