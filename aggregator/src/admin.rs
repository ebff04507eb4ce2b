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

/// Renders agents as a fixed-width table for people: identity, version, connection, last
/// seen, intel version, backlog in the agent's outbox and what it lost, then delivery counts.
pub fn agents_table(agents: &[picket_proto::v1::AgentLedger]) -> String {
    agents_table_at(agents, crate::ingest::store::now_ms())
}

/// "12s ago", "3m ago", "2h ago", "4d ago" for an age in ms; "-" for never.
fn ago(now_ms: i64, then_ms: i64) -> String {
    if then_ms <= 0 {
        return "-".to_owned();
    }
    let s = now_ms.saturating_sub(then_ms).max(0) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// [`agents_table`] with the clock given, for tests.
pub fn agents_table_at(agents: &[picket_proto::v1::AgentLedger], now_ms: i64) -> String {
    use std::fmt::Write;
    let counts = |m: &std::collections::HashMap<String, u64>| {
        let mut v: Vec<_> = m.iter().filter(|(_, n)| **n > 0).collect();
        v.sort();
        v.iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
    };
    let or_dash = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(",")
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<21} {:<8} {:<9} {:<9} {:>6} {:<22} {:<30} {:>9} {:>9} {:>6} RECEIVED",
        "ACCOUNT",
        "INSTANCE",
        "VERSION",
        "CONNECTED",
        "LAST_SEEN",
        "INTEL",
        "BACKLOG",
        "DROPPED_BY_AGENT",
        "LAST_SEQ",
        "LAST_PRIO",
        "DUPS"
    );
    for a in agents {
        let health = a.last_health.clone().unwrap_or_default();
        let version = if a.agent_version.is_empty() {
            health.agent_version.as_str()
        } else {
            a.agent_version.as_str()
        };
        let intel = if a.last_health.is_some() {
            health.intel_version.to_string()
        } else {
            "-".to_owned()
        };
        let backlog = if a.last_health.is_some() {
            format!(
                "{} b/{} B/{}s",
                health.outbox_batches,
                health.outbox_bytes,
                health.oldest_unacked_age_ms.max(0) / 1000
            )
        } else {
            "-".to_owned()
        };
        let mut dropped = Vec::new();
        for (name, n) in [
            ("kernel", health.kernel_drops),
            ("internal", health.internal_drops),
        ] {
            if n > 0 {
                dropped.push(format!("{name}={n}"));
            }
        }
        dropped.extend(counts(&a.records_dropped_reported));
        let _ = writeln!(
            out,
            "{:<12} {:<21} {:<8} {:<9} {:<9} {:>6} {:<22} {:<30} {:>9} {:>9} {:>6} {}",
            a.account_id,
            a.instance_id,
            if version.is_empty() { "-" } else { version },
            if a.connected { "yes" } else { "no" },
            ago(now_ms, a.last_seen_ms),
            intel,
            backlog,
            or_dash(dropped),
            a.last_acked_seq,
            a.last_acked_priority_seq,
            a.duplicates_discarded,
            or_dash(counts(&a.records_received)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use picket_proto::v1::{AgentHealth, AgentLedger};

    use super::*;

    #[test]
    fn the_table_shows_version_last_seen_intel_backlog_and_drops() {
        let now = 1_700_000_100_000;
        let agent = AgentLedger {
            account_id: "123456789012".into(),
            instance_id: "i-0abc".into(),
            agent_version: "0.1.0".into(),
            connected: true,
            last_seen_ms: now - 42_000,
            records_dropped_reported: [("flow".to_owned(), 7)].into_iter().collect(),
            last_health: Some(AgentHealth {
                intel_version: 12,
                outbox_batches: 30,
                outbox_bytes: 4096,
                oldest_unacked_age_ms: 90_000,
                kernel_drops: 5,
                ..AgentHealth::default()
            }),
            ..AgentLedger::default()
        };
        let never = AgentLedger {
            account_id: "123456789012".into(),
            instance_id: "i-0def".into(),
            ..AgentLedger::default()
        };
        let table = agents_table_at(&[agent, never], now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ACCOUNT"), "{table}");
        for part in [
            "0.1.0",
            "yes",
            "42s ago",
            " 12 ",
            "30 b/4096 B/90s",
            "kernel=5,flow=7",
        ] {
            assert!(
                lines[1].contains(part),
                "{part:?} missing from {:?}",
                lines[1]
            );
        }
        assert!(
            lines[2].contains("i-0def") && lines[2].contains(" no "),
            "{table}"
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(100_000, 0), "-");
        assert_eq!(ago(100_000, 99_000), "1s ago");
        assert_eq!(ago(10_000_000, 10_000_000 - 120_000), "2m ago");
        assert_eq!(ago(100_000_000, 100_000_000 - 7_200_000), "2h ago");
        assert_eq!(ago(1_000_000_000, 1_000_000_000 - 2 * 86_400_000), "2d ago");
    }
}
