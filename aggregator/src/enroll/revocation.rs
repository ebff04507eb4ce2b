//! Revoked agents: a durable set in sled (tree `revoked`, keyed by SPIFFE ID) plus a signal
//! that tells open sessions to look again, so revoking an agent also ends its live session.
//!
//! Identities, not certificate serials, are revoked: an agent renews its certificate every few
//! hours, and revoking one serial would leave the next renewal's certificate trusted. A revoked
//! identity is refused by `Enroll`, `Renew` and `Ingest` alike until it is removed from the store.

use std::sync::Arc;

use picket_proto::AgentId;
use picket_proto::v1::RevokedAgent;
use prost::Message;
use tokio::sync::watch;

/// Why the revocation store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// Occurs when sled fails.
    #[error("revocation store: {0}")]
    Sled(#[from] sled::Error),
    /// Occurs when a stored record does not decode.
    #[error("revocation store: record for {key} is corrupt: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// The decoder's message.
        reason: String,
    },
}

/// The revoked agents, shared by every service of one `serve`.
#[derive(Debug)]
pub struct Revocations {
    tree: sled::Tree,
    changed: watch::Sender<u64>,
}

impl Revocations {
    /// Revocations kept in `tree`.
    pub fn new(tree: sled::Tree) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        Arc::new(Self { tree, changed })
    }

    /// Whether `id` is revoked.
    ///
    /// # Errors
    /// [`RevocationError::Sled`]; callers refuse the agent then (fail closed).
    pub fn is_revoked(&self, id: &AgentId) -> Result<bool, RevocationError> {
        Ok(self.tree.contains_key(id.spiffe_uri().as_bytes())?)
    }

    /// Revokes `id`, durably (flushed) before returning; `false` when it already was.
    ///
    /// # Errors
    /// [`RevocationError::Sled`].
    pub async fn revoke(
        &self,
        id: &AgentId,
        by: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, RevocationError> {
        let record = RevokedAgent {
            spiffe_id: id.spiffe_uri(),
            revoked_at_ms: now_ms,
            revoked_by: by.to_owned(),
            reason: reason.to_owned(),
        };
        let previous = self.tree.compare_and_swap(
            id.spiffe_uri().as_bytes(),
            None::<&[u8]>,
            Some(record.encode_to_vec()),
        )?;
        self.tree.flush_async().await?;
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(previous.is_ok())
    }

    /// Every revoked agent, sorted by SPIFFE ID.
    ///
    /// # Errors
    /// [`RevocationError`] on sled failure or a corrupt record.
    pub fn list(&self) -> Result<Vec<RevokedAgent>, RevocationError> {
        self.tree
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                RevokedAgent::decode(v.as_ref()).map_err(|e| RevocationError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// A watch for one session of `agent`.
    pub fn watch(self: &Arc<Self>, agent: AgentId) -> RevocationWatch {
        RevocationWatch {
            rx: self.changed.subscribe(),
            revocations: Arc::clone(self),
            agent,
        }
    }
}

/// Resolves when one agent becomes revoked; held by its session.
#[derive(Debug)]
pub struct RevocationWatch {
    rx: watch::Receiver<u64>,
    revocations: Arc<Revocations>,
    agent: AgentId,
}

impl RevocationWatch {
    /// Waits until the agent is revoked (or forever, once the server is stopping). Cancel-safe,
    /// so it can sit in a `select!` beside the session's reads.
    pub async fn revoked(&mut self) {
        loop {
            if self.rx.changed().await.is_err() {
                return std::future::pending().await;
            }
            // A store error here is treated as revoked: the session is refused, not trusted.
            if self.revocations.is_revoked(&self.agent).unwrap_or(true) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revoking_is_durable_and_wakes_only_that_agents_watch() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let r = Revocations::new(db.open_tree("revoked").unwrap());
        let a = AgentId::new("123456789012", "i-a").unwrap();
        let b = AgentId::new("123456789012", "i-b").unwrap();
        let mut wa = r.watch(a.clone());
        let mut wb = r.watch(b.clone());
        assert!(!r.is_revoked(&a).unwrap());
        assert!(r.revoke(&a, "alice", "test", 1).await.unwrap());
        assert!(!r.revoke(&a, "alice", "again", 2).await.unwrap());
        tokio::time::timeout(std::time::Duration::from_secs(5), wa.revoked())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(100), wb.revoked())
                .await
                .is_err()
        );
        let listed = r.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].reason, "test");
        assert!(r.is_revoked(&a).unwrap() && !r.is_revoked(&b).unwrap());
    }
}
