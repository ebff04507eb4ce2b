//! What `/healthz` answers: healthy or not, why not, and a few facts worth a glance.

use serde::Serialize;

/// A daemon's health at one moment, as `/healthz` renders it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HealthReport {
    /// Every reason the daemon is unhealthy; empty when healthy.
    pub problems: Vec<String>,
    /// Facts shown either way (e.g. connected agents, outbox bytes), by name.
    pub facts: serde_json::Map<String, serde_json::Value>,
}

impl HealthReport {
    /// True when nothing is wrong.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// Records a reason for being unhealthy.
    pub fn problem(&mut self, reason: impl Into<String>) {
        self.problems.push(reason.into());
    }

    /// Records a fact shown in the body.
    pub fn fact(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.facts.insert(name.to_owned(), value.into());
    }

    /// The JSON body: `{"status":"ok"|"unhealthy","problems":[...],...facts}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        body.insert(
            "status".into(),
            if self.is_healthy() { "ok" } else { "unhealthy" }.into(),
        );
        body.insert("problems".into(), self.problems.clone().into());
        for (k, v) in &self.facts {
            body.insert(k.clone(), v.clone());
        }
        serde_json::Value::Object(body)
    }
}

/// Something that can say whether a daemon is healthy; called once per `/healthz` request,
/// off the async workers (it may touch the disk).
pub trait HealthCheck: Send + Sync + 'static {
    /// Checks now.
    fn check(&self) -> HealthReport;
}

impl<F> HealthCheck for F
where
    F: Fn() -> HealthReport + Send + Sync + 'static,
{
    fn check(&self) -> HealthReport {
        self()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_with_a_problem_is_unhealthy_and_says_why() {
        let mut r = HealthReport::default();
        r.fact("agents", 3);
        assert!(r.is_healthy());
        assert_eq!(r.to_json()["status"], "ok");
        r.problem("store unwritable: disk full");
        assert!(!r.is_healthy());
        let body = r.to_json();
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["problems"][0], "store unwritable: disk full");
        assert_eq!(body["agents"], 3);
    }
}
