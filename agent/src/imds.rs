//! A small IMDSv2 client: who this EC2 instance is, from the instance metadata service.
//!
//! IMDSv2 is session-oriented: `PUT /latest/api/token` with
//! `X-aws-ec2-metadata-token-ttl-seconds` returns a token that every `GET` then carries in
//! `X-aws-ec2-metadata-token`. The client connects directly (never through a proxy), so the
//! token response's IP hop limit applies as AWS intends: from a container behind an extra hop
//! the PUT goes unanswered and the caller gets [`ImdsError::Timeout`]. Every request has a
//! short deadline, because an agent off EC2 must fall back to its configured identity quickly.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

/// AWS's link-local metadata endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// Default deadline per request (connect, send and read).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Seconds the session token is valid; only a handful of requests use it.
const TOKEN_TTL_SECS: &str = "60";
/// Largest response body read; the identity document is under 1 KiB.
const MAX_BODY: usize = 64 * 1024;

/// Why instance metadata could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImdsError {
    /// Occurs when the endpoint is not `http://HOST[:PORT]`.
    #[error("imds.endpoint must be http://HOST[:PORT], got {0:?}")]
    BadEndpoint(String),
    /// Occurs when nothing answers within the deadline (off EC2, metadata disabled, or the
    /// token's hop limit is too low for this host, e.g. in a container).
    #[error("instance metadata at {endpoint}: {method} {path}: no answer within {timeout_ms} ms")]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// `PUT` or `GET`.
        method: &'static str,
        /// The path requested.
        path: String,
        /// The deadline.
        timeout_ms: u128,
    },
    /// Occurs when the connection is refused or breaks.
    #[error("instance metadata at {endpoint}: {method} {path}: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// `PUT` or `GET`.
        method: &'static str,
        /// The path requested.
        path: String,
        /// What failed.
        reason: String,
    },
    /// Occurs when the service answers with an unexpected status (401: token refused; 403:
    /// metadata disabled).
    #[error("instance metadata at {endpoint}: {method} {path}: HTTP {status}")]
    Status {
        /// The endpoint.
        endpoint: String,
        /// `PUT` or `GET`.
        method: &'static str,
        /// The path requested.
        path: String,
        /// The status code.
        status: u16,
    },
    /// Occurs when the identity document or a value is not what AWS serves.
    #[error("instance metadata at {endpoint}: {path}: {reason}")]
    BadValue {
        /// The endpoint.
        endpoint: String,
        /// The path.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

/// What the agent learns about its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMetadata {
    /// 12-digit AWS account id (from the identity document).
    pub account_id: String,
    /// Instance id.
    pub instance_id: String,
    /// Region.
    pub region: String,
    /// VPC of the primary interface, when in a VPC.
    pub vpc_id: Option<String>,
    /// Primary private IPv4 address.
    pub local_ipv4: Option<String>,
    /// Public IPv4 address, when the instance has one.
    pub public_ipv4: Option<String>,
    /// The identity document, verbatim, for enrollment.
    pub document: String,
    /// Its base64 RSA-SHA256 signature, verbatim.
    pub signature: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    account_id: String,
    instance_id: String,
    region: String,
}

/// An IMDSv2 client for one endpoint.
#[derive(Debug, Clone)]
pub struct ImdsClient {
    endpoint: String,
    authority: String,
    timeout: Duration,
}

impl ImdsClient {
    /// A client for `endpoint` (`http://HOST[:PORT]`) with a per-request `timeout`.
    ///
    /// # Errors
    /// [`ImdsError::BadEndpoint`].
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Self, ImdsError> {
        let bad = || ImdsError::BadEndpoint(endpoint.to_owned());
        let uri: Uri = endpoint.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") || uri.path().len() > 1 || uri.query().is_some() {
            return Err(bad());
        }
        let host = uri.host().ok_or_else(bad)?;
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            authority,
            timeout,
        })
    }

    /// Reads the identity document, its signature and the instance's network identity.
    ///
    /// # Errors
    /// [`ImdsError`] naming the request that failed.
    pub async fn fetch(&self) -> Result<InstanceMetadata, ImdsError> {
        let token = self.token().await?;
        let get = |path: &'static str| self.get(path, &token);
        let document_path = "/latest/dynamic/instance-identity/document";
        let document = get(document_path)
            .await?
            .ok_or_else(|| self.not_found(document_path))?;
        let signature_path = "/latest/dynamic/instance-identity/signature";
        let signature = get(signature_path)
            .await?
            .ok_or_else(|| self.not_found(signature_path))?;
        let doc: Document = serde_json::from_str(&document).map_err(|e| ImdsError::BadValue {
            endpoint: self.endpoint.clone(),
            path: document_path.to_owned(),
            reason: e.to_string(),
        })?;
        let instance_id = get("/latest/meta-data/instance-id")
            .await?
            .unwrap_or(doc.instance_id);
        let region = get("/latest/meta-data/placement/region")
            .await?
            .unwrap_or(doc.region);
        let vpc_id = match get("/latest/meta-data/mac").await? {
            Some(mac) if is_mac(&mac) => {
                let path = format!("/latest/meta-data/network/interfaces/macs/{mac}/vpc-id");
                self.get(&path, &token).await?
            }
            Some(mac) => {
                return Err(ImdsError::BadValue {
                    endpoint: self.endpoint.clone(),
                    path: "/latest/meta-data/mac".into(),
                    reason: format!("not a MAC address: {mac:?}"),
                });
            }
            None => None,
        };
        Ok(InstanceMetadata {
            account_id: doc.account_id,
            instance_id,
            region,
            vpc_id,
            local_ipv4: get("/latest/meta-data/local-ipv4").await?,
            public_ipv4: get("/latest/meta-data/public-ipv4").await?,
            document,
            signature,
        })
    }

    fn not_found(&self, path: &str) -> ImdsError {
        ImdsError::Status {
            endpoint: self.endpoint.clone(),
            method: "GET",
            path: path.to_owned(),
            status: 404,
        }
    }

    async fn token(&self) -> Result<String, ImdsError> {
        let path = "/latest/api/token";
        let (status, body) = self
            .request(
                Method::PUT,
                path,
                ("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECS),
            )
            .await?;
        if status != StatusCode::OK {
            return Err(self.status_err("PUT", path, status));
        }
        Ok(body)
    }

    /// `Ok(None)` on 404: the value does not exist for this instance (e.g. no public IPv4).
    async fn get(&self, path: &str, token: &str) -> Result<Option<String>, ImdsError> {
        let (status, body) = self
            .request(Method::GET, path, ("x-aws-ec2-metadata-token", token))
            .await?;
        match status {
            StatusCode::OK => Ok(Some(body.trim().to_owned())),
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(self.status_err("GET", path, other)),
        }
    }

    fn status_err(&self, method: &'static str, path: &str, status: StatusCode) -> ImdsError {
        ImdsError::Status {
            endpoint: self.endpoint.clone(),
            method,
            path: path.to_owned(),
            status: status.as_u16(),
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        header: (&'static str, &str),
    ) -> Result<(StatusCode, String), ImdsError> {
        let method_name = if method == Method::PUT { "PUT" } else { "GET" };
        let fail = |reason: String| ImdsError::Unreachable {
            endpoint: self.endpoint.clone(),
            method: method_name,
            path: path.to_owned(),
            reason,
        };
        let exchange = async {
            let tcp = TcpStream::connect(&self.authority)
                .await
                .map_err(|e| fail(format!("connect: {e}")))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| fail(e.to_string()))?;
            let conn = tokio::spawn(conn);
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, self.authority.as_str())
                .header(header.0, header.1)
                .body(Empty::<Bytes>::new())
                .map_err(|e| fail(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| fail(format!("reading the body: {e}")))?
                .to_bytes();
            conn.abort();
            let text =
                String::from_utf8(body.to_vec()).map_err(|_| fail("body is not UTF-8".into()))?;
            Ok((status, text))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ImdsError::Timeout {
                endpoint: self.endpoint.clone(),
                method: method_name,
                path: path.to_owned(),
                timeout_ms: self.timeout.as_millis(),
            })?
    }
}

impl ImdsClient {
    /// The instance's public IPv4 address (`None`: it has none), with a fresh session token.
    /// On EC2 the interfaces usually hold only private addresses (the public one is NAT'ed by
    /// the VPC), so this is the only place the agent learns it.
    ///
    /// # Errors
    /// [`ImdsError`] naming the request that failed.
    pub async fn public_ipv4(&self) -> Result<Option<String>, ImdsError> {
        let token = self.token().await?;
        let path = "/latest/meta-data/public-ipv4";
        match self.get(path, &token).await? {
            Some(ip) if ip.parse::<std::net::Ipv4Addr>().is_ok() => Ok(Some(ip)),
            Some(other) => Err(ImdsError::BadValue {
                endpoint: self.endpoint.clone(),
                path: path.to_owned(),
                reason: format!("not an IPv4 address: {:?}", truncate(&other, 64)),
            }),
            None => Ok(None),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// How often [`refresh_public_ipv4`] asks again: an Elastic IP can be moved to or from a
/// running instance, and a stopped-and-started one gets a new public address.
pub const PUBLIC_IP_REFRESH: Duration = Duration::from_secs(300);

/// The instance's public IPv4 as instance metadata last gave it (empty: none, or not known).
/// Shared between the refresher and whoever writes `HostStats`; read once per interval, so a
/// plain lock is cheap enough.
#[derive(Debug, Default)]
pub struct PublicIpv4 {
    value: std::sync::RwLock<String>,
}

impl PublicIpv4 {
    /// The current value (empty when unknown or none).
    pub fn get(&self) -> String {
        self.value
            .read()
            .map(|v| v.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Replaces the value.
    pub fn set(&self, ip: &str) {
        let mut v = self.value.write().unwrap_or_else(|e| e.into_inner());
        if *v != ip {
            ip.clone_into(&mut v);
        }
    }
}

/// Keeps `cell` holding the instance's public IPv4: asks at once, then every `every`, until
/// `shutdown` turns true. Without instance metadata (off EC2, or blocked) the cell stays empty
/// and one line says so; later failures are logged only at debug level until it answers again.
pub async fn refresh_public_ipv4(
    client: ImdsClient,
    cell: std::sync::Arc<PublicIpv4>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut failing = false;
    let mut answered = false;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        match client.public_ipv4().await {
            Ok(ip) => {
                let ip = ip.unwrap_or_default();
                if !answered || failing || cell.get() != ip {
                    tracing::info!(public_ipv4 = %ip, "public IPv4 from instance metadata");
                }
                answered = true;
                failing = false;
                cell.set(&ip);
            }
            Err(e) if !failing => {
                failing = true;
                tracing::info!(
                    error = %e,
                    "instance metadata gives no public IPv4; HostStats report interface addresses only"
                );
            }
            Err(e) => tracing::debug!(error = %e, "public IPv4 still unavailable"),
        }
    }
}

fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_plain_http_hosts() {
        let t = DEFAULT_TIMEOUT;
        assert_eq!(
            ImdsClient::new(DEFAULT_ENDPOINT, t).unwrap().authority,
            "169.254.169.254:80"
        );
        assert_eq!(
            ImdsClient::new("http://127.0.0.1:8080/", t)
                .unwrap()
                .authority,
            "127.0.0.1:8080"
        );
        for bad in [
            "https://169.254.169.254",
            "169.254.169.254",
            "http://a/b",
            "ftp://x",
        ] {
            assert!(ImdsClient::new(bad, t).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs_are_checked_before_use_in_a_path() {
        assert!(is_mac("0a:1b:2c:3d:4e:5f"));
        assert!(!is_mac("0a:1b:2c:3d:4e:5f/../x"));
        assert!(!is_mac("../../etc"));
    }
}
