//! `picket-aggregator serve` with a `[cloudtrail]` folder: a file dropped in becomes a stored
//! finding, a restarted aggregator reads only files it has not read before, and a growing
//! newline-delimited file is read from where the last read stopped.

use std::path::Path;

use anyhow::{Context, Result};
use picket_aggregator::findings::store::{FindingStore, ListQuery};
use picket_tests::{Pki, path_str, start_aggregator};

fn write_trail(dir: &Path, name: &str, event_name: &str, second: u32) -> Result<()> {
    let body = format!(
        r#"{{"Records":[{{"eventVersion":"1.09","eventTime":"2024-05-01T10:00:{second:02}Z","eventSource":"cloudtrail.amazonaws.com","eventName":"{event_name}","awsRegion":"us-east-1","recipientAccountId":"111122223333","sourceIPAddress":"81.2.69.142","userAgent":"aws-cli/2.15.0","requestParameters":{{"name":"main"}},"eventID":"e-{second}","userIdentity":{{"type":"IAMUser","principalId":"AIDAU","arn":"arn:aws:iam::111122223333:user/u","accountId":"111122223333","accessKeyId":"AKIAU","userName":"u"}}}}]}}"#
    );
    // Written aside and renamed in, as sync tools do.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

fn read_lines_for(proc: &picket_tests::Proc, file: &str) -> usize {
    proc.events("CloudTrail file read")
        .iter()
        .filter(|v| v["file"].as_str().is_some_and(|f| f.ends_with(file)))
        .count()
}

#[test]
fn a_dropped_cloudtrail_file_becomes_a_finding_and_is_not_read_again_after_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::new()?;
    let server = pki.server()?;
    let data = dir.path().join("data");
    let logs = dir
        .path()
        .join("trail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01");
    std::fs::create_dir_all(&logs)?;
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[cloudtrail]\npaths = [\"{}\"]\ndebounce_ms = 100\nrescan_secs = 3600\n",
            dir.path().join("trail").display()
        ),
    )?;
    write_trail(&logs, "a.json", "StopLogging", 1)?;

    let (mut agg, _addr) =
        start_aggregator(&pki, &server, &data, 0, &["--config", path_str(&config)?])?;
    agg.wait_for("CloudTrail file read", 1, |v| {
        v["file"].as_str().is_some_and(|f| f.ends_with("a.json")) && v["events"] == 1
    })?;
    write_trail(&logs, "b.json", "DeleteTrail", 2)?;
    agg.wait_for("CloudTrail file read", 1, |v| {
        v["file"].as_str().is_some_and(|f| f.ends_with("b.json"))
    })?;
    assert!(agg.terminate()?.success());

    let (mut agg, _addr) =
        start_aggregator(&pki, &server, &data, 0, &["--config", path_str(&config)?])?;
    write_trail(&logs, "c.json", "StopLogging", 3)?;
    agg.wait_for("CloudTrail file read", 1, |v| {
        v["file"].as_str().is_some_and(|f| f.ends_with("c.json"))
    })?;
    assert_eq!(
        read_lines_for(&agg, "a.json"),
        0,
        "a.json read again after restart"
    );
    assert_eq!(
        read_lines_for(&agg, "b.json"),
        0,
        "b.json read again after restart"
    );
    assert!(agg.terminate()?.success());

    let store = FindingStore::open(&data).context("findings store")?;
    let page = store.list(&ListQuery::default())?;
    let logging: Vec<_> = page
        .findings
        .iter()
        .filter(|f| f.finding_type.name() == "Stealth:IAMUser/CloudTrailLoggingDisabled")
        .collect();
    assert_eq!(logging.len(), 1, "{:?}", page.findings);
    // Three calls by one key from one address: one finding, counted three times.
    assert_eq!(logging[0].service.count, 3);
    Ok(())
}

fn stop_logging_line(second: u32) -> String {
    format!(
        r#"{{"eventVersion":"1.09","eventTime":"2024-05-01T11:00:{second:02}Z","eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","awsRegion":"us-east-1","recipientAccountId":"111122223333","sourceIPAddress":"81.2.69.142","userAgent":"aws-cli/2.15.0","requestParameters":{{"name":"main"}},"eventID":"l-{second}","userIdentity":{{"type":"IAMUser","principalId":"AIDAL","arn":"arn:aws:iam::111122223333:user/l","accountId":"111122223333","accessKeyId":"AKIAL","userName":"l"}}}}"#
    )
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[test]
fn a_growing_line_file_is_read_from_where_it_stopped_across_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::new()?;
    let server = pki.server()?;
    let data = dir.path().join("data");
    let exports = dir.path().join("exports");
    std::fs::create_dir_all(&exports)?;
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[cloudtrail]\npaths = [\"{}\"]\ndebounce_ms = 100\nrescan_secs = 3600\n",
            exports.display()
        ),
    )?;
    let file = exports.join("events.jsonl");
    // Two whole lines and the first half of the third, as a writer mid-line leaves it.
    let third = stop_logging_line(3);
    let (head, tail) = third.split_at(40);
    append(
        &file,
        &format!("{}\n{}\n{head}", stop_logging_line(1), stop_logging_line(2)),
    )?;

    let (mut agg, _addr) =
        start_aggregator(&pki, &server, &data, 0, &["--config", path_str(&config)?])?;
    agg.wait_for("CloudTrail file read", 1, |v| {
        v["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("events.jsonl"))
            && v["events"] == 2
    })?;
    append(&file, &format!("{tail}\n{}\n", stop_logging_line(4)))?;
    agg.wait_for("CloudTrail file read", 1, |v| {
        v["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("events.jsonl"))
            && v["events"] == 2
            && v["from_line"] == 3
    })?;
    assert!(agg.terminate()?.success());

    let (mut agg, _addr) =
        start_aggregator(&pki, &server, &data, 0, &["--config", path_str(&config)?])?;
    append(&file, &format!("{}\n", stop_logging_line(5)))?;
    let read = agg.wait_for("CloudTrail file read", 1, |v| {
        v["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("events.jsonl"))
    })?;
    assert_eq!(read[0]["events"], 1, "{read:?}");
    assert_eq!(read[0]["from_line"], 5, "{read:?}");
    assert!(agg.terminate()?.success());

    let store = FindingStore::open(&data).context("findings store")?;
    let page = store.list(&ListQuery::default())?;
    let logging: Vec<_> = page
        .findings
        .iter()
        .filter(|f| f.finding_type.name() == "Stealth:IAMUser/CloudTrailLoggingDisabled")
        .collect();
    assert_eq!(logging.len(), 1, "{:?}", page.findings);
    // Five StopLogging lines, each counted exactly once.
    assert_eq!(logging[0].service.count, 5);
    Ok(())
}
