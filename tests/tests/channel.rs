//! End-to-end tests of the mTLS agent–aggregator channel (foundation issue): real binaries,
//! real certificates made here, real sled, real sockets on loopback.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::Result;
use picket_aggregator::certs::LeafKind;
use picket_aggregator::ingest::BatchStore;
use picket_proto::AgentId;
use picket_proto::v1::{AgentFrame, Batch, HostStats, Lane, Record, agent_frame, record};
use picket_tests::{Pki, Proc, client, hello, start_agent, start_aggregator};

const ACCOUNT: &str = "123456789012";

fn max_acked(agent: &Proc) -> u64 {
    agent
        .events("acked")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Waits until the agent has been acked beyond `seq`.
fn wait_acked_beyond(agent: &Proc, seq: u64) -> Result<u64> {
    let ev = agent.wait_for("acked", 1, |e| e["seq"].as_u64().is_some_and(|s| s > seq))?;
    Ok(ev
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .max()
        .unwrap_or(0))
}

#[test]
fn acked_batches_survive_an_aggregator_crash_and_the_agent_reconnects_by_itself() -> Result<()> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, "i-0aaa")?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let (mut agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &[])?;
    let agent = start_agent(&pki, &leaf, &addr, agent_dir.path(), ACCOUNT, "i-0aaa")?;

    agent.wait_for("connected", 1, |_| true)?;
    let acked = wait_acked_beyond(&agent, 1)?;
    agg.wait_for("heartbeat", 1, |e| {
        e["agent"] == format!("{ACCOUNT}/i-0aaa")
    })?;

    // A crash, not a shutdown: whatever was acked must already be on disk.
    agg.kill();
    let id = AgentId::new(ACCOUNT, "i-0aaa")?;
    {
        let store = BatchStore::open(agg_dir.path())?;
        assert!(store.high_water_mark(&id, Lane::Bulk)? >= acked);
        let (batches, bad) = store.batches_of(&id)?;
        assert_eq!(bad, 0);
        let seqs: Vec<u64> = batches.iter().map(|b| b.seq).collect();
        let expected: Vec<u64> = (1..=acked).collect();
        assert_eq!(seqs.get(..expected.len()), Some(expected.as_slice()));
        assert!(batches.iter().all(|b| matches!(
            b.records.first().and_then(|r| r.record.as_ref()),
            Some(record::Record::HostStats(_))
        )));
    }

    // Same port, same store: the agent finds it again without help.
    let port = addr.rsplit(':').next().unwrap_or("0").parse::<u16>()?;
    let (_agg2, _) = start_aggregator(&pki, &server, agg_dir.path(), port, &[])?;
    agent.wait_for("connected", 2, |_| true)?;
    let after = wait_acked_beyond(&agent, acked)?;
    assert!(after > acked);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_ca_missing_certificate_and_plaintext_are_refused_while_a_valid_agent_keeps_working()
-> Result<()> {
    let pki = Pki::new()?;
    let other = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, "i-0bbb")?;
    let foreign = other.agent(ACCOUNT, "i-0bbb")?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let (agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &[])?;
    let agent = start_agent(&pki, &leaf, &addr, agent_dir.path(), ACCOUNT, "i-0bbb")?;
    wait_acked_beyond(&agent, 0)?;

    let ca = pki.ca();
    let attempts = [
        ("foreign CA", Some((ca.as_path(), Some(&foreign)))),
        ("no client certificate", Some((ca.as_path(), None))),
        ("plaintext", None),
    ];
    for (what, tls) in attempts {
        let refused = match client(&addr, tls).await {
            Err(_) => true,
            Ok(mut c) => {
                let frames = tokio_stream_of(vec![hello(ACCOUNT, "i-0bbb")]);
                c.session(frames).await.is_err()
            }
        };
        assert!(refused, "{what} was not refused");
    }
    // Foreign CA and missing certificate fail in the handshake; plaintext too (no TLS at all).
    agg.wait_for("TLS handshake refused", 3, |_| true)?;
    let before = max_acked(&agent);
    wait_acked_beyond(&agent, before)?;
    Ok(())
}

/// A request stream that sends `frames` and then ends.
fn tokio_stream_of(frames: Vec<AgentFrame>) -> impl futures::Stream<Item = AgentFrame> {
    futures::stream::iter(frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_claiming_another_account_is_permission_denied_and_logged_with_both() -> Result<()> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, "i-0ccc")?;
    let agg_dir = tempfile::tempdir()?;
    let (agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &[])?;

    let ca = pki.ca();
    let mut c = client(&addr, Some((ca.as_path(), Some(&leaf)))).await?;
    let status = c
        .session(tokio_stream_of(vec![hello("210987654321", "i-0ccc")]))
        .await
        .expect_err("a Hello for another account must be refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    let ev = agg.wait_for(
        "refusing session: Hello identity differs from the certificate's",
        1,
        |_| true,
    )?;
    assert_eq!(ev[0]["certificate"], format!("{ACCOUNT}/i-0ccc"));
    assert_eq!(ev[0]["hello"], "210987654321/i-0ccc");

    // The same certificate with an honest Hello is accepted.
    let mut c = client(&addr, Some((ca.as_path(), Some(&leaf)))).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(hello(ACCOUNT, "i-0ccc")).await?;
    let response = c
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    assert!(response.is_ok(), "{response:?}");
    drop(tx);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_and_an_oversize_frame_end_only_their_own_connection() -> Result<()> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, "i-0ddd")?;
    let probe = pki.agent(ACCOUNT, "i-0eee")?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let cfg = agg_dir.path().join("aggregator.toml");
    std::fs::write(&cfg, "[limits]\nmax_message_bytes = 65536\n")?;
    let cfg_arg = cfg.to_string_lossy().into_owned();
    let (agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &["--config", &cfg_arg])?;
    let agent = start_agent(&pki, &leaf, &addr, agent_dir.path(), ACCOUNT, "i-0ddd")?;
    wait_acked_beyond(&agent, 0)?;

    // Garbage on the raw port: the server hangs up on that socket.
    let addr2 = addr.clone();
    let closed = tokio::task::spawn_blocking(move || -> Result<bool> {
        let mut s = std::net::TcpStream::connect(&addr2)?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.write_all(&[0x5a; 4096])?;
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Ok(true),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(true),
                Err(_) => return Ok(false),
            }
        }
    })
    .await??;
    assert!(closed, "server kept a garbage connection open");

    // A frame over the configured limit ends that session with a status.
    let ca = pki.ca();
    let mut c = client(&addr, Some((ca.as_path(), Some(&probe)))).await?;
    let big = AgentFrame {
        frame: Some(agent_frame::Frame::Batch(Batch {
            seq: 1,
            records: vec![Record {
                record: Some(record::Record::HostStats(HostStats {
                    decode_errors: (0..4000)
                        .map(|i| picket_proto::v1::Counter {
                            kind: format!("kind-{i:08}"),
                            count: i,
                        })
                        .collect(),
                    ..HostStats::default()
                })),
            }],
            created_at_ms: 0,
            lane: Lane::Bulk as i32,
        })),
    };
    let mut inbound = c
        .session(tokio_stream_of(vec![hello(ACCOUNT, "i-0eee"), big]))
        .await?
        .into_inner();
    // The session opens with the intel snapshot (the probe holds none); the error follows.
    let end = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match inbound.message().await {
                Ok(Some(picket_proto::v1::AggregatorFrame {
                    frame: Some(picket_proto::v1::aggregator_frame::Frame::IntelUpdate(_)),
                })) => continue,
                other => return other,
            }
        }
    })
    .await?;
    let status = end.expect_err("an oversize frame must end the session with an error");
    assert!(
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{status:?}"
    );
    agg.wait_for("agent session ended with an error", 1, |e| {
        e["agent"] == format!("{ACCOUNT}/i-0eee")
    })?;

    // The well-behaved agent never noticed.
    let before = max_acked(&agent);
    wait_acked_beyond(&agent, before)?;
    assert_eq!(
        agent.events("connected").len(),
        1,
        "the valid agent had to reconnect"
    );
    Ok(())
}

#[test]
fn bad_config_gives_a_one_line_error_naming_the_key_or_file() -> Result<()> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, "i-0fff")?;
    let dir = tempfile::tempdir()?;
    let run = |bin: &str, args: &[&str]| -> Result<(bool, String)> {
        let out = std::process::Command::new(picket_tests::bin(bin))
            .args(args)
            .output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let p = |p: &std::path::Path| p.to_string_lossy().into_owned();

    let agg_cfg = dir.path().join("aggregator.toml");
    std::fs::write(
        &agg_cfg,
        "[server]\nlisten = \"127.0.0.1:0\"\nlisten_addr = \"x\"\n",
    )?;
    let (ok, err) = run("picket-aggregator", &["serve", "--config", &p(&agg_cfg)])?;
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("aggregator.toml:3:") && err.contains("listen_addr"),
        "{err}"
    );

    let missing = dir.path().join("nope.pem");
    let (ok, err) = run(
        "picket-aggregator",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &p(&dir.path().join("d")),
            "--ca",
            &p(&pki.ca()),
            "--cert",
            &p(&missing),
            "--key",
            &p(&server.key),
        ],
    )?;
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("tls.cert") && err.contains("nope.pem"),
        "{err}"
    );

    let agent_cfg = dir.path().join("agent.toml");
    std::fs::write(
        &agent_cfg,
        "[identity]\naccount_id = \"123456789012\"\ninstance = \"i-1\"\n",
    )?;
    let (ok, err) = run("picket-agent", &["run", "--config", &p(&agent_cfg)])?;
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("agent.toml:3:") && err.contains("instance"),
        "{err}"
    );

    let (ok, err) = run(
        "picket-agent",
        &[
            "run",
            "--aggregator",
            "https://127.0.0.1:1",
            "--ca",
            &p(&pki.ca()),
            "--cert",
            &p(&leaf.cert),
            "--key",
            &p(&missing),
            "--data-dir",
            &p(&dir.path().join("a")),
            "--account-id",
            ACCOUNT,
            "--instance-id",
            "i-0fff",
        ],
    )?;
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("tls.key") && err.contains("nope.pem"), "{err}");

    // A config file that is not there: named once, its cause once.
    let absent = dir.path().join("absent.toml");
    for bin in ["picket-agent", "picket-aggregator"] {
        let command = if bin == "picket-agent" {
            "run"
        } else {
            "serve"
        };
        let (ok, err) = run(bin, &[command, "--config", &p(&absent)])?;
        assert!(!ok);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("absent.toml"), "{err}");
        assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    }

    // `status` on a folder no agent has used says so, and leaves no state behind.
    let never = dir.path().join("never");
    let (ok, err) = run("picket-agent", &["status", "--data-dir", &p(&never)])?;
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("never") && err.contains("no agent state"),
        "{err}"
    );
    assert!(!never.exists(), "status created {}", never.display());
    Ok(())
}

#[test]
fn an_admin_certificate_cannot_open_an_ingest_session() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let pki = Pki::new()?;
    let server = pki.server()?;
    let admin = pki.issue("admin", LeafKind::Admin("alice".into()))?;
    let agg_dir = tempfile::tempdir()?;
    let (_agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &[])?;
    let ca = pki.ca();
    let status = rt.block_on(async {
        let mut c = client(&addr, Some((ca.as_path(), Some(&admin)))).await?;
        anyhow::Ok(
            c.session(tokio_stream_of(vec![hello(ACCOUNT, "i-1")]))
                .await,
        )
    })?;
    assert_eq!(
        status.expect_err("refused").code(),
        tonic::Code::PermissionDenied
    );
    Ok(())
}

/// A stop (systemd's SIGTERM) must end the aggregator even while an agent keeps its session
/// stream open; before the shutdown grace, tonic's graceful stop waited for that stream forever.
#[test]
fn sigterm_stops_the_aggregator_while_an_agent_is_connected() -> Result<()> {
    let pki = Pki::new()?;
    let server = pki.server()?;
    let leaf = pki.agent(ACCOUNT, "i-0term")?;
    let agg_dir = tempfile::tempdir()?;
    let agent_dir = tempfile::tempdir()?;
    let (mut agg, addr) = start_aggregator(&pki, &server, agg_dir.path(), 0, &[])?;
    let agent = start_agent(&pki, &leaf, &addr, agent_dir.path(), ACCOUNT, "i-0term")?;
    agent.wait_for("connected", 1, |_| true)?;
    wait_acked_beyond(&agent, 1)?;

    agg.send_term()?;
    let status = agg.wait_exit(Duration::from_secs(20))?;
    assert!(
        status.success(),
        "aggregator exit: {status}\n{}",
        agg.tail(20)
    );
    assert_eq!(agg.events("stopped").len(), 1, "{}", agg.tail(20));
    Ok(())
}
