//! GuardDuty's finding JSON, exactly as stored: what GuardDuty writes to its S3 export and
//! what `analyze` prints. [`super::Format::GuardDuty`] serialises the finding directly; this
//! module holds the type for symmetry with the other formats.

/// The GuardDuty finding, unchanged.
pub type GuardDutyFinding = crate::findings::model::Finding;
