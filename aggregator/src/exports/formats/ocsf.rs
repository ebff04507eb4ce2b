//! OCSF Detection Finding (class 2004, category 2 "Findings", schema 1.3.0): activity Create
//! for a new finding and Update for a changed one (`type_uid` 200401/200402), severity from
//! GuardDuty's band, times in ms, the cloud profile (`cloud.provider` "AWS"), the activity as
//! `evidences`, and what OCSF has no place for (action, role, Picket's evidence) in `unmapped`.

use serde::Serialize;

use super::Remote;
use crate::detectors::ResourceRole;
use crate::findings::model::{Action, AdditionalInfo, Finding};
use crate::findings::types::{ResourceKind, SeverityBand};

/// The OCSF schema version written in `metadata.version`.
pub const OCSF_VERSION: &str = "1.3.0";
/// Detection Finding.
pub const CLASS_UID: u32 = 2004;
/// Findings.
pub const CATEGORY_UID: u32 = 2;

/// One Detection Finding event.
#[derive(Debug, Serialize)]
pub struct DetectionFinding<'a> {
    /// [`CLASS_UID`].
    pub class_uid: u32,
    /// "Detection Finding".
    pub class_name: &'static str,
    /// [`CATEGORY_UID`].
    pub category_uid: u32,
    /// "Findings".
    pub category_name: &'static str,
    /// 1 Create or 2 Update.
    pub activity_id: u32,
    /// "Create" or "Update".
    pub activity_name: &'static str,
    /// `class_uid × 100 + activity_id`.
    pub type_uid: u32,
    /// "Detection Finding: Create" or "…: Update".
    pub type_name: &'static str,
    /// 2 Low, 3 Medium, 4 High, 5 Critical.
    pub severity_id: u32,
    /// The severity's name.
    pub severity: &'static str,
    /// The event time: the finding's `updatedAt`, ms since the epoch.
    pub time: i64,
    /// The finding's title.
    pub message: &'a str,
    /// Times the activity was seen.
    pub count: u64,
    /// 1 New, or 5 Archived.
    pub status_id: u32,
    /// "New" or "Archived".
    pub status: &'static str,
    /// Product and schema.
    pub metadata: Metadata,
    /// What was found.
    pub finding_info: FindingInfo<'a>,
    /// The resource.
    pub resources: Vec<ResourceDetails<'a>>,
    /// Provider, account and region.
    pub cloud: Cloud<'a>,
    /// The activity that led to the finding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidences: Vec<Evidence<'a>>,
    /// GuardDuty fields OCSF has no attribute for.
    pub unmapped: Unmapped<'a>,
}

/// `metadata`.
#[derive(Debug, Serialize)]
pub struct Metadata {
    /// [`OCSF_VERSION`].
    pub version: &'static str,
    /// Picket.
    pub product: Product,
}

/// `metadata.product`.
#[derive(Debug, Serialize)]
pub struct Product {
    /// "Picket".
    pub name: &'static str,
    /// "Picket".
    pub vendor_name: &'static str,
    /// The aggregator's version.
    pub version: &'static str,
}

/// `finding_info`.
#[derive(Debug, Serialize)]
pub struct FindingInfo<'a> {
    /// The finding ARN.
    pub uid: &'a str,
    /// The title.
    pub title: &'a str,
    /// The description.
    pub desc: &'a str,
    /// The GuardDuty type.
    pub types: [&'static str; 1],
    /// `createdAt`, ms.
    pub created_time: i64,
    /// `updatedAt`, ms.
    pub modified_time: i64,
    /// `eventFirstSeen`, ms.
    pub first_seen_time: i64,
    /// `eventLastSeen`, ms.
    pub last_seen_time: i64,
}

/// One of `resources`.
#[derive(Debug, Serialize)]
pub struct ResourceDetails<'a> {
    /// Instance id, access key id or bucket name.
    pub uid: String,
    /// `AWS::EC2::Instance`, `AWS::IAM::AccessKey` or `AWS::S3::Bucket`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The partition.
    pub cloud_partition: &'a str,
    /// The region.
    pub region: &'a str,
    /// The owning account.
    pub owner: Owner<'a>,
}

/// `resources[].owner`.
#[derive(Debug, Serialize)]
pub struct Owner<'a> {
    /// The account.
    pub account: Account<'a>,
}

/// An account object.
#[derive(Debug, Serialize)]
pub struct Account<'a> {
    /// The 12-digit id.
    pub uid: &'a str,
    /// "AWS Account".
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// 10, AWS Account.
    pub type_id: u32,
}

/// `cloud`.
#[derive(Debug, Serialize)]
pub struct Cloud<'a> {
    /// "AWS".
    pub provider: &'static str,
    /// The finding's account.
    pub account: Account<'a>,
    /// The finding's region.
    pub region: &'a str,
}

/// One of `evidences`.
#[derive(Debug, Default, Serialize)]
pub struct Evidence<'a> {
    /// Protocol and direction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_info: Option<ConnectionInfo<'a>>,
    /// The side that started the activity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<Endpoint<'a>>,
    /// The other side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_endpoint: Option<Endpoint<'a>>,
    /// The DNS query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<DnsQuery<'a>>,
}

/// `connection_info`.
#[derive(Debug, Serialize)]
pub struct ConnectionInfo<'a> {
    /// `tcp`, `udp`… as GuardDuty names it.
    pub protocol_name: &'a str,
    /// 1 Inbound, 2 Outbound, 0 Unknown.
    pub direction_id: u32,
}

/// A network endpoint.
#[derive(Debug, Default, Serialize)]
pub struct Endpoint<'a> {
    /// The address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<&'a str>,
    /// The port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// The name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<&'a str>,
    /// The instance, for the resource's own side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_uid: Option<&'a str>,
}

/// `query` (a DNS query).
#[derive(Debug, Serialize)]
pub struct DnsQuery<'a> {
    /// The name queried.
    pub hostname: &'a str,
}

/// `unmapped`: GuardDuty's members with no OCSF attribute.
#[derive(Debug, Serialize)]
pub struct Unmapped<'a> {
    /// GuardDuty's finding id.
    pub finding_id: &'a str,
    /// `ACTOR` or `TARGET`.
    pub resource_role: ResourceRole,
    /// GuardDuty's `service.action`.
    pub action: &'a Action,
    /// GuardDuty's `service.additionalInfo`, with Picket's evidence.
    pub additional_info: &'a AdditionalInfo,
}

impl<'a> DetectionFinding<'a> {
    /// The Detection Finding for `f`.
    pub fn of(f: &'a Finding) -> Self {
        let update = super::is_update(f);
        let (severity_id, severity) = match SeverityBand::of(f.severity) {
            SeverityBand::Low => (2, "Low"),
            SeverityBand::Medium => (3, "Medium"),
            SeverityBand::High => (4, "High"),
            SeverityBand::Critical => (5, "Critical"),
        };
        let account = || Account {
            uid: &f.account_id,
            kind: "AWS Account",
            type_id: 10,
        };
        Self {
            class_uid: CLASS_UID,
            class_name: "Detection Finding",
            category_uid: CATEGORY_UID,
            category_name: "Findings",
            activity_id: if update { 2 } else { 1 },
            activity_name: if update { "Update" } else { "Create" },
            type_uid: CLASS_UID * 100 + if update { 2 } else { 1 },
            type_name: if update {
                "Detection Finding: Update"
            } else {
                "Detection Finding: Create"
            },
            severity_id,
            severity,
            time: f.updated_at.0,
            message: &f.title,
            count: f.service.count,
            status_id: if f.service.archived { 5 } else { 1 },
            status: if f.service.archived {
                "Archived"
            } else {
                "New"
            },
            metadata: Metadata {
                version: OCSF_VERSION,
                product: Product {
                    name: "Picket",
                    vendor_name: "Picket",
                    version: env!("CARGO_PKG_VERSION"),
                },
            },
            finding_info: FindingInfo {
                uid: &f.arn,
                title: &f.title,
                desc: &f.description,
                types: [f.finding_type.name()],
                created_time: f.created_at.0,
                modified_time: f.updated_at.0,
                first_seen_time: f.service.event_first_seen.0,
                last_seen_time: f.service.event_last_seen.0,
            },
            resources: vec![resource(f, account())],
            cloud: Cloud {
                provider: "AWS",
                account: account(),
                region: &f.region,
            },
            evidences: evidence(f).into_iter().collect(),
            unmapped: Unmapped {
                finding_id: &f.id,
                resource_role: f.service.resource_role,
                action: &f.service.action,
                additional_info: &f.service.additional_info,
            },
        }
    }
}

fn resource<'a>(f: &'a Finding, account: Account<'a>) -> ResourceDetails<'a> {
    let (kind, uid) = match f.resource.resource_type {
        ResourceKind::Instance => (
            "AWS::EC2::Instance",
            f.instance_id().unwrap_or("unknown").to_owned(),
        ),
        ResourceKind::AccessKey => (
            "AWS::IAM::AccessKey",
            f.resource
                .access_key_details
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), |d| d.access_key_id.clone()),
        ),
        ResourceKind::S3Bucket => (
            "AWS::S3::Bucket",
            f.resource
                .s3_bucket_details
                .as_ref()
                .and_then(|b| b.first())
                .map_or_else(|| "unknown".to_owned(), |b| b.name.clone()),
        ),
    };
    ResourceDetails {
        uid,
        kind,
        cloud_partition: &f.partition,
        region: &f.region,
        owner: Owner { account },
    }
}

fn evidence(f: &Finding) -> Option<Evidence<'_>> {
    let action = &f.service.action;
    let own = Endpoint {
        instance_uid: f.instance_id(),
        ..Endpoint::default()
    };
    if let Some(n) = &action.network_connection_action {
        let remote = Endpoint {
            ip: n
                .remote_ip_details
                .ip_address_v4
                .as_deref()
                .or(n.remote_ip_details.ip_address_v6.as_deref()),
            port: Some(n.remote_port_details.port).filter(|p| *p != 0),
            ..Endpoint::default()
        };
        let local = Endpoint {
            ip: n
                .local_ip_details
                .as_ref()
                .and_then(|l| l.ip_address_v4.as_deref().or(l.ip_address_v6.as_deref())),
            port: Some(n.local_port_details.port).filter(|p| *p != 0),
            ..own
        };
        use crate::detectors::ConnectionDirection as D;
        let (direction_id, src, dst) = match n.connection_direction {
            D::Inbound => (1, remote, local),
            D::Outbound => (2, local, remote),
            D::Unknown => (0, local, remote),
        };
        return Some(Evidence {
            connection_info: Some(ConnectionInfo {
                protocol_name: &n.protocol,
                direction_id,
            }),
            src_endpoint: Some(src),
            dst_endpoint: Some(dst),
            query: None,
        });
    }
    if let Some(d) = &action.dns_request_action {
        return Some(Evidence {
            src_endpoint: Some(own),
            query: Some(DnsQuery {
                hostname: &d.domain,
            }),
            ..Evidence::default()
        });
    }
    match super::remote_of(f)? {
        Remote::Ipv4(ip) | Remote::Ipv6(ip) => Some(Evidence {
            src_endpoint: Some(Endpoint {
                ip: Some(ip),
                ..Endpoint::default()
            }),
            dst_endpoint: Some(own),
            ..Evidence::default()
        }),
        Remote::Domain(_) => None,
    }
}
