//! The built-in canary list: the domains the public AWS GuardDuty tester queries, so a
//! deployment can be checked end to end exactly as GuardDuty users check theirs.

use crate::category::{Category, ListKind};
use crate::indicator::{Indicator, IndicatorValue, ParsedList};

/// The canary list's name, as findings show it.
pub const CANARY_LIST_NAME: &str = "picket-canary";

/// The tester's domains and their categories; sub-names match too (suffix matching).
pub const CANARY_DOMAINS: &[(&str, Category)] = &[
    ("guarddutyc2activityb.com", Category::C2),
    ("guarddutydroppointactivity.com", Category::DropPoint),
    ("guarddutyblackholeactivity.com", Category::Blackhole),
    ("guarddutyphishingactivity.com", Category::Phishing),
    ("guarddutydrivebyactivity.com", Category::DriveBy),
    ("guarddutydgaactivity.com", Category::Dga),
];

/// The canary list, ready to add to a snapshot as a threat list.
pub fn canary_list() -> ParsedList {
    let mut list = ParsedList::new(CANARY_LIST_NAME, ListKind::Threat);
    list.indicators = CANARY_DOMAINS
        .iter()
        .map(|&(name, category)| Indicator {
            value: IndicatorValue::Domain(name.to_owned()),
            category,
            source: "aws-guardduty-tester".to_owned(),
            description: "GuardDuty tester canary domain".to_owned(),
            line: 0,
        })
        .collect();
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_names_are_already_normalised() {
        for (name, _) in CANARY_DOMAINS {
            assert_eq!(crate::domain::normalize(name).as_deref(), Ok(*name));
        }
        assert_eq!(canary_list().indicators.len(), 6);
    }
}
