//! The HTTP listener for `GET /metrics` and `GET /healthz`: plain HTTP on its own address,
//! meant for a scraper on a private network or loopback, never the gRPC port.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::health::HealthCheck;

/// Content type of the text the registry encodes (OpenMetrics text, which Prometheus reads).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Occurs when the metrics address cannot be bound (in use, no permission).
    #[error("metrics.listen = {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Binds the metrics address, so a bad one fails start-up with its key named.
///
/// # Errors
/// [`EndpointError::Bind`].
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, EndpointError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| EndpointError::Bind { addr, source })
}

#[derive(Clone)]
struct Shared {
    registry: Arc<Registry>,
    health: Arc<dyn HealthCheck>,
}

/// A running metrics endpoint; dropping it stops the listener.
#[derive(Debug)]
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsEndpoint {
    /// Serves `registry` and `health` on `listener` until dropped. Logs `metrics listening`
    /// with the bound `local_addr` (so port 0 can be read back).
    ///
    /// # Errors
    /// [`EndpointError::Bind`] when the listener's address cannot be read.
    pub fn spawn(
        listener: TcpListener,
        registry: Registry,
        health: Arc<dyn HealthCheck>,
    ) -> Result<Self, EndpointError> {
        let local_addr = listener
            .local_addr()
            .map_err(|source| EndpointError::Bind {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })?;
        let shared = Shared {
            registry: Arc::new(registry),
            health,
        };
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .with_state(shared);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                warn!(error = %e, "metrics endpoint stopped");
            }
        });
        info!(%local_addr, "metrics listening");
        Ok(Self { local_addr, task })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    // Sampling reads stores and atomics; keep it off the async workers.
    let encoded = tokio::task::spawn_blocking(move || {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &shared.registry).map(|()| text)
    })
    .await;
    match encoded {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Ok(Err(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn healthz(State(shared): State<Shared>) -> Response {
    let report = tokio::task::spawn_blocking(move || shared.health.check()).await;
    match report {
        Ok(report) => {
            let status = if report.is_healthy() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                report.to_json().to_string(),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{{\"status\":\"unhealthy\",\"problems\":[\"health check failed: {e}\"]}}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::health::HealthReport;
    use crate::samples::{SampledCollector, Samples};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn metrics_and_health_are_served_and_health_turns_503_with_the_reason() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SampledCollector::new(|s: &mut Samples| {
            s.gauge("picket_test_up", "Up.", 1.0);
        })));
        let broken = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&broken);
        let health = Arc::new(move || {
            let mut r = HealthReport::default();
            if flag.load(Ordering::Relaxed) {
                r.problem("store unwritable");
            }
            r
        });
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let ep = MetricsEndpoint::spawn(listener, registry, health).unwrap();
        let m = get(ep.local_addr(), "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.contains("picket_test_up 1"), "{m}");
        let h = get(ep.local_addr(), "/healthz").await;
        assert!(
            h.starts_with("HTTP/1.1 200") && h.contains("\"status\":\"ok\""),
            "{h}"
        );
        broken.store(true, Ordering::Relaxed);
        let h = get(ep.local_addr(), "/healthz").await;
        assert!(h.starts_with("HTTP/1.1 503"), "{h}");
        assert!(h.contains("store unwritable"), "{h}");
        let nf = get(ep.local_addr(), "/nope").await;
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
    }
}
