//! Helpers for the operations tests: plain-HTTP requests to the metrics endpoints, reading
//! series values out of the exposition text, and the SSM document generated from the
//! install script (the script is the one source of truth; the JSON is derived from it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{Proc, WAIT};

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_owned)
}

/// `GET path` on `addr` over plain HTTP/1.1; returns the status code and the body.
///
/// # Errors
/// Connection, I/O or a response that is not HTTP.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .context("no end of headers in the response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)?
        } else {
            body.to_owned()
        },
    ))
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut body: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("truncated chunk header")?;
        let n = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
        if n == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..n).context("truncated chunk")?;
        out.push_str(chunk);
        body = rest.get(n + 2..).context("truncated chunk end")?;
    }
}

/// The value of the first sample whose line starts with `series` (a name, optionally with
/// its `{labels}`), e.g. `picket_agent_connected` or `picket_x_total{kind="dns"}`.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(series)?;
        let rest = rest.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The address a daemon's metrics endpoint bound (its `metrics listening` log line).
///
/// # Errors
/// The line did not appear in time.
pub fn metrics_addr(proc: &Proc) -> Result<String> {
    let ev = proc.wait_for("metrics listening", 1, |_| true)?;
    Ok(ev[0]["local_addr"]
        .as_str()
        .context("metrics listening line has no local_addr")?
        .to_owned())
}

/// Scrapes `addr` until `pred` holds for the exposition text; returns that text.
///
/// # Errors
/// The condition did not hold within [`WAIT`]; the message holds the last scrape.
pub fn scrape_until(addr: &str, what: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    loop {
        if let Ok((200, text)) = http_get(addr, "/metrics") {
            if pred(&text) {
                return Ok(text);
            }
            last = text;
        }
        if Instant::now() > deadline {
            bail!("waited {WAIT:?} for {what}; last scrape:\n{last}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One parameter of the SSM document: name, environment variable, description, default
/// (`None`: required) and the pattern SSM enforces before substituting it. Patterns never
/// admit a quote, so `'{{ Name }}'` cannot break out of its quotes.
pub const SSM_PARAMETERS: &[(&str, &str, &str, Option<&str>, &str)] = &[
    (
        "BinaryUrl",
        "PICKET_BINARY_URL",
        "Where picket-agent is: https://... or s3://bucket/key.",
        None,
        "^(https|s3)://[A-Za-z0-9._~:/?#@!$&()*+,;=%-]+$",
    ),
    (
        "BinarySha256",
        "PICKET_BINARY_SHA256",
        "SHA-256 of the binary (from SHA256SUMS).",
        None,
        "^[0-9a-fA-F]{64}$",
    ),
    (
        "AggregatorUrl",
        "PICKET_AGGREGATOR_URL",
        "The aggregator's agent endpoint, https://HOST:PORT.",
        None,
        "^https://[A-Za-z0-9.:\\[\\]-]+:[0-9]+/?$",
    ),
    (
        "EnrollUrl",
        "PICKET_ENROLL_URL",
        "The aggregator's enrollment endpoint, https://HOST:PORT (empty: AggregatorUrl).",
        Some(""),
        "^(https://[A-Za-z0-9.:\\[\\]-]+:[0-9]+/?)?$",
    ),
    (
        "EnrollToken",
        "PICKET_ENROLL_TOKEN",
        "Enrollment token from `picket-aggregator enroll-token create` (short-lived, limited uses).",
        None,
        "^[A-Za-z0-9._~+/=-]+$",
    ),
    (
        "CaFingerprint",
        "PICKET_CA_FINGERPRINT",
        "SHA-256 fingerprint of the Picket CA certificate (64 hex digits, colons allowed).",
        None,
        "^[0-9A-Fa-f:]{64,95}$",
    ),
    (
        "Interfaces",
        "PICKET_INTERFACES",
        "Interfaces to capture on, comma-separated (empty: every interface that is up).",
        Some(""),
        "^[A-Za-z0-9_.:,-]*$",
    ),
    (
        "MetricsListen",
        "PICKET_METRICS_LISTEN",
        "Address for the agent's /metrics and /healthz (empty: off).",
        Some("127.0.0.1:9464"),
        "^(([0-9.]+|\\[[0-9A-Fa-f:]+\\]):[0-9]+)?$",
    ),
];

/// The SSM Command document for `script` (the install script's text): schemaVersion 2.2, the
/// parameters above, and one `aws:runShellScript` step that exports them and runs the script
/// unchanged.
pub fn ssm_document(script: &str) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut parameters = Map::new();
    let mut commands: Vec<Value> = vec![json!("set -eu")];
    for (name, var, description, default, pattern) in SSM_PARAMETERS {
        let mut p = Map::new();
        p.insert("type".into(), json!("String"));
        p.insert("description".into(), json!(description));
        if let Some(d) = default {
            p.insert("default".into(), json!(d));
        }
        p.insert("allowedPattern".into(), json!(pattern));
        parameters.insert((*name).into(), Value::Object(p));
        commands.push(json!(format!("export {var}='{{{{ {name} }}}}'")));
    }
    commands.push(json!("script=\"$(mktemp)\""));
    commands.push(json!("cat > \"$script\" <<'PICKET_SCRIPT'"));
    commands.extend(script.lines().map(|l| json!(l)));
    commands.push(json!("PICKET_SCRIPT"));
    commands.push(json!("rc=0; bash \"$script\" || rc=$?"));
    commands.push(json!("rm -f \"$script\""));
    commands.push(json!("exit \"$rc\""));
    json!({
        "schemaVersion": "2.2",
        "description": "Install the Picket agent: download the binary, verify its SHA-256, write /etc/picket/agent.toml, create the picket user, enroll with the aggregator and start picket-agent.service. Generated from deploy/install/user-data.sh (tests/tests/deploy.rs checks they agree).",
        "parameters": parameters,
        "mainSteps": [{
            "action": "aws:runShellScript",
            "name": "installPicketAgent",
            "precondition": { "StringEquals": ["platformType", "Linux"] },
            "inputs": {
                "timeoutSeconds": "600",
                "runCommand": commands,
            }
        }]
    })
}
