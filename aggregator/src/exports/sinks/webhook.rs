//! A webhook: HTTP POSTs of exported findings, a JSON array per batch or one finding per
//! request, with configured headers (an auth token, say). `https://` endpoints are verified
//! against the public web roots (webpki-roots) or a configured CA bundle; rustls with ring,
//! as everywhere in Picket.
//!
//! At-least-once: any failure (connection, timeout, a status other than 2xx) is an error the
//! runner retries with backoff, so a request whose answer was lost is sent again. In single
//! mode a retry resumes after the findings already accepted.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::super::ExportError;
use super::Item;

/// Bytes of a response body read (for the error message) before giving up on the rest.
const ERROR_BODY_BYTES: usize = 512;

/// The webhook sink.
pub struct Webhook {
    url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    single: bool,
    timeout: Duration,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("single", &self.single)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A client for `url`; `ca` replaces the web roots for `https://`.
    ///
    /// # Errors
    /// [`ExportError::Io`] when `ca` cannot be read or holds no usable certificate.
    pub fn new(
        url: Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
        ca: Option<&Path>,
        single: bool,
        timeout: Duration,
    ) -> Result<Self, ExportError> {
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(path) => {
                let bad = |why: String| ExportError::Io {
                    path: path.to_owned(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, why),
                };
                let bytes = std::fs::read(path).map_err(|source| ExportError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                for cert in CertificateDer::pem_slice_iter(&bytes) {
                    let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| bad(format!("unusable CA certificate: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(bad("no certificate in the file".into()));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ExportError::Http {
                url: url.to_string(),
                why: format!("TLS setup: {e}"),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self {
            url,
            headers,
            single,
            timeout,
            client,
        })
    }

    /// POSTs `items[*sent..]`, advancing `sent` as requests are accepted.
    ///
    /// # Errors
    /// [`ExportError::Http`] or [`ExportError::Status`].
    pub async fn deliver(&self, items: &[Item], sent: &mut usize) -> Result<(), ExportError> {
        if self.single {
            while let Some(item) = items.get(*sent) {
                self.post(Bytes::from(item.bytes.clone())).await?;
                *sent += 1;
            }
            return Ok(());
        }
        if *sent >= items.len() {
            return Ok(());
        }
        let mut body =
            Vec::with_capacity(items.iter().map(|i| i.bytes.len() + 1).sum::<usize>() + 2);
        body.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&item.bytes);
        }
        body.push(b']');
        self.post(Bytes::from(body)).await?;
        *sent = items.len();
        Ok(())
    }

    async fn post(&self, body: Bytes) -> Result<(), ExportError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("picket-aggregator/", env!("CARGO_PKG_VERSION")),
            );
        for (n, v) in &self.headers {
            req = req.header(n, v);
        }
        let req = req.body(Full::new(body)).map_err(|e| ExportError::Http {
            url: self.url.to_string(),
            why: e.to_string(),
        })?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| ExportError::Http {
                    url: self.url.to_string(),
                    why: error_chain(&e),
                })?;
            let status = resp.status();
            if status.is_success() {
                // Read the body so the connection can be reused.
                let _ = resp.into_body().collect().await;
                return Ok(());
            }
            let mut text = Vec::new();
            let mut body = resp.into_body();
            while text.len() < ERROR_BODY_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            text.extend_from_slice(d);
                        }
                    }
                    _ => break,
                }
            }
            text.truncate(ERROR_BODY_BYTES);
            Err(ExportError::Status {
                url: self.url.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&text).into_owned(),
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ExportError::Http {
                url: self.url.to_string(),
                why: format!("no answer within {:?}", self.timeout),
            }),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
