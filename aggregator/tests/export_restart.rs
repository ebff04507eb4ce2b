//! The real `serve` binary exporting to a JSON-lines file, killed (SIGKILL) several times in
//! the middle of exporting and restarted: in the end every stored finding is in the file
//! exactly once, with no torn line.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use picket_aggregator::certs::{self, LeafKind};
use picket_aggregator::findings::model::Timestamp;
use picket_aggregator::findings::samples::sample_finding_at;
use picket_aggregator::findings::store::FindingStore;
use picket_aggregator::findings::types::FindingType;

const FINDINGS: usize = 400;

fn serve(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_picket-aggregator"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serve")
}

/// Whole lines in the file (a torn tail is not counted).
fn complete_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_owned).collect();
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        lines.pop();
    }
    lines
}

fn wait_for_lines(path: &Path, at_least: usize, child: &mut Child) -> usize {
    let start = Instant::now();
    loop {
        let n = complete_lines(path).len();
        if n >= at_least {
            return n;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited ({status}) with {n} lines exported");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {at_least} lines; have {n}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn exports_survive_kills_mid_export_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).expect("mkdir");
    certs::init_ca(&pki).expect("ca");
    certs::issue(
        &pki,
        &LeafKind::Server("127.0.0.1".into()),
        &pki.join("server"),
    )
    .expect("server cert");
    let data = dir.path().join("data");
    // Recent times: serve applies the 90-day retention as it starts.
    let base = Timestamp::now().0 - 3_600_000;
    let mut want = BTreeSet::new();
    {
        let store = FindingStore::open(&data).expect("open");
        let findings: Vec<_> = (0..FINDINGS)
            .map(|i| {
                let t = FindingType::ALL[i % FindingType::ALL.len()];
                let account = format!("{:012}", 100_000_000_000 + i);
                let mut f = sample_finding_at(t, &account, "eu-west-1", Timestamp(base + i as i64));
                f.service.archived = false;
                want.insert(f.id.clone());
                f
            })
            .collect();
        store.upsert_all(&findings).expect("upsert");
    }
    assert_eq!(want.len(), FINDINGS);
    let out = dir.path().join("out/findings.jsonl");
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "data"
[tls]
ca = "pki/ca.pem"
cert = "pki/server.pem"
key = "pki/server.key"
[[exports]]
name = "file"
kind = "jsonl"
path = "out/findings.jsonl"
batch_size = 1
settle_secs = 0
poll_secs = 1
"#,
    )
    .expect("config");

    let mut kills_mid_export = 0;
    let mut target = 40;
    for _ in 0..3 {
        let mut child = serve(&config);
        wait_for_lines(&out, target, &mut child);
        child.kill().expect("kill");
        child.wait().expect("reap");
        let after = complete_lines(&out).len();
        if after < FINDINGS {
            kills_mid_export += 1;
        }
        target = (after + 40).min(FINDINGS);
    }
    assert!(
        kills_mid_export >= 1,
        "every kill came after the export had finished"
    );
    let mut child = serve(&config);
    wait_for_lines(&out, FINDINGS, &mut child);
    child.kill().expect("kill");
    child.wait().expect("reap");

    // Exactly FINDINGS whole lines holding every id: a repeat would leave one missing.
    let text = std::fs::read_to_string(&out).expect("read");
    assert!(text.ends_with('\n'), "no torn line at the end");
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a whole finding per line");
            v["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), FINDINGS, "every finding once");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), want);
}
