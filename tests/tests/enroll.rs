//! Enrollment end to end with real binaries and certificates: tokens (good, expired,
//! exhausted, wrong account), CA pinning, EC2 identity documents, revocation and renewal.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{Result, ensure};
use picket_tests::enroll::{
    ACCOUNT, AgentHome, EnrollAggregator, ImdsMode, ImdsServer, StandInAws, aggregator_config,
    create_token, fingerprint, identity_document, list_revoked, revoke, start_enroll_aggregator,
};
use picket_tests::{Pki, WAIT};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Setup {
    pki: Pki,
    agg: EnrollAggregator,
    root: tempfile::TempDir,
}

fn setup(lifetime_secs: u64, aws: Option<&StandInAws>) -> Result<Setup> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let root = tempfile::tempdir()?;
    let config = aggregator_config(
        &pki,
        &root.path().join("agg-cfg"),
        lifetime_secs,
        aws.map(|a| a.cert.as_path()),
    )?;
    let agg = start_enroll_aggregator(&pki, &server, &root.path().join("agg"), &config, 0)?;
    Ok(Setup { pki, agg, root })
}

fn home(s: &Setup, name: &str, account: &str, instance: &str) -> Result<AgentHome> {
    AgentHome::new(
        &s.root.path().join(name),
        &s.agg.addr,
        &AgentHome::identity(account, instance),
        "config",
        "",
    )
}

#[test]
fn an_agent_enrolled_with_a_good_token_connects_and_its_batches_are_acked() -> Result<()> {
    let s = setup(86_400, None)?;
    let token = create_token(&s.agg, ACCOUNT, "1h", 1)?;
    ensure!(token.starts_with("picket1."), "{token}");
    let fp = fingerprint(&s.pki)?;
    let agent = home(&s, "a", ACCOUNT, "i-0good")?;
    let out = agent.enroll(&s.agg.enroll_addr, &token, &fp)?;
    ensure!(out.status.success(), "enroll failed: {}", stderr(&out));
    let mode = std::fs::metadata(agent.key())?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "key mode {mode:o}");
    ensure!(std::fs::read(agent.ca())? == std::fs::read(s.pki.ca())?);
    s.agg.proc.wait_for("agent enrolled", 1, |v| {
        v["agent"] == format!("{ACCOUNT}/i-0good")
    })?;

    let run = agent.run()?;
    s.agg.proc.wait_for("agent session opened", 1, |v| {
        v["agent"] == format!("{ACCOUNT}/i-0good")
    })?;
    run.wait_for("acked", 1, |_| true)?;
    Ok(())
}

#[test]
fn an_expired_token_is_refused() -> Result<()> {
    let s = setup(86_400, None)?;
    let token = create_token(&s.agg, ACCOUNT, "1s", 5)?;
    std::thread::sleep(Duration::from_millis(2100));
    let agent = home(&s, "a", ACCOUNT, "i-0late")?;
    let out = agent.enroll(&s.agg.enroll_addr, &token, &fingerprint(&s.pki)?)?;
    ensure!(!out.status.success());
    ensure!(stderr(&out).contains("expired"), "{}", stderr(&out));
    ensure!(!agent.cert().exists() && !agent.key().exists());
    Ok(())
}

#[test]
fn a_token_is_spent_after_its_uses() -> Result<()> {
    let s = setup(86_400, None)?;
    let token = create_token(&s.agg, ACCOUNT, "1h", 1)?;
    let fp = fingerprint(&s.pki)?;
    let first = home(&s, "a", ACCOUNT, "i-0first")?;
    let out = first.enroll(&s.agg.enroll_addr, &token, &fp)?;
    ensure!(out.status.success(), "{}", stderr(&out));
    let second = home(&s, "b", ACCOUNT, "i-0second")?;
    let out = second.enroll(&s.agg.enroll_addr, &token, &fp)?;
    ensure!(!out.status.success());
    ensure!(stderr(&out).contains("no uses left"), "{}", stderr(&out));
    ensure!(!second.cert().exists());
    Ok(())
}

#[test]
fn a_token_does_not_enroll_instances_of_another_account() -> Result<()> {
    let s = setup(86_400, None)?;
    let token = create_token(&s.agg, "111111111111", "1h", 5)?;
    let agent = home(&s, "a", "222222222222", "i-0other")?;
    let out = agent.enroll(&s.agg.enroll_addr, &token, &fingerprint(&s.pki)?)?;
    ensure!(!out.status.success());
    ensure!(
        stderr(&out).contains("PermissionDenied") && stderr(&out).contains("111111111111"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn an_aggregator_whose_ca_does_not_match_the_fingerprint_is_not_trusted() -> Result<()> {
    let s = setup(86_400, None)?;
    let token = create_token(&s.agg, ACCOUNT, "1h", 1)?;
    let other_ca = Pki::new()?;
    let wrong = fingerprint(&other_ca)?;
    let agent = home(&s, "a", ACCOUNT, "i-0pin")?;
    let out = agent.enroll(&s.agg.enroll_addr, &token, &wrong)?;
    ensure!(!out.status.success());
    ensure!(
        stderr(&out).contains("does not match --ca-fingerprint"),
        "{}",
        stderr(&out)
    );
    ensure!(!agent.key().exists() && !agent.cert().exists());
    // The token was not spent: the right fingerprint still enrolls.
    let out = agent.enroll(&s.agg.enroll_addr, &token, &fingerprint(&s.pki)?)?;
    ensure!(out.status.success(), "{}", stderr(&out));
    Ok(())
}

#[test]
fn a_revoked_agent_is_disconnected_and_refused() -> Result<()> {
    let s = setup(86_400, None)?;
    let token = create_token(&s.agg, ACCOUNT, "1h", 2)?;
    let fp = fingerprint(&s.pki)?;
    let agent = home(&s, "a", ACCOUNT, "i-0bad")?;
    let out = agent.enroll(&s.agg.enroll_addr, &token, &fp)?;
    ensure!(out.status.success(), "{}", stderr(&out));
    let run = agent.run()?;
    run.wait_for("acked", 1, |_| true)?;

    let spiffe = format!("spiffe://picket/account/{ACCOUNT}/instance/i-0bad");
    let out = revoke(&s.pki, &s.agg.addr, &spiffe)?;
    ensure!(out.status.success(), "revoke failed: {}", stderr(&out));
    ensure!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    let listed = list_revoked(&s.pki, &s.agg.addr)?;
    ensure!(listed.status.success(), "{}", stderr(&listed));
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    ensure!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{spiffe}\trevoked_at_ms="))
                && l.ends_with("\treason=test")),
        "{listed}"
    );
    s.agg
        .proc
        .wait_for("closing session: agent was revoked", 1, |_| true)?;
    // The agent reconnects and is refused, by name.
    s.agg
        .proc
        .wait_for("refusing session: agent is revoked", 1, |v| {
            v["spiffe_id"] == spiffe.as_str()
        })?;
    run.wait_for("connection to aggregator failed", 1, |v| {
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("PermissionDenied"))
    })?;
    // Enrolling again does not bring it back.
    let again = home(&s, "a2", ACCOUNT, "i-0bad")?;
    let out = again.enroll(&s.agg.enroll_addr, &token, &fp)?;
    ensure!(!out.status.success());
    ensure!(stderr(&out).contains("revoked"), "{}", stderr(&out));
    Ok(())
}

#[test]
fn the_certificate_is_renewed_before_expiry_and_used_without_a_restart() -> Result<()> {
    // 30 s certificates: renewal is due about 19 s after issue, leaving the renewed one
    // valid well past the restart below.
    let s = setup(30, None)?;
    let token = create_token(&s.agg, ACCOUNT, "1h", 1)?;
    let agent = home(&s, "a", ACCOUNT, "i-0renew")?;
    let out = agent.enroll(&s.agg.enroll_addr, &token, &fingerprint(&s.pki)?)?;
    ensure!(out.status.success(), "{}", stderr(&out));
    let first_cert = std::fs::read(agent.cert())?;
    let first = picket_agent::renewal::validity(&agent.cert())?;

    let run = agent.run()?;
    run.wait_for("acked", 1, |_| true)?;
    run.wait_for("certificate renewed", 1, |_| true)?;
    s.agg.proc.wait_for("agent certificate renewed", 1, |v| {
        v["agent"] == format!("{ACCOUNT}/i-0renew")
    })?;
    ensure!(
        std::fs::read(agent.cert())? != first_cert,
        "certificate file unchanged"
    );

    // Once the enrolled certificate has expired, make the agent reconnect: it can only get
    // in with a renewed certificate, read from disk by the running process.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        <= u64::try_from(first.not_after)? + 1
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let port: u16 = s
        .agg
        .addr
        .rsplit_once(':')
        .map_or("0", |(_, p)| p)
        .parse()?;
    let Setup { pki, agg, root } = s;
    let EnrollAggregator {
        mut proc,
        data_dir,
        config,
        ..
    } = agg;
    proc.kill();
    let acked_before = run.events("acked").len();
    let server = pki.server()?;
    let agg2 = start_enroll_aggregator(&pki, &server, &data_dir, &config, port)?;
    agg2.proc.wait_for("agent session opened", 1, |v| {
        v["agent"] == format!("{ACCOUNT}/i-0renew")
    })?;
    let deadline = std::time::Instant::now() + WAIT;
    while run.events("acked").len() <= acked_before {
        ensure!(
            std::time::Instant::now() < deadline,
            "no ack after reconnecting: {}",
            run.tail(15)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(root);
    Ok(())
}

#[test]
fn an_identity_document_signed_by_aws_enrolls_and_one_for_another_instance_does_not() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let aws = StandInAws::new(dir.path())?;
    let s = setup(86_400, Some(&aws))?;
    let token = create_token(&s.agg, ACCOUNT, "1h", 5)?;
    let fp = fingerprint(&s.pki)?;

    // Identity entirely from instance metadata; the document is verified by the aggregator.
    let doc = identity_document(ACCOUNT, "i-0imds", "eu-west-1");
    let imds = ImdsServer::start(ImdsMode::Normal, doc.clone(), aws.sign(&doc)?)?;
    let imds_section = format!(
        "[imds]\nendpoint = \"{}\"\ntimeout_ms = 2000\n",
        imds.endpoint
    );
    let agent = AgentHome::new(
        &s.root.path().join("a"),
        &s.agg.addr,
        "",
        "imds",
        &imds_section,
    )?;
    let out = agent.enroll(&s.agg.enroll_addr, &token, &fp)?;
    ensure!(out.status.success(), "{}", stderr(&out));
    ensure!(String::from_utf8_lossy(&out.stdout).contains("instance/i-0imds"));

    // A host claiming another instance with a genuine document is refused.
    let liar = AgentHome::new(
        &s.root.path().join("b"),
        &s.agg.addr,
        &AgentHome::identity(ACCOUNT, "i-0victim"),
        "imds",
        &imds_section,
    )?;
    let out = liar.enroll(&s.agg.enroll_addr, &token, &fp)?;
    ensure!(!out.status.success());
    ensure!(
        stderr(&out).contains("identity document is for"),
        "{}",
        stderr(&out)
    );

    // A document with a signature that does not verify is refused.
    let forged = identity_document(ACCOUNT, "i-0forged", "eu-west-1");
    let bad_imds = ImdsServer::start(ImdsMode::Normal, forged, aws.sign(&doc)?)?;
    let forger = AgentHome::new(
        &s.root.path().join("c"),
        &s.agg.addr,
        "",
        "imds",
        &format!("[imds]\nendpoint = \"{}\"\n", bad_imds.endpoint),
    )?;
    let out = forger.enroll(&s.agg.enroll_addr, &token, &fp)?;
    ensure!(!out.status.success());
    ensure!(
        stderr(&out).contains("signature does not verify"),
        "{}",
        stderr(&out)
    );

    // Without metadata at all, enrollment is refused when documents are required.
    let bare = home(&s, "d", ACCOUNT, "i-0bare")?;
    let out = bare.enroll(&s.agg.enroll_addr, &token, &fp)?;
    ensure!(!out.status.success());
    ensure!(stderr(&out).contains("document"), "{}", stderr(&out));
    Ok(())
}
