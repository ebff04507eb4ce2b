//! The reader against bad and odd input: damaged gzip, cut JSON, a bad event among good ones,
//! digest files, line files with a bad line, S3's folder layout, and real-data quirks.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::event::{ApiEvent, CallerAddress};
use super::reader::{FileKind, Position, Problem, Reader, collect_files};

fn read(path: &Path) -> (super::reader::FileSummary, Vec<ApiEvent>, Vec<Problem>) {
    let mut events = Vec::new();
    let mut problems = Vec::new();
    let s = Reader::new().read_file(path, &mut |e| events.push(e), &mut |p| problems.push(p));
    (s, events, problems)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn ev(name: &str, i: u32) -> String {
    format!(
        r#"{{"eventTime":"2024-05-01T10:00:{:02}Z","eventSource":"iam.amazonaws.com","eventName":"{name}","eventID":"e{i}","awsRegion":"us-east-1","sourceIPAddress":"81.2.69.142","recipientAccountId":"111122223333","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u","accountId":"111122223333"}}}}"#,
        i % 60
    )
}

fn records(events: &[String]) -> String {
    format!(r#"{{"Records":[{}]}}"#, events.join(","))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloudtrail")
        .join(name)
}

#[test]
fn a_gzip_records_file_in_s3_layout_is_read_whole_whatever_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir
        .path()
        .join("AWSLogs/o-abc123/111122223333/CloudTrail/us-east-1/2024/05/01");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let body = records(&[ev("ListUsers", 1), ev("GetUser", 2), ev("ListRoles", 3)]);
    // gzip with a `.json` name: the magic bytes decide, not the name.
    std::fs::write(
        folder.join("111122223333_CloudTrail_us-east-1_20240501T1000Z_a.json"),
        gz(body.as_bytes()),
    )
    .expect("write");
    std::fs::write(folder.join("notes.txt"), "not a trail file").expect("write");
    let (files, problems) = collect_files(&[dir.path().to_owned()]);
    assert!(problems.is_empty());
    assert_eq!(files.len(), 1, "{files:?}");
    let (s, events, problems) = read(&files[0]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((s.kind, s.events), (FileKind::Records, 3));
    assert_eq!(events[2].event_name, "ListRoles");
    assert_eq!(events[2].origin.position, 2);
}

#[test]
fn a_bad_event_among_good_ones_is_reported_with_its_index_and_the_rest_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.json");
    let bad =
        r#"{"eventTime":"2024-05-01T10:00:00Z","eventSource":"iam.amazonaws.com"}"#.to_owned();
    let wrong = r#"{"eventTime":"2024-05-01T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"X","resources":"oops"}"#.to_owned();
    // Valid JSON syntax that no detector could read: refused here, where its place is known.
    let huge = r#"{"eventTime":"2024-05-01T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"Y","requestParameters":{"n":1e400}}"#.to_owned();
    std::fs::write(
        &path,
        records(&[
            ev("A", 1),
            bad,
            ev("B", 2),
            wrong,
            ev("C", 3),
            huge,
            ev("D", 4),
        ]),
    )
    .expect("write");
    let (s, events, problems) = read(&path);
    assert_eq!(s.events, 4);
    assert_eq!(
        events
            .iter()
            .map(|e| e.event_name.as_str())
            .collect::<Vec<_>>(),
        ["A", "B", "C", "D"]
    );
    assert_eq!(problems.len(), 3);
    assert_eq!(problems[0].position, Position::Record(1));
    assert_eq!(problems[1].position, Position::Record(3));
    assert_eq!(problems[2].position, Position::Record(5));
    let huge = problems[2].to_string();
    assert!(
        huge.contains("f.json:Records[5]: ") && huge.contains("number out of range"),
        "{huge}"
    );
    let text = problems[0].to_string();
    assert!(
        text.contains("f.json:Records[1]: ") && text.contains("eventName"),
        "{text}"
    );
}

#[test]
fn bytes_that_are_not_utf8_end_the_file_and_the_events_before_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.json");
    // The file as a whole is not UTF-8, so it is parsed from bytes (not through the text
    // checked once), which stops at the bad byte as a syntax error, as it always did.
    let mut bad = ev("Bad", 2).into_bytes();
    let at = bad
        .windows(7)
        .position(|w| w == b"user/u\"")
        .expect("user arn");
    bad.insert(at + 6, 0xff);
    let mut body = br#"{"Records":["#.to_vec();
    body.extend_from_slice(ev("A", 1).as_bytes());
    body.push(b',');
    body.extend_from_slice(&bad);
    body.push(b',');
    body.extend_from_slice(ev("B", 3).as_bytes());
    body.extend_from_slice(b"]}");
    std::fs::write(&path, &body).expect("write");
    let (s, events, problems) = read(&path);
    assert_eq!((s.kind, s.events), (FileKind::Records, 1));
    assert_eq!(events[0].event_name, "A");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        matches!(problems[0].position, Position::Syntax { line: 1, .. }),
        "{problems:?}"
    );
    assert!(problems[0].why.contains("after 1 events"), "{problems:?}");
}

#[test]
fn every_event_of_a_file_shares_one_origin_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.json");
    std::fs::write(&path, records(&[ev("A", 1), ev("B", 2)])).expect("write");
    let (_, events, _) = read(&path);
    assert_eq!(events.len(), 2);
    assert!(std::sync::Arc::ptr_eq(
        &events[0].origin.file,
        &events[1].origin.file
    ));
    assert_eq!(*events[1].origin.file, path.display().to_string());
    assert_eq!(events[1].origin.position, 1);
}

#[test]
fn truncated_json_keeps_the_events_before_the_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cut.json.gz");
    let body = records(&[ev("A", 1), ev("B", 2), ev("C", 3)]);
    let cut = &body[..body.len() - 60];
    std::fs::write(&path, gz(cut.as_bytes())).expect("write");
    let (s, events, problems) = read(&path);
    assert_eq!(s.events, 2);
    assert_eq!(events.len(), 2);
    assert_eq!(problems.len(), 1);
    assert!(
        matches!(problems[0].position, Position::Syntax { line: 1, .. }),
        "{:?}",
        problems[0]
    );
    assert!(
        problems[0].why.contains("after 2 events"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_cut_gzip_stream_is_reported_and_what_came_out_still_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events: Vec<String> = (0..400).map(|i| ev("ListUsers", i)).collect();
    let whole = gz(records(&events).as_bytes());
    let path = dir.path().join("cut.gz");
    std::fs::write(&path, &whole[..whole.len() / 2]).expect("write");
    let (s, got, problems) = read(&path);
    assert!(
        problems
            .iter()
            .any(|p| p.position == Position::File && p.why.contains("gzip")),
        "{problems:?}"
    );
    assert!(s.events > 0 && s.events < 400, "{}", s.events);
    assert_eq!(got.len() as u64, s.events);
    // Garbage after the magic bytes: nothing readable, one file-level problem.
    let junk = dir.path().join("junk.json.gz");
    std::fs::write(&junk, [0x1f, 0x8b, 0, 1, 2, 3, 4, 5, 6, 7]).expect("write");
    let (s, got, problems) = read(&junk);
    assert_eq!((s.kind, got.len()), (FileKind::Unreadable, 0));
    assert!(!problems.is_empty());
}

#[test]
fn digest_files_are_recognised_by_path_and_by_content_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir
        .path()
        .join("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/05/01");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let by_path =
        folder.join("111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20240501T1000Z.json.gz");
    std::fs::write(&by_path, gz(b"{}")).expect("write");
    let by_content = dir.path().join("digest.json");
    std::fs::write(&by_content, r#"{"awsAccountId":"111122223333","digestStartTime":"2024-05-01T09:00:00Z","digestS3Bucket":"b","digestS3Object":"AWSLogs/x.json.gz","digestSignatureAlgorithm":"SHA256withRSA","logFiles":[]}"#).expect("write");
    for p in [by_path, by_content] {
        let (s, events, problems) = read(&p);
        assert_eq!(s.kind, FileKind::Digest, "{p:?}");
        assert!(events.is_empty() && problems.is_empty());
    }
}

#[test]
fn line_files_skip_a_bad_line_and_report_its_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.jsonl");
    let text = format!(
        "{}\n\n{{\"eventName\": broken\n{}\n",
        ev("A", 1),
        ev("B", 2)
    );
    std::fs::write(&path, text).expect("write");
    let (s, events, problems) = read(&path);
    assert_eq!((s.kind, s.events), (FileKind::Lines, 2));
    assert_eq!(events[1].event_name, "B");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].position, Position::Line(3));
    assert!(
        problems[0].to_string().contains("events.jsonl:3: bad JSON"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_json_array_of_events_with_a_fake_region_is_read() {
    let (s, events, problems) = read(&fixture(
        "aws.defense-evasion.cloudtrail-event-selectors.json",
    ));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((s.kind, s.events), (FileKind::Array, 1));
    assert_eq!(events[0].region, "cn-northsouth-2r");
    assert_eq!(events[0].event_name, "PutEventSelectors");
}

#[test]
fn real_data_quirks_neither_drop_nor_merge_events() {
    let (s, events, problems) = read(&fixture("quirks.jsonl"));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(s.events, 5, "every event kept, repeated eventIDs included");
    assert_eq!(events.iter().filter(|e| e.event_id == "dup-1").count(), 3);
    assert_eq!(
        events[0].source,
        CallerAddress::Ip("8.1.250.216".parse().expect("ip"))
    );
    assert_eq!(
        events[1].source,
        CallerAddress::AwsService("ec2.amazonaws.com".into())
    );
    assert_eq!(
        events[2].source,
        CallerAddress::AwsService("AWS Internal".into())
    );
    assert_eq!(
        events[3].source.ip(),
        Some("81.2.69.142".parse().expect("ip"))
    );
    assert_eq!(events[3].region, "xx-fake-9");
    assert_eq!(events[4].time_ms, 1_714_557_604_000);
    assert!(matches!(
        events[4].source,
        CallerAddress::Other { first_ip: None, .. }
    ));
}

#[test]
fn empty_and_non_json_files_are_file_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "  \n").expect("write");
    let text = dir.path().join("text.log");
    std::fs::write(&text, "hello").expect("write");
    let missing = dir.path().join("missing.json");
    for p in [empty, text, missing] {
        let (s, _, problems) = read(&p);
        assert_eq!(s.kind, FileKind::Unreadable, "{p:?}");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].position, Position::File);
    }
}

#[test]
fn lookup_events_output_is_read_from_each_entrys_event_text() {
    let (s, events, problems) = read(&fixture("lookup-events.json"));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((s.kind, s.events), (FileKind::LookupEvents, 3));
    // Newest first, as LookupEvents lists them; each is the whole event, not the summary.
    let names: Vec<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(
        names,
        ["DescribeInstances", "GetCallerIdentity", "ListBuckets"]
    );
    assert_eq!(events[2].region, "us-east-1");
    assert_eq!(
        events[2].source.ip(),
        Some("198.51.100.23".parse().expect("ip"))
    );
    assert_eq!(events[2].origin.position, 2);
}

#[test]
fn a_bad_lookup_events_entry_is_reported_with_its_index_and_the_rest_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lookup.json");
    let entry = |event: &str| serde_json::json!({"EventId": "x", "CloudTrailEvent": event});
    let body = serde_json::json!({
        "Events": [
            entry(&ev("ListUsers", 1)),
            {"EventId": "no-event-text"},
            entry("{not json"),
            entry(&ev("GetUser", 2)),
        ],
        "NextToken": "t",
    });
    // gzip, as a saved response might be: the magic bytes decide.
    std::fs::write(&path, gz(body.to_string().as_bytes())).expect("write");
    let (s, events, problems) = read(&path);
    assert_eq!((s.kind, s.events), (FileKind::LookupEvents, 2));
    assert_eq!(events[1].event_name, "GetUser");
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].contains("lookup.json:Events[1]: not a LookupEvents entry"),
        "{shown:?}"
    );
    assert!(shown[1].contains("lookup.json:Events[2]: "), "{shown:?}");
}

#[test]
fn eventbridge_events_are_read_from_their_cloudtrail_detail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("eventbridge.jsonl");
    let envelope = |kind: &str, source: &str, detail: &str| {
        format!(
            r#"{{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"{kind}","source":"{source}","account":"111122223333","time":"2024-05-01T10:00:05Z","region":"us-east-1","resources":["arn:aws:iam::111122223333:user/u"],"detail":{detail}}}"#
        )
    };
    let lines = [
        envelope(
            "AWS API Call via CloudTrail",
            "aws.iam",
            &ev("ListUsers", 1),
        ),
        envelope(
            "AWS Console Sign In via CloudTrail",
            "aws.signin",
            &ev("ConsoleLogin", 2),
        ),
        envelope(
            "EC2 Instance State-change Notification",
            "aws.ec2",
            r#"{"instance-id":"i-0abc","state":"running"}"#,
        ),
    ];
    std::fs::write(&path, lines.join("\n")).expect("write");
    let (s, events, problems) = read(&path);
    assert_eq!((s.kind, s.events), (FileKind::Lines, 2), "{problems:?}");
    assert_eq!(events[0].event_name, "ListUsers");
    assert_eq!(events[0].event_id, "e1");
    assert_eq!(events[1].event_name, "ConsoleLogin");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].position, Position::Line(3));
    assert!(
        problems[0].why.contains("detail is not a CloudTrail event"),
        "{}",
        problems[0]
    );
}
