//! Running the binary with bytes piped to its standard input, as `… | picket-aggregator …`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `command` with `input` written to its standard input from another thread (so a large
/// input cannot deadlock against its output), and returns what it printed.
pub fn output_with_stdin(command: &mut Command, input: Vec<u8>) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    feeder
        .join()
        .map_err(|_| std::io::Error::other("stdin feeder panicked"))??;
    Ok(out)
}
