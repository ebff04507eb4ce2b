//! The agent's IMDSv2 client against a loopback server speaking the protocol: token first,
//! every read with the token, 404 as "none", and a service that never answers.

use std::time::Duration;

use anyhow::{Result, ensure};
use picket_agent::imds::{ImdsClient, ImdsError};
use picket_tests::enroll::{AgentHome, ImdsMode, ImdsServer, identity_document, run_cmd};
use picket_tests::path_str;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

#[test]
fn imdsv2_reads_the_identity_with_a_session_token() -> Result<()> {
    let doc = identity_document("123456789012", "i-0abc", "eu-central-1");
    let server = ImdsServer::start(ImdsMode::Normal, doc.clone(), "c2lnbmF0dXJl\nc2ln".into())?;
    let client = ImdsClient::new(&server.endpoint, Duration::from_secs(2))?;
    let md = runtime()?.block_on(client.fetch())?;
    ensure!(md.account_id == "123456789012" && md.instance_id == "i-0abc");
    ensure!(md.region == "eu-central-1");
    ensure!(md.vpc_id.as_deref() == Some("vpc-0123456789abcdef0"));
    ensure!(md.local_ipv4.as_deref() == Some("10.0.1.23"));
    ensure!(md.public_ipv4.as_deref() == Some("203.0.113.7"));
    ensure!(md.document == doc.trim());
    let seen = server.requests();
    ensure!(
        seen.first()
            .is_some_and(|r| r.method == "PUT" && r.status == 200),
        "{seen:?}"
    );
    ensure!(
        seen.iter()
            .skip(1)
            .all(|r| r.method == "GET" && r.with_token),
        "{seen:?}"
    );
    Ok(())
}

#[test]
fn the_stand_in_refuses_reads_without_a_token() -> Result<()> {
    // The client's token handling is only proven if the server would refuse without one.
    let server = ImdsServer::start(
        ImdsMode::Normal,
        identity_document("123456789012", "i-1", "us-east-1"),
        String::new(),
    )?;
    let addr = server.endpoint.trim_start_matches("http://").to_owned();
    let mut s = std::net::TcpStream::connect(&addr)?;
    use std::io::{Read, Write};
    write!(
        s,
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    ensure!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    Ok(())
}

#[test]
fn a_missing_public_ipv4_is_none() -> Result<()> {
    let server = ImdsServer::start(
        ImdsMode::NoPublicIp,
        identity_document("123456789012", "i-0priv", "us-east-1"),
        "c2ln".into(),
    )?;
    let client = ImdsClient::new(&server.endpoint, Duration::from_secs(2))?;
    let md = runtime()?.block_on(client.fetch())?;
    ensure!(md.public_ipv4.is_none());
    ensure!(md.local_ipv4.as_deref() == Some("10.0.1.23"));
    ensure!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/latest/meta-data/public-ipv4" && r.status == 404)
    );
    Ok(())
}

#[test]
fn a_metadata_service_that_never_answers_is_a_clear_timeout() -> Result<()> {
    let server = ImdsServer::start(ImdsMode::Silent, String::new(), String::new())?;
    let client = ImdsClient::new(&server.endpoint, Duration::from_millis(300))?;
    let err = runtime()?.block_on(client.fetch()).unwrap_err();
    ensure!(matches!(err, ImdsError::Timeout { .. }), "{err}");
    let msg = err.to_string();
    ensure!(
        msg.contains(&server.endpoint)
            && msg.contains("PUT /latest/api/token")
            && msg.contains("no answer within 300 ms"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn without_metadata_the_agent_uses_its_configured_identity_or_says_what_is_missing() -> Result<()> {
    let server = ImdsServer::start(ImdsMode::Silent, String::new(), String::new())?;
    let dir = tempfile::tempdir()?;
    let imds = format!(
        "[imds]\nendpoint = \"{}\"\ntimeout_ms = 200\n",
        server.endpoint
    );
    // Nothing configured: a one-line error naming the key and the metadata failure.
    let bare = AgentHome::new(&dir.path().join("bare"), "127.0.0.1:1", "", "auto", &imds)?;
    let out = run_cmd(
        "picket-agent",
        &["run", "--config", path_str(&bare.config)?],
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success());
    ensure!(
        err.contains("identity.account_id is not set") && err.contains("no answer within 200 ms"),
        "{err}"
    );
    // Account and instance configured (region left out): metadata is not asked at all and
    // the configured identity is used (the run then stops at the missing certificate).
    let partial = AgentHome::new(
        &dir.path().join("partial"),
        "127.0.0.1:1",
        "account_id = \"123456789012\"\ninstance_id = \"i-0cfg\"",
        "auto",
        &imds,
    )?;
    let out = run_cmd(
        "picket-agent",
        &["run", "--config", path_str(&partial.config)?],
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success());
    ensure!(
        err.contains("tls.ca") && !err.contains("instance metadata"),
        "{err}"
    );
    ensure!(
        server.requests().is_empty() && server.connections() == 1,
        "metadata was asked"
    );
    // With source = "imds" the same config must get metadata, and says why it did not.
    let strict = AgentHome::new(
        &dir.path().join("strict"),
        "127.0.0.1:1",
        "account_id = \"123456789012\"\ninstance_id = \"i-0cfg\"",
        "imds",
        &imds,
    )?;
    let out = run_cmd(
        "picket-agent",
        &["run", "--config", path_str(&strict.config)?],
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success());
    ensure!(
        err.contains("identity.source = \"imds\"") && err.contains("no answer within 200 ms"),
        "{err}"
    );
    Ok(())
}
