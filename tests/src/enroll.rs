//! Helpers for the enrollment and instance-metadata tests: an aggregator with `[enroll]`
//! configured, the `enroll-token`/`enroll`/`agents revoke` commands, a stand-in "AWS" signing
//! key, and a loopback server that speaks IMDSv2.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use picket_aggregator::certs::LeafKind;

use crate::{Leaf, Pki, Proc, bin, path_str, start_aggregator};

/// Account used by most enrollment tests.
pub const ACCOUNT: &str = "123456789012";

/// An aggregator started with an `[enroll]` section.
pub struct EnrollAggregator {
    /// The running server.
    pub proc: Proc,
    /// Main (mTLS) listener, HOST:PORT.
    pub addr: String,
    /// Enrollment listener, HOST:PORT.
    pub enroll_addr: String,
    /// Its data folder (holds the token secret).
    pub data_dir: PathBuf,
    /// Its config file.
    pub config: PathBuf,
}

/// Writes an aggregator config with `[enroll]` (listen on any loopback port, CA key from
/// `pki`, certificates living `lifetime_secs`, and the AWS certificate when given).
pub fn aggregator_config(
    pki: &Pki,
    dir: &Path,
    lifetime_secs: u64,
    aws_cert: Option<&Path>,
) -> Result<PathBuf> {
    let mut text = format!(
        "[enroll]\nlisten = \"127.0.0.1:0\"\nca_key = \"{}\"\ncert_lifetime_secs = {lifetime_secs}\n",
        path_str(&pki.dir.path().join("ca.key"))?
    );
    if let Some(aws) = aws_cert {
        text.push_str(&format!(
            "aws_identity_certificate = \"{}\"\n",
            path_str(aws)?
        ));
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join("aggregator.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Starts an aggregator on `port` (0 = any) with `config`, returning both listeners.
pub fn start_enroll_aggregator(
    pki: &Pki,
    server: &Leaf,
    data_dir: &Path,
    config: &Path,
    port: u16,
) -> Result<EnrollAggregator> {
    let (proc, addr) = start_aggregator(
        pki,
        server,
        data_dir,
        port,
        &["--config", path_str(config)?],
    )?;
    let ev = proc.wait_for("enrollment listening", 1, |_| true)?;
    let enroll_addr = ev[0]["local_addr"]
        .as_str()
        .context("enrollment listening line has no local_addr")?
        .to_owned();
    Ok(EnrollAggregator {
        proc,
        addr,
        enroll_addr,
        data_dir: data_dir.to_owned(),
        config: config.to_owned(),
    })
}

/// Runs a binary to completion with a deadline, returning its output.
pub fn run_cmd(name: &str, args: &[&str]) -> Result<Output> {
    let mut child = Command::new(bin(name))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let deadline = std::time::Instant::now() + crate::WAIT;
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            bail!("{name} {args:?} did not finish within {:?}", crate::WAIT);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child.wait_with_output()?)
}

/// `picket-aggregator enroll-token create`, returning the token.
pub fn create_token(agg: &EnrollAggregator, account: &str, ttl: &str, uses: u32) -> Result<String> {
    let uses = uses.to_string();
    let out = run_cmd(
        "picket-aggregator",
        &[
            "enroll-token",
            "create",
            "--account-id",
            account,
            "--ttl",
            ttl,
            "--uses",
            &uses,
            "--config",
            path_str(&agg.config)?,
            "--data-dir",
            path_str(&agg.data_dir)?,
        ],
    )?;
    if !out.status.success() {
        bail!(
            "enroll-token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// `picket-aggregator certs fingerprint` of `pki`'s CA.
pub fn fingerprint(pki: &Pki) -> Result<String> {
    let out = run_cmd(
        "picket-aggregator",
        &["certs", "fingerprint", "--dir", path_str(pki.dir.path())?],
    )?;
    if !out.status.success() {
        bail!(
            "certs fingerprint failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// An agent's folder and config for enrollment and `run`.
pub struct AgentHome {
    /// Data folder; TLS files go to `tls/` inside it.
    pub data_dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
}

impl AgentHome {
    /// Writes a config for `account`/`instance` sending to `addr`, with `extra` TOML appended
    /// (e.g. an `[imds]` section); `source` is `identity.source`.
    pub fn new(root: &Path, addr: &str, identity: &str, source: &str, extra: &str) -> Result<Self> {
        let data_dir = root.to_owned();
        std::fs::create_dir_all(&data_dir)?;
        let config = data_dir.join("agent.toml");
        let text = format!(
            "[aggregator]\nurl = \"https://{addr}\"\n\n[identity]\nsource = \"{source}\"\n{identity}\n\n[agent]\ndata_dir = \"{}\"\nheartbeat_interval_secs = 1\nsummary_interval_secs = 1\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n[sensor]\ninterfaces = []\n\n{extra}",
            path_str(&data_dir)?
        );
        std::fs::write(&config, text)?;
        Ok(Self { data_dir, config })
    }

    /// The identity lines for `[identity]`.
    pub fn identity(account: &str, instance: &str) -> String {
        format!("account_id = \"{account}\"\ninstance_id = \"{instance}\"\nregion = \"eu-west-1\"")
    }

    /// Where enrollment writes the files.
    pub fn cert(&self) -> PathBuf {
        self.data_dir.join("tls/agent.pem")
    }
    /// The key.
    pub fn key(&self) -> PathBuf {
        self.data_dir.join("tls/agent.key")
    }
    /// The CA.
    pub fn ca(&self) -> PathBuf {
        self.data_dir.join("tls/ca.pem")
    }

    /// `picket-agent enroll` against `enroll_addr`.
    pub fn enroll(&self, enroll_addr: &str, token: &str, fingerprint: &str) -> Result<Output> {
        run_cmd(
            "picket-agent",
            &[
                "enroll",
                "--aggregator",
                &format!("https://{enroll_addr}"),
                "--token",
                token,
                "--ca-fingerprint",
                fingerprint,
                "--config",
                path_str(&self.config)?,
            ],
        )
    }

    /// `picket-agent run` with this config only.
    pub fn run(&self) -> Result<Proc> {
        Proc::start(
            "picket-agent",
            &["run", "--config", path_str(&self.config)?],
            "info",
        )
    }
}

/// `picket-aggregator agents revoke --agent SPIFFE` as administrator `ops`.
pub fn revoke(pki: &Pki, addr: &str, spiffe: &str) -> Result<Output> {
    agents_as_admin(
        pki,
        addr,
        &["revoke", "--agent", spiffe, "--reason", "test"],
    )
}

/// `picket-aggregator agents revoked` (the revoked list) as administrator `ops`.
///
/// # Errors
/// When the admin certificate cannot be issued or the binary cannot be run.
pub fn list_revoked(pki: &Pki, addr: &str) -> Result<Output> {
    agents_as_admin(pki, addr, &["revoked"])
}

/// `picket-aggregator agents ARGS...` against the aggregator at `addr`, as administrator `ops`.
fn agents_as_admin(pki: &Pki, addr: &str, args: &[&str]) -> Result<Output> {
    let sub = args.first().copied().unwrap_or_default();
    let admin = pki.issue(&format!("admin-{sub}"), LeafKind::Admin("ops".into()))?;
    let url = format!("https://{addr}");
    let ca = pki.ca();
    let mut all = vec!["agents", sub];
    all.extend_from_slice(&[
        "--aggregator",
        &url,
        "--ca",
        path_str(&ca)?,
        "--cert",
        path_str(&admin.cert)?,
        "--key",
        path_str(&admin.key)?,
    ]);
    all.extend_from_slice(args.get(1..).unwrap_or_default());
    run_cmd("picket-aggregator", &all)
}

/// A stand-in for AWS's instance-identity signing key and certificate.
pub struct StandInAws {
    key: ring::signature::RsaKeyPair,
    /// The "AWS public certificate" (self-signed, PEM) for `[enroll] aws_identity_certificate`.
    pub cert: PathBuf,
}

/// The stand-in key (see `tests/fixtures/aws-identity/README.md`).
const STAND_IN_KEY: &str = include_str!("../fixtures/aws-identity/stand-in-aws.key");

impl StandInAws {
    /// Loads the fixture key and writes a certificate for it into `dir`.
    pub fn new(dir: &Path) -> Result<Self> {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let rc_key = rcgen::KeyPair::from_pem_and_sign_algo(STAND_IN_KEY, &rcgen::PKCS_RSA_SHA256)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(
            rcgen::DnType::OrganizationName,
            "Stand-in Amazon Web Services LLC",
        );
        let cert = params.self_signed(&rc_key)?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join("aws-identity.pem");
        std::fs::write(&path, cert.pem())?;
        let der = PrivateKeyDer::from_pem_slice(STAND_IN_KEY.as_bytes())?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_der())
            .map_err(|e| anyhow::anyhow!("stand-in key: {e}"))?;
        Ok(Self { key, cert: path })
    }

    /// The base64 RSA-SHA256 signature of `document`, wrapped at 64 columns like IMDS's.
    pub fn sign(&self, document: &str) -> Result<String> {
        use base64::Engine;
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                document.as_bytes(),
                &mut sig,
            )
            .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
        Ok(b64
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// An instance identity document as IMDS serves it.
pub fn identity_document(account: &str, instance: &str, region: &str) -> String {
    format!(
        "{{\n  \"accountId\" : \"{account}\",\n  \"architecture\" : \"x86_64\",\n  \"availabilityZone\" : \"{region}a\",\n  \"imageId\" : \"ami-0abcdef1234567890\",\n  \"instanceId\" : \"{instance}\",\n  \"instanceType\" : \"t3.micro\",\n  \"pendingTime\" : \"2026-11-23T00:00:00Z\",\n  \"privateIp\" : \"10.0.1.23\",\n  \"region\" : \"{region}\",\n  \"version\" : \"2017-09-30\"\n}}"
    )
}

/// How the stand-in metadata service behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImdsMode {
    /// Answers like EC2, public IPv4 included.
    Normal,
    /// Answers like EC2 for an instance without a public IPv4 (404).
    NoPublicIp,
    /// Accepts connections and never answers.
    Silent,
}

/// One request the stand-in saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Whether it carried the session token issued by the PUT.
    pub with_token: bool,
    /// The status it got.
    pub status: u16,
}

/// A loopback HTTP server speaking IMDSv2: `PUT /latest/api/token` (with the TTL header)
/// issues a token, and every `GET` without that token gets 401.
pub struct ImdsServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Requests seen, in order.
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl ImdsServer {
    /// Starts a server answering for `document` (signed as `signature`).
    pub fn start(mode: ImdsMode, document: String, signature: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen2, stop2, conns2) = (
            Arc::clone(&seen),
            Arc::clone(&stop),
            Arc::clone(&connections),
        );
        listener.set_nonblocking(true)?;
        std::thread::spawn(move || {
            let token = format!("imds-token-{}", std::process::id());
            let mut held = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        conns2.fetch_add(1, Ordering::Relaxed);
                        if mode == ImdsMode::Silent {
                            // Hold the connection open without a byte of answer.
                            held.push(stream);
                            continue;
                        }
                        let _ = stream.set_nonblocking(false);
                        let _ = serve_one(stream, mode, &token, &document, &signature, &seen2);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            endpoint,
            seen,
            connections,
            stop,
        })
    }

    /// Connections accepted so far (a silent server records no requests, only these).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ImdsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_one(
    stream: TcpStream,
    mode: ImdsMode,
    token: &str,
    document: &str,
    signature: &str,
    seen: &Mutex<Vec<SeenRequest>>,
) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
            if k == "content-length" {
                content_length = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let with_token = header("x-aws-ec2-metadata-token") == Some(token);
    let (status, text): (u16, String) = match (method.as_str(), path.as_str()) {
        ("PUT", "/latest/api/token") => match header("x-aws-ec2-metadata-token-ttl-seconds") {
            Some(ttl) if ttl.parse::<u32>().is_ok_and(|t| (1..=21600).contains(&t)) => {
                (200, token.to_owned())
            }
            _ => (400, String::new()),
        },
        ("GET", _) if !with_token => (401, String::new()),
        ("GET", p) => match p {
            "/latest/dynamic/instance-identity/document" => (200, document.to_owned()),
            "/latest/dynamic/instance-identity/signature" => (200, signature.to_owned()),
            "/latest/meta-data/instance-id" => (200, json_field(document, "instanceId")),
            "/latest/meta-data/placement/region" => (200, json_field(document, "region")),
            "/latest/meta-data/mac" => (200, "0a:1b:2c:3d:4e:5f".into()),
            "/latest/meta-data/network/interfaces/macs/0a:1b:2c:3d:4e:5f/vpc-id" => {
                (200, "vpc-0123456789abcdef0".into())
            }
            "/latest/meta-data/local-ipv4" => (200, "10.0.1.23".into()),
            "/latest/meta-data/public-ipv4" if mode == ImdsMode::Normal => {
                (200, "203.0.113.7".into())
            }
            _ => (404, String::new()),
        },
        _ => (405, String::new()),
    };
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(SeenRequest {
            method,
            path,
            with_token,
            status,
        });
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()?;
    Ok(())
}

fn json_field(document: &str, field: &str) -> String {
    serde_json::from_str::<serde_json::Value>(document)
        .ok()
        .and_then(|v| v[field].as_str().map(str::to_owned))
        .unwrap_or_default()
}
