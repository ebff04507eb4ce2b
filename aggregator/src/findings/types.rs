//! The registry of finding types: every GuardDuty type Picket can produce, with its name,
//! default severity, resource type, action type and title/description templates.
//!
//! One macro table is the only place a type is described, so the enum, the name lookup and the
//! list of all types cannot drift apart (Suricata's hand-kept DNS event tables did).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kind of AWS resource a finding is about (`resource.resourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// An EC2 instance (`instanceDetails`).
    Instance,
    /// IAM credentials (`accessKeyDetails`).
    AccessKey,
    /// An S3 bucket (`s3BucketDetails`).
    S3Bucket,
}

impl ResourceKind {
    /// GuardDuty's `resourceType` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instance => "Instance",
            Self::AccessKey => "AccessKey",
            Self::S3Bucket => "S3Bucket",
        }
    }
}

/// The kind of activity a finding describes (`service.action.actionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// `NETWORK_CONNECTION` with `networkConnectionAction`.
    NetworkConnection,
    /// `DNS_REQUEST` with `dnsRequestAction`.
    DnsRequest,
    /// `PORT_PROBE` with `portProbeAction`.
    PortProbe,
    /// `AWS_API_CALL` with `awsApiCallAction`.
    AwsApiCall,
}

impl ActionKind {
    /// GuardDuty's `actionType` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NetworkConnection => "NETWORK_CONNECTION",
            Self::DnsRequest => "DNS_REQUEST",
            Self::PortProbe => "PORT_PROBE",
            Self::AwsApiCall => "AWS_API_CALL",
        }
    }
}

/// GuardDuty's severity bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SeverityBand {
    /// 1.0–3.9.
    Low,
    /// 4.0–6.9.
    Medium,
    /// 7.0–8.9.
    High,
    /// 9.0–10.0.
    Critical,
}

impl SeverityBand {
    /// The band a severity value falls in (values below 4 are Low, from 9 Critical).
    pub fn of(severity: f64) -> Self {
        if severity >= 9.0 {
            Self::Critical
        } else if severity >= 7.0 {
            Self::High
        } else if severity >= 4.0 {
            Self::Medium
        } else {
            Self::Low
        }
    }
}

/// Why a finding type name was not recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown finding type {name:?}")]
pub struct UnknownFindingType {
    /// The name given.
    pub name: String,
}

macro_rules! finding_types {
    ($(
        $(#[$doc:meta])*
        $variant:ident => $name:literal, $severity:literal, $resource:ident, $action:ident,
            $title:literal, $description:literal;
    )+) => {
        /// A GuardDuty finding type Picket can produce.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FindingType {
            $($(#[$doc])* $variant,)+
        }

        impl FindingType {
            /// Every type, in registry order.
            pub const ALL: &'static [FindingType] = &[$(Self::$variant,)+];

            /// GuardDuty's name for the type, e.g. `Backdoor:EC2/C&CActivity.B!DNS`.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name,)+ }
            }

            /// Looks a type up by its GuardDuty name (exact, case-sensitive).
            ///
            /// # Errors
            /// [`UnknownFindingType`] when no registered type has that name.
            pub fn from_name(name: &str) -> Result<Self, UnknownFindingType> {
                match name {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(UnknownFindingType { name: name.to_owned() }),
                }
            }

            /// GuardDuty's default severity for the type.
            pub fn default_severity(self) -> f64 {
                match self { $(Self::$variant => $severity,)+ }
            }

            /// The resource the finding is about.
            pub fn resource_kind(self) -> ResourceKind {
                match self { $(Self::$variant => ResourceKind::$resource,)+ }
            }

            /// The action the finding describes.
            pub fn action_kind(self) -> ActionKind {
                match self { $(Self::$variant => ActionKind::$action,)+ }
            }

            /// Title template; `{resource}` and `{remote}` are filled in by [`Self::render`].
            pub fn title_template(self) -> &'static str {
                match self { $(Self::$variant => $title,)+ }
            }

            /// Description template, filled in the same way as the title.
            pub fn description_template(self) -> &'static str {
                match self { $(Self::$variant => $description,)+ }
            }
        }
    };
}

finding_types! {
    /// Traffic to a command-and-control address.
    BackdoorCcActivity => "Backdoor:EC2/C&CActivity.B", 8.0, Instance, NetworkConnection,
        "Command and Control server IP address contacted by EC2 instance {resource}.",
        "EC2 instance {resource} is communicating with {remote}, an IP address associated with a known command and control server.";
    /// A DNS query for a command-and-control domain.
    BackdoorCcActivityDns => "Backdoor:EC2/C&CActivity.B!DNS", 8.0, Instance, DnsRequest,
        "Command and Control server domain name queried by EC2 instance {resource}.",
        "EC2 instance {resource} is querying {remote}, a domain name associated with a known command and control server.";
    /// Traffic to a cryptocurrency-related address.
    CryptoCurrencyBitcoinTool => "CryptoCurrency:EC2/BitcoinTool.B", 8.0, Instance, NetworkConnection,
        "Bitcoin-related IP address contacted by EC2 instance {resource}.",
        "EC2 instance {resource} is communicating with {remote}, an IP address associated with cryptocurrency-related activity.";
    /// A DNS query for a cryptocurrency-related domain.
    CryptoCurrencyBitcoinToolDns => "CryptoCurrency:EC2/BitcoinTool.B!DNS", 8.0, Instance, DnsRequest,
        "Bitcoin-related domain name queried by EC2 instance {resource}.",
        "EC2 instance {resource} is querying {remote}, a domain name associated with cryptocurrency-related activity.";
    /// Traffic to a black-hole address.
    TrojanBlackholeTraffic => "Trojan:EC2/BlackholeTraffic", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} communicating with a black hole IP address.",
        "EC2 instance {resource} is attempting to communicate with {remote}, a black hole IP address.";
    /// A DNS query for a black-hole domain.
    TrojanBlackholeTrafficDns => "Trojan:EC2/BlackholeTraffic!DNS", 5.0, Instance, DnsRequest,
        "EC2 instance {resource} querying a black hole domain name.",
        "EC2 instance {resource} is querying {remote}, a domain name that is being redirected to a black hole.";
    /// Traffic to a drop point (stolen data collection) address.
    TrojanDropPoint => "Trojan:EC2/DropPoint", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} communicating with a drop point IP address.",
        "EC2 instance {resource} is communicating with {remote}, an IP address known to hold data captured by malware.";
    /// A DNS query for a drop point domain.
    TrojanDropPointDns => "Trojan:EC2/DropPoint!DNS", 8.0, Instance, DnsRequest,
        "EC2 instance {resource} querying a drop point domain name.",
        "EC2 instance {resource} is querying {remote}, a domain name known to hold data captured by malware.";
    /// A DNS query for a phishing domain.
    TrojanPhishingDomainRequestDns => "Trojan:EC2/PhishingDomainRequest!DNS", 8.0, Instance, DnsRequest,
        "EC2 instance {resource} querying a phishing domain name.",
        "EC2 instance {resource} is querying {remote}, a domain name involved in phishing attacks.";
    /// A DNS query for a drive-by download domain.
    TrojanDriveBySourceTrafficDns => "Trojan:EC2/DriveBySourceTraffic!DNS", 5.0, Instance, DnsRequest,
        "EC2 instance {resource} querying a drive-by download domain name.",
        "EC2 instance {resource} is querying {remote}, a domain name of a known source of drive-by download attacks.";
    /// A DNS query for a listed algorithmically generated domain.
    TrojanDgaDomainRequestCDns => "Trojan:EC2/DGADomainRequest.C!DNS", 8.0, Instance, DnsRequest,
        "EC2 instance {resource} querying an algorithmically generated domain name.",
        "EC2 instance {resource} is querying {remote}, a known algorithmically generated domain name.";
    /// Queries that look algorithmically generated (behavioural, no list).
    TrojanDgaDomainRequestB => "Trojan:EC2/DGADomainRequest.B", 8.0, Instance, DnsRequest,
        "EC2 instance {resource} querying algorithmically generated domain names.",
        "EC2 instance {resource} is querying domain names under {remote} that look algorithmically generated.";
    /// Traffic to an address on a custom threat list.
    UnauthorizedAccessMaliciousIpCallerCustom => "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} communicating with an IP address on a custom threat list.",
        "EC2 instance {resource} is communicating with {remote}, an IP address on a custom threat list.";
    /// A DNS query for a domain on a custom threat list.
    ImpactMaliciousDomainRequestCustom => "Impact:EC2/MaliciousDomainRequest.Custom", 5.0, Instance, DnsRequest,
        "EC2 instance {resource} querying a domain name on a custom threat list.",
        "EC2 instance {resource} is querying {remote}, a domain name on a custom threat list.";
    /// Traffic to a Tor entry node.
    UnauthorizedAccessTorClient => "UnauthorizedAccess:EC2/TorClient", 8.0, Instance, NetworkConnection,
        "EC2 instance {resource} communicating with a Tor entry node.",
        "EC2 instance {resource} is communicating with {remote}, a Tor entry node.";
    /// Outbound port scanning.
    ReconPortscan => "Recon:EC2/Portscan", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} is performing outbound port scans.",
        "EC2 instance {resource} is performing port scans against {remote}.";
    /// One port probed on many addresses.
    ImpactPortSweep => "Impact:EC2/PortSweep", 8.0, Instance, PortProbe,
        "EC2 instance {resource} is probing a port on a large number of IP addresses.",
        "EC2 instance {resource} is probing one port on many IP addresses, the latest {remote}.";
    /// An unprotected port probed by a known scanner.
    ReconPortProbeUnprotectedPort => "Recon:EC2/PortProbeUnprotectedPort", 2.0, Instance, PortProbe,
        "Unprotected port on EC2 instance {resource} is being probed.",
        "A port on EC2 instance {resource} is open and is being probed by {remote}, a known scanner.";
    /// SSH brute force, either direction.
    UnauthorizedAccessSshBruteForce => "UnauthorizedAccess:EC2/SSHBruteForce", 2.0, Instance, NetworkConnection,
        "SSH brute force attacks involving EC2 instance {resource}.",
        "EC2 instance {resource} is involved in SSH brute force attacks with {remote}.";
    /// RDP brute force, either direction.
    UnauthorizedAccessRdpBruteForce => "UnauthorizedAccess:EC2/RDPBruteForce", 2.0, Instance, NetworkConnection,
        "RDP brute force attacks involving EC2 instance {resource}.",
        "EC2 instance {resource} is involved in RDP brute force attacks with {remote}.";
    /// Data tunnelled out through DNS queries.
    TrojanDnsDataExfiltration => "Trojan:EC2/DNSDataExfiltration", 8.0, Instance, DnsRequest,
        "Data exfiltration through DNS queries from EC2 instance {resource}.",
        "EC2 instance {resource} is sending data out through DNS queries under {remote}.";
    /// A domain that resolves to the instance metadata address.
    UnauthorizedAccessMetadataDnsRebind => "UnauthorizedAccess:EC2/MetadataDNSRebind", 8.0, Instance, DnsRequest,
        "EC2 instance {resource} is performing DNS lookups that resolve to the instance metadata service.",
        "EC2 instance {resource} is querying {remote}, a domain name that resolves to the EC2 metadata IP address.";
    /// Outbound TCP denial of service.
    BackdoorDenialOfServiceTcp => "Backdoor:EC2/DenialOfService.Tcp", 8.0, Instance, NetworkConnection,
        "EC2 instance {resource} is behaving in a manner that may indicate it is being used to perform a denial of service attack using the TCP protocol.",
        "EC2 instance {resource} is sending a large volume of TCP traffic to {remote}.";
    /// Outbound UDP denial of service.
    BackdoorDenialOfServiceUdp => "Backdoor:EC2/DenialOfService.Udp", 8.0, Instance, NetworkConnection,
        "EC2 instance {resource} is behaving in a manner that may indicate it is being used to perform a denial of service attack using the UDP protocol.",
        "EC2 instance {resource} is sending a large volume of UDP traffic to {remote}.";
    /// Outbound DNS denial of service.
    BackdoorDenialOfServiceDns => "Backdoor:EC2/DenialOfService.Dns", 8.0, Instance, NetworkConnection,
        "EC2 instance {resource} is behaving in a manner that may indicate it is being used to perform a denial of service attack using the DNS protocol.",
        "EC2 instance {resource} is sending a large volume of DNS traffic to {remote}.";
    /// Outbound UDP denial of service aimed at ports normally used by TCP services.
    BackdoorDenialOfServiceUdpOnTcpPorts => "Backdoor:EC2/DenialOfService.UdpOnTcpPorts", 8.0, Instance, NetworkConnection,
        "EC2 instance {resource} is behaving in a manner that may indicate it is being used to perform a denial of service attack using UDP protocol on a TCP port.",
        "EC2 instance {resource} is sending a large volume of UDP traffic to TCP service ports of {remote}.";
    /// Outbound denial of service over an unusual IP protocol.
    BackdoorDenialOfServiceUnusualProtocol => "Backdoor:EC2/DenialOfService.UnusualProtocol", 8.0, Instance, NetworkConnection,
        "EC2 instance {resource} is behaving in a manner that may indicate it is being used to perform a denial of service attack using an unusual protocol.",
        "EC2 instance {resource} is sending a large volume of traffic over an unusual IP protocol to {remote}.";
    /// WinRM brute force, either direction.
    ImpactWinRmBruteForce => "Impact:EC2/WinRMBruteForce", 2.0, Instance, NetworkConnection,
        "WinRM brute force attacks involving EC2 instance {resource}.",
        "EC2 instance {resource} is involved in Windows Remote Management brute force attacks with {remote}.";
    /// DNS over TLS (port 853) from the instance.
    DefenseEvasionUnusualDoTActivity => "DefenseEvasion:EC2/UnusualDoTActivity", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} is performing unusual DNS over TLS activity.",
        "EC2 instance {resource} is resolving names over TLS (port 853) with {remote}, bypassing the VPC resolver.";
    /// DNS over HTTPS to a known public DoH endpoint.
    DefenseEvasionUnusualDoHActivity => "DefenseEvasion:EC2/UnusualDoHActivity", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} is performing unusual DNS over HTTPS activity.",
        "EC2 instance {resource} is resolving names over HTTPS with {remote}, a public DNS over HTTPS endpoint.";
    /// Outbound spam.
    BackdoorSpambot => "Backdoor:EC2/Spambot", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} is communicating on an unusual port, 25.",
        "EC2 instance {resource} is communicating with {remote} on port 25, as spam-sending malware does.";
    /// Traffic on a port the instance does not normally use.
    BehaviorNetworkPortUnusual => "Behavior:EC2/NetworkPortUnusual", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} is communicating on an unusual server port.",
        "EC2 instance {resource} is communicating with {remote} on a port it does not normally use.";
    /// Unusually large traffic volume.
    BehaviorTrafficVolumeUnusual => "Behavior:EC2/TrafficVolumeUnusual", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} is generating unusually large amounts of network traffic.",
        "EC2 instance {resource} is sending unusually large amounts of traffic to {remote}.";
    /// Instance credentials used outside AWS (CloudTrail joined with agent addresses).
    UnauthorizedAccessInstanceCredentialExfiltrationOutsideAws => "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS", 8.0, AccessKey, AwsApiCall,
        "Credentials for instance role {resource} used from an external IP address.",
        "Credentials created exclusively for an EC2 instance through role {resource} are being used from {remote}.";
    /// Root credentials used.
    PolicyRootCredentialUsage => "Policy:IAMUser/RootCredentialUsage", 2.0, AccessKey, AwsApiCall,
        "API was invoked using root credentials.",
        "An API was invoked using the root credentials of {resource} from {remote}.";
    /// An API called from an address on a custom threat list.
    ReconMaliciousIpCallerCustom => "Recon:IAMUser/MaliciousIPCaller.Custom", 5.0, AccessKey, AwsApiCall,
        "Reconnaissance API invoked from an IP address on a custom threat list.",
        "An API commonly used for reconnaissance was invoked by {resource} from {remote}, an IP address on a custom threat list.";
    // Network baselines, Tor, beaconing (netdet)
    /// DNS sent to a public resolver the instance had not used before.
    DefenseEvasionUnusualDnsResolver => "DefenseEvasion:EC2/UnusualDNSResolver", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} is communicating with an unusual public DNS resolver.",
        "EC2 instance {resource} is sending DNS queries to {remote}, a public resolver it has not used before.";
    /// The instance acts as a Tor relay.
    UnauthorizedAccessTorRelay => "UnauthorizedAccess:EC2/TorRelay", 8.0, Instance, NetworkConnection,
        "EC2 instance {resource} is communicating with Tor nodes as a Tor relay.",
        "EC2 instance {resource} is exchanging traffic with Tor nodes, the latest {remote}, as a Tor relay does.";
    /// Inbound connections from a Tor node (an exit, or a client's path ending at us).
    UnauthorizedAccessTorIpCaller => "UnauthorizedAccess:EC2/TorIPCaller", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} is receiving inbound connections from a Tor exit node.",
        "EC2 instance {resource} is receiving inbound connections from {remote}, a Tor node.";
    /// Regular, machine-like connections to one remote (RITA-style beacon scoring).
    BackdoorBeaconing => "Backdoor:EC2/Beaconing", 5.0, Instance, NetworkConnection,
        "EC2 instance {resource} is beaconing to a remote host.",
        "EC2 instance {resource} is connecting to {remote} at regular intervals with regular sizes, as malware calling home does.";
    /// S3 Block Public Access turned off for a bucket.
    PolicyBucketBlockPublicAccessDisabled => "Policy:S3/BucketBlockPublicAccessDisabled", 2.0, S3Bucket, AwsApiCall,
        "Amazon S3 Block Public Access was disabled for S3 bucket {resource}.",
        "Amazon S3 Block Public Access was disabled for S3 bucket {resource} by a call from {remote}.";

    // CloudTrail rules (ct-reader). Policy:IAMUser/RootCredentialUsage,
    // Recon:IAMUser/MaliciousIPCaller.Custom and Policy:S3/BucketBlockPublicAccessDisabled above
    // are reused. ConsoleLoginBruteForce is Picket's own name in GuardDuty's grammar (GuardDuty
    // has no console brute-force type); AccountBlockPublicAccessDisabled names the principal
    // (AccessKey) because an account-wide setting has no bucket.
    /// CloudTrail logging stopped, a trail deleted, its selectors or its bucket disabled.
    StealthCloudTrailLoggingDisabled => "Stealth:IAMUser/CloudTrailLoggingDisabled", 2.0, AccessKey, AwsApiCall,
        "AWS CloudTrail trail was disabled.",
        "CloudTrail logging was disabled or reduced by {resource}, calling from {remote}.";
    /// The account password policy weakened or removed.
    StealthPasswordPolicyChange => "Stealth:IAMUser/PasswordPolicyChange", 2.0, AccessKey, AwsApiCall,
        "Password policy was weakened.",
        "The account password policy was weakened or deleted by {resource}, calling from {remote}.";
    /// S3 server access logging turned off for a bucket.
    StealthS3ServerAccessLoggingDisabled => "Stealth:S3/ServerAccessLoggingDisabled", 2.0, S3Bucket, AwsApiCall,
        "S3 server access logging was disabled for S3 bucket {resource}.",
        "Server access logging was disabled for S3 bucket {resource} by a call from {remote}.";
    /// S3 Block Public Access turned off for the whole account.
    PolicyAccountBlockPublicAccessDisabled => "Policy:S3/AccountBlockPublicAccessDisabled", 2.0, AccessKey, AwsApiCall,
        "Amazon S3 Block Public Access was disabled for the account.",
        "Amazon S3 Block Public Access was disabled account-wide by {resource}, calling from {remote}.";
    /// A bucket opened to anyone on the internet (ACL AllUsers, policy Principal "*").
    PolicyBucketAnonymousAccessGranted => "Policy:S3/BucketAnonymousAccessGranted", 8.0, S3Bucket, AwsApiCall,
        "S3 bucket {resource} granted access to anonymous users.",
        "S3 bucket {resource} was made accessible to anyone on the internet by a call from {remote}.";
    /// A bucket opened to every authenticated AWS user (ACL AuthenticatedUsers).
    PolicyBucketPublicAccessGranted => "Policy:S3/BucketPublicAccessGranted", 8.0, S3Bucket, AwsApiCall,
        "S3 bucket {resource} granted access to all authenticated AWS users.",
        "S3 bucket {resource} was made accessible to every authenticated AWS user by a call from {remote}.";
    /// A non-read API called from a listed malicious address.
    UnauthorizedAccessIamMaliciousIpCaller => "UnauthorizedAccess:IAMUser/MaliciousIPCaller", 5.0, AccessKey, AwsApiCall,
        "An API was invoked from a known malicious IP address.",
        "An API was invoked by {resource} from {remote}, a known malicious IP address.";
    /// A non-read API called from an address on a custom threat list.
    UnauthorizedAccessIamMaliciousIpCallerCustom => "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom", 5.0, AccessKey, AwsApiCall,
        "An API was invoked from an IP address on a custom threat list.",
        "An API was invoked by {resource} from {remote}, an IP address on a custom threat list.";
    /// A discovery API called from a listed malicious address.
    ReconIamMaliciousIpCaller => "Recon:IAMUser/MaliciousIPCaller", 5.0, AccessKey, AwsApiCall,
        "Reconnaissance API invoked from a known malicious IP address.",
        "An API commonly used for reconnaissance was invoked by {resource} from {remote}, a known malicious IP address.";
    /// A non-read API called from a Tor exit node.
    UnauthorizedAccessIamTorIpCaller => "UnauthorizedAccess:IAMUser/TorIPCaller", 5.0, AccessKey, AwsApiCall,
        "An API was invoked from a Tor exit node IP address.",
        "An API was invoked by {resource} from {remote}, a Tor exit node.";
    /// A discovery API called from a Tor exit node.
    ReconIamTorIpCaller => "Recon:IAMUser/TorIPCaller", 5.0, AccessKey, AwsApiCall,
        "Reconnaissance API invoked from a Tor exit node IP address.",
        "An API commonly used for reconnaissance was invoked by {resource} from {remote}, a Tor exit node.";
    /// S3 discovery (List/GetBucket*/Head) from a listed malicious address.
    DiscoveryS3MaliciousIpCaller => "Discovery:S3/MaliciousIPCaller", 8.0, S3Bucket, AwsApiCall,
        "An S3 API commonly used to discover resources was invoked from a known malicious IP address.",
        "An S3 discovery API was invoked on bucket {resource} from {remote}, a known malicious IP address.";
    /// S3 discovery from an address on a custom threat list.
    DiscoveryS3MaliciousIpCallerCustom => "Discovery:S3/MaliciousIPCaller.Custom", 8.0, S3Bucket, AwsApiCall,
        "An S3 API was invoked from an IP address on a custom threat list.",
        "An S3 discovery API was invoked on bucket {resource} from {remote}, an IP address on a custom threat list.";
    /// S3 discovery from a Tor exit node.
    DiscoveryS3TorIpCaller => "Discovery:S3/TorIPCaller", 5.0, S3Bucket, AwsApiCall,
        "An S3 API was invoked from a Tor exit node IP address.",
        "An S3 discovery API was invoked on bucket {resource} from {remote}, a Tor exit node.";
    /// S3 object reads from a listed malicious address.
    ExfiltrationS3MaliciousIpCaller => "Exfiltration:S3/MaliciousIPCaller", 8.0, S3Bucket, AwsApiCall,
        "An S3 API commonly used to collect data was invoked from a known malicious IP address.",
        "Objects in S3 bucket {resource} were read from {remote}, a known malicious IP address.";
    /// S3 writes or deletes from a listed malicious address.
    ImpactS3MaliciousIpCaller => "Impact:S3/MaliciousIPCaller", 8.0, S3Bucket, AwsApiCall,
        "An S3 API commonly used to tamper with data was invoked from a known malicious IP address.",
        "S3 bucket {resource} was written to or deleted from {remote}, a known malicious IP address.";
    /// Non-read S3 calls from an address on a custom threat list.
    UnauthorizedAccessS3MaliciousIpCallerCustom => "UnauthorizedAccess:S3/MaliciousIPCaller.Custom", 8.0, S3Bucket, AwsApiCall,
        "An S3 API was invoked from an IP address on a custom threat list.",
        "An S3 API was invoked on bucket {resource} from {remote}, an IP address on a custom threat list.";
    /// Non-read S3 calls from a Tor exit node.
    UnauthorizedAccessS3TorIpCaller => "UnauthorizedAccess:S3/TorIPCaller", 5.0, S3Bucket, AwsApiCall,
        "An S3 API was invoked from a Tor exit node IP address.",
        "An S3 API was invoked on bucket {resource} from {remote}, a Tor exit node.";
    /// API calls from a Kali Linux machine.
    PenTestKaliLinux => "PenTest:IAMUser/KaliLinux", 5.0, AccessKey, AwsApiCall,
        "An API was invoked from a Kali Linux computer.",
        "An API was invoked by {resource} from {remote}, a computer running Kali Linux.";
    /// API calls from a Parrot Security Linux machine.
    PenTestParrotLinux => "PenTest:IAMUser/ParrotLinux", 5.0, AccessKey, AwsApiCall,
        "An API was invoked from a Parrot Security Linux computer.",
        "An API was invoked by {resource} from {remote}, a computer running Parrot Security Linux.";
    /// API calls from a Pentoo Linux machine.
    PenTestPentooLinux => "PenTest:IAMUser/PentooLinux", 5.0, AccessKey, AwsApiCall,
        "An API was invoked from a Pentoo Linux computer.",
        "An API was invoked by {resource} from {remote}, a computer running Pentoo Linux.";
    /// Successful console sign-ins of one principal from many networks at once.
    UnauthorizedAccessConsoleLoginSuccessB => "UnauthorizedAccess:IAMUser/ConsoleLoginSuccess.B", 5.0, AccessKey, AwsApiCall,
        "Multiple worldwide successful console logins were observed.",
        "{resource} signed in to the console successfully from several distinct networks within a short time, the latest {remote}.";
    /// A burst of failed console sign-ins from one address.
    UnauthorizedAccessConsoleLoginBruteForce => "UnauthorizedAccess:IAMUser/ConsoleLoginBruteForce", 5.0, AccessKey, AwsApiCall,
        "Console sign-in brute force against the account.",
        "Many failed console sign-ins from {remote}, the latest for {resource}.";
    // Sensor health (ops): Picket's own types, in GuardDuty's ThreatPurpose:ResourceType/ThreatFamily
    // grammar, raised by detectors::agent_health about the agents themselves.
    /// An agent stopped reporting: no `HostStats` for longer than the configured silence.
    DefenseEvasionSensorStoppedReporting => "DefenseEvasion:EC2/SensorStoppedReporting", 5.0, Instance, NetworkConnection,
        "The Picket sensor on EC2 instance {resource} stopped reporting.",
        "The Picket agent on EC2 instance {resource} has sent no host statistics for longer than the configured silence: it, its host or its network path may have been stopped or tampered with, and the instance is unmonitored.";
    /// An agent reported losing data: packets dropped before analysis, or records dropped from
    /// its sensor or outbox.
    ImpactSensorDataLoss => "Impact:EC2/SensorDataLoss", 3.0, Instance, NetworkConnection,
        "The Picket sensor on EC2 instance {resource} is losing data.",
        "The Picket agent on EC2 instance {resource} reported packets or records it could not analyse or deliver, so activity on the instance may be missing from findings.";
    // CloudTrail baselines and correlation (ct-correlate)
    /// An API usually used to obtain credentials, called anomalously for the principal.
    CredentialAccessIamAnomalousBehavior => "CredentialAccess:IAMUser/AnomalousBehavior", 5.0, AccessKey, AwsApiCall,
        "An API commonly used to gain access to credentials was invoked in an unusual way.",
        "An API commonly used in credential access tactics was invoked by {resource} from {remote} in a way that differs from its baseline.";
    /// An API usually used to evade defences, called anomalously for the principal.
    DefenseEvasionIamAnomalousBehavior => "DefenseEvasion:IAMUser/AnomalousBehavior", 5.0, AccessKey, AwsApiCall,
        "An API commonly used to evade defensive measures was invoked in an unusual way.",
        "An API commonly used in defense evasion tactics was invoked by {resource} from {remote} in a way that differs from its baseline.";
    /// An API usually used for discovery, called anomalously for the principal.
    DiscoveryIamAnomalousBehavior => "Discovery:IAMUser/AnomalousBehavior", 2.0, AccessKey, AwsApiCall,
        "An API commonly used to discover resources was invoked in an unusual way.",
        "An API commonly used in discovery tactics was invoked by {resource} from {remote} in a way that differs from its baseline.";
    /// An API usually used to exfiltrate data, called anomalously for the principal.
    ExfiltrationIamAnomalousBehavior => "Exfiltration:IAMUser/AnomalousBehavior", 8.0, AccessKey, AwsApiCall,
        "An API commonly used to collect data from an AWS environment was invoked in an unusual way.",
        "An API commonly used in exfiltration tactics was invoked by {resource} from {remote} in a way that differs from its baseline.";
    /// An API usually used to tamper with data or processes, called anomalously.
    ImpactIamAnomalousBehavior => "Impact:IAMUser/AnomalousBehavior", 8.0, AccessKey, AwsApiCall,
        "An API commonly used to tamper with data or processes in an AWS environment was invoked in an unusual way.",
        "An API commonly used in impact tactics was invoked by {resource} from {remote} in a way that differs from its baseline.";
    /// An API usually used to gain unauthorised access, called anomalously.
    InitialAccessIamAnomalousBehavior => "InitialAccess:IAMUser/AnomalousBehavior", 5.0, AccessKey, AwsApiCall,
        "An API commonly used to gain unauthorized access to an AWS environment was invoked in an unusual way.",
        "An API commonly used in initial access tactics was invoked by {resource} from {remote} in a way that differs from its baseline.";
    /// An API usually used to keep access, called anomalously.
    PersistenceIamAnomalousBehavior => "Persistence:IAMUser/AnomalousBehavior", 5.0, AccessKey, AwsApiCall,
        "An API commonly used to maintain unauthorized access to an AWS environment was invoked in an unusual way.",
        "An API commonly used in persistence tactics was invoked by {resource} from {remote} in a way that differs from its baseline.";
    /// An API usually used to gain higher permissions, called anomalously.
    PrivilegeEscalationIamAnomalousBehavior => "PrivilegeEscalation:IAMUser/AnomalousBehavior", 5.0, AccessKey, AwsApiCall,
        "An API commonly used to obtain high-level permissions to an AWS environment was invoked in an unusual way.",
        "An API commonly used in privilege escalation tactics was invoked by {resource} from {remote} in a way that differs from its baseline.";
    /// An S3 API usually used to discover resources, called anomalously.
    DiscoveryS3AnomalousBehavior => "Discovery:S3/AnomalousBehavior", 2.0, S3Bucket, AwsApiCall,
        "An S3 API commonly used to discover objects was invoked in an unusual way on S3 bucket {resource}.",
        "An S3 API commonly used in discovery tactics was invoked on S3 bucket {resource} from {remote} in a way that differs from the caller's baseline.";
    /// An S3 API usually used to exfiltrate data, called anomalously.
    ExfiltrationS3AnomalousBehavior => "Exfiltration:S3/AnomalousBehavior", 8.0, S3Bucket, AwsApiCall,
        "An S3 API commonly used to exfiltrate data was invoked in an unusual way on S3 bucket {resource}.",
        "An S3 API commonly used in exfiltration tactics was invoked on S3 bucket {resource} from {remote} in a way that differs from the caller's baseline.";
    /// An S3 API usually used to tamper with data, called anomalously.
    ImpactS3AnomalousBehavior => "Impact:S3/AnomalousBehavior", 8.0, S3Bucket, AwsApiCall,
        "An S3 API commonly used to tamper with data was invoked in an unusual way on S3 bucket {resource}.",
        "An S3 API commonly used in impact tactics was invoked on S3 bucket {resource} from {remote} in a way that differs from the caller's baseline.";
    /// An access key created for a different IAM user (Picket's own type).
    PersistenceAccessKeyCreatedForOtherUser => "Persistence:IAMUser/AccessKeyCreatedForOtherUser", 5.0, AccessKey, AwsApiCall,
        "An access key was created for another IAM user.",
        "Principal {resource} created an access key for a different IAM user (call from {remote}).";
    /// A console password set for a different IAM user (Picket's own type).
    PersistenceLoginProfileCreatedForOtherUser => "Persistence:IAMUser/LoginProfileCreatedForOtherUser", 5.0, AccessKey, AwsApiCall,
        "A console password was set for another IAM user.",
        "Principal {resource} created or changed the console login profile of a different IAM user (call from {remote}).";
    /// An administrative policy attached or written inline (Picket's own type).
    PrivilegeEscalationAdministrativePolicyAttached => "PrivilegeEscalation:IAMUser/AdministrativePolicyAttached", 8.0, AccessKey, AwsApiCall,
        "Full administrative permissions were granted to an IAM identity.",
        "Principal {resource} attached or wrote a policy granting full administrative access (call from {remote}).";
    /// A role trust policy opened to an outside account or to everyone (Picket's own type).
    PersistenceBackdoorRoleTrustPolicy => "Persistence:IAMUser/BackdoorRoleTrustPolicy", 8.0, AccessKey, AwsApiCall,
        "A role trust policy allows an external account or anyone to assume the role.",
        "Principal {resource} set a role trust policy that lets an account Picket does not serve, or anyone, assume the role (call from {remote}).";
    /// A newly created user given full access (Picket's own type).
    PrivilegeEscalationNewUserFullAccess => "PrivilegeEscalation:IAMUser/NewUserFullAccess", 8.0, AccessKey, AwsApiCall,
        "A newly created IAM user was given full administrative access.",
        "Principal {resource} created an IAM user and gave it full administrative access (call from {remote}).";
    /// Instance credentials used from another address inside AWS.
    UnauthorizedAccessInstanceCredentialExfiltrationInsideAws => "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.InsideAWS", 8.0, AccessKey, AwsApiCall,
        "Credentials for instance role {resource} used from another AWS account.",
        "Credentials created exclusively for an EC2 instance through role {resource} are being used from {remote}, an address inside AWS that is not the instance's.";
    /// One actor active against several member accounts (Picket's own type).
    DiscoveryMultiAccountActivity => "Discovery:IAMUser/MultiAccountActivity", 5.0, AccessKey, AwsApiCall,
        "One actor is active against several member accounts.",
        "Actor {resource} made API calls against several accounts Picket serves within one window (latest from {remote}).";
    /// A chain of signals pointing at compromised credentials.
    AttackSequenceIamCompromisedCredentials => "AttackSequence:IAM/CompromisedCredentials", 9.0, AccessKey, AwsApiCall,
        "Potential credential compromise of {resource} indicated by a sequence of actions.",
        "Principal {resource} performed a sequence of actions (discovery, then persistence or defense evasion, then exfiltration or impact) that indicates compromised credentials.";
    /// A chain of signals ending in data access on S3.
    AttackSequenceS3CompromisedData => "AttackSequence:S3/CompromisedData", 9.0, S3Bucket, AwsApiCall,
        "Potential data compromise of S3 bucket {resource} indicated by a sequence of actions.",
        "A principal performed a sequence of actions ending in exfiltration or destruction of data in S3 bucket {resource}.";

    // Inbound scans (det-gaps): Picket's own type, in GuardDuty's grammar. GuardDuty reports an
    // inbound probe only when the prober is on its scanner list (PortProbeUnprotectedPort);
    // detectors::inbound_scan names a scan from any address.
    /// One remote address probing many ports of the instance (Picket's own type).
    ReconInboundPortscan => "Recon:EC2/InboundPortscan", 2.0, Instance, PortProbe,
        "EC2 instance {resource} is being port scanned.",
        "EC2 instance {resource} is having many of its ports probed by {remote}.";
}

impl FindingType {
    /// Fills `{resource}` and `{remote}` in `template`.
    pub fn render(template: &str, resource: &str, remote: &str) -> String {
        template
            .replace("{resource}", resource)
            .replace("{remote}", remote)
    }

    /// The rendered title for this type.
    pub fn title(self, resource: &str, remote: &str) -> String {
        Self::render(self.title_template(), resource, remote)
    }

    /// The rendered description for this type.
    pub fn description(self, resource: &str, remote: &str) -> String {
        Self::render(self.description_template(), resource, remote)
    }
}

impl fmt::Display for FindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FindingType {
    type Err = UnknownFindingType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

impl Serialize for FindingType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for FindingType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_name(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_type_round_trips_name_to_type_to_name() {
        assert!(
            FindingType::ALL.len() >= 30,
            "registry shrank: {}",
            FindingType::ALL.len()
        );
        for &t in FindingType::ALL {
            assert_eq!(FindingType::from_name(t.name()), Ok(t));
            let json = serde_json::to_string(&t).expect("serialize");
            assert_eq!(json, format!("\"{}\"", t.name()));
            let back: FindingType = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, t);
        }
    }

    #[test]
    fn no_two_types_share_a_name() {
        let names: HashSet<_> = FindingType::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names.len(), FindingType::ALL.len());
    }

    #[test]
    fn an_unknown_or_differently_cased_name_is_rejected() {
        assert!(FindingType::from_name("Recon:EC2/NotAThing").is_err());
        assert!(FindingType::from_name("recon:ec2/portscan").is_err());
        assert!(serde_json::from_str::<FindingType>("\"Nope\"").is_err());
    }

    #[test]
    fn dns_variants_are_dns_requests_and_ip_variants_are_network_connections() {
        for &t in FindingType::ALL {
            if t.name().ends_with("!DNS") {
                assert_eq!(t.action_kind(), ActionKind::DnsRequest, "{t}");
            }
        }
        assert_eq!(
            FindingType::BackdoorCcActivity.action_kind(),
            ActionKind::NetworkConnection
        );
    }

    #[test]
    fn default_severities_are_inside_guardduty_bands() {
        for &t in FindingType::ALL {
            let s = t.default_severity();
            assert!((1.0..=10.0).contains(&s), "{t}: {s}");
        }
        assert_eq!(SeverityBand::of(3.9), SeverityBand::Low);
        assert_eq!(SeverityBand::of(4.0), SeverityBand::Medium);
        assert_eq!(SeverityBand::of(8.9), SeverityBand::High);
        assert_eq!(SeverityBand::of(9.0), SeverityBand::Critical);
    }

    #[test]
    fn titles_are_rendered_without_leftover_placeholders() {
        for &t in FindingType::ALL {
            let title = t.title("i-0abc", "198.51.100.7");
            let description = t.description("i-0abc", "198.51.100.7");
            assert!(!title.contains('{') && !description.contains('{'), "{t}");
            assert!(description.contains("i-0abc"), "{t}: {description}");
        }
    }
}
