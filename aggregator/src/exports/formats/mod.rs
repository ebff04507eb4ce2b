//! Export formats: each turns one stored [`Finding`] into one JSON document. Every format is
//! produced from the same finding, so exports in different formats never disagree.
//!
//! - [`guardduty`]: the finding itself (GuardDuty's finding JSON).
//! - [`eventbridge`]: the finding inside the event GuardDuty sends to EventBridge.
//! - [`asff`]: AWS Security Finding Format, as `BatchImportFindings` takes it.
//! - [`ocsf`]: OCSF Detection Finding (class 2004).

pub mod asff;
pub mod eventbridge;
pub mod guardduty;
pub mod ocsf;

use crate::findings::model::Finding;

/// The format an exporter writes, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// GuardDuty's finding JSON.
    GuardDuty,
    /// An EventBridge event whose `detail` is the finding.
    EventBridge {
        /// The event's `source` (GuardDuty's is `aws.guardduty`).
        source: String,
    },
    /// AWS Security Finding Format.
    Asff {
        /// `ProductArn`; the finding account's own `product/<account>/default` when `None`.
        product_arn: Option<String>,
    },
    /// OCSF Detection Finding.
    Ocsf,
}

/// The names `format` accepts in the config, in the order the docs list them.
pub const FORMAT_NAMES: &[&str] = &["guardduty", "eventbridge", "asff", "ocsf"];

impl Format {
    /// The config name of the format.
    pub fn name(&self) -> &'static str {
        match self {
            Self::GuardDuty => "guardduty",
            Self::EventBridge { .. } => "eventbridge",
            Self::Asff { .. } => "asff",
            Self::Ocsf => "ocsf",
        }
    }

    /// The finding as one compact JSON document (no newline).
    ///
    /// # Errors
    /// serde_json's error, which a well-formed finding never gives.
    pub fn encode(&self, finding: &Finding) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Self::GuardDuty => serde_json::to_vec(finding),
            Self::EventBridge { source } => {
                serde_json::to_vec(&eventbridge::Event::of(finding, source))
            }
            Self::Asff { product_arn } => {
                serde_json::to_vec(&asff::AsffFinding::of(finding, product_arn.as_deref()))
            }
            Self::Ocsf => serde_json::to_vec(&ocsf::DetectionFinding::of(finding)),
        }
    }
}

/// Whether this export of `finding` reports a change to one exported before: it was updated
/// after it was created (a repeat raised its count, or its state changed).
pub fn is_update(finding: &Finding) -> bool {
    finding.updated_at > finding.created_at || finding.service.count > 1
}

/// The remote address or domain of the activity, for formats that name it outside the action.
pub(crate) fn remote_of(finding: &Finding) -> Option<Remote<'_>> {
    let action = &finding.service.action;
    if let Some(n) = &action.network_connection_action {
        return ip_of(
            &n.remote_ip_details.ip_address_v4,
            &n.remote_ip_details.ip_address_v6,
        );
    }
    if let Some(d) = &action.dns_request_action {
        return Some(Remote::Domain(&d.domain));
    }
    if let Some(p) = &action.port_probe_action {
        return p.port_probe_details.first().and_then(|d| {
            ip_of(
                &d.remote_ip_details.ip_address_v4,
                &d.remote_ip_details.ip_address_v6,
            )
        });
    }
    action
        .aws_api_call_action
        .as_ref()
        .and_then(|a| a.remote_ip_details.as_ref())
        .and_then(|r| ip_of(&r.ip_address_v4, &r.ip_address_v6))
}

fn ip_of<'a>(v4: &'a Option<String>, v6: &'a Option<String>) -> Option<Remote<'a>> {
    v4.as_deref()
        .map(Remote::Ipv4)
        .or_else(|| v6.as_deref().map(Remote::Ipv6))
}

/// The other side of an activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remote<'a> {
    /// An IPv4 address.
    Ipv4(&'a str),
    /// An IPv6 address.
    Ipv6(&'a str),
    /// A domain name.
    Domain(&'a str),
}

/// ISO 8601 UTC with whole seconds (`2026-11-23T00:47:00Z`), as EventBridge writes `time`.
pub(crate) fn iso_seconds(t: crate::findings::model::Timestamp) -> String {
    let s = t.to_string();
    // `Timestamp` always writes `….mmmZ`; drop the fraction.
    match s.split_once('.') {
        Some((whole, _)) => format!("{whole}Z"),
        None => s,
    }
}
