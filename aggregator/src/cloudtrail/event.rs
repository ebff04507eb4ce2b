//! The normalised API event: one CloudTrail record as the detectors see it, whatever file
//! format or AWS quirk it arrived with. The reader fills it; detectors only read it.

use std::net::IpAddr;
use std::sync::Arc;

use super::lazy_json::LazyJson;

/// Who made an API call (`userIdentity`), flattened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Principal {
    /// `Root`, `IAMUser`, `AssumedRole`, `FederatedUser`, `AWSService`, `AWSAccount`, … as given.
    pub kind: String,
    /// The caller's ARN, e.g. `arn:aws:sts::123456789012:assumed-role/web/i-0abc`.
    pub arn: String,
    /// `principalId`.
    pub principal_id: String,
    /// The account the principal belongs to.
    pub account_id: String,
    /// `accessKeyId` (`AKIA…` long-term, `ASIA…` temporary), empty when none.
    pub access_key_id: String,
    /// `userName` for IAM users and root; for assumed roles, the role name from the session issuer.
    pub user_name: String,
    /// The role or user a temporary session was issued from, when there is one.
    pub session_issuer: Option<SessionIssuer>,
    /// `sessionContext.attributes.mfaAuthenticated` was `"true"`.
    pub mfa_authenticated: bool,
    /// `sessionContext.ec2RoleDelivery` (e.g. `"2.0"`): credentials delivered to an instance
    /// by the metadata service.
    pub ec2_role_delivery: Option<String>,
    /// `invokedBy`: the AWS service that called on the principal's behalf, if any.
    pub invoked_by: Option<String>,
}

impl Principal {
    /// The instance id when this is an EC2 instance role session (`…/assumed-role/<role>/i-…`).
    pub fn instance_session(&self) -> Option<&str> {
        if self.kind != "AssumedRole" {
            return None;
        }
        let session = self.arn.rsplit('/').next()?;
        session.starts_with("i-").then_some(session)
    }

    /// A stable key for per-principal state: the ARN, else principal id, else access key.
    pub fn key(&self) -> &str {
        [&self.arn, &self.principal_id, &self.access_key_id]
            .into_iter()
            .find(|s| !s.is_empty())
            .map_or("", |s| s.as_str())
    }
}

/// The role or user a temporary session came from (`sessionContext.sessionIssuer`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionIssuer {
    /// `Role`, `IAMUser`, `Root`.
    pub kind: String,
    /// The issuer's ARN.
    pub arn: String,
    /// The role or user name.
    pub user_name: String,
    /// The issuer's account.
    pub account_id: String,
}

/// One resource a call touched (`resources[]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiResource {
    /// Resource ARN.
    pub arn: String,
    /// Owning account, when given.
    pub account_id: String,
    /// e.g. `AWS::S3::Bucket`.
    pub kind: String,
}

/// Where the call came from (`sourceIPAddress`), which is not always an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerAddress {
    /// A parseable IP address (leading zeros such as `08.1.250.216` already normalised).
    Ip(IpAddr),
    /// An AWS service name (`ec2.amazonaws.com`) or `AWS Internal`: the call came from inside AWS.
    AwsService(String),
    /// Anything else, kept verbatim so nothing is lost (e.g. two addresses joined by a comma:
    /// the first address is in `first_ip`).
    Other {
        /// The raw value.
        raw: String,
        /// The first IP address found in it, if any.
        first_ip: Option<IpAddr>,
    },
    /// The field was missing or empty.
    Missing,
}

impl CallerAddress {
    /// The caller's IP address, when one can be read.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Ip(ip) => Some(*ip),
            Self::Other { first_ip, .. } => *first_ip,
            Self::AwsService(_) | Self::Missing => None,
        }
    }
}

/// Where in its input an event was read, so reports can point at it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventOrigin {
    /// The file it came from, shared by all of that file's events.
    pub file: Arc<str>,
    /// Index of the event in the file (0-based), or line number for newline-delimited input.
    pub position: u64,
}

/// One normalised CloudTrail event.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiEvent {
    /// `eventID`; not unique in real data, so never used alone as a key.
    pub event_id: String,
    /// `eventTime` (or `@timestamp`), ms since the epoch.
    pub time_ms: i64,
    /// `eventSource`, e.g. `s3.amazonaws.com`.
    pub event_source: String,
    /// `eventName`, e.g. `StopLogging`.
    pub event_name: String,
    /// `eventType`: `AwsApiCall`, `AwsConsoleSignIn`, `AwsServiceEvent`, …
    pub event_type: String,
    /// `awsRegion` as given (real data has fake regions; kept verbatim).
    pub region: String,
    /// `recipientAccountId`: the account whose trail recorded the call.
    pub recipient_account_id: String,
    /// Who called.
    pub principal: Principal,
    /// From where.
    pub source: CallerAddress,
    /// `userAgent`.
    pub user_agent: String,
    /// `errorCode`, empty when the call succeeded.
    pub error_code: String,
    /// `errorMessage`.
    pub error_message: String,
    /// `readOnly`, when given.
    pub read_only: Option<bool>,
    /// `requestParameters`, kept as text and parsed on first read (`Null` when absent).
    pub request_parameters: LazyJson,
    /// `responseElements`, kept as text and parsed on first read (`Null` when absent).
    pub response_elements: LazyJson,
    /// `additionalEventData`, kept as text and parsed on first read (`Null` when absent).
    pub additional_event_data: LazyJson,
    /// `resources[]`.
    pub resources: Vec<ApiResource>,
    /// `vpcEndpointId`, when the call came through a VPC endpoint.
    pub vpc_endpoint_id: Option<String>,
    /// Where it was read.
    pub origin: EventOrigin,
}

impl ApiEvent {
    /// The call succeeded (no `errorCode`).
    pub fn succeeded(&self) -> bool {
        self.error_code.is_empty()
    }

    /// The account this event belongs to for findings: the recipient account, else the
    /// principal's.
    pub fn account_id(&self) -> &str {
        if self.recipient_account_id.is_empty() {
            &self.principal.account_id
        } else {
            &self.recipient_account_id
        }
    }
}
