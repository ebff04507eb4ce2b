//! `picket-aggregator intel check` and `intel stats` on small fixture lists: the real binary,
//! its real output.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};

fn run(args: &[&str]) -> Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_picket-aggregator"))
        .args(args)
        .output()
        .context("running picket-aggregator")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

struct Fixtures {
    _dir: tempfile::TempDir,
    threat: std::path::PathBuf,
    trusted: std::path::PathBuf,
    config: std::path::PathBuf,
}

fn fixtures() -> Result<Fixtures> {
    let dir = tempfile::tempdir()?;
    let threat = dir.path().join("threat.txt");
    std::fs::write(
        &threat,
        "# test feed\n93.184.216.0/24\nbad.example\nthis is not an indicator\n2a00:1450:4001::/48\n",
    )?;
    let trusted = dir.path().join("trusted.txt");
    std::fs::write(&trusted, "93.184.216.7\n")?;
    let config = dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        "[intel]\ncanaries = false\n[[intel.sources]]\npath = \"threat.txt\"\nkind = \"threat\"\nname = \"feed\"\ncategory = \"c2\"\n",
    )?;
    Ok(Fixtures {
        _dir: dir,
        threat,
        trusted,
        config,
    })
}

#[test]
fn check_with_list_flags_names_the_match_or_says_trusted_or_no_match() -> Result<()> {
    let f = fixtures()?;
    let out = run(&[
        "intel",
        "check",
        "--threat-list",
        path(&f.threat),
        "--trusted-list",
        path(&f.trusted),
        "93.184.216.9",
        "93.184.216.7",
        "www.bad.example",
        "guarddutyc2activityb.com",
    ])?;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with(
            "93.184.216.9: threat: list threat.txt, entry 93.184.216.0/24, category custom"
        ),
        "{text}"
    );
    assert!(
        lines[0].ends_with("finding UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("93.184.216.7: trusted: list trusted.txt"),
        "{text}"
    );
    assert!(
        lines[2].ends_with("finding Impact:EC2/MaliciousDomainRequest.Custom"),
        "{text}"
    );
    // List flags replace every other source, the canaries included.
    assert_eq!(lines[3], "guarddutyc2activityb.com: no match");
    Ok(())
}

#[test]
fn check_without_any_config_uses_the_built_in_canaries() -> Result<()> {
    let out = run(&[
        "intel",
        "check",
        "x.guarddutyc2activityb.com",
        "example.org",
    ])?;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("x.guarddutyc2activityb.com: threat: list picket-canary, entry guarddutyc2activityb.com, category c2"),
        "{text}"
    );
    assert!(text.contains("Backdoor:EC2/C&CActivity.B!DNS"), "{text}");
    assert!(text.contains("example.org: no match"), "{text}");
    Ok(())
}

#[test]
fn check_with_a_config_uses_its_sources_name_and_category() -> Result<()> {
    let f = fixtures()?;
    let out = run(&[
        "intel",
        "check",
        "--config",
        path(&f.config),
        "bad.example",
        "guarddutyc2activityb.com",
    ])?;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("bad.example: threat: list feed, entry bad.example, category c2"),
        "{text}"
    );
    assert!(
        text.contains("finding Backdoor:EC2/C&CActivity.B!DNS"),
        "{text}"
    );
    assert!(
        text.contains("guarddutyc2activityb.com: no match"),
        "{text}"
    );
    Ok(())
}

#[test]
fn stats_counts_per_list_and_prints_rejected_lines_with_file_and_line() -> Result<()> {
    let f = fixtures()?;
    let out = run(&[
        "intel",
        "stats",
        "--threat-list",
        path(&f.threat),
        "--trusted-list",
        path(&f.trusted),
    ])?;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let row = |name: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    // LIST KIND IPV4 IPV6 CIDR DOMAIN TOTAL REJECTED IGNORED SKIPPED CATEGORIES
    assert_eq!(
        row("threat.txt"),
        [
            "threat.txt",
            "threat",
            "0",
            "0",
            "2",
            "1",
            "3",
            "1",
            "0",
            "0",
            "custom=3"
        ],
        "{text}"
    );
    assert_eq!(
        row("trusted.txt"),
        [
            "trusted.txt",
            "trusted",
            "1",
            "0",
            "0",
            "0",
            "1",
            "0",
            "0",
            "0",
            "custom=1"
        ],
        "{text}"
    );
    assert!(text.contains("total: 4 indicators"), "{text}");
    let rejected = format!("{}:4: ", f.threat.display());
    assert!(text.contains(&rejected), "{rejected} not in {text}");
    Ok(())
}

#[test]
fn an_unparseable_list_fails_the_command_naming_the_file() -> Result<()> {
    let f = fixtures()?;
    std::fs::write(&f.threat, b"\x00\x01binary")?;
    let out = run(&["intel", "stats", "--threat-list", path(&f.threat)])?;
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("threat.txt"), "{err}");
    assert!(err.contains("cannot detect the list format"), "{err}");
    Ok(())
}
