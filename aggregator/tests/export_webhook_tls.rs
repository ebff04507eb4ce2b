//! A webhook over real TLS on loopback: the exporter verifies an `https://` endpoint against
//! the CA named by `ca` (certificates made with Picket's own `certs`), and refuses the same
//! server when it trusts only the public web roots.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use picket_aggregator::certs::{self, LeafKind};
use picket_aggregator::exports::config::SinkSpec;
use picket_aggregator::exports::formats::Format;
use picket_aggregator::exports::{ExportSpec, Exports};
use picket_aggregator::findings::model::Timestamp;
use picket_aggregator::findings::samples::sample_finding_at;
use picket_aggregator::findings::store::FindingStore;
use picket_aggregator::findings::types::FindingType;
use picket_aggregator::tls;
use serde_json::Value;

/// An HTTPS server (server certificate only) that records each POSTed body.
async fn https_server(pki: &Path) -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let pair = certs::issue(
        pki,
        &LeafKind::Server("127.0.0.1".into()),
        &pki.join("hook"),
    )
    .expect("issue");
    let chain = tls::load_certs("cert", &pair.cert).expect("cert");
    let key = tls::load_key("key", &pair.key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake; nothing to serve.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let v: Value = serde_json::from_slice(&body).expect("JSON body");
                        seen.lock().expect("lock").push(v);
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, bodies)
}

fn spec(name: &str, addr: SocketAddr, ca: Option<&Path>) -> ExportSpec {
    ExportSpec {
        name: name.into(),
        format: Format::Asff { product_arn: None },
        sink: SinkSpec::Webhook {
            url: format!("https://127.0.0.1:{}/findings", addr.port())
                .parse()
                .expect("url"),
            headers: Vec::new(),
            ca: ca.map(Path::to_owned),
            single: false,
            timeout: Duration::from_secs(5),
        },
        min_severity: 0.0,
        include_archived: false,
        batch_size: NonZeroUsize::new(10).expect("nonzero"),
        poll: Duration::from_millis(20),
        settle: Duration::ZERO,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(40),
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_is_verified_against_the_configured_ca_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).expect("mkdir");
    let ca = certs::init_ca(&pki).expect("ca");
    let (addr, bodies) = https_server(&pki).await;
    let store = FindingStore::open(dir.path()).expect("open");
    let mut findings = Vec::new();
    for (i, t) in [FindingType::BackdoorCcActivity, FindingType::ReconPortscan]
        .into_iter()
        .enumerate()
    {
        let mut f = sample_finding_at(t, "123456789012", "eu-west-1", Timestamp(1_000 + i as i64));
        f.service.archived = false;
        findings.push(f);
    }
    store.upsert_all(&findings).expect("upsert");

    // Trusting only the public web roots, the private CA's server is refused, and retried.
    let untrusting = Exports::start(&store, vec![spec("roots", addr, None)]).expect("start");
    let stats = Arc::clone(&untrusting.stats()[0]);
    wait_until("two refused attempts", || stats.failures() >= 2).await;
    untrusting.stop().await;
    assert_eq!(stats.exported(), 0);
    assert!(bodies.lock().expect("lock").is_empty());

    let trusting =
        Exports::start(&store, vec![spec("private-ca", addr, Some(&ca.cert))]).expect("start");
    let stats = Arc::clone(&trusting.stats()[0]);
    wait_until("2 exported", || stats.exported() == 2).await;
    trusting.stop().await;
    let got = bodies.lock().expect("lock").clone();
    assert_eq!(got.len(), 1);
    let ids: Vec<&str> = got[0]
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["Id"].as_str().expect("Id"))
        .collect();
    let want: Vec<&str> = findings.iter().map(|f| f.arn.as_str()).collect();
    assert_eq!(ids, want);
}

#[test]
fn a_ca_file_without_certificates_is_refused_at_start_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello\n").expect("write");
    let store = FindingStore::open(dir.path()).expect("open");
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = rt
        .block_on(async { Exports::start(&store, vec![spec("x", addr, Some(&bad))]) })
        .expect_err("refused");
    assert!(err.to_string().contains("not-a-ca.pem"), "{err}");
}
