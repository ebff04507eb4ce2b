//! Helpers for the findings API tests and benchmark (issue 7): start an aggregator with its
//! HTTP API, issue member user certificates, call the API over gRPC and HTTPS with real
//! client certificates, and enter network namespaces from a thread.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use picket_aggregator::certs::LeafKind;
use picket_proto::MemberUserId;
use picket_proto::v1::findings_client::FindingsClient;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::{Leaf, Pki, Proc, start_aggregator_in};

/// An aggregator with its findings HTTP API: the process, its gRPC and HTTPS addresses.
pub struct ApiAggregator {
    /// The running aggregator.
    pub proc: Proc,
    /// gRPC `host:port`.
    pub grpc: String,
    /// HTTPS `host:port`.
    pub http: String,
}

/// Starts an aggregator on 127.0.0.1 (inside `netns` when given) with `--http-listen` on a
/// free port, and reads both bound addresses back from its log.
pub fn start_with_api(
    netns: Option<&str>,
    pki: &Pki,
    server: &Leaf,
    data_dir: &Path,
    extra: &[&str],
) -> Result<ApiAggregator> {
    let mut args = vec!["--http-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let (proc, grpc) = start_aggregator_in(netns, "127.0.0.1:0", pki, server, data_dir, &args)?;
    let ev = proc.wait_for("findings HTTP API listening", 1, |_| true)?;
    let http = ev[0]["local_addr"]
        .as_str()
        .context("HTTP API line has no local_addr")?
        .to_owned();
    Ok(ApiAggregator { proc, grpc, http })
}

/// A member user certificate of `account`.
pub fn member_user(pki: &Pki, account: &str, name: &str) -> Result<Leaf> {
    pki.issue(
        &format!("user-{account}-{name}"),
        LeafKind::MemberUser(MemberUserId::new(account, name)?),
    )
}

/// A gRPC `Findings` client trusting `ca`, authenticated as `leaf`.
pub async fn findings_client(
    addr: &str,
    ca: &Path,
    leaf: &Leaf,
) -> Result<FindingsClient<tonic::transport::Channel>> {
    let channel =
        picket_aggregator::client::connect(&format!("https://{addr}"), ca, &leaf.cert, &leaf.key)
            .await?;
    Ok(FindingsClient::new(channel))
}

/// An HTTPS client for the findings HTTP API, authenticated as one certificate.
pub struct Https {
    addr: String,
    config: Arc<rustls::ClientConfig>,
}

/// A response: status code and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The body as JSON.
    pub body: serde_json::Value,
}

impl Https {
    /// A client of `addr` trusting the test CA, presenting `leaf`.
    pub fn new(addr: &str, pki: &Pki, leaf: &Leaf) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(pki.ca())? {
            roots.add(c?)?;
        }
        let chain = CertificateDer::pem_file_iter(&leaf.cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&leaf.key)?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            addr: addr.to_owned(),
            config: Arc::new(config),
        })
    }

    /// `GET path` (with its query string).
    pub fn get(&self, path: &str) -> Result<HttpReply> {
        self.request("GET", path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Result<HttpReply> {
        self.request("POST", path, Some(body))
    }

    /// One HTTP/1.1 request on a fresh TLS connection (`Connection: close`).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<HttpReply> {
        let name = ServerName::try_from("127.0.0.1")?;
        let mut conn = rustls::ClientConnection::new(Arc::clone(&self.config), name)?;
        let mut tcp = TcpStream::connect(&self.addr)?;
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        let payload = body.map(serde_json::Value::to_string).unwrap_or_default();
        write!(
            tls,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        )?;
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            // A peer that closes without close_notify still sent a whole response.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(e.into()),
        }
        parse_reply(&raw)
    }
}

fn parse_reply(raw: &[u8]) -> Result<HttpReply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no header end in {text:?}"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest.split_once("\r\n").context("bad chunk")?;
            let size = usize::from_str_radix(size.trim(), 16)?;
            if size == 0 {
                break;
            }
            out.push_str(after.get(..size).context("short chunk")?);
            rest = after.get(size + 2..).context("short chunk")?;
        }
        out
    } else {
        body.to_owned()
    };
    let body = if body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => bail!("status {status}: body is not JSON ({e}): {body:?}"),
        }
    };
    Ok(HttpReply { status, body })
}

/// Moves the calling thread into network namespace `name` (`ip netns add` made it); sockets
/// it opens afterwards belong to that namespace.
pub fn enter_netns(name: &str) -> Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{name}"))
        .with_context(|| format!("network namespace {name}"))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering network namespace {name}"))?;
    Ok(())
}
