//! The findings API as HTTP/JSON (axum) on its own HTTPS listener (`[api] http_listen`), for
//! curl and consoles. TLS 1.3 with a client certificate from the Picket CA is required; the
//! caller is read from it once per connection. Routes follow GuardDuty's API where it makes
//! sense:
//!
//! | route | does |
//! |---|---|
//! | `GET /v1/findings?filter=severity>=7&criteria=<json>&sort=severity&order=ASC&maxResults=N&nextToken=T` | list |
//! | `POST /v1/findings/list` `{findingCriteria, filter, sortCriteria, maxResults, nextToken}` | list |
//! | `GET /v1/findings/{id}` | one finding (404 when unknown or not visible) |
//! | `POST /v1/findings/get` `{"findingIds": [...]}` | several |
//! | `POST /v1/findings/archive`, `/unarchive` `{"findingIds": [...]}` | set or clear `service.archived` |
//! | `GET /v1/findings/statistics?filter=…&criteria=…` | counts by severity band and type |
//!
//! Errors are `{"error": "...", "field": "..."}`: 400 for bad input (the field named), 403 for
//! certificates that may not use the API, 404 for unknown ids and routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::caller::Caller;
use super::criteria::build_filter;
use super::error::ApiError;
use super::service::{FindingsApi, ListRequest, blocking};

/// TLS handshakes allowed in flight at once on the HTTP listener.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// The caller of one connection, or why its certificate names none.
#[derive(Debug, Clone)]
struct Who(Result<Caller, String>);

/// An [`ApiError`] as an HTTP response.
struct HttpError(ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = json!({"error": self.0.to_string(), "field": self.0.field()});
        (status, Json(body)).into_response()
    }
}

type HttpResult = Result<Json<Value>, HttpError>;

fn caller(who: &Who) -> Result<Caller, HttpError> {
    who.0
        .clone()
        .map_err(|why| HttpError(ApiError::Forbidden(why)))
}

fn query_pairs(
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, HttpError> {
    let Query(pairs) = q.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            k.clone(),
            format!("unknown query parameter (known: {})", allowed.join(", ")),
        )
        .into());
    }
    Ok(pairs)
}

fn one<'a>(pairs: &'a [(String, String)], key: &str) -> Result<Option<&'a str>, HttpError> {
    let mut it = pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str());
    let first = it.next();
    if it.next().is_some() {
        return Err(ApiError::invalid(key, "given more than once").into());
    }
    Ok(first)
}

fn all(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn findings_json(findings: &[crate::findings::model::Finding]) -> Result<Vec<Value>, HttpError> {
    findings
        .iter()
        .map(|f| serde_json::to_value(f).map_err(|e| HttpError(ApiError::Internal(e.to_string()))))
        .collect()
}

async fn list(api: FindingsApi, caller: Caller, request: ListRequest) -> HttpResult {
    let page = blocking(move || api.list(&caller, &request)).await?;
    let mut body = json!({
        "findings": findings_json(&page.findings)?,
        "nextToken": page.next_token,
    });
    if !page.corrupt_ids.is_empty() {
        body["corruptIds"] = json!(page.corrupt_ids);
    }
    Ok(Json(body))
}

async fn list_get(
    Extension(api): Extension<FindingsApi>,
    Extension(who): Extension<Who>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> HttpResult {
    let caller = caller(&who)?;
    let pairs = query_pairs(
        q,
        &[
            "criteria",
            "filter",
            "sort",
            "order",
            "maxResults",
            "nextToken",
        ],
    )?;
    let filter = build_filter(one(&pairs, "criteria")?, &all(&pairs, "filter"))?;
    let max = match one(&pairs, "maxResults")? {
        None => None,
        Some(m) => Some(m.parse::<u64>().map_err(|_| {
            ApiError::invalid("maxResults", format!("must be a whole number, got {m:?}"))
        })?),
    };
    let request = ListRequest::new(
        filter,
        one(&pairs, "sort")?,
        one(&pairs, "order")?,
        max,
        one(&pairs, "nextToken")?,
    )?;
    list(api, caller, request).await
}

/// GuardDuty's `SortCriteria`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SortBody {
    attribute_name: Option<String>,
    order_by: Option<String>,
}

/// The body of `POST /v1/findings/list`, GuardDuty's `ListFindings` shape plus short conditions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListBody {
    finding_criteria: Option<Value>,
    #[serde(default)]
    filter: Vec<String>,
    sort_criteria: Option<SortBody>,
    max_results: Option<u64>,
    next_token: Option<String>,
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, HttpError> {
    b.map(|Json(t)| t)
        .map_err(|e| HttpError(ApiError::invalid("body", e.body_text())))
}

async fn list_post(
    Extension(api): Extension<FindingsApi>,
    Extension(who): Extension<Who>,
    b: Result<Json<ListBody>, JsonRejection>,
) -> HttpResult {
    let caller = caller(&who)?;
    let b = body(b)?;
    let criteria = b.finding_criteria.as_ref().map(Value::to_string);
    let filter = build_filter(criteria.as_deref(), &b.filter)?;
    let sort = b.sort_criteria.unwrap_or_default();
    let request = ListRequest::new(
        filter,
        sort.attribute_name.as_deref(),
        sort.order_by.as_deref(),
        b.max_results,
        b.next_token.as_deref(),
    )?;
    list(api, caller, request).await
}

async fn get_one(
    Extension(api): Extension<FindingsApi>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
) -> HttpResult {
    let caller = caller(&who)?;
    let ids = vec![id];
    let mut found = blocking(move || api.get(&caller, &ids)).await?;
    let f = found
        .pop()
        .ok_or_else(|| HttpError(ApiError::Internal("empty result".into())))?;
    Ok(Json(findings_json(&[f])?.pop().unwrap_or_default()))
}

/// `{"findingIds": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IdsBody {
    finding_ids: Vec<String>,
}

async fn get_many(
    Extension(api): Extension<FindingsApi>,
    Extension(who): Extension<Who>,
    b: Result<Json<IdsBody>, JsonRejection>,
) -> HttpResult {
    let caller = caller(&who)?;
    let ids = body(b)?.finding_ids;
    let found = blocking(move || api.get(&caller, &ids)).await?;
    Ok(Json(json!({ "findings": findings_json(&found)? })))
}

async fn set_archived(
    api: FindingsApi,
    who: Who,
    b: Result<Json<IdsBody>, JsonRejection>,
    archived: bool,
) -> HttpResult {
    let caller = caller(&who)?;
    let ids = body(b)?.finding_ids;
    let changed = blocking(move || api.set_archived(&caller, &ids, archived)).await?;
    Ok(Json(json!({ "changed": changed })))
}

async fn archive(
    Extension(api): Extension<FindingsApi>,
    Extension(who): Extension<Who>,
    b: Result<Json<IdsBody>, JsonRejection>,
) -> HttpResult {
    set_archived(api, who, b, true).await
}

async fn unarchive(
    Extension(api): Extension<FindingsApi>,
    Extension(who): Extension<Who>,
    b: Result<Json<IdsBody>, JsonRejection>,
) -> HttpResult {
    set_archived(api, who, b, false).await
}

async fn statistics(
    Extension(api): Extension<FindingsApi>,
    Extension(who): Extension<Who>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> HttpResult {
    let caller = caller(&who)?;
    let pairs = query_pairs(q, &["criteria", "filter"])?;
    let filter = build_filter(one(&pairs, "criteria")?, &all(&pairs, "filter"))?;
    let stats = blocking(move || api.statistics(&caller, filter.as_ref())).await?;
    serde_json::to_value(stats)
        .map(Json)
        .map_err(|e| HttpError(ApiError::Internal(e.to_string())))
}

async fn no_route(uri: axum::http::Uri) -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no such route: {}", uri.path()), "field": null})),
    )
}

/// The routes, without the per-connection caller.
pub fn router(api: FindingsApi) -> Router {
    Router::new()
        .route("/v1/findings", get(list_get))
        .route("/v1/findings/list", post(list_post))
        .route("/v1/findings/get", post(get_many))
        .route("/v1/findings/archive", post(archive))
        .route("/v1/findings/unarchive", post(unarchive))
        .route("/v1/findings/statistics", get(statistics))
        .route("/v1/findings/{id}", get(get_one))
        .fallback(no_route)
        .layer(Extension(api))
}

/// Serves `router` on `listener` with `tls` until the returned task is aborted; each
/// connection's caller comes from its client certificate.
pub fn spawn(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    handshake_timeout: Duration,
) -> tokio::task::JoinHandle<()> {
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        loop {
            let Ok(permit) = Arc::clone(&pending).acquire_owned().await else {
                return;
            };
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "findings API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if let Err(e) = tcp.set_nodelay(true) {
                debug!(%peer, error = %e, "TCP_NODELAY not set");
            }
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        info!(%peer, error = %e, "findings API: TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        info!(%peer, "findings API: TLS handshake timed out");
                        return;
                    }
                };
                drop(permit);
                serve_connection(tls, router, peer).await;
            });
        }
    })
}

async fn serve_connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    router: Router,
    peer: SocketAddr,
) {
    let who = Who(
        match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            None => Err("no client certificate".to_owned()),
            Some(leaf) => Caller::from_der(leaf).map_err(|e| e.to_string()),
        },
    );
    let service = hyper_util::service::TowerToHyperService::new(router.layer(Extension(who)));
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
        .await
    {
        debug!(%peer, error = %e, "findings API connection ended");
    }
}
