//! GuardDuty finding type names for intel matches.
//!
//! The names live once, as `strum` serialisations on [`FindingType`]; the only mapping from a
//! category and a target to a finding type is the single `match` in [`FindingType::for_match`].

use crate::category::Category;
use strum::{Display, EnumIter, EnumString, IntoStaticStr};

/// What was matched: an address seen in traffic, or a name seen in DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// An IP address (flow data).
    Ip,
    /// A domain name (DNS data).
    Domain,
}

/// A GuardDuty finding type that an intel match can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, EnumIter, IntoStaticStr)]
pub enum FindingType {
    /// Traffic to a command-and-control address.
    #[strum(serialize = "Backdoor:EC2/C&CActivity.B")]
    C2Ip,
    /// A DNS query for a command-and-control name.
    #[strum(serialize = "Backdoor:EC2/C&CActivity.B!DNS")]
    C2Dns,
    /// Traffic to a crypto-currency address.
    #[strum(serialize = "CryptoCurrency:EC2/BitcoinTool.B")]
    CryptoIp,
    /// A DNS query for a crypto-currency name.
    #[strum(serialize = "CryptoCurrency:EC2/BitcoinTool.B!DNS")]
    CryptoDns,
    /// Traffic to a black-hole address.
    #[strum(serialize = "Trojan:EC2/BlackholeTraffic")]
    BlackholeIp,
    /// A DNS query for a black-hole name.
    #[strum(serialize = "Trojan:EC2/BlackholeTraffic!DNS")]
    BlackholeDns,
    /// Traffic to a drop point.
    #[strum(serialize = "Trojan:EC2/DropPoint")]
    DropPointIp,
    /// A DNS query for a drop point.
    #[strum(serialize = "Trojan:EC2/DropPoint!DNS")]
    DropPointDns,
    /// A DNS query for a phishing name.
    #[strum(serialize = "Trojan:EC2/PhishingDomainRequest!DNS")]
    PhishingDns,
    /// A DNS query for a drive-by download source.
    #[strum(serialize = "Trojan:EC2/DriveBySourceTraffic!DNS")]
    DriveByDns,
    /// A DNS query for a DGA-generated name.
    #[strum(serialize = "Trojan:EC2/DGADomainRequest.C!DNS")]
    DgaDns,
    /// Traffic with a Tor node.
    #[strum(serialize = "UnauthorizedAccess:EC2/TorClient")]
    TorClient,
    /// Traffic with an address on an operator's custom threat list.
    #[strum(serialize = "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom")]
    CustomIp,
    /// A DNS query for a name on an operator's custom threat list.
    #[strum(serialize = "Impact:EC2/MaliciousDomainRequest.Custom")]
    CustomDomain,
}

impl FindingType {
    /// The finding type a threat match of `category` on `target` raises; `None` for scanners,
    /// whose matches are context for port-probe findings rather than findings of their own.
    ///
    /// Categories GuardDuty only defines for DNS (phishing, drive-by, DGA) fall back to the custom
    /// types when an address matches, so no threat match is silently dropped.
    pub fn for_match(category: Category, target: Target) -> Option<FindingType> {
        use Category as C;
        use FindingType as F;
        use Target as T;
        Some(match (category, target) {
            (C::C2, T::Ip) => F::C2Ip,
            (C::C2, T::Domain) => F::C2Dns,
            (C::Crypto, T::Ip) => F::CryptoIp,
            (C::Crypto, T::Domain) => F::CryptoDns,
            (C::Blackhole, T::Ip) => F::BlackholeIp,
            (C::Blackhole, T::Domain) => F::BlackholeDns,
            (C::DropPoint, T::Ip) => F::DropPointIp,
            (C::DropPoint, T::Domain) => F::DropPointDns,
            (C::Phishing, T::Domain) => F::PhishingDns,
            (C::DriveBy, T::Domain) => F::DriveByDns,
            (C::Dga, T::Domain) => F::DgaDns,
            (C::Tor, T::Ip) => F::TorClient,
            (C::Scanner, _) => return None,
            (C::Phishing | C::DriveBy | C::Dga | C::Custom, T::Ip) => F::CustomIp,
            (C::Tor | C::Custom, T::Domain) => F::CustomDomain,
        })
    }

    /// The GuardDuty type name, e.g. `Backdoor:EC2/C&CActivity.B!DNS`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use strum::IntoEnumIterator;

    #[test]
    fn every_finding_type_name_parses_back_to_itself() {
        let all: Vec<FindingType> = FindingType::iter().collect();
        assert_eq!(all.len(), 14);
        for f in all {
            assert_eq!(FindingType::from_str(f.as_str()), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
    }

    #[test]
    fn c2_maps_to_the_backdoor_types_with_dns_suffix_only_for_names() {
        assert_eq!(
            FindingType::for_match(Category::C2, Target::Ip).map(FindingType::as_str),
            Some("Backdoor:EC2/C&CActivity.B")
        );
        assert_eq!(
            FindingType::for_match(Category::C2, Target::Domain).map(FindingType::as_str),
            Some("Backdoor:EC2/C&CActivity.B!DNS")
        );
    }

    #[test]
    fn custom_lists_map_to_the_custom_types_and_scanners_to_none() {
        assert_eq!(
            FindingType::for_match(Category::Custom, Target::Ip),
            Some(FindingType::CustomIp)
        );
        assert_eq!(
            FindingType::for_match(Category::Custom, Target::Domain).map(FindingType::as_str),
            Some("Impact:EC2/MaliciousDomainRequest.Custom")
        );
        assert_eq!(FindingType::for_match(Category::Scanner, Target::Ip), None);
        assert_eq!(
            FindingType::for_match(Category::Scanner, Target::Domain),
            None
        );
    }

    #[test]
    fn dns_only_categories_have_their_own_dns_types() {
        assert_eq!(
            FindingType::for_match(Category::Dga, Target::Domain).map(FindingType::as_str),
            Some("Trojan:EC2/DGADomainRequest.C!DNS")
        );
        assert_eq!(
            FindingType::for_match(Category::Tor, Target::Ip).map(FindingType::as_str),
            Some("UnauthorizedAccess:EC2/TorClient")
        );
    }
}
