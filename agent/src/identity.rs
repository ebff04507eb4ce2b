//! Who the agent is: flags, then `[identity]` in the config, then EC2 instance metadata
//! ([`crate::imds`]) for whatever those leave out, as `identity.source` allows.
//!
//! With `source = "auto"` metadata is asked only when the account or instance is configured
//! nowhere; when the configuration names both, it is used as is and metadata is not touched, so
//! an agent off EC2 starts without delay. When metadata is needed and does not answer, the
//! error names the missing key and why metadata failed.

use std::time::Duration;

use tracing::info;

use crate::config::{ConfigFile, IdentitySource, Overrides, Settings};
use crate::imds::{ImdsClient, ImdsError, InstanceMetadata};

/// Why the identity could not be settled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Occurs when `identity.source = "imds"` and instance metadata cannot be read.
    #[error("identity.source = \"imds\": {0}")]
    Required(#[source] ImdsError),
    /// Occurs when a required part of the identity is configured nowhere and instance metadata
    /// cannot supply it.
    #[error(
        "{key} is not set (give {flag} or set it in the config file) and instance metadata is unavailable: {source}"
    )]
    Unavailable {
        /// The missing key.
        key: &'static str,
        /// The flag that also sets it.
        flag: &'static str,
        /// Why instance metadata failed.
        source: ImdsError,
    },
    /// Occurs when `[imds]` is invalid.
    #[error(transparent)]
    Config(ImdsError),
}

/// Fills `file.identity`'s missing account, instance and region from instance metadata, as
/// `identity.source` says; values from flags and the file are never replaced. Returns the
/// metadata when it was read.
///
/// # Errors
/// [`IdentityError`] when metadata is required (source `imds`, or a part is missing) but
/// cannot be read.
pub async fn fill_from_imds(
    file: &mut ConfigFile,
    flags: &Overrides,
) -> Result<Option<InstanceMetadata>, IdentityError> {
    let id = &file.identity;
    let has_account = flags.account_id.is_some() || id.account_id.is_some();
    let has_instance = flags.instance_id.is_some() || id.instance_id.is_some();
    match id.source {
        IdentitySource::Config => return Ok(None),
        // A missing region alone is not worth a metadata round trip (and a warning on every
        // start off EC2): it is informational, and empty is allowed.
        IdentitySource::Auto if has_account && has_instance => return Ok(None),
        _ => {}
    }
    let client = ImdsClient::new(
        &file.imds.endpoint,
        Duration::from_millis(file.imds.timeout_ms.get()),
    )
    .map_err(IdentityError::Config)?;
    match client.fetch().await {
        Ok(md) => {
            info!(account = %md.account_id, instance = %md.instance_id, region = %md.region, "identity read from instance metadata");
            let id = &mut file.identity;
            id.account_id.get_or_insert_with(|| md.account_id.clone());
            id.instance_id.get_or_insert_with(|| md.instance_id.clone());
            id.region.get_or_insert_with(|| md.region.clone());
            Ok(Some(md))
        }
        Err(e) if id.source == IdentitySource::Imds => Err(IdentityError::Required(e)),
        Err(source) if !has_account => Err(IdentityError::Unavailable {
            key: "identity.account_id",
            flag: "--account-id",
            source,
        }),
        Err(source) => Err(IdentityError::Unavailable {
            key: "identity.instance_id",
            flag: "--instance-id",
            source,
        }),
    }
}

/// Copies what only instance metadata knows (VPC, addresses) into resolved settings.
pub fn apply_metadata(settings: &mut Settings, md: &InstanceMetadata) {
    settings.vpc_id = md.vpc_id.clone().unwrap_or_default();
    settings.addresses = [&md.local_ipv4, &md.public_ipv4]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
}
