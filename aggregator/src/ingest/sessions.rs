//! A cap on concurrent sessions per agent identity, so one stolen or looping agent cannot
//! hold unbounded server resources.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use picket_proto::AgentId;

/// Counts open sessions per identity and refuses past a maximum.
#[derive(Debug)]
pub struct SessionLimiter {
    max: usize,
    // A std Mutex: held only to bump a counter, never across an await.
    open: Mutex<HashMap<AgentId, usize>>,
}

/// An open session's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct SessionSlot {
    limiter: Arc<SessionLimiter>,
    id: AgentId,
}

impl SessionLimiter {
    /// A limiter allowing `max` concurrent sessions per identity.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `id`, or `None` when it already has `max` sessions.
    pub fn acquire(self: &Arc<Self>, id: &AgentId) -> Option<SessionSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(id.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SessionSlot {
            limiter: Arc::clone(self),
            id: id.clone(),
        })
    }

    /// Agents with at least one session open now.
    pub fn connected_agents(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Sessions currently open for `id`.
    pub fn open_sessions(&self, id: &AgentId) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(id).copied().unwrap_or(0)
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = self
            .limiter
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn third_session_is_refused_until_one_closes() {
        let lim = SessionLimiter::new(2);
        let id = AgentId::new("123456789012", "i-1").unwrap();
        let other = AgentId::new("123456789012", "i-2").unwrap();
        let a = lim.acquire(&id).unwrap();
        let _b = lim.acquire(&id).unwrap();
        assert!(lim.acquire(&id).is_none());
        assert!(lim.acquire(&other).is_some());
        drop(a);
        assert!(lim.acquire(&id).is_some());
    }
}
