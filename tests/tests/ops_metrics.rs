//! The metrics and health endpoints of a running aggregator and agent (real binaries, real
//! mTLS, real sled): the named series are exposed and move with real traffic, `/healthz`
//! answers, and an agent that stops reporting becomes a `SensorStoppedReporting` finding.

use std::time::Duration;

use picket_tests::ops::{http_get, metrics_addr, scrape_until, value};
use picket_tests::{FAST_AGENT_CONFIG, Pki, path_str, start_agent_cmd, start_aggregator};

const ACCOUNT: &str = "123456789012";

#[test]
fn both_daemons_expose_the_named_series_and_health_and_a_silent_agent_becomes_a_finding() {
    let pki = Pki::new().expect("pki");
    let server = pki.server().expect("server cert");
    let dir = tempfile::tempdir().expect("tempdir");
    // Silence after 2 s; detection ticks every 10 s, so the finding comes within ~20 s.
    let config = dir.path().join("aggregator.toml");
    // Two exporters: one that delivers, one whose endpoint refuses every connection.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    std::fs::write(
        &config,
        format!(
            "[detectors.agent_health]\nsilence_secs = 2\nforget_after_secs = 3600\n\
             [[exports]]\nname = \"file\"\nkind = \"jsonl\"\npath = \"findings.jsonl\"\n\
             settle_secs = 0\npoll_secs = 1\n\
             [[exports]]\nname = \"down\"\nkind = \"webhook\"\n\
             url = \"http://127.0.0.1:{closed_port}/\"\nsettle_secs = 0\npoll_secs = 1\n\
             retry = {{ initial_ms = 100, max_ms = 200 }}\n"
        ),
    )
    .expect("config");
    let (mut aggregator, addr) = start_aggregator(
        &pki,
        &server,
        &dir.path().join("agg"),
        0,
        &[
            "--config",
            path_str(&config).expect("utf-8"),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )
    .expect("aggregator");
    let agg_metrics = metrics_addr(&aggregator).expect("aggregator metrics address");

    let leaf = pki.agent(ACCOUNT, "i-0ops").expect("agent cert");
    let mut agent = start_agent_cmd(
        "run",
        &["--metrics-listen", "127.0.0.1:0"],
        FAST_AGENT_CONFIG,
        &pki,
        &leaf,
        &addr,
        &dir.path().join("agent"),
        ACCOUNT,
        "i-0ops",
    )
    .expect("agent");
    let agent_metrics = metrics_addr(&agent).expect("agent metrics address");

    // The agent's side: connected, host stats produced and acked.
    let text = scrape_until(&agent_metrics, "agent connected with acked batches", |t| {
        value(t, "picket_agent_connected") == Some(1.0)
            && value(t, "picket_agent_batches_acked_total").is_some_and(|v| v >= 2.0)
            && value(
                t,
                "picket_agent_records_produced_total{kind=\"host_stats\"}",
            )
            .is_some_and(|v| v >= 2.0)
    })
    .expect("agent series");
    for series in [
        "picket_agent_packets_captured_total",
        "picket_agent_packet_drops_total{cause=\"kernel\"}",
        "picket_agent_packet_drops_total{cause=\"internal\"}",
        "picket_agent_flows_active",
        "picket_agent_flow_evictions_total",
        "picket_agent_records_produced_total{kind=\"flow\"}",
        "picket_agent_outbox_bytes",
        "picket_agent_outbox_batches{lane=\"bulk\"}",
        "picket_agent_outbox_oldest_age_seconds",
        "picket_agent_outbox_dropped_records_total{kind=\"flow\"}",
        "picket_agent_batches_sent_total",
        "picket_agent_intel_version",
    ] {
        assert!(value(&text, series).is_some(), "{series} missing:\n{text}");
    }
    let (status, body) = http_get(&agent_metrics, "/healthz").expect("agent healthz");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(health["status"], "ok", "{body}");
    assert_eq!(health["connected"], true, "{body}");

    // The aggregator's side: one connected agent, its records and batches counted.
    let text = scrape_until(&agg_metrics, "the agent's records ingested", |t| {
        value(t, "picket_aggregator_connected_agents") == Some(1.0)
            && value(
                t,
                "picket_aggregator_records_ingested_total{kind=\"host_stats\"}",
            )
            .is_some_and(|v| v >= 2.0)
            && value(t, "picket_aggregator_batches_ingested_total").is_some_and(|v| v >= 2.0)
    })
    .expect("aggregator series");
    for series in [
        "picket_aggregator_detection_queue_depth",
        "picket_aggregator_intel_version",
        "picket_aggregator_agents_known",
        "picket_aggregator_agent_backlog_bytes",
        "picket_aggregator_duplicate_batches_total",
    ] {
        assert!(value(&text, series).is_some(), "{series} missing:\n{text}");
    }
    // Every ingest error cause is there from the start (at 0 here: nothing was refused).
    for cause in [
        "unauthenticated",
        "identity_mismatch",
        "store_write",
        "tls_handshake",
    ] {
        let series = format!("picket_aggregator_ingest_errors_total{{cause=\"{cause}\"}}");
        assert_eq!(value(&text, &series), Some(0.0), "{series}:\n{text}");
    }
    let (status, body) = http_get(&agg_metrics, "/healthz").expect("aggregator healthz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    let (status, _) = http_get(&agg_metrics, "/nothing").expect("404");
    assert_eq!(status, 404);

    // The agent stops (a crash, not a shutdown): it stops reporting, which becomes a finding.
    agent.kill();
    let created = "picket_aggregator_findings_total{type=\"DefenseEvasion:EC2/SensorStoppedReporting\",severity=\"medium\",outcome=\"created\"}";
    let text = scrape_until(&agg_metrics, "a SensorStoppedReporting finding", |t| {
        value(t, created) == Some(1.0)
    })
    .expect("silence finding");
    assert_eq!(
        value(&text, "picket_aggregator_connected_agents"),
        Some(0.0),
        "{text}"
    );
    // The finding is exported by the working exporter, which catches up; the other keeps
    // failing, and its lag (the age of the finding it cannot deliver) shows it.
    let text = scrape_until(&agg_metrics, "one export and one failing exporter", |t| {
        value(
            t,
            "picket_aggregator_exported_findings_total{exporter=\"file\"}",
        ) == Some(1.0)
            && value(t, "picket_aggregator_export_lag_seconds{exporter=\"file\"}") == Some(0.0)
            && value(
                t,
                "picket_aggregator_export_failures_total{exporter=\"down\"}",
            )
            .is_some_and(|v| v >= 2.0)
            && value(t, "picket_aggregator_export_lag_seconds{exporter=\"down\"}")
                .is_some_and(|v| v > 0.0)
    })
    .expect("export series");
    assert_eq!(
        value(
            &text,
            "picket_aggregator_exported_findings_total{exporter=\"down\"}"
        ),
        Some(0.0),
        "{text}"
    );
    // Exactly once for one silence.
    std::thread::sleep(Duration::from_secs(11));
    let (_, text) = http_get(&agg_metrics, "/metrics").expect("scrape");
    assert_eq!(value(&text, created), Some(1.0), "{text}");
    let lag = |t: &str| value(t, "picket_aggregator_export_lag_seconds{exporter=\"down\"}");
    assert!(
        lag(&text).is_some_and(|v| v >= 10.0),
        "the lag grows:\n{text}"
    );
    aggregator.terminate().expect("stop aggregator");
}
