//! Which tactic an API call serves, for the `*/AnomalousBehavior` types.
//!
//! GuardDuty does not publish its full API lists; its finding-type documentation names the
//! tactics and gives example APIs for each. This table holds those examples and the APIs
//! MITRE ATT&CK for cloud (IaaS) and the Stratus Red Team techniques use for the same tactic,
//! then falls back to the read-only prefixes (`List*`, `Describe*`) GuardDuty calls discovery.
//! A call that maps to no tactic never raises an anomaly finding (it still trains the baseline).

use crate::findings::types::FindingType;

/// A MITRE ATT&CK tactic GuardDuty names in its anomaly types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tactic {
    /// Obtaining secrets and credentials.
    CredentialAccess,
    /// Turning off or hiding from defences.
    DefenseEvasion,
    /// Learning what is there.
    Discovery,
    /// Moving data out.
    Exfiltration,
    /// Destroying or tampering with data and resources.
    Impact,
    /// Getting a foothold (sessions and tokens).
    InitialAccess,
    /// Keeping access.
    Persistence,
    /// Gaining more permissions.
    PrivilegeEscalation,
}

impl Tactic {
    /// The tactic's name as GuardDuty writes it in type names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CredentialAccess => "CredentialAccess",
            Self::DefenseEvasion => "DefenseEvasion",
            Self::Discovery => "Discovery",
            Self::Exfiltration => "Exfiltration",
            Self::Impact => "Impact",
            Self::InitialAccess => "InitialAccess",
            Self::Persistence => "Persistence",
            Self::PrivilegeEscalation => "PrivilegeEscalation",
        }
    }

    /// The anomaly finding type for this tactic; S3 data calls get the S3 types where
    /// GuardDuty has one (Discovery, Exfiltration, Impact), the IAM type otherwise.
    pub fn anomaly_type(self, s3: bool) -> FindingType {
        match (self, s3) {
            (Self::Discovery, true) => FindingType::DiscoveryS3AnomalousBehavior,
            (Self::Exfiltration, true) => FindingType::ExfiltrationS3AnomalousBehavior,
            (Self::Impact, true) => FindingType::ImpactS3AnomalousBehavior,
            (Self::CredentialAccess, _) => FindingType::CredentialAccessIamAnomalousBehavior,
            (Self::DefenseEvasion, _) => FindingType::DefenseEvasionIamAnomalousBehavior,
            (Self::Discovery, _) => FindingType::DiscoveryIamAnomalousBehavior,
            (Self::Exfiltration, _) => FindingType::ExfiltrationIamAnomalousBehavior,
            (Self::Impact, _) => FindingType::ImpactIamAnomalousBehavior,
            (Self::InitialAccess, _) => FindingType::InitialAccessIamAnomalousBehavior,
            (Self::Persistence, _) => FindingType::PersistenceIamAnomalousBehavior,
            (Self::PrivilegeEscalation, _) => FindingType::PrivilegeEscalationIamAnomalousBehavior,
        }
    }
}

/// The tactic of `event_name` called on `event_source`, if it has one.
pub fn tactic_of(event_source: &str, event_name: &str) -> Option<Tactic> {
    use Tactic::*;
    if event_source == "s3.amazonaws.com" {
        return s3_tactic(event_name);
    }
    let explicit = match event_name {
        // Credential access: secrets, parameters, instance passwords, credential reports.
        "GetSecretValue"
        | "BatchGetSecretValue"
        | "GetPasswordData"
        | "GetParameter"
        | "GetParameters"
        | "GetParametersByPath"
        | "GenerateCredentialReport"
        | "GetCredentialReport"
        | "RetrieveEnvironmentInfo"
        | "GetAuthorizationToken"
        | "CreateAccessKey"
        | "UpdateAccessKey"
        | "GetSigninToken"
        | "GetFederationToken" => CredentialAccess,
        // Defence evasion: logging, monitoring and detection switched off or narrowed.
        "StopLogging"
        | "DeleteTrail"
        | "UpdateTrail"
        | "PutEventSelectors"
        | "DeleteFlowLogs"
        | "DeleteDetector"
        | "UpdateDetector"
        | "DeleteMembers"
        | "DisassociateFromMasterAccount"
        | "DisassociateMembers"
        | "StopMonitoringMembers"
        | "DeleteLogGroup"
        | "DeleteLogStream"
        | "PutRetentionPolicy"
        | "DeleteResolverQueryLogConfig"
        | "DisassociateResolverQueryLogConfig"
        | "StopConfigurationRecorder"
        | "DeleteConfigurationRecorder"
        | "DeleteConfigRule"
        | "DeleteDeliveryChannel"
        | "DisableSecurityHub"
        | "BatchUpdateFindings"
        | "DeleteWebACL"
        | "DisassociateWebACL"
        | "LeaveOrganization"
        | "DeleteAlarms"
        | "DisableAlarmActions" => DefenseEvasion,
        // Exfiltration: sharing snapshots, images and data outside, opening paths out.
        "ModifySnapshotAttribute"
        | "ModifyImageAttribute"
        | "ModifyDBSnapshotAttribute"
        | "ModifyDBClusterSnapshotAttribute"
        | "CopySnapshot"
        | "CopyDBSnapshot"
        | "CreateSnapshot"
        | "CreateDBSnapshot"
        | "ExportImage"
        | "CreateStoreImageTask"
        | "AuthorizeSecurityGroupIngress"
        | "CreateTrafficMirrorSession"
        | "PutBucketReplication"
        | "RestoreDBInstanceFromDBSnapshot" => Exfiltration,
        // Impact: destroying, encrypting or hijacking resources.
        "TerminateInstances"
        | "DeleteDBInstance"
        | "DeleteDBCluster"
        | "DeleteSnapshot"
        | "DeleteDBSnapshot"
        | "ScheduleKeyDeletion"
        | "DisableKey"
        | "DeleteVolume"
        | "DeleteBackupVault"
        | "DeleteRecoveryPoint"
        | "StopInstances"
        | "RunInstances"
        | "DeleteFunction"
        | "DeleteTable"
        | "InvokeModel"
        | "PutBucketEncryption"
        | "DeleteSecret"
        | "DeleteLoadBalancer" => Impact,
        // Initial access: sessions and tokens for a new foothold.
        "ConsoleLogin"
        | "GetSessionToken"
        | "AssumeRole"
        | "AssumeRoleWithSAML"
        | "AssumeRoleWithWebIdentity"
        | "StartSession"
        | "SendSSHPublicKey"
        | "SendSerialConsoleSSHPublicKey" => InitialAccess,
        // Persistence: new identities, keys and footholds that outlive the session.
        "CreateUser"
        | "CreateLoginProfile"
        | "UpdateLoginProfile"
        | "CreateRole"
        | "ImportKeyPair"
        | "CreateKeyPair"
        | "CreateFunction"
        | "UpdateFunctionCode"
        | "UpdateFunctionConfiguration"
        | "PublishLayerVersion"
        | "AddPermission"
        | "CreateTrustAnchor"
        | "CreateProfile"
        | "UploadSSHPublicKey"
        | "CreateServiceSpecificCredential"
        | "CreateSAMLProvider"
        | "CreateOpenIDConnectProvider"
        | "ModifyInstanceAttribute"
        | "CreateEventSourceMapping"
        | "PutRule"
        | "PutTargets"
        | "SendCommand" => Persistence,
        // Privilege escalation: more permissions for an identity already held.
        "AttachUserPolicy"
        | "AttachRolePolicy"
        | "AttachGroupPolicy"
        | "PutUserPolicy"
        | "PutRolePolicy"
        | "PutGroupPolicy"
        | "AddUserToGroup"
        | "CreatePolicyVersion"
        | "SetDefaultPolicyVersion"
        | "UpdateAssumeRolePolicy"
        | "PassRole"
        | "PutUserPermissionsBoundary"
        | "DeleteUserPermissionsBoundary"
        | "DeleteRolePermissionsBoundary"
        | "AddRoleToInstanceProfile" => PrivilegeEscalation,
        // Discovery APIs that do not follow the List/Describe pattern.
        "GetCallerIdentity"
        | "GetAccountAuthorizationDetails"
        | "GetAccountSummary"
        | "GetAccountPasswordPolicy"
        | "GetUser"
        | "GetRole"
        | "GetRolePolicy"
        | "GetUserPolicy"
        | "GetPolicy"
        | "GetPolicyVersion"
        | "GetBucketPolicy"
        | "GetBucketAcl"
        | "GetSendQuota"
        | "GetCostAndUsage"
        | "SimulatePrincipalPolicy" => Discovery,
        _ => return discovery_by_prefix(event_name),
    };
    Some(explicit)
}

/// S3 data and bucket calls: GuardDuty's S3 anomaly types cover discovery, exfiltration and
/// impact; bucket-configuration calls that weaken defences are defence evasion.
fn s3_tactic(event_name: &str) -> Option<Tactic> {
    use Tactic::*;
    let t = match event_name {
        "GetObject"
        | "CopyObject"
        | "UploadPartCopy"
        | "SelectObjectContent"
        | "RestoreObject"
        | "PutBucketReplication"
        | "PutBucketPolicy"
        | "PutBucketAcl"
        | "PutObjectAcl" => Exfiltration,
        "DeleteObject"
        | "DeleteObjects"
        | "DeleteBucket"
        | "PutObject"
        | "PutBucketLifecycle"
        | "PutBucketLifecycleConfiguration"
        | "PutBucketVersioning"
        | "PutBucketEncryption"
        | "DeleteBucketEncryption"
        | "PutObjectRetention" => Impact,
        "DeleteBucketPolicy"
        | "PutBucketLogging"
        | "DeleteBucketLogging"
        | "PutBucketPublicAccessBlock"
        | "DeletePublicAccessBlock"
        | "DeleteBucketPublicAccessBlock" => DefenseEvasion,
        "ListBuckets"
        | "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "HeadBucket"
        | "HeadObject"
        | "GetBucketLocation"
        | "GetBucketAcl"
        | "GetBucketPolicy"
        | "GetBucketPolicyStatus"
        | "GetBucketPublicAccessBlock"
        | "GetBucketLogging"
        | "GetBucketVersioning"
        | "GetBucketEncryption"
        | "GetObjectAcl" => Discovery,
        _ => return discovery_by_prefix(event_name),
    };
    Some(t)
}

fn discovery_by_prefix(event_name: &str) -> Option<Tactic> {
    (event_name.starts_with("List") || event_name.starts_with("Describe"))
        .then_some(Tactic::Discovery)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardduty_example_apis_map_to_their_documented_tactics() {
        assert_eq!(
            tactic_of("iam.amazonaws.com", "ListAccessKeys"),
            Some(Tactic::Discovery)
        );
        assert_eq!(
            tactic_of("ec2.amazonaws.com", "DescribeInstances"),
            Some(Tactic::Discovery)
        );
        assert_eq!(
            tactic_of("cloudtrail.amazonaws.com", "StopLogging"),
            Some(Tactic::DefenseEvasion)
        );
        assert_eq!(
            tactic_of("iam.amazonaws.com", "AttachUserPolicy"),
            Some(Tactic::PrivilegeEscalation)
        );
        assert_eq!(
            tactic_of("secretsmanager.amazonaws.com", "GetSecretValue"),
            Some(Tactic::CredentialAccess)
        );
        assert_eq!(
            tactic_of("s3.amazonaws.com", "GetObject"),
            Some(Tactic::Exfiltration)
        );
        assert_eq!(
            tactic_of("s3.amazonaws.com", "DeleteObjects"),
            Some(Tactic::Impact)
        );
    }

    #[test]
    fn an_api_outside_every_tactic_maps_to_none() {
        assert_eq!(
            tactic_of("sts.amazonaws.com", "DecodeAuthorizationMessage"),
            None
        );
        assert_eq!(tactic_of("s3.amazonaws.com", "GetBucketTagging"), None);
        assert_eq!(tactic_of("ec2.amazonaws.com", "CreateTags"), None);
    }

    #[test]
    fn s3_tactics_pick_the_s3_types_and_other_tactics_the_iam_types() {
        assert_eq!(
            Tactic::Exfiltration.anomaly_type(true),
            FindingType::ExfiltrationS3AnomalousBehavior
        );
        assert_eq!(
            Tactic::DefenseEvasion.anomaly_type(true),
            FindingType::DefenseEvasionIamAnomalousBehavior
        );
        assert_eq!(
            Tactic::Discovery.anomaly_type(false),
            FindingType::DiscoveryIamAnomalousBehavior
        );
    }
}
