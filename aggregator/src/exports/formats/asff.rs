//! AWS Security Finding Format (Security Hub's `AwsSecurityFinding`, as
//! `BatchImportFindings` takes it), mapped the way Security Hub maps GuardDuty's own findings:
//! `Id` is the finding ARN, `GeneratorId` the detector ARN, `Types` come from the type's threat
//! purpose, severity keeps GuardDuty's number in `Original`/`Product`, archived findings are
//! `RecordState: ARCHIVED` with workflow `RESOLVED` (what Security Hub itself does when a
//! finding is archived), and GuardDuty fields without an ASFF home go to `ProductFields`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Remote;
use crate::detectors::{ConnectionDirection, EvidenceDetail, ResourceRole};
use crate::findings::model::Finding;
use crate::findings::types::{ActionKind, ResourceKind, SeverityBand};

/// The ASFF schema version Security Hub accepts.
pub const SCHEMA_VERSION: &str = "2018-10-08";

/// One ASFF finding.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffFinding {
    /// [`SCHEMA_VERSION`].
    pub schema_version: &'static str,
    /// The GuardDuty finding ARN.
    pub id: String,
    /// The product the finding is imported under.
    pub product_arn: String,
    /// "Picket".
    pub product_name: &'static str,
    /// "Picket".
    pub company_name: &'static str,
    /// The finding's region.
    pub region: String,
    /// The detector ARN.
    pub generator_id: String,
    /// The finding's account.
    pub aws_account_id: String,
    /// `namespace/category/classifier`.
    pub types: Vec<String>,
    /// `service.eventFirstSeen`.
    pub first_observed_at: String,
    /// `service.eventLastSeen`.
    pub last_observed_at: String,
    /// `createdAt`.
    pub created_at: String,
    /// `updatedAt`.
    pub updated_at: String,
    /// Label from GuardDuty's band, GuardDuty's number kept.
    pub severity: Severity,
    /// The finding's title.
    pub title: String,
    /// The finding's description.
    pub description: String,
    /// GuardDuty fields with no ASFF member.
    pub product_fields: BTreeMap<String, String>,
    /// The resource.
    pub resources: Vec<Resource>,
    /// The connection, when the finding has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Threat list entries that matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub threat_intel_indicators: Vec<ThreatIntelIndicator>,
    /// `NEW`, or `RESOLVED` when archived.
    pub workflow: Workflow,
    /// `ACTIVE` or `ARCHIVED`.
    pub record_state: &'static str,
    /// True for `[SAMPLE]` findings.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sample: bool,
}

/// `Severity`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Severity {
    /// `LOW`, `MEDIUM`, `HIGH` or `CRITICAL`.
    pub label: &'static str,
    /// GuardDuty's number as text, e.g. "8.0".
    pub original: String,
    /// GuardDuty's number.
    pub product: f64,
    /// 0–100 (deprecated by Security Hub but still read by older consumers).
    pub normalized: u32,
}

/// One of `Resources`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    /// `AwsEc2Instance`, `AwsIamAccessKey` or `AwsS3Bucket`.
    #[serde(rename = "Type")]
    pub kind: &'static str,
    /// Instance ARN, access key id or bucket ARN.
    pub id: String,
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
    /// The finding's region.
    pub region: String,
    /// `Actor` or `Target`.
    pub resource_role: &'static str,
    /// Type-specific details.
    #[serde(skip_serializing_if = "Details::is_empty")]
    pub details: Details,
}

/// `ResourceDetails`, the members Picket fills.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Details {
    /// For instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_ec2_instance: Option<Ec2Instance>,
    /// For access keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_iam_access_key: Option<IamAccessKey>,
    /// For buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_s3_bucket: Option<S3Bucket>,
}

impl Details {
    fn is_empty(&self) -> bool {
        self.aws_ec2_instance.is_none()
            && self.aws_iam_access_key.is_none()
            && self.aws_s3_bucket.is_none()
    }
}

/// `AwsEc2InstanceDetails`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ec2Instance {
    /// Private and public IPv4 addresses the agent saw.
    #[serde(rename = "IpV4Addresses", skip_serializing_if = "Vec::is_empty")]
    pub ipv4_addresses: Vec<String>,
    /// IPv6 addresses the agent saw.
    #[serde(rename = "IpV6Addresses", skip_serializing_if = "Vec::is_empty")]
    pub ipv6_addresses: Vec<String>,
}

/// `AwsIamAccessKeyDetails`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IamAccessKey {
    /// The key id.
    pub access_key_id: String,
    /// The principal id.
    pub principal_id: String,
    /// The user or role name.
    pub principal_name: String,
    /// `IAMUser`, `AssumedRole`, `Root`…
    pub principal_type: String,
}

/// `AwsS3BucketDetails`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3Bucket {
    /// The finding's account, which owns the bucket.
    pub owner_account_id: String,
}

/// `Network`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    /// `IN` or `OUT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    /// `TCP`, `UDP`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Who opened the connection.
    #[serde(rename = "SourceIpV4", skip_serializing_if = "Option::is_none")]
    pub source_ipv4: Option<String>,
    /// Who opened the connection (IPv6).
    #[serde(rename = "SourceIpV6", skip_serializing_if = "Option::is_none")]
    pub source_ipv6: Option<String>,
    /// Its port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_port: Option<u32>,
    /// Who was connected to.
    #[serde(rename = "DestinationIpV4", skip_serializing_if = "Option::is_none")]
    pub destination_ipv4: Option<String>,
    /// Who was connected to (IPv6).
    #[serde(rename = "DestinationIpV6", skip_serializing_if = "Option::is_none")]
    pub destination_ipv6: Option<String>,
    /// Its port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u32>,
    /// The name queried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_domain: Option<String>,
}

/// `ThreatIntelIndicator`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ThreatIntelIndicator {
    /// `IPV4_ADDRESS`, `IPV6_ADDRESS` or `DOMAIN`.
    #[serde(rename = "Type")]
    pub kind: &'static str,
    /// The address or name.
    pub value: String,
    /// The list's name.
    pub source: String,
}

/// `Workflow`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Workflow {
    /// `NEW` or `RESOLVED`.
    pub status: &'static str,
}

impl AsffFinding {
    /// The ASFF finding for `f`; `product_arn` overrides the account's default product.
    pub fn of(f: &Finding, product_arn: Option<&str>) -> Self {
        let product_arn = product_arn.map_or_else(
            || {
                format!(
                    "arn:{}:securityhub:{}:{}:product/{}/default",
                    f.partition, f.region, f.account_id, f.account_id
                )
            },
            str::to_owned,
        );
        let mut product_fields = BTreeMap::new();
        let mut field = |k: &str, v: String| {
            if !v.is_empty() {
                product_fields.insert(k.to_owned(), v);
            }
        };
        field(
            "aws/guardduty/service/type",
            f.finding_type.name().to_owned(),
        );
        field("aws/guardduty/service/count", f.service.count.to_string());
        field(
            "aws/guardduty/service/action/actionType",
            f.service.action.action_type.as_str().to_owned(),
        );
        field(
            "aws/guardduty/service/resourceRole",
            role_name(f.service.resource_role).to_uppercase(),
        );
        field(
            "aws/guardduty/service/archived",
            f.service.archived.to_string(),
        );
        field(
            "aws/guardduty/service/detectorId",
            f.service.detector_id.clone(),
        );
        field("picket/findingId", f.id.clone());
        if let Some(ev) = &f.service.additional_info.evidence {
            // The evidence is a document; Security Hub's FieldMap holds text.
            if let Ok(text) = serde_json::to_string(ev) {
                field("picket/evidence", text);
            }
        }
        let archived = f.service.archived;
        Self {
            schema_version: SCHEMA_VERSION,
            id: f.arn.clone(),
            product_arn,
            product_name: "Picket",
            company_name: "Picket",
            region: f.region.clone(),
            generator_id: format!(
                "arn:{}:guardduty:{}:{}:detector/{}",
                f.partition, f.region, f.account_id, f.service.detector_id
            ),
            aws_account_id: f.account_id.clone(),
            types: vec![asff_type(f.finding_type.name())],
            first_observed_at: f.service.event_first_seen.to_string(),
            last_observed_at: f.service.event_last_seen.to_string(),
            created_at: f.created_at.to_string(),
            updated_at: f.updated_at.to_string(),
            severity: severity(f.severity),
            title: f.title.clone(),
            description: f.description.clone(),
            product_fields,
            resources: vec![resource(f)],
            network: network(f),
            threat_intel_indicators: indicators(f),
            workflow: Workflow {
                status: if archived { "RESOLVED" } else { "NEW" },
            },
            record_state: if archived { "ARCHIVED" } else { "ACTIVE" },
            sample: matches!(
                f.service.additional_info.evidence,
                Some(EvidenceDetail::Sample)
            ),
        }
    }
}

fn role_name(role: ResourceRole) -> &'static str {
    match role {
        ResourceRole::Actor => "Actor",
        ResourceRole::Target => "Target",
    }
}

/// The ASFF type `namespace/category/classifier` for a GuardDuty type, from its threat purpose
/// (the part before `:`); the classifier is the GuardDuty name with `/` turned into `-`, since
/// `/` separates the ASFF levels.
pub fn asff_type(name: &str) -> String {
    let purpose = name.split(':').next().unwrap_or("");
    let category = match (purpose, name) {
        (_, n) if n.contains("BruteForce") => "TTPs/Credential Access",
        (_, n) if n.contains("DataExfiltration") || n.contains("DropPoint") => {
            "Effects/Data Exfiltration"
        }
        (_, n) if n.contains("DenialOfService") => "Effects/Denial of Service",
        (_, n) if n.contains("InstanceCredentialExfiltration") => "TTPs/Credential Access",
        ("Backdoor" | "Trojan", _) => "TTPs/Command and Control",
        ("CryptoCurrency", _) => "Effects/Resource Consumption",
        ("Behavior", _) => "Unusual Behaviors/VM",
        ("DefenseEvasion" | "Stealth", _) => "TTPs/Defense Evasion",
        ("Discovery" | "Recon", _) => "TTPs/Discovery",
        ("Exfiltration", _) => "Effects/Data Exfiltration",
        ("Impact", n) if n.contains("PortSweep") => "TTPs/Discovery",
        ("Impact", _) => "TTPs/Command and Control",
        ("Persistence", _) => "TTPs/Persistence",
        ("PrivilegeEscalation", _) => "TTPs/Privilege Escalation",
        ("Policy", _) => "Software and Configuration Checks/AWS Security Best Practices",
        ("UnauthorizedAccess", _) => "TTPs/Initial Access",
        _ => "Unusual Behaviors/Other",
    };
    format!("{category}/{}", name.replace('/', "-"))
}

fn severity(s: f64) -> Severity {
    let label = match SeverityBand::of(s) {
        SeverityBand::Low => "LOW",
        SeverityBand::Medium => "MEDIUM",
        SeverityBand::High => "HIGH",
        SeverityBand::Critical => "CRITICAL",
    };
    let clamped = s.clamp(0.0, 10.0);
    Severity {
        label,
        original: format!("{clamped:.1}"),
        product: clamped,
        // In 0..=100 after the clamp, so the conversion is exact.
        normalized: (clamped * 10.0).round() as u32,
    }
}

fn resource(f: &Finding) -> Resource {
    let mut details = Details::default();
    let (kind, id) = match f.resource.resource_type {
        ResourceKind::Instance => {
            let d = f.resource.instance_details.as_ref();
            let instance = d.map_or("unknown", |d| d.instance_id.as_str());
            let mut v4 = Vec::new();
            let mut v6 = Vec::new();
            for nic in d
                .map(|d| d.network_interfaces.as_slice())
                .unwrap_or_default()
            {
                for ip in [&nic.private_ip_address, &nic.public_ip]
                    .into_iter()
                    .flatten()
                {
                    if ip.contains(':') {
                        v6.push(ip.clone());
                    } else {
                        v4.push(ip.clone());
                    }
                }
            }
            if !(v4.is_empty() && v6.is_empty()) {
                details.aws_ec2_instance = Some(Ec2Instance {
                    ipv4_addresses: v4,
                    ipv6_addresses: v6,
                });
            }
            (
                "AwsEc2Instance",
                format!(
                    "arn:{}:ec2:{}:{}:instance/{instance}",
                    f.partition, f.region, f.account_id
                ),
            )
        }
        ResourceKind::AccessKey => {
            let d = f.resource.access_key_details.as_ref();
            if let Some(d) = d {
                details.aws_iam_access_key = Some(IamAccessKey {
                    access_key_id: d.access_key_id.clone(),
                    principal_id: d.principal_id.clone(),
                    principal_name: d.user_name.clone(),
                    principal_type: d.user_type.clone(),
                });
            }
            (
                "AwsIamAccessKey",
                d.map_or_else(|| "unknown".to_owned(), |d| d.access_key_id.clone()),
            )
        }
        ResourceKind::S3Bucket => {
            details.aws_s3_bucket = Some(S3Bucket {
                owner_account_id: f.account_id.clone(),
            });
            let arn = f
                .resource
                .s3_bucket_details
                .as_ref()
                .and_then(|b| b.first())
                .map_or_else(|| "unknown".to_owned(), |b| b.arn.clone());
            ("AwsS3Bucket", arn)
        }
    };
    Resource {
        kind,
        id,
        partition: f.partition.clone(),
        region: f.region.clone(),
        resource_role: role_name(f.service.resource_role),
        details,
    }
}

fn split_ip(ip: Option<&str>) -> (Option<String>, Option<String>) {
    match ip {
        Some(ip) if ip.contains(':') => (None, Some(ip.to_owned())),
        Some(ip) => (Some(ip.to_owned()), None),
        None => (None, None),
    }
}

fn network(f: &Finding) -> Option<Network> {
    let action = &f.service.action;
    match action.action_type {
        ActionKind::NetworkConnection => {
            let n = action.network_connection_action.as_ref()?;
            let remote = n
                .remote_ip_details
                .ip_address_v4
                .as_deref()
                .or(n.remote_ip_details.ip_address_v6.as_deref());
            let local = n
                .local_ip_details
                .as_ref()
                .and_then(|l| l.ip_address_v4.as_deref().or(l.ip_address_v6.as_deref()));
            let remote_port = Some(n.remote_port_details.port).filter(|p| *p != 0);
            let local_port = Some(n.local_port_details.port).filter(|p| *p != 0);
            let inbound = n.connection_direction == ConnectionDirection::Inbound;
            let (src, src_port, dst, dst_port) = if inbound {
                (remote, remote_port, local, local_port)
            } else {
                (local, local_port, remote, remote_port)
            };
            let (source_ipv4, source_ipv6) = split_ip(src);
            let (destination_ipv4, destination_ipv6) = split_ip(dst);
            Some(Network {
                direction: match n.connection_direction {
                    ConnectionDirection::Inbound => Some("IN"),
                    ConnectionDirection::Outbound => Some("OUT"),
                    ConnectionDirection::Unknown => None,
                },
                protocol: Some(n.protocol.clone()).filter(|p| !p.is_empty()),
                source_ipv4,
                source_ipv6,
                source_port: src_port,
                destination_ipv4,
                destination_ipv6,
                destination_port: dst_port,
                destination_domain: None,
            })
        }
        ActionKind::DnsRequest => {
            let d = action.dns_request_action.as_ref()?;
            Some(Network {
                direction: Some("OUT"),
                protocol: Some(d.protocol.clone()).filter(|p| !p.is_empty()),
                destination_domain: Some(d.domain.clone()),
                ..Network::default()
            })
        }
        ActionKind::PortProbe => {
            let p = action
                .port_probe_action
                .as_ref()?
                .port_probe_details
                .first()?;
            let remote = p
                .remote_ip_details
                .ip_address_v4
                .as_deref()
                .or(p.remote_ip_details.ip_address_v6.as_deref());
            let (source_ipv4, source_ipv6) = split_ip(remote);
            Some(Network {
                direction: Some("IN"),
                source_ipv4,
                source_ipv6,
                destination_port: Some(p.local_port_details.port).filter(|p| *p != 0),
                ..Network::default()
            })
        }
        ActionKind::AwsApiCall => None,
    }
}

fn indicators(f: &Finding) -> Vec<ThreatIntelIndicator> {
    let Some(evidence) = &f.service.evidence else {
        return Vec::new();
    };
    let Some(remote) = super::remote_of(f) else {
        return Vec::new();
    };
    let (kind, value) = match remote {
        Remote::Ipv4(v) => ("IPV4_ADDRESS", v),
        Remote::Ipv6(v) => ("IPV6_ADDRESS", v),
        Remote::Domain(v) => ("DOMAIN", v),
    };
    evidence
        .threat_intelligence_details
        .iter()
        .map(|t| ThreatIntelIndicator {
            kind,
            value: value.to_owned(),
            source: t.threat_list_name.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asff_types_follow_the_threat_purpose_and_keep_the_name() {
        assert_eq!(
            asff_type("Backdoor:EC2/C&CActivity.B!DNS"),
            "TTPs/Command and Control/Backdoor:EC2-C&CActivity.B!DNS"
        );
        assert_eq!(
            asff_type("Recon:EC2/Portscan"),
            "TTPs/Discovery/Recon:EC2-Portscan"
        );
        assert_eq!(
            asff_type("CryptoCurrency:EC2/BitcoinTool.B"),
            "Effects/Resource Consumption/CryptoCurrency:EC2-BitcoinTool.B"
        );
        assert_eq!(
            asff_type("Policy:S3/BucketBlockPublicAccessDisabled"),
            "Software and Configuration Checks/AWS Security Best Practices/Policy:S3-BucketBlockPublicAccessDisabled"
        );
        assert!(
            asff_type("UnauthorizedAccess:EC2/SSHBruteForce")
                .starts_with("TTPs/Credential Access/")
        );
        assert_eq!(
            asff_type("Trojan:EC2/DNSDataExfiltration")
                .split('/')
                .count(),
            3
        );
    }

    #[test]
    fn severity_keeps_guardduty_s_number_and_band() {
        let s = severity(8.0);
        assert_eq!(
            (s.label, s.original.as_str(), s.normalized),
            ("HIGH", "8.0", 80)
        );
        assert_eq!(severity(2.5).label, "LOW");
        assert_eq!(severity(9.0).label, "CRITICAL");
        assert_eq!(severity(5.0).label, "MEDIUM");
    }
}
