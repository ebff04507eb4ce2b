//! The `Admin` gRPC service: what the aggregator knows of its agents, and intel reloads, for
//! holders of an administrator certificate only.

use std::sync::Arc;

use picket_proto::AgentId;
use picket_proto::v1::admin_server::Admin;
use picket_proto::v1::{
    ListAgentsRequest, ListAgentsResponse, ReloadIntelRequest, ReloadIntelResponse,
};
use tonic::{Request, Response, Status};
use tracing::warn;

use crate::ingest::{BatchStore, SessionLimiter};
use crate::intel::{IntelManager, ReloadError, ReloadOutcome};
use crate::peer::{Peer, peer_of};

/// The gRPC service behind `picket.v1.Admin`.
#[derive(Clone)]
pub struct AdminService {
    store: BatchStore,
    limiter: Arc<SessionLimiter>,
    intel: Arc<IntelManager>,
}

impl AdminService {
    /// A service reading `store`, with connection state from `limiter`, reloading `intel`.
    pub fn new(store: BatchStore, limiter: Arc<SessionLimiter>, intel: Arc<IntelManager>) -> Self {
        Self {
            store,
            limiter,
            intel,
        }
    }
}

fn require_admin<T>(request: &Request<T>) -> Result<String, Status> {
    match peer_of(request)? {
        Peer::Admin(name) => Ok(name),
        Peer::Agent(id) => {
            warn!(agent = %id, "refusing admin call from an agent certificate");
            Err(Status::permission_denied(
                "the Admin service needs an administrator certificate",
            ))
        }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn list_agents(
        &self,
        request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsResponse>, Status> {
        require_admin(&request)?;
        let account = request.into_inner().account_id;
        let mut agents = self
            .store
            .ledgers()
            .map_err(|e| Status::internal(e.to_string()))?;
        agents.retain(|l| account.is_empty() || l.account_id == account);
        for ledger in &mut agents {
            if let Ok(id) = AgentId::new(&ledger.account_id, &ledger.instance_id) {
                ledger.connected = self.limiter.open_sessions(&id) > 0;
            }
        }
        Ok(Response::new(ListAgentsResponse { agents }))
    }

    async fn reload_intel(
        &self,
        request: Request<ReloadIntelRequest>,
    ) -> Result<Response<ReloadIntelResponse>, Status> {
        let admin = require_admin(&request)?;
        tracing::info!(%admin, "intel reload requested");
        let response = match self.intel.reload("admin request").await {
            Ok(ReloadOutcome::Published {
                version,
                indicators,
            }) => ReloadIntelResponse {
                version,
                indicators: u64::try_from(indicators).unwrap_or(u64::MAX),
                changed: true,
            },
            Ok(ReloadOutcome::Unchanged {
                version,
                indicators,
            }) => ReloadIntelResponse {
                version,
                indicators: u64::try_from(indicators).unwrap_or(u64::MAX),
                changed: false,
            },
            Err(e @ ReloadError::Sources(_)) => {
                return Err(Status::failed_precondition(format!(
                    "{e}; the previous snapshot stays in force"
                )));
            }
            Err(e) => return Err(Status::internal(e.to_string())),
        };
        Ok(Response::new(response))
    }
}

/// Renders agents as a fixed-width table for people.
pub fn agents_table(agents: &[picket_proto::v1::AgentLedger]) -> String {
    use std::fmt::Write;
    let counts = |m: &std::collections::HashMap<String, u64>| {
        let mut v: Vec<_> = m.iter().filter(|(_, n)| **n > 0).collect();
        v.sort();
        let s: Vec<String> = v.iter().map(|(k, n)| format!("{k}={n}")).collect();
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.join(",")
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<21} {:<9} {:>9} {:>9} {:>6} {:<40} DROPPED_BY_AGENT",
        "ACCOUNT", "INSTANCE", "CONNECTED", "LAST_SEQ", "LAST_PRIO", "DUPS", "RECEIVED"
    );
    for a in agents {
        let _ = writeln!(
            out,
            "{:<12} {:<21} {:<9} {:>9} {:>9} {:>6} {:<40} {}",
            a.account_id,
            a.instance_id,
            if a.connected { "yes" } else { "no" },
            a.last_acked_seq,
            a.last_acked_priority_seq,
            a.duplicates_discarded,
            counts(&a.records_received),
            counts(&a.records_dropped_reported),
        );
    }
    out
}
