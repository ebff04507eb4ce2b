//! Exports end to end over a real sled store on disk: JSON-lines files resume after a restart
//! without loss or duplicates (including a batch written but never committed and a torn line),
//! an updated finding is exported again as an update, the S3 layout writes gzip objects under
//! GuardDuty's key layout and removes an unfinished batch's objects, and a webhook that fails
//! its first requests gets every finding after retries (real HTTP on loopback).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use picket_aggregator::exports::config::SinkSpec;
use picket_aggregator::exports::formats::Format;
use picket_aggregator::exports::position::{PositionStore, SinkState};
use picket_aggregator::exports::{ExportSpec, Exports};
use picket_aggregator::findings::Finding;
use picket_aggregator::findings::model::Timestamp;
use picket_aggregator::findings::samples::sample_finding_at;
use picket_aggregator::findings::store::FindingStore;
use picket_aggregator::findings::types::FindingType;
use serde_json::Value;

const T0: i64 = 1_700_000_000_000;

/// An active finding of the `i`-th registered type in `account`, updated at `T0 + i` s.
fn finding(i: usize, account: &str) -> Finding {
    let t = FindingType::ALL[i % FindingType::ALL.len()];
    let mut f = sample_finding_at(t, account, "eu-west-1", Timestamp(T0 + i as i64 * 1_000));
    f.service.archived = false;
    f
}

fn spec(name: &str, format: Format, sink: SinkSpec, batch: usize) -> ExportSpec {
    ExportSpec {
        name: name.into(),
        format,
        sink,
        min_severity: 0.0,
        include_archived: false,
        batch_size: NonZeroUsize::new(batch).expect("nonzero"),
        poll: Duration::from_millis(20),
        settle: Duration::ZERO,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(40),
    }
}

/// Polls `cond` until it holds or 20 s pass; the failure shows what was last seen.
async fn wait_until<T: std::fmt::Debug>(what: &str, mut probe: impl FnMut() -> (bool, T)) -> T {
    let start = Instant::now();
    loop {
        let (ok, seen) = probe();
        if ok {
            return seen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out after {:?} waiting for {what}; last saw {seen:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn id_and_count(line: &str) -> (String, u64) {
    let v: Value = serde_json::from_str(line).expect("a whole JSON line");
    (
        v["id"].as_str().expect("id").to_owned(),
        v["service"]["count"].as_u64().expect("count"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_exports_resume_after_a_restart_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FindingStore::open(dir.path()).expect("open");
    let out = dir.path().join("exports/findings.jsonl");
    let sink = SinkSpec::Jsonl {
        path: out.clone(),
        rotate_bytes: 1 << 30,
        rotate_after: None,
    };
    let first: Vec<Finding> = (0..4).map(|i| finding(i, "111111111111")).collect();
    store.upsert_all(&first).expect("upsert");

    let exports = Exports::start(
        &store,
        vec![spec("file", Format::GuardDuty, sink.clone(), 3)],
    )
    .expect("start");
    wait_until("4 lines", || {
        let l = lines(&out);
        (l.len() == 4, l.len())
    })
    .await;
    let stats = Arc::clone(&exports.stats()[0]);
    wait_until("caught up", || (stats.caught_up(), stats.exported())).await;
    assert_eq!(stats.exported(), 4);
    assert_eq!(stats.lag(Timestamp::now()), Some(Duration::ZERO));
    exports.stop().await;

    // What a crash leaves: the next batch written but its cursor never saved, then a torn line.
    let second: Vec<Finding> = (4..9).map(|i| finding(i, "111111111111")).collect();
    store.upsert_all(&second).expect("upsert");
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&out)
            .expect("open");
        let early = serde_json::to_string(&second[0]).expect("json");
        writeln!(f, "{early}").expect("write");
        f.write_all(b"{\"schemaVersion\":\"2.0\",\"acc")
            .expect("write");
    }
    // And a repeat of an exported finding: it is exported again, as an update.
    let mut repeat = first[1].clone();
    repeat.updated_at = Timestamp(T0 + 100_000);
    repeat.service.event_last_seen = repeat.updated_at;
    store.upsert(&repeat).expect("upsert");

    let exports =
        Exports::start(&store, vec![spec("file", Format::GuardDuty, sink, 3)]).expect("restart");
    wait_until("10 lines", || {
        let l = lines(&out);
        (l.len() >= 10, l)
    })
    .await;
    let stats = Arc::clone(&exports.stats()[0]);
    wait_until("caught up", || (stats.caught_up(), stats.exported())).await;
    exports.stop().await;
    let got = lines(&out);
    assert_eq!(got.len(), 10, "{got:#?}");
    let exported: Vec<(String, u64)> = got.iter().map(|l| id_and_count(l)).collect();
    let mut expected: Vec<(String, u64)> = first
        .iter()
        .chain(&second)
        .map(|f| (f.id.clone(), 1))
        .collect();
    expected.push((repeat.id.clone(), 2));
    assert_eq!(exported, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_severity_and_archived_findings_are_left_out_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FindingStore::open(dir.path()).expect("open");
    let out = dir.path().join("high.jsonl");
    let mut all: Vec<Finding> = (0..FindingType::ALL.len())
        .map(|i| finding(i, "111111111111"))
        .collect();
    // One high-severity finding archived: left out too.
    let archived = all
        .iter_mut()
        .find(|f| f.severity >= 7.0)
        .expect("a high finding");
    archived.service.archived = true;
    let archived_id = archived.id.clone();
    store.upsert_all(&all).expect("upsert");
    let want: Vec<String> = all
        .iter()
        .filter(|f| f.severity >= 7.0 && !f.service.archived)
        .map(|f| f.id.clone())
        .collect();
    assert!(!want.is_empty() && want.len() + 1 < all.len());
    let mut s = spec(
        "high",
        Format::GuardDuty,
        SinkSpec::Jsonl {
            path: out.clone(),
            rotate_bytes: 1 << 30,
            rotate_after: None,
        },
        7,
    );
    s.min_severity = 7.0;
    let exports = Exports::start(&store, vec![s]).expect("start");
    let stats = Arc::clone(&exports.stats()[0]);
    wait_until("caught up", || {
        (
            stats.caught_up() && stats.exported() + stats.skipped() == all.len() as u64,
            (stats.exported(), stats.skipped()),
        )
    })
    .await;
    exports.stop().await;
    let got: Vec<String> = lines(&out).iter().map(|l| id_and_count(l).0).collect();
    assert_eq!(got, want);
    assert!(!got.contains(&archived_id));
    assert_eq!(stats.skipped(), (all.len() - want.len()) as u64);
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_string(&mut text)
        .expect("gzip");
    text
}

fn objects(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_layout_writes_gzip_objects_under_guardduty_keys_and_undoes_an_unfinished_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FindingStore::open(dir.path()).expect("open");
    let root = dir.path().join("bucket");
    let sink = SinkSpec::S3Layout { root: root.clone() };
    let findings: Vec<Finding> = (0..5)
        .map(|i| {
            finding(
                i,
                if i % 2 == 0 {
                    "111111111111"
                } else {
                    "222222222222"
                },
            )
        })
        .collect();
    store.upsert_all(&findings).expect("upsert");
    let exports = Exports::start(
        &store,
        vec![spec("s3", Format::GuardDuty, sink.clone(), 10)],
    )
    .expect("start");
    let stats = Arc::clone(&exports.stats()[0]);
    wait_until("5 exported", || (stats.exported() == 5, stats.exported())).await;
    exports.stop().await;

    let objs = objects(&root);
    assert_eq!(objs.len(), 2, "{objs:#?}");
    let mut ids = Vec::new();
    for obj in &objs {
        let rel = obj.strip_prefix(&root).expect("under root");
        let parts: Vec<&str> = rel.iter().map(|p| p.to_str().expect("utf8")).collect();
        assert_eq!(parts.len(), 8, "{rel:?}");
        assert_eq!(parts[0], "AWSLogs");
        assert!(parts[1] == "111111111111" || parts[1] == "222222222222");
        assert_eq!((parts[2], parts[3]), ("GuardDuty", "eu-west-1"));
        assert_eq!(parts[4].len(), 4);
        assert!(parts[4].bytes().all(|b| b.is_ascii_digit()));
        assert!(parts[5].len() == 2 && parts[6].len() == 2);
        let seq = parts[7]
            .strip_prefix("s3-")
            .and_then(|s| s.strip_suffix(".jsonl.gz"))
            .and_then(|s| s.split_once('-'))
            .map(|(seq, _)| seq)
            .expect("s3-<seq>-<n>.jsonl.gz");
        assert_eq!(seq.len(), 13);
        assert!(seq.bytes().all(|b| b.is_ascii_digit()), "{seq}");
        for line in gunzip(obj).lines() {
            let v: Value = serde_json::from_str(line).expect("JSON line");
            assert_eq!(v["accountId"].as_str(), Some(parts[1]));
            ids.push(v["id"].as_str().expect("id").to_owned());
        }
    }
    ids.sort();
    let mut want: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);

    // A crash in the middle of the next batch: its object is on disk, its cursor is not saved.
    let positions = PositionStore::open(&store).expect("positions");
    let mut pos = positions.load("s3").expect("load");
    let SinkState::S3Layout { seq, .. } = pos.sink else {
        panic!("{:?}", pos.sink);
    };
    assert!(
        objs[0]
            .to_string_lossy()
            .contains(&format!("s3-{:013}-", seq - 1))
    );
    // Named so the next batch (one account) will not write over it: only recovery removes it.
    let half = objs[1].with_file_name(format!("s3-{seq:013}-1.jsonl.gz"));
    std::fs::write(&half, b"not even gzip").expect("write");
    pos.sink = SinkState::S3Layout {
        seq,
        pending: vec![half.clone()],
    };
    positions.save("s3", &pos).expect("save");
    let late = finding(7, "111111111111");
    store.upsert(&late).expect("upsert");
    let exports =
        Exports::start(&store, vec![spec("s3", Format::GuardDuty, sink, 10)]).expect("restart");
    let stats = Arc::clone(&exports.stats()[0]);
    wait_until("1 more exported", || {
        (stats.exported() == 1, stats.exported())
    })
    .await;
    exports.stop().await;
    let objs = objects(&root);
    assert_eq!(objs.len(), 3, "{objs:#?}");
    assert!(!half.exists(), "the unfinished batch's object is removed");
    let newest = objs
        .iter()
        .find(|p| p.to_string_lossy().contains(&format!("s3-{seq:013}-0")))
        .expect("the new batch");
    let text = gunzip(newest);
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains(&late.id));
}

#[derive(Default)]
struct Hook {
    requests: usize,
    fail_first: usize,
    auth: Vec<Option<String>>,
    bodies: Vec<Value>,
}

async fn hook_server(fail_first: usize) -> (SocketAddr, Arc<Mutex<Hook>>) {
    use axum::http::{HeaderMap, StatusCode};
    let state = Arc::new(Mutex::new(Hook {
        fail_first,
        ..Hook::default()
    }));
    let shared = Arc::clone(&state);
    let app = axum::Router::new().route(
        "/in",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let shared = Arc::clone(&shared);
            async move {
                let mut h = shared.lock().expect("lock");
                h.requests += 1;
                if h.requests <= h.fail_first {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                h.auth.push(
                    headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                );
                h.bodies
                    .push(serde_json::from_slice(&body).expect("JSON body"));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, state)
}

fn webhook(addr: SocketAddr, single: bool) -> SinkSpec {
    SinkSpec::Webhook {
        url: format!("http://{addr}/in").parse().expect("url"),
        headers: vec![(
            "authorization".parse().expect("name"),
            "Bearer s3cret".parse().expect("value"),
        )],
        ca: None,
        single,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_fails_its_first_requests_gets_every_finding_after_retries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FindingStore::open(dir.path()).expect("open");
    let findings: Vec<Finding> = (0..5).map(|i| finding(i, "111111111111")).collect();
    store.upsert_all(&findings).expect("upsert");
    let (addr, hook) = hook_server(3).await;
    let format = Format::EventBridge {
        source: "aws.guardduty".into(),
    };
    let exports = Exports::start(&store, vec![spec("hook", format, webhook(addr, false), 10)])
        .expect("start");
    let stats = Arc::clone(&exports.stats()[0]);
    wait_until("5 exported", || (stats.exported() == 5, stats.exported())).await;
    exports.stop().await;
    assert_eq!(stats.failures(), 3);
    let h = hook.lock().expect("lock");
    assert_eq!(h.requests, 4, "3 refused, then one batch");
    assert_eq!(h.auth, vec![Some("Bearer s3cret".to_owned())]);
    let batch = h.bodies[0].as_array().expect("a JSON array");
    let ids: Vec<&str> = batch
        .iter()
        .map(|e| {
            assert_eq!(e["detail-type"], "GuardDuty Finding");
            e["detail"]["id"].as_str().expect("id")
        })
        .collect();
    let want: Vec<&str> = findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_mode_webhook_posts_one_finding_per_request_and_resumes_after_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FindingStore::open(dir.path()).expect("open");
    let findings: Vec<Finding> = (0..3).map(|i| finding(i, "111111111111")).collect();
    store.upsert_all(&findings).expect("upsert");
    let (addr, hook) = hook_server(1).await;
    let exports = Exports::start(
        &store,
        vec![spec("one", Format::Ocsf, webhook(addr, true), 10)],
    )
    .expect("start");
    let stats = Arc::clone(&exports.stats()[0]);
    wait_until("3 exported", || (stats.exported() == 3, stats.exported())).await;
    exports.stop().await;
    let h = hook.lock().expect("lock");
    assert_eq!(h.requests, 4);
    let uids: BTreeMap<String, i64> = h
        .bodies
        .iter()
        .map(|b| {
            assert_eq!(b["class_uid"], 2004);
            (
                b["unmapped"]["finding_id"].as_str().expect("id").to_owned(),
                b["activity_id"].as_i64().expect("activity"),
            )
        })
        .collect();
    assert_eq!(uids.len(), 3, "each finding once: {uids:?}");
}
