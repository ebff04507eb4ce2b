//! What an indicator is about (its category) and which side of the trust line its list sits on.
//!
//! Names and numeric ids are derived with `strum` from one enum each, so the text a config or CLI
//! uses, the byte the binary encoding stores and the variant can never drift apart.

use strum::{AsRefStr, Display, EnumCount, EnumIter, EnumString, FromRepr, IntoStaticStr};

/// What kind of threat an indicator stands for; drives the GuardDuty finding type.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Display,
    EnumString,
    EnumIter,
    EnumCount,
    IntoStaticStr,
    AsRefStr,
    FromRepr,
)]
#[strum(serialize_all = "kebab-case", ascii_case_insensitive)]
#[repr(u8)]
pub enum Category {
    /// Command-and-control servers.
    #[strum(to_string = "c2", serialize = "cnc", serialize = "c&c")]
    C2 = 0,
    /// Crypto-currency mining pools and related services.
    #[strum(to_string = "crypto", serialize = "bitcoin", serialize = "mining")]
    Crypto = 1,
    /// Tor entry, relay or exit nodes.
    Tor = 2,
    /// Black-hole or sinkhole addresses and names.
    #[strum(to_string = "blackhole", serialize = "sinkhole")]
    Blackhole = 3,
    /// Drop points where stolen data is sent.
    DropPoint = 4,
    /// Phishing sites.
    Phishing = 5,
    /// Drive-by download sources.
    DriveBy = 6,
    /// Names produced by domain generation algorithms.
    Dga = 7,
    /// Known scanners (context for `Recon:EC2/PortProbeUnprotectedPort`).
    Scanner = 8,
    /// Anything the operator lists without a more precise category.
    Custom = 9,
}

/// Each category's wire name (`drop_point`), derived from its kebab-case name so the two cannot
/// drift; indexed by the category's id.
static WIRE_NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    use strum::IntoEnumIterator;
    Category::iter()
        .map(|c| c.as_ref().replace('-', "_"))
        .collect()
});

impl Category {
    /// The snake-case name `IntelHit.category` carries on the wire (`c2`, `drop_point`, …): the
    /// kebab-case name with `_` for `-`.
    pub fn wire_name(self) -> &'static str {
        WIRE_NAMES
            .get(self as usize)
            .map_or("custom", String::as_str)
    }

    /// The category whose [`Category::wire_name`] is `name` exactly; `None` for anything else.
    pub fn from_wire_name(name: &str) -> Option<Category> {
        use strum::IntoEnumIterator;
        Category::iter().find(|c| c.wire_name() == name)
    }

    /// Guesses a category from free text in a feed (a Zeek `meta.desc`, a Suricata category name,
    /// an AlienVault activity); `None` when nothing specific is recognised.
    ///
    /// Feeds label the same thing many ways ("CnC", "C&C", "C2", "Botnet Command"), so this looks
    /// for tell-tale words rather than exact names.
    pub fn guess_from_text(text: &str) -> Option<Category> {
        let t = text.to_ascii_lowercase();
        let has = |w: &str| t.contains(w);
        // Whole words for short tokens, so "Monitor" is not Tor and "c2c" is not C2.
        let word = |w: &str| {
            t.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|x| x == w)
        };
        if word("tor") {
            Some(Category::Tor)
        } else if word("cnc") || word("c2") || has("c&c") || has("command and control") {
            Some(Category::C2)
        } else if has("phish") {
            Some(Category::Phishing)
        } else if word("dga") {
            Some(Category::Dga)
        } else if has("drive-by") || has("driveby") || has("drive by") {
            Some(Category::DriveBy)
        } else if has("sinkhole") || has("blackhole") {
            Some(Category::Blackhole)
        } else if has("drop point") || has("droppoint") || has("drop-point") {
            Some(Category::DropPoint)
        } else if has("mining") || has("miner") || has("bitcoin") || has("crypto") {
            Some(Category::Crypto)
        } else if has("scan") || has("recon") || has("brute") {
            Some(Category::Scanner)
        } else {
            None
        }
    }
}

/// Whether a list names threats or trusted parties; a trusted entry always beats a threat entry.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Display,
    EnumString,
    EnumIter,
    IntoStaticStr,
    FromRepr,
)]
#[strum(serialize_all = "kebab-case", ascii_case_insensitive)]
#[repr(u8)]
pub enum ListKind {
    /// A threat list: matches produce findings.
    Threat = 0,
    /// A trusted list: matches suppress threat matches.
    Trusted = 1,
}

/// The shape of an indicator, as counted by statistics.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Display, EnumIter, IntoStaticStr,
)]
#[strum(serialize_all = "kebab-case")]
pub enum IndicatorKind {
    /// A single IPv4 address (a /32).
    Ipv4,
    /// A single IPv6 address (a /128).
    Ipv6,
    /// An IPv4 or IPv6 network shorter than a single address.
    Cidr,
    /// A domain name (which also covers its sub-names).
    Domain,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use strum::IntoEnumIterator;

    #[test]
    fn every_category_round_trips_through_its_name_and_its_id() {
        let mut n = 0;
        for c in Category::iter() {
            assert_eq!(Category::from_str(c.as_ref()), Ok(c));
            assert_eq!(Category::from_repr(c as u8), Some(c));
            n += 1;
        }
        assert_eq!(n, Category::COUNT);
    }

    #[test]
    fn wire_names_are_the_snake_case_names_the_protocol_documents() {
        let names: Vec<&str> = Category::iter().map(Category::wire_name).collect();
        assert_eq!(
            names,
            [
                "c2",
                "crypto",
                "tor",
                "blackhole",
                "drop_point",
                "phishing",
                "drive_by",
                "dga",
                "scanner",
                "custom"
            ]
        );
        for c in Category::iter() {
            assert_eq!(Category::from_wire_name(c.wire_name()), Some(c));
        }
        assert_eq!(Category::from_wire_name("drop-point"), None);
        // Aliases parse but never become the displayed name.
        assert_eq!(Category::C2.to_string(), "c2");
        assert_eq!(Category::Crypto.to_string(), "crypto");
        assert_eq!(Category::Blackhole.to_string(), "blackhole");
    }

    #[test]
    fn unknown_category_names_and_ids_are_refused() {
        assert!(Category::from_str("ransomware-ish").is_err());
        assert_eq!(Category::from_repr(Category::COUNT as u8), None);
    }

    #[test]
    fn category_aliases_parse_case_insensitively() {
        assert_eq!(Category::from_str("CnC"), Ok(Category::C2));
        assert_eq!(Category::from_str("sinkhole"), Ok(Category::Blackhole));
        assert_eq!(Category::from_str("drop-point"), Ok(Category::DropPoint));
    }

    #[test]
    fn feed_text_guesses_pick_the_named_category_and_nothing_for_plain_words() {
        assert_eq!(
            Category::guess_from_text("ET CNC Feodo Tracker"),
            Some(Category::C2)
        );
        assert_eq!(
            Category::guess_from_text("ET TOR Known Tor Exit Node"),
            Some(Category::Tor)
        );
        assert_eq!(
            Category::guess_from_text("Phishing-URLS"),
            Some(Category::Phishing)
        );
        assert_eq!(Category::guess_from_text("BAD-REPUTATION"), None);
        assert_eq!(Category::guess_from_text("Monitor"), None);
    }

    #[test]
    fn list_kinds_round_trip_through_names_and_ids() {
        for k in ListKind::iter() {
            let name: &'static str = k.into();
            assert_eq!(ListKind::from_str(name), Ok(k));
            assert_eq!(ListKind::from_repr(k as u8), Some(k));
        }
        assert_eq!(ListKind::from_repr(2), None);
    }
}
