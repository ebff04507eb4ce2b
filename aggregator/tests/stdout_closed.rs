//! `picket-aggregator ... | head`: when whatever reads standard output stops early, the
//! binary stops quietly with success, as `cat` and `grep` do, instead of panicking or
//! reporting a broken pipe.

use std::io::Read;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// Runs the binary with `args`, reads `keep` bytes of its standard output, closes the pipe, and
/// returns its exit status and standard error.
fn read_then_close(args: &[String], keep: usize) -> Result<(std::process::ExitStatus, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_picket-aggregator"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting picket-aggregator")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut first = vec![0; keep];
    stdout.read_exact(&mut first)?;
    drop(stdout);
    let output = child.wait_with_output()?;
    Ok((
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[test]
fn json_lines_stop_quietly_when_the_reader_goes() -> Result<()> {
    // More than a pipe's 64 KiB buffer, so the writer meets the closed pipe.
    let (status, stderr) = read_then_close(&["findings".into(), "samples".into()], 100)?;
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    Ok(())
}

#[test]
fn a_long_report_stops_quietly_when_the_reader_goes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let list = dir.path().join("feed.txt");
    let values: Vec<String> = (0..12_000_u32)
        .map(|i| format!("45.{}.{}.7", i / 250 % 250, i % 250))
        .collect();
    std::fs::write(&list, values.join("\n"))?;
    let mut args = vec![
        "intel".to_owned(),
        "check".to_owned(),
        "--threat-list".to_owned(),
        list.to_string_lossy().into_owned(),
    ];
    args.extend(values);
    let (status, stderr) = read_then_close(&args, 100)?;
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    Ok(())
}
