//! Single-event CloudTrail rules (and two short-window console rules), one module per rule
//! family, each a [`super::Detector`] fed [`super::Event::Api`]:
//!
//! - `root_usage`: `Policy:IAMUser/RootCredentialUsage`
//! - `logging_disabled`: `Stealth:IAMUser/CloudTrailLoggingDisabled` (learns trail buckets)
//! - `password_policy`: `Stealth:IAMUser/PasswordPolicyChange`
//! - `s3_logging`: `Stealth:S3/ServerAccessLoggingDisabled`
//! - `s3_exposure`: the `Policy:S3/*` block-public-access and public/anonymous grant types
//! - `intel_caller`: the IAM and S3 `MaliciousIPCaller`/`TorIPCaller` types from intel
//! - `pentest_agent`: `PenTest:IAMUser/KaliLinux|ParrotLinux|PentooLinux`
//! - `console_login`: `UnauthorizedAccess:IAMUser/ConsoleLoginSuccess.B` and console brute force
//!
//! `api_observation` builds the observation every rule emits, so the finding's resource,
//! `awsApiCallAction` and evidence look the same whichever rule fired.

pub mod api_observation;
pub mod console_login;
pub mod intel_caller;
pub mod logging_disabled;
pub mod password_policy;
pub mod pentest_agent;
pub mod root_usage;
pub mod s3_exposure;
pub mod s3_logging;

#[cfg(test)]
mod real_data_tests;
#[cfg(test)]
pub mod testing;

use super::{Detector, DetectorContext};

/// Every CloudTrail rule detector, configured by `config`.
pub fn all(config: &super::DetectorsConfig, context: &DetectorContext) -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(root_usage::RootUsageDetector),
        Box::new(logging_disabled::LoggingDisabledDetector::default()),
        Box::new(password_policy::PasswordPolicyDetector::default()),
        Box::new(s3_logging::S3LoggingDetector),
        Box::new(s3_exposure::S3ExposureDetector),
        Box::new(intel_caller::IntelCallerDetector::new(context)),
        Box::new(pentest_agent::PentestAgentDetector::default()),
        Box::new(console_login::ConsoleLoginDetector::new(
            config.console_login.clone(),
        )),
    ]
}
