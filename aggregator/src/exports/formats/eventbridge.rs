//! The event GuardDuty sends to EventBridge for a new or updated finding: `version` "0",
//! `detail-type` "GuardDuty Finding", `source` "aws.guardduty" (configurable), `account`,
//! `time`, `region`, `resources` (empty, as GuardDuty sends) and `detail` = the finding. Rules
//! written for GuardDuty (`{"source": ["aws.guardduty"], "detail": {"severity": [...]}}`) match.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::findings::model::Finding;

/// GuardDuty's `detail-type`.
pub const DETAIL_TYPE: &str = "GuardDuty Finding";
/// GuardDuty's `source`.
pub const DEFAULT_SOURCE: &str = "aws.guardduty";

/// One EventBridge event.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    /// Always "0".
    pub version: &'static str,
    /// A UUID derived from the finding's id, update time and count, so a re-sent export carries
    /// the same event id (consumers can drop the repeat) and an update carries a new one.
    pub id: String,
    /// [`DETAIL_TYPE`].
    #[serde(rename = "detail-type")]
    pub detail_type: &'static str,
    /// `aws.guardduty` or the configured source.
    pub source: &'a str,
    /// The finding's account.
    pub account: &'a str,
    /// The finding's `updatedAt`, whole seconds.
    pub time: String,
    /// The finding's region.
    pub region: &'a str,
    /// Empty, as GuardDuty sends it.
    pub resources: [&'a str; 0],
    /// The finding.
    pub detail: &'a Finding,
}

impl<'a> Event<'a> {
    /// The event for `finding`.
    pub fn of(finding: &'a Finding, source: &'a str) -> Self {
        Self {
            version: "0",
            id: event_id(finding),
            detail_type: DETAIL_TYPE,
            source,
            account: &finding.account_id,
            time: super::iso_seconds(finding.updated_at),
            region: &finding.region,
            resources: [],
            detail: finding,
        }
    }
}

/// A UUID (version 8, name-based on SHA-256) of the finding's id, update time and count.
fn event_id(f: &Finding) -> String {
    let mut h = Sha256::new();
    h.update(f.id.as_bytes());
    h.update(f.updated_at.0.to_be_bytes());
    h.update(f.service.count.to_be_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::model::Timestamp;
    use crate::findings::samples::sample_finding_at;
    use crate::findings::types::FindingType;

    #[test]
    fn the_event_id_is_stable_for_a_resend_and_changes_with_an_update() {
        let f = sample_finding_at(
            FindingType::BackdoorCcActivity,
            "123456789012",
            "eu-west-1",
            Timestamp(1_700_000_000_000),
        );
        let id = Event::of(&f, DEFAULT_SOURCE).id;
        assert_eq!(id, Event::of(&f, DEFAULT_SOURCE).id);
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'8');
        let mut later = f.clone();
        later.service.count += 1;
        later.updated_at = Timestamp(1_700_000_060_000);
        assert_ne!(id, Event::of(&later, DEFAULT_SOURCE).id);
    }
}
