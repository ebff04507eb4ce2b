//! The list formats Picket reads, their names, and detection from content.

use strum::{Display, EnumIter, EnumString, IntoStaticStr};

/// A threat- or trusted-list file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, EnumIter, IntoStaticStr)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum ListFormat {
    /// One IP, CIDR or domain a line, `#`/`;` comments, hosts-file lines (GuardDuty `TXT`).
    #[strum(to_string = "plain", serialize = "txt", serialize = "hosts")]
    Plain,
    /// STIX 2.0/2.1 JSON bundle of indicators (GuardDuty `STIX`).
    #[strum(serialize = "stix")]
    Stix,
    /// AlienVault OTX CSV export: `Indicator type,Indicator,Description` (GuardDuty `OTX_CSV`).
    #[strum(to_string = "otx", serialize = "otx_csv", serialize = "otx-csv")]
    Otx,
    /// AlienVault reputation: `ip#risk#reliability#activity#country#city#lat,long#x`
    /// (GuardDuty `ALIEN_VAULT`).
    #[strum(
        to_string = "alienvault",
        serialize = "alien_vault",
        serialize = "alien-vault"
    )]
    AlienVault,
    /// Proofpoint ET intelligence CSV: `ip,category,score,...` or `domain,category,score,...`
    /// (GuardDuty `PROOF_POINT`).
    #[strum(
        to_string = "proofpoint",
        serialize = "proof_point",
        serialize = "proof-point"
    )]
    Proofpoint,
    /// FireEye iSIGHT threat intelligence CSV with a header row (GuardDuty `FIRE_EYE`).
    #[strum(to_string = "fireeye", serialize = "fire_eye", serialize = "fire-eye")]
    FireEye,
    /// Zeek intel framework TSV with a `#fields` header.
    #[strum(to_string = "zeek", serialize = "zeek-intel", serialize = "bro")]
    Zeek,
    /// Suricata IP reputation CSV: `ip,category_id,score`.
    #[strum(
        to_string = "suricata",
        serialize = "iprep",
        serialize = "suricata-iprep"
    )]
    Suricata,
    /// Spamhaus DROP/EDROP: `CIDR ; SBL123`, or its JSON-lines form.
    #[strum(to_string = "spamhaus", serialize = "drop")]
    Spamhaus,
    /// DShield recommended block list: `start<TAB>end<TAB>prefix ...`.
    #[strum(serialize = "dshield")]
    DShield,
}

/// How much of a file detection looks at; enough for comment headers of real feeds.
const DETECT_WINDOW: usize = 16 * 1024;

impl ListFormat {
    /// Guesses the format of a list from its first bytes; `None` for empty or binary content.
    ///
    /// Detection is a convenience: a header-less Proofpoint file with three columns is read as
    /// Suricata iprep, for example. Name the format where it matters.
    pub fn detect(bytes: &[u8]) -> Option<ListFormat> {
        let head = bytes.get(..DETECT_WINDOW).unwrap_or(bytes);
        if head.contains(&0) {
            return None;
        }
        let text = String::from_utf8_lossy(head);
        let text = text.trim_start_matches('\u{feff}');
        let trimmed = text.trim_start();
        if trimmed.is_empty() {
            return None;
        }
        if trimmed.starts_with('{') && (trimmed.contains("\"cidr\"") && trimmed.contains("sblid")) {
            return Some(ListFormat::Spamhaus);
        }
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            return Some(ListFormat::Stix);
        }
        let mut saw_spamhaus_comment = false;
        for line in text.lines().take(200) {
            let l = line.trim();
            if l.starts_with("#fields") {
                return Some(ListFormat::Zeek);
            }
            if l.starts_with(';') {
                saw_spamhaus_comment |= l.to_ascii_lowercase().contains("spamhaus");
                continue;
            }
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            return Some(Self::detect_line(l, saw_spamhaus_comment));
        }
        Some(ListFormat::Plain)
    }

    /// Classifies the first data (or header) line.
    fn detect_line(l: &str, saw_spamhaus_comment: bool) -> ListFormat {
        let lower = l.to_ascii_lowercase();
        let comma: Vec<&str> = l.split(',').map(str::trim).collect();
        let tab: Vec<&str> = l.split('\t').map(str::trim).collect();
        let is_ip = |s: &str| s.parse::<std::net::IpAddr>().is_ok();
        let is_num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if lower.starts_with("indicator type") || lower.starts_with("\"indicator type") {
            ListFormat::Otx
        } else if lower.contains("reportid") || lower.contains("threatscape") {
            ListFormat::FireEye
        } else if lower.starts_with("start\tend")
            || (tab.len() >= 3 && is_ip(tab[0]) && is_ip(tab[1]))
        {
            ListFormat::DShield
        } else if l.split('#').count() >= 7 && l.split('#').next().is_some_and(is_ip) {
            ListFormat::AlienVault
        } else if (lower.starts_with("ip,") || lower.starts_with("domain,"))
            && lower.contains("category")
        {
            ListFormat::Proofpoint
        } else if comma.len() == 3 && is_ip(comma[0]) && is_num(comma[1]) && is_num(comma[2]) {
            ListFormat::Suricata
        } else if comma.len() >= 5 && is_num(comma[1]) && is_num(comma[2]) {
            ListFormat::Proofpoint
        } else if saw_spamhaus_comment || (l.contains(';') && lower.contains("sbl")) {
            ListFormat::Spamhaus
        } else {
            ListFormat::Plain
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use strum::IntoEnumIterator;

    #[test]
    fn every_format_name_parses_back_to_its_format() {
        for f in ListFormat::iter() {
            assert_eq!(ListFormat::from_str(&f.to_string()), Ok(f));
        }
        assert_eq!(ListFormat::from_str("OTX_CSV"), Ok(ListFormat::Otx));
        assert_eq!(ListFormat::from_str("TXT"), Ok(ListFormat::Plain));
        assert!(ListFormat::from_str("yaml").is_err());
    }

    #[test]
    fn formats_display_their_canonical_name_not_an_alias() {
        let names: Vec<String> = ListFormat::iter().map(|f| f.to_string()).collect();
        assert_eq!(
            names,
            [
                "plain",
                "stix",
                "otx",
                "alienvault",
                "proofpoint",
                "fireeye",
                "zeek",
                "suricata",
                "spamhaus",
                "dshield"
            ]
        );
    }

    #[test]
    fn detection_recognises_each_format_by_its_first_lines() {
        let cases: &[(&str, ListFormat)] = &[
            ("# c2\n1.2.3.4\nevil.com\n", ListFormat::Plain),
            ("0.0.0.0 ads.example\n", ListFormat::Plain),
            ("{\"type\":\"bundle\",\"objects\":[]}", ListFormat::Stix),
            (
                "Indicator type,Indicator,Description\nIPv4,1.2.3.4,x\n",
                ListFormat::Otx,
            ),
            (
                "1.2.3.4#4#2#Malicious Host#CN#Beijing#39.9,116.3#11\n",
                ListFormat::AlienVault,
            ),
            (
                "ip,category,score,first_seen,last_seen,ports (|)\n",
                ListFormat::Proofpoint,
            ),
            (
                "1.2.3.4,1,100,2020-01-01,2020-01-02,80\n",
                ListFormat::Proofpoint,
            ),
            (
                "reportId,title,threatScape,ip,domain\n",
                ListFormat::FireEye,
            ),
            (
                "#fields\tindicator\tindicator_type\tmeta.source\n",
                ListFormat::Zeek,
            ),
            ("#8.8.8.8,10,100\n4.4.4.4,10,100\n", ListFormat::Suricata),
            (
                "; Spamhaus DROP List\n1.4.0.0/17 ; SBL256893\n",
                ListFormat::Spamhaus,
            ),
            (
                "{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL1\",\"rir\":\"apnic\"}\n",
                ListFormat::Spamhaus,
            ),
            ("# dshield\nStart\tEnd\tNetblock\n", ListFormat::DShield),
            ("43.229.53.0\t43.229.53.255\t24\t788\n", ListFormat::DShield),
        ];
        for (text, want) in cases {
            assert_eq!(ListFormat::detect(text.as_bytes()), Some(*want), "{text:?}");
        }
    }

    #[test]
    fn empty_or_binary_content_is_not_detected() {
        assert_eq!(ListFormat::detect(b""), None);
        assert_eq!(ListFormat::detect(b"   \n\n"), None);
        assert_eq!(ListFormat::detect(b"\x00\x01\x02"), None);
    }
}
