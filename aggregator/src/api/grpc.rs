//! The `picket.v1.Findings` gRPC service: [`FindingsApi`] behind tonic, with the caller read
//! from the session's verified client certificate. Findings travel as GuardDuty JSON strings,
//! so their shape is exactly the model's.

use picket_proto::v1::findings_server::Findings;
use picket_proto::v1::{
    ArchiveFindingsRequest, ArchiveFindingsResponse, FindingFilter, GetFindingsRequest,
    GetFindingsResponse, GetFindingsStatisticsRequest, GetFindingsStatisticsResponse,
    ListFindingsRequest, ListFindingsResponse, UnarchiveFindingsRequest, UnarchiveFindingsResponse,
};
use tonic::{Request, Response, Status};

use super::caller::Caller;
use super::criteria::build_filter;
use super::error::ApiError;
use super::service::{FindingsApi, ListRequest, blocking};
use crate::findings::model::Finding;
use crate::findings::suppression::Filter;

/// The gRPC service behind `picket.v1.Findings`.
#[derive(Debug, Clone)]
pub struct FindingsService {
    api: FindingsApi,
}

impl FindingsService {
    /// A service over `api`.
    pub fn new(api: FindingsApi) -> Self {
        Self { api }
    }
}

/// The caller of a gRPC request, from its verified client certificate.
///
/// # Errors
/// `Unauthenticated` without a certificate, `PermissionDenied` when it names no Picket identity.
pub fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    Caller::from_der(leaf).map_err(|e| Status::permission_denied(e.to_string()))
}

fn filter_of(filter: Option<&FindingFilter>) -> Result<Option<Filter>, ApiError> {
    match filter {
        None => Ok(None),
        Some(f) => build_filter(Some(&f.criteria_json), &f.conditions),
    }
}

fn to_json(findings: &[Finding]) -> Result<Vec<String>, Status> {
    findings
        .iter()
        .map(|f| serde_json::to_string(f).map_err(|e| Status::internal(e.to_string())))
        .collect()
}

#[tonic::async_trait]
impl Findings for FindingsService {
    async fn list_findings(
        &self,
        request: Request<ListFindingsRequest>,
    ) -> Result<Response<ListFindingsResponse>, Status> {
        let caller = caller_of(&request)?;
        let r = request.into_inner();
        let sort = r.sort_criteria.unwrap_or_default();
        let list = ListRequest::new(
            filter_of(r.filter.as_ref())?,
            Some(&sort.attribute_name),
            Some(&sort.order_by),
            Some(u64::from(r.max_results)),
            Some(&r.next_token),
        )?;
        let api = self.api.clone();
        let page = blocking(move || api.list(&caller, &list)).await?;
        Ok(Response::new(ListFindingsResponse {
            findings_json: to_json(&page.findings)?,
            next_token: page.next_token.unwrap_or_default(),
            corrupt_ids: page.corrupt_ids,
        }))
    }

    async fn get_findings(
        &self,
        request: Request<GetFindingsRequest>,
    ) -> Result<Response<GetFindingsResponse>, Status> {
        let caller = caller_of(&request)?;
        let ids = request.into_inner().finding_ids;
        let api = self.api.clone();
        let findings = blocking(move || api.get(&caller, &ids)).await?;
        Ok(Response::new(GetFindingsResponse {
            findings_json: to_json(&findings)?,
        }))
    }

    async fn archive_findings(
        &self,
        request: Request<ArchiveFindingsRequest>,
    ) -> Result<Response<ArchiveFindingsResponse>, Status> {
        let caller = caller_of(&request)?;
        let ids = request.into_inner().finding_ids;
        let api = self.api.clone();
        let changed = blocking(move || api.set_archived(&caller, &ids, true)).await?;
        Ok(Response::new(ArchiveFindingsResponse {
            changed: u32::try_from(changed).unwrap_or(u32::MAX),
        }))
    }

    async fn unarchive_findings(
        &self,
        request: Request<UnarchiveFindingsRequest>,
    ) -> Result<Response<UnarchiveFindingsResponse>, Status> {
        let caller = caller_of(&request)?;
        let ids = request.into_inner().finding_ids;
        let api = self.api.clone();
        let changed = blocking(move || api.set_archived(&caller, &ids, false)).await?;
        Ok(Response::new(UnarchiveFindingsResponse {
            changed: u32::try_from(changed).unwrap_or(u32::MAX),
        }))
    }

    async fn get_findings_statistics(
        &self,
        request: Request<GetFindingsStatisticsRequest>,
    ) -> Result<Response<GetFindingsStatisticsResponse>, Status> {
        let caller = caller_of(&request)?;
        let filter = filter_of(request.into_inner().filter.as_ref())?;
        let api = self.api.clone();
        let stats = blocking(move || api.statistics(&caller, filter.as_ref())).await?;
        Ok(Response::new(GetFindingsStatisticsResponse {
            count_by_severity: stats.count_by_severity.into_iter().collect(),
            count_by_type: stats.count_by_type.into_iter().collect(),
            total: stats.total,
            truncated: stats.truncated,
        }))
    }
}
