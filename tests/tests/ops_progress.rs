//! `analyze --progress` reports progress on standard error (and not without it when standard
//! error is not a terminal), without changing what goes to standard output.

use std::process::Command;

use picket_tests::ops::repo_root;

fn analyze(extra: &[&str]) -> std::process::Output {
    let fixtures = repo_root().join("aggregator/tests/fixtures");
    Command::new(picket_tests::bin("picket-aggregator"))
        .arg("analyze")
        .arg("--agent-records")
        .arg(fixtures.join("network_detections.jsonl"))
        .arg("--agent-records")
        .arg(fixtures.join("benign_traffic.jsonl"))
        .args(extra)
        .output()
        .expect("run analyze")
}

#[test]
fn analyze_reports_progress_on_stderr_when_asked_and_only_then() {
    let with = analyze(&["--progress"]);
    assert!(with.status.success());
    let stderr = String::from_utf8_lossy(&with.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("progress: "))
        .unwrap_or_else(|| panic!("no progress line:\n{stderr}"));
    assert!(
        line.contains(" records (") && line.contains("2 of 2 files done"),
        "{line}"
    );
    let without = analyze(&[]);
    assert!(without.status.success());
    assert!(
        !String::from_utf8_lossy(&without.stderr).contains("progress: "),
        "progress printed to a pipe without --progress"
    );
    // Findings on standard output are the same either way.
    assert_eq!(with.stdout, without.stdout);
    assert!(!with.stdout.is_empty());
}
