//! End-to-end tests of intel distribution (issue 5): a list change on a running aggregator
//! reaches a running agent, a list that cannot be parsed leaves the previous snapshot in force,
//! and a restarted agent with no aggregator filters with the snapshot it cached.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use picket_aggregator::certs::LeafKind;
use picket_tests::{Pki, Proc, bin, path_str, start_agent, start_aggregator};

const ACCOUNT: &str = "123456789012";
const INSTANCE: &str = "i-0intel";
/// Indicators in the built-in canary list.
const CANARIES: u64 = 6;

/// Replaces a file the way feed downloaders do: write aside, then rename over it.
fn replace(path: &Path, text: &[u8]) -> Result<()> {
    let tmp = path.with_extension("download");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn u64_field(ev: &serde_json::Value, field: &str) -> Result<u64> {
    ev[field]
        .as_u64()
        .with_context(|| format!("no {field} in {ev}"))
}

/// Waits for the aggregator to publish a snapshot with `indicators` and returns its version.
fn published(agg: &Proc, n: usize, indicators: u64) -> Result<u64> {
    let ev = agg.wait_for("intel snapshot published", n, |e| {
        e["indicators"].as_u64() == Some(indicators)
    })?;
    u64_field(&ev[n - 1], "version")
}

#[test]
fn a_list_change_reaches_a_running_agent_and_a_restarted_agent_uses_its_cache_offline() -> Result<()>
{
    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, INSTANCE)?;
    let admin = pki.issue("admin", LeafKind::Admin("ops".into()))?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let intel_dir = tempfile::tempdir()?;
    let list = intel_dir.path().join("threat.txt");
    std::fs::write(&list, "evil.example\n")?;
    let config = intel_dir.path().join("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            "[intel]\n[[intel.sources]]\npath = {:?}\nkind = \"threat\"\ncategory = \"c2\"\n",
            path_str(&list)?
        ),
    )?;
    let (mut agg, addr) = start_aggregator(
        &pki,
        &server,
        agg_dir.path(),
        0,
        &["--config", path_str(&config)?],
    )?;
    let v1 = published(&agg, 1, 1 + CANARIES)?;

    // A fresh agent holds only the canaries (version 0) and is sent the aggregator's snapshot.
    let mut agent = start_agent(&pki, &leaf, &addr, agent_dir.path(), ACCOUNT, INSTANCE)?;
    agent.wait_for("intel: using the built-in canary list", 1, |_| true)?;
    agent.wait_for("intel snapshot applied", 1, |e| {
        e["version"].as_u64() == Some(v1) && e["indicators"].as_u64() == Some(1 + CANARIES)
    })?;

    // The feed grows by two entries: the running agent gets the new snapshot unasked.
    replace(&list, b"evil.example\n45.33.32.156\nworse.example\n")?;
    let v2 = published(&agg, 1, 3 + CANARIES)?;
    assert!(v2 > v1, "version {v2} after {v1}");
    let applied = agent.wait_for("intel snapshot applied", 1, |e| {
        e["version"].as_u64() == Some(v2)
    })?;
    assert_eq!(u64_field(&applied[0], "indicators")?, 3 + CANARIES);

    // A list that cannot be parsed at all changes nothing, whether noticed by the watcher or
    // asked for with `intel reload`.
    replace(&list, b"\x00\x01\x02 not a list")?;
    agg.wait_for(
        "intel reload failed; the previous snapshot stays in force",
        1,
        |e| e["trigger"] == "file change" && e["version"].as_u64() == Some(v2),
    )?;
    let url = format!("https://{addr}");
    let ca = pki.ca();
    let out = Command::new(bin("picket-aggregator"))
        .args([
            "intel",
            "reload",
            "--aggregator",
            &url,
            "--ca",
            path_str(&ca)?,
        ])
        .args([
            "--cert",
            path_str(&admin.cert)?,
            "--key",
            path_str(&admin.key)?,
        ])
        .output()?;
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FailedPrecondition"), "{err}");
    assert!(err.contains("threat.txt"), "{err}");
    assert!(err.contains("previous snapshot stays in force"), "{err}");
    assert_eq!(agent.events("intel snapshot applied").len(), 2);
    // Reloading is for administrators: an agent's certificate is refused.
    let out = Command::new(bin("picket-aggregator"))
        .args([
            "intel",
            "reload",
            "--aggregator",
            &url,
            "--ca",
            path_str(&ca)?,
        ])
        .args([
            "--cert",
            path_str(&leaf.cert)?,
            "--key",
            path_str(&leaf.key)?,
        ])
        .output()?;
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PermissionDenied"), "{err}");
    // Restoring the lists' content is not a new snapshot, however the reload is asked for.
    replace(&list, b"evil.example\n45.33.32.156\nworse.example\n")?;
    let out = Command::new(bin("picket-aggregator"))
        .args([
            "intel",
            "reload",
            "--aggregator",
            &url,
            "--ca",
            path_str(&ca)?,
        ])
        .args([
            "--cert",
            path_str(&admin.cert)?,
            "--key",
            path_str(&admin.key)?,
        ])
        .output()?;
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("intel lists unchanged; snapshot {v2} stays")),
        "{said}"
    );

    // An agent that reconnects holding the current version is not sent it again: the intel
    // frame would precede the acks of its new batches on the same stream.
    agent.terminate()?;
    let acked_before = agent
        .events("acked")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .unwrap_or(0);
    let agent = start_agent(&pki, &leaf, &addr, agent_dir.path(), ACCOUNT, INSTANCE)?;
    agg.wait_for("agent session opened", 1, |e| {
        e["intel_version"].as_u64() == Some(v2)
    })?;
    agent.wait_for("acked", 1, |e| {
        e["seq"].as_u64().is_some_and(|s| s > acked_before)
    })?;
    assert!(agent.events("intel snapshot applied").is_empty());

    // Stop both; the agent comes back with no aggregator and filters with its cached snapshot.
    let mut agent = agent;
    agent.terminate()?;
    agg.kill();
    let agent = start_agent(&pki, &leaf, &addr, agent_dir.path(), ACCOUNT, INSTANCE)?;
    let loaded = agent.wait_for("intel snapshot loaded from cache", 1, |_| true)?;
    assert_eq!(u64_field(&loaded[0], "version")?, v2);
    assert_eq!(u64_field(&loaded[0], "indicators")?, 3 + CANARIES);
    agent.wait_for("connection to aggregator failed", 1, |_| true)?;
    assert!(
        agent
            .events("intel: using the built-in canary list")
            .is_empty()
    );
    Ok(())
}
